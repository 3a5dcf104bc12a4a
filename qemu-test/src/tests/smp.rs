//! Every test on every CPU at once (`make qemu SMP=N`).
//!
//! 1. Every CPU runs the per-CPU tests ([`TESTS`] but the out-of-memory
//!    one) at the same time, on its own heaps, and the collections test on
//!    the shared kernel heap through its own front cache.
//! 2. Blocks allocated on one CPU are freed on another ([`cross_cpu`]).
//! 3. Every CPU faults on the same pages at once ([`shared_faults`]).
//! 4. TLB shootdown ([`shootdown`]).
//! 5. One CPU runs out of frames while the others allocate ([`oom`]).
//! 6. Every CPU flushes its cache; every heap is trimmed; then every frame
//!    must be free or visibly mapped ([`frame_ledger`]), with nothing left
//!    in any test heap.
//!
//! The frame ledger is checked at every quiet point (between phases, when
//! the other CPUs wait for their next job).

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{
    CPU_HEAPS, Context, OOM_TEST, TEST_HEAPS, TESTS, cross_cpu, ensure, frame_ledger, oom, report,
    shared_faults, shootdown,
};
use crate::cpu_caches::{cached_on_this_cpu, flush_this_cpu};
use crate::smp::jobs::run_on_all_cpus;
use crate::smp::percpu::CPUS;
use crate::smp::{online_cpus, shootdown as tlb};
use crate::{HEAP, println};

static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Prints and counts a test's result; true if it passed.
pub(super) fn record(name: &str, cpu: Option<usize>, result: Result<String, String>) -> bool {
    let ok = report(name, cpu, result);
    let counter = if ok { &PASSED } else { &FAILED };
    counter.fetch_add(1, Ordering::AcqRel);
    ok
}

/// Phase 1, on each CPU.
fn per_cpu_tests(cpu: usize) -> bool {
    let ctx = Context::new(cpu, online_cpus());
    let mut ok = true;
    for test in TESTS.iter().filter(|test| test.name != OOM_TEST) {
        ok &= record(test.name, Some(cpu), (test.run)(&ctx));
    }
    ok
}

/// Phase 5, on each CPU: CPU 0 runs out of frames, the others allocate.
fn out_of_frames(cpu: usize) -> bool {
    let ctx = Context::new(cpu, online_cpus());
    if cpu == 0 {
        let result = oom::run(&ctx);
        oom::finish();
        record(OOM_TEST, Some(cpu), result)
    } else {
        record(
            "allocate_while_another_cpu_is_out_of_frames",
            Some(cpu),
            oom::pressure(&ctx),
        )
    }
}

/// Phase 6, on each CPU: its cached blocks go back to the heap. Interrupts
/// go off first and stay off until the job ends, so no timer tick refills
/// the cache behind the flush.
fn flush_caches(cpu: usize) -> bool {
    x86_64::instructions::interrupts::disable();
    flush_this_cpu();
    let left = cached_on_this_cpu();
    left == 0
        || record(
            "cache_flushed",
            Some(cpu),
            Err(format!("{left} blocks still cached")),
        )
}

/// The ledger at a quiet point, as a test line.
fn ledger(after: &str) -> bool {
    record(
        &format!("frame_ledger_after_{after}"),
        None,
        frame_ledger().map(|()| String::from("every frame free or visibly mapped")),
    )
}

/// Phase 6's last check, on the BSP: the caches are empty, the heaps
/// trimmed, and every frame back.
fn every_frame_back(cpus: usize) -> Result<String, String> {
    HEAP.trim();
    let heaps = || TEST_HEAPS[..cpus].iter().chain(&CPU_HEAPS[..cpus]);
    for heap in heaps() {
        heap.trim();
    }
    frame_ledger()?;
    let kernel = HEAP.stats();
    ensure!(
        kernel.cached_blocks == 0,
        "{} blocks still cached after every CPU flushed",
        kernel.cached_blocks
    );
    for heap in heaps() {
        let stats = heap.stats();
        ensure!(
            stats.live_blocks == 0 && stats.large_runs == 0 && stats.cached_blocks == 0,
            "a test heap is not empty after the tests: {stats:?}"
        );
    }
    Ok(format!(
        "all {cpus} caches flushed, every heap trimmed: {} frames free of {}, the rest visibly mapped",
        crate::frames::FRAMES.free_frames(),
        crate::frames::FRAMES.total_frames()
    ))
}

/// Runs every test on `cpus` CPUs at once; true if all passed.
pub fn run_on_every_cpu(cpus: usize) -> bool {
    println!(
        "running {} kernel tests on {cpus} CPUs at once, then the cross-CPU tests",
        TESTS.len() - 1
    );
    let mut ok = run_on_all_cpus(per_cpu_tests);
    ok &= ledger("per_cpu_tests");
    ok &= cross_cpu::run();
    ok &= ledger("cross_cpu_frees");
    ok &= shared_faults::run();
    ok &= ledger("shared_faults");
    ok &= shootdown::run();
    ok &= ledger("shootdown");
    ok &= run_on_all_cpus(out_of_frames);
    ok &= ledger("out_of_frames");
    ok &= run_on_all_cpus(flush_caches);
    ok &= record("every_frame_back_after_flush", None, every_frame_back(cpus));
    let timers = super::timer_handlers_allocated(cpus);
    let counter = if timers { &PASSED } else { &FAILED };
    counter.fetch_add(1, Ordering::AcqRel);
    ok &= timers;

    for cpu in &CPUS[..cpus] {
        println!(
            "cpu {}: {} page faults mapped, {} found the page already mapped by another CPU; {} TLB shootdowns received; {} kernel-heap blocks allocated, {} freed",
            cpu.index,
            cpu.faults_mapped.load(Ordering::Acquire),
            cpu.faults_raced.load(Ordering::Acquire),
            cpu.shootdowns_received.load(Ordering::Acquire),
            cpu.allocations.load(Ordering::Acquire),
            cpu.frees.load(Ordering::Acquire),
        );
    }
    let (shootdowns, ipis, pages) = tlb::counts();
    println!(
        "tlb: {shootdowns} shootdowns ({pages} pages), {ipis} IPIs sent{}",
        if tlb::enabled() {
            ""
        } else {
            " (no-shootdown: IPIs off)"
        }
    );
    let (passed, failed) = (
        PASSED.load(Ordering::Acquire),
        FAILED.load(Ordering::Acquire),
    );
    println!("kernel tests: {passed} passed, {failed} failed");
    ok && failed == 0
}
