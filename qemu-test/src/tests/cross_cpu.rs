//! Frees on another CPU: every CPU allocates blocks of every kind from the
//! kernel heap (through its front cache), fills them, and posts them to the
//! next CPU, which checks and frees them (into *its* cache). Afterwards the
//! kernel heap holds as many live blocks as before: nothing was lost or
//! freed twice on the way.

use alloc::alloc::{alloc, dealloc};
use alloc::format;
use alloc::string::String;
use core::alloc::Layout;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::smp::record;
use super::{check, fill};
use crate::HEAP;
use crate::layout::MAX_CPUS;
use crate::smp::jobs::{Barrier, run_on_all_cpus};
use crate::smp::online_cpus;

/// Blocks each CPU posts.
const BLOCKS: usize = 120;
/// Sizes, in turn: TINY, SMALL and LARGE.
const SIZES: [usize; 6] = [24, 100, 700, 3000, 20_000, 50_000];

/// `MAILBOXES[cpu]`: the blocks posted to `cpu`.
static MAILBOXES: [[AtomicPtr<u8>; BLOCKS]; MAX_CPUS] =
    [const { [const { AtomicPtr::new(core::ptr::null_mut()) }; BLOCKS] }; MAX_CPUS];
static BARRIER: Barrier = Barrier::new();

fn layout(k: usize) -> Layout {
    Layout::from_size_align(SIZES[k % SIZES.len()], 16).expect("valid layout")
}

fn seed(cpu: usize, k: usize) -> usize {
    cpu * 1000 + k
}

/// One CPU's part.
fn job(cpu: usize) -> bool {
    let cpus = online_cpus();
    let (to, from) = ((cpu + 1) % cpus, (cpu + cpus - 1) % cpus);
    let mut posted = true;
    for (k, slot) in MAILBOXES[to].iter().enumerate() {
        // SAFETY: the layout has a non-zero size.
        let block = unsafe { alloc(layout(k)) };
        if block.is_null() {
            posted = false;
            break;
        }
        // SAFETY: a fresh block of that size.
        unsafe { fill(block, layout(k).size(), seed(cpu, k)) };
        slot.store(block, Ordering::Release);
    }
    BARRIER.wait("cross-CPU blocks posted");
    let mut result = Ok(());
    for (k, slot) in MAILBOXES[cpu].iter().enumerate() {
        let block = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if block.is_null() {
            result = result.and(Err(format!("block {k} from CPU {from} missing")));
            continue;
        }
        // SAFETY: a live block of that size, posted by CPU `from`.
        result = result.and(unsafe { check(block, layout(k).size(), seed(from, k)) });
        // SAFETY: allocated with this layout by `from`, freed once, here.
        unsafe { dealloc(block, layout(k)) };
    }
    BARRIER.wait("cross-CPU blocks freed");
    let result = if posted {
        result.map(|()| {
            format!("{BLOCKS} blocks (TINY, SMALL, LARGE) allocated on CPU {from}, patterns intact, freed here")
        })
    } else {
        Err(String::from("the kernel heap refused a block"))
    };
    record("blocks_freed_on_another_cpu", Some(cpu), result)
}

/// Runs the test on every CPU, then checks the kernel heap's live blocks.
pub fn run() -> bool {
    let before = HEAP.stats().live_blocks;
    let ok = run_on_all_cpus(job);
    let after = HEAP.stats();
    let balance = if after.live_blocks == before {
        Ok(format!(
            "{before} live blocks before and after; {} blocks wait in the CPUs' caches",
            after.cached_blocks
        ))
    } else {
        Err(format!(
            "{} live blocks after the cross-CPU frees, {before} before",
            after.live_blocks
        ))
    };
    ok & record("cross_cpu_frees_balance", None, balance)
}
