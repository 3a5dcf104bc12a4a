//! Every CPU faults on the same pages at once: each page is mapped once
//! (one frame, none leaked), every CPU's writes land in that one frame, and
//! the fault counts are exact: one resolved fault per page in total, the
//! other CPUs' faults on it counted as raced (they found it mapped).
//!
//! The pages are a run of the shared window, handed out by its provider;
//! the CPUs meet at a barrier before each page and all write to it at
//! once, so they collide as often as the host lets them run together.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use ft_malloc::PageProvider;
use x86_64::VirtAddr;

use super::ensure;
use super::smp::record;
use crate::demand_paging::SHARED;
use crate::frames::FRAMES;
use crate::heap_provider::DemandPagedProvider;
use crate::layout::PAGE_SIZE;
use crate::paging;
use crate::smp::jobs::{Barrier, run_on_all_cpus};
use crate::smp::online_cpus;
use crate::smp::percpu::CPUS;

/// Pages every CPU touches.
const PAGES: usize = 64;

/// The provider of the shared window (this test and the shootdown test).
pub static SHARED_PROVIDER: DemandPagedProvider = DemandPagedProvider::new(&SHARED);

static RUN: AtomicU64 = AtomicU64::new(0);
static BARRIER: Barrier = Barrier::new();

/// What CPU `cpu` writes into page `page`, at offset `cpu * 8`.
fn marker(cpu: usize, page: usize) -> u64 {
    0x5eed_0000_0000_0000 | (cpu as u64) << 32 | page as u64
}

fn slot(run: u64, cpu: usize, page: usize) -> *mut u64 {
    (run + page as u64 * PAGE_SIZE + cpu as u64 * 8) as *mut u64
}

/// One CPU's part: write its marker into every page (faulting them in,
/// together with the others), then check every CPU's markers.
fn job(cpu: usize) -> bool {
    let run = RUN.load(Ordering::Acquire);
    for page in 0..PAGES {
        BARRIER.wait("shared pages: next page");
        // SAFETY: inside the live run of PAGES pages; offset cpu * 8 is
        // this CPU's own word.
        unsafe { slot(run, cpu, page).write_volatile(marker(cpu, page)) };
    }
    BARRIER.wait("shared pages: written");
    let cpus = online_cpus();
    for page in 0..PAGES {
        for other in 0..cpus {
            // SAFETY: as above; every CPU wrote before the barrier.
            let found = unsafe { slot(run, other, page).read_volatile() };
            if found != marker(other, page) {
                return record(
                    "same_pages_faulted_by_every_cpu",
                    Some(cpu),
                    Err(format!(
                        "page {page}: CPU {other}'s word reads {found:#x}: a write went to another frame"
                    )),
                );
            }
        }
    }
    true
}

fn check(cpus: usize) -> Result<String, String> {
    let free_before = FRAMES.free_frames();
    let faults_before = SHARED.faults();
    let mapped_before: Vec<u64> = CPUS[..cpus]
        .iter()
        .map(|c| c.faults_mapped.load(Ordering::Acquire))
        .collect();
    let raced_before: Vec<u64> = CPUS[..cpus]
        .iter()
        .map(|c| c.faults_raced.load(Ordering::Acquire))
        .collect();
    let len = PAGES * PAGE_SIZE as usize;
    let run = SHARED_PROVIDER
        .map(len, PAGE_SIZE as usize)
        .ok_or("the shared window refused a run")?;
    RUN.store(run.as_ptr() as u64, Ordering::Release);
    let all_ok = run_on_all_cpus(job);

    let faults = SHARED.faults() - faults_before;
    let census = paging::census(VirtAddr::new(SHARED.layout.start));
    let taken = free_before - FRAMES.free_frames();
    let per_cpu: Vec<u64> = CPUS[..cpus]
        .iter()
        .zip(&mapped_before)
        .map(|(c, before)| c.faults_mapped.load(Ordering::Acquire) - before)
        .collect();
    let raced: u64 = CPUS[..cpus]
        .iter()
        .zip(&raced_before)
        .map(|(c, before)| c.faults_raced.load(Ordering::Acquire) - before)
        .sum();
    // SAFETY: the run is ours and nothing uses it any more.
    unsafe { SHARED_PROVIDER.unmap(run, len) };
    let free_after = FRAMES.free_frames();

    ensure!(all_ok, "a CPU found another CPU's write missing");
    ensure!(
        faults == PAGES as u64 && SHARED.resident_pages() == 0,
        "{faults} faults resolved for {PAGES} pages"
    );
    ensure!(
        census.pages == PAGES,
        "the page tables mapped {} pages, not {PAGES}",
        census.pages
    );
    ensure!(
        taken == census.pages + census.tables,
        "{taken} frames taken for {} pages and {} page tables: a frame leaked",
        census.pages,
        census.tables
    );
    ensure!(
        per_cpu.iter().sum::<u64>() == PAGES as u64,
        "the CPUs' own counts of mapped faults {per_cpu:?} do not add up to {PAGES}"
    );
    ensure!(
        free_after == free_before,
        "{free_after} frames free after unmapping, {free_before} before"
    );
    Ok(format!(
        "{cpus} CPUs wrote into the same {PAGES} pages at once: {PAGES} frames mapped (faults mapped per CPU {per_cpu:?}), {raced} faults found the page already mapped by another CPU; {} frames with the page tables, all back after unmap",
        census.pages + census.tables
    ))
}

/// Runs the test; true if it passed.
pub fn run() -> bool {
    let cpus = online_cpus();
    record("same_pages_faulted_by_every_cpu", None, check(cpus))
}
