//! TLB shootdown: a CPU must never reach a frame through a translation
//! that was removed, once the frame is reused.
//!
//! CPU 1 (B) reads a page P of the shared window, so its TLB holds P's
//! translation to frame F. CPU 0 (A) then decommits P (the provider drops
//! its frame: this is where the shootdown runs), and takes frames for new
//! pages until it gets F back, which it fills with a new pattern. B reads P
//! again: it must fault and see a fresh zeroed page. Reading the new
//! pattern means B went through its stale TLB entry to a frame that now
//! belongs to someone else — what happens with `no-shootdown`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ft_malloc::PageProvider;
use x86_64::PhysAddr;

use super::ensure;
use super::shared_faults::SHARED_PROVIDER;
use super::smp::record;
use crate::demand_paging::backing_frame;
use crate::layout::PAGE_SIZE;
use crate::smp::jobs::{Barrier, WATCHDOG_TICKS, run_on_all_cpus_quietly};
use crate::smp::percpu::CPUS;
use crate::smp::{online_cpus, shootdown as tlb};
use crate::tsc;

/// What A writes into P before B reads it.
const OLD: u64 = 0xaaaa_aaaa_aaaa_aaaa;
/// What A writes into F once it is reused.
const NEW: u64 = 0xbbbb_bbbb_bbbb_bbbb;
/// Pages A may map before it gets F back.
const MAX_REUSE_TRIES: usize = 256;

static PAGE: AtomicU64 = AtomicU64::new(0);
/// Steps: 1 = P written by A, 2 = P read by B, 3 = F reused by A, 4 = B done.
static STEP: AtomicUsize = AtomicUsize::new(0);
/// What B read, the first and the second time.
static FIRST_READ: AtomicU64 = AtomicU64::new(0);
static SECOND_READ: AtomicU64 = AtomicU64::new(0);
/// B's faults mapped across its second read.
static SECOND_READ_FAULTS: AtomicU64 = AtomicU64::new(0);
static BARRIER: Barrier = Barrier::new();

fn wait_for(step: usize) {
    let start = tsc::ticks();
    while STEP.load(Ordering::Acquire) < step {
        assert!(
            tsc::ticks().wrapping_sub(start) < WATCHDOG_TICKS,
            "shootdown test: stuck waiting for step {step}"
        );
        core::hint::spin_loop();
    }
}

/// CPU B.
fn reader() {
    wait_for(1);
    let page = PAGE.load(Ordering::Acquire) as *const u64;
    // SAFETY: P is a live, mapped page of the shared window.
    FIRST_READ.store(unsafe { page.read_volatile() }, Ordering::Release);
    STEP.store(2, Ordering::Release);
    wait_for(3);
    let faults = &CPUS[1].faults_mapped;
    let before = faults.load(Ordering::Acquire);
    // SAFETY: P is still reserved (decommitted, not unmapped): a read
    // faults a fresh zeroed frame in, unless a stale TLB entry serves it.
    SECOND_READ.store(unsafe { page.read_volatile() }, Ordering::Release);
    SECOND_READ_FAULTS.store(faults.load(Ordering::Acquire) - before, Ordering::Release);
    STEP.store(4, Ordering::Release);
}

/// CPU A. Returns what it measured.
fn writer() -> Result<String, String> {
    let page_len = PAGE_SIZE as usize;
    let run = SHARED_PROVIDER
        .map(page_len, page_len)
        .ok_or("the shared window refused a page")?;
    let p = run.as_ptr() as u64;
    // SAFETY: a live page of ours; this write faults its frame in.
    unsafe { (p as *mut u64).write_volatile(OLD) };
    let frame = backing_frame(p).ok_or("P is not mapped after its first write")?;
    PAGE.store(p, Ordering::Release);
    STEP.store(1, Ordering::Release);
    wait_for(2);

    let (shootdowns, ipis, _) = tlb::counts();
    // SAFETY: the heap (here, the test) gives up P's contents.
    unsafe { SHARED_PROVIDER.decommit(run, page_len) };
    let (shootdowns_after, ipis_after, _) = tlb::counts();

    // Reuse F: map pages until one of them gets it, and fill it.
    let mut reused: Vec<NonNull<u8>> = Vec::new();
    let mut got_frame = false;
    while !got_frame && reused.len() < MAX_REUSE_TRIES {
        let q = SHARED_PROVIDER
            .map(page_len, page_len)
            .ok_or("the shared window refused a page")?;
        // SAFETY: a live page of ours; the write faults a frame in.
        unsafe { q.as_ptr().cast::<u64>().write_volatile(0) };
        let q_frame = backing_frame(q.as_ptr() as u64);
        reused.push(q);
        if q_frame == Some(frame) {
            // SAFETY: as above: fill the whole page.
            unsafe {
                for i in 0..page_len / 8 {
                    q.as_ptr().cast::<u64>().add(i).write_volatile(NEW);
                }
            }
            got_frame = true;
        }
    }
    STEP.store(3, Ordering::Release);
    wait_for(4);

    let p_frame_now = backing_frame(p);
    for q in reused {
        // SAFETY: our pages, unused from now on.
        unsafe { SHARED_PROVIDER.unmap(q, page_len) };
    }
    // SAFETY: as above.
    unsafe { SHARED_PROVIDER.unmap(run, page_len) };

    let (first, second) = (
        FIRST_READ.load(Ordering::Acquire),
        SECOND_READ.load(Ordering::Acquire),
    );
    ensure!(
        first == OLD,
        "CPU 1 first read {first:#x}, expected {OLD:#x}"
    );
    ensure!(
        got_frame,
        "frame {:#x} was not handed out again within {MAX_REUSE_TRIES} pages",
        frame.as_u64()
    );
    ensure!(
        second != NEW,
        "CPU 1 read {second:#x} at P after P was decommitted: the bytes now in P's old frame {:#x}, \
         reached through a stale TLB entry (shootdowns {}, IPIs {})",
        frame.as_u64(),
        if tlb::enabled() { "on" } else { "off" },
        ipis_after - ipis
    );
    ensure!(
        second == 0 && SECOND_READ_FAULTS.load(Ordering::Acquire) == 1,
        "CPU 1 read {second:#x} with {} faults: expected a fault and a fresh zeroed page",
        SECOND_READ_FAULTS.load(Ordering::Acquire)
    );
    ensure!(
        p_frame_now.is_some_and(|f: PhysAddr| f != frame),
        "P is backed by {p_frame_now:?} after the second read"
    );
    Ok(format!(
        "CPU 1 held P -> frame {:#x} in its TLB; CPU 0 decommitted P ({} shootdown, {} IPIs) and refilled the frame; CPU 1's next read faulted and read 0, never the old frame's bytes",
        frame.as_u64(),
        shootdowns_after - shootdowns,
        ipis_after - ipis
    ))
}

fn job(cpu: usize) -> bool {
    BARRIER.wait("shootdown: start");
    match cpu {
        0 => record("tlb_shootdown_before_frame_reuse", None, writer()),
        1 => {
            reader();
            true
        }
        _ => true,
    }
}

/// Runs the test (it needs two CPUs); true if it passed.
///
/// With interrupts off: the timer handler would touch other pages on CPU 1
/// between its two reads, and could push P's entry out of QEMU's small TLB,
/// hiding a missing shootdown by chance. (The NMI still gets through.)
pub fn run() -> bool {
    if online_cpus() < 2 {
        return true;
    }
    let without_ipis = tlb::off_in_test();
    if without_ipis {
        tlb::set_enabled(false);
    }
    let passed = run_on_all_cpus_quietly(job);
    if without_ipis {
        tlb::set_enabled(true);
    }
    passed
}
