//! The kernel tests, run in QEMU. Each prints one line, `test NAME ... ok`
//! with what it measured, or `... FAILED: why`; the last line counts them
//! (`kernel tests: N passed, N failed`). The host-side test
//! (`qemu-test/tests/boot.rs`) boots the kernel and reads these lines.
//!
//! On one CPU the tests run one after the other, and after every test the
//! runner checks that every frame is accounted for (see [`frame_ledger`]).
//! On several CPUs ([`smp`]) every CPU runs every per-CPU test at once, on
//! heaps of its own (so each counts its faults and frames exactly), and the
//! kernel heap's collections through its own front cache; then come the
//! tests that need all CPUs together, and the ledger at every quiet point.

mod collections;
mod cross_cpu;
mod frames_return;
mod irq_lock;
mod oom;
mod page_faults;
mod patterns;
mod realloc;
mod shared_faults;
mod shootdown;
mod smp;

use alloc::format;
use alloc::string::String;

use ft_malloc::{Heap, IrqSpinLock};
use x86_64::VirtAddr;

use crate::demand_paging::{CPU_HEAPS as CPU_WINDOWS, KERNEL_HEAP, TEST_HEAPS as TEST_WINDOWS};
use crate::demand_paging::{WINDOWS, Window};
use crate::frames::FRAMES;
use crate::heap_provider::DemandPagedProvider;
use crate::layout::{KERNEL_STACK_GUARD, MAX_CPUS};
use core::sync::atomic::Ordering;

use crate::interrupts::with_timer_ticking;
use crate::smp::percpu::CPUS;
use crate::{HEAP, paging, println};

pub use smp::run_on_every_cpu;

/// Every heap of the kernel: ft_malloc over a demand-paged window, with the
/// interrupt-safe lock.
pub type KernelHeap = Heap<DemandPagedProvider, IrqSpinLock>;

/// A test: `Ok(what it measured)` or `Err(why it failed)`.
pub struct Test {
    name: &'static str,
    run: fn(&Context) -> Result<String, String>,
}

/// What a test runs on.
pub struct Context {
    /// CPUs running the tests at once (1: this one alone).
    pub cpus: usize,
    /// The heap of the kernel-heap tests: the kernel heap itself when the
    /// test runs alone, this CPU's own heap otherwise.
    pub heap: &'static KernelHeap,
    /// `heap`'s window.
    pub heap_window: &'static Window,
    /// A heap only this test touches, for exact fault and frame counts.
    pub test_heap: &'static KernelHeap,
    /// `test_heap`'s window.
    pub test_window: &'static Window,
}

impl Context {
    /// The context of CPU `cpu` when `cpus` CPUs run tests at once.
    pub fn new(cpu: usize, cpus: usize) -> Self {
        let (heap, heap_window) = if cpus == 1 {
            (&HEAP, &KERNEL_HEAP)
        } else {
            (&CPU_HEAPS[cpu], &CPU_WINDOWS[cpu])
        };
        Context {
            cpus,
            heap,
            heap_window,
            test_heap: &TEST_HEAPS[cpu],
            test_window: &TEST_WINDOWS[cpu],
        }
    }

    /// Whether no other CPU runs tests meanwhile (global counts are exact).
    pub fn alone(&self) -> bool {
        self.cpus == 1
    }
}

/// The tests every CPU runs, in the order they run. (Running out of frames
/// is not among them on several CPUs: it runs on one CPU while the others
/// allocate, see [`smp`].)
pub const TESTS: &[Test] = &[
    Test {
        name: "tiny_small_large_patterns",
        run: patterns::run,
    },
    Test {
        name: "alloc_collections",
        run: collections::run,
    },
    Test {
        name: "faults_equal_distinct_pages_touched",
        run: page_faults::run,
    },
    Test {
        name: "frames_return_after_free_and_trim",
        run: frames_return::run,
    },
    Test {
        name: "out_of_frames_fails_cleanly",
        run: oom::run,
    },
    Test {
        name: "realloc_keeps_contents",
        run: realloc::run,
    },
    Test {
        name: "irq_lock_restores_the_interrupt_flag",
        run: irq_lock::run,
    },
];

/// The out-of-memory test, run alone on one CPU on several.
const OOM_TEST: &str = "out_of_frames_fails_cleanly";

/// Builds one heap per CPU over the given windows (listed: a heap has a
/// destructor, so a const loop cannot fill the array; the array type makes
/// the list follow MAX_CPUS).
macro_rules! per_cpu_heaps {
    ($windows:expr) => {
        per_cpu_heaps!(@list $windows, 0, 1, 2, 3, 4, 5, 6, 7)
    };
    (@list $windows:expr, $($cpu:literal),*) => {
        [$(Heap::new(DemandPagedProvider::new(&$windows[$cpu]))),*]
    };
}

/// Each CPU's test heap, over its own window: nothing but that CPU's tests
/// touches it.
pub static TEST_HEAPS: [KernelHeap; MAX_CPUS] = per_cpu_heaps!(TEST_WINDOWS);
/// Each CPU's own heap, for the kernel-heap tests when all CPUs run them.
pub static CPU_HEAPS: [KernelHeap; MAX_CPUS] = per_cpu_heaps!(CPU_WINDOWS);

/// Fails the test with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

/// Runs every test on every online CPU; true if all passed. (The kernel's
/// last line, `all tests passed on N CPU(s)`, is printed by `main` once
/// every word of the command line has run.)
pub fn run_all() -> bool {
    let cpus = crate::smp::online_cpus();
    if cpus > 1 {
        return run_on_every_cpu(cpus);
    }
    println!("running {} kernel tests", TESTS.len());
    let ctx = Context::new(0, 1);
    let (mut passed, mut failed) = (0, 0);
    for test in TESTS {
        let result = with_timer_ticking(|| (test.run)(&ctx))
            .and_then(|detail| frame_ledger().map(|()| detail));
        if report(test.name, None, result) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    if timer_handlers_allocated(1) {
        passed += 1;
    } else {
        failed += 1;
    }
    println!("kernel tests: {passed} passed, {failed} failed");
    failed == 0
}

/// Checks (and prints, as a test line) that the APIC timer's allocating
/// handler ran on each of the first `cpus` CPUs while the tests ran, and
/// found every block intact.
fn timer_handlers_allocated(cpus: usize) -> bool {
    let mut detail = String::new();
    let mut result = Ok(());
    for cpu in &CPUS[..cpus] {
        let (ticks, allocations, refused, corrupted) = (
            cpu.timer_ticks.load(Ordering::Acquire),
            cpu.timer_allocations.load(Ordering::Acquire),
            cpu.timer_refused.load(Ordering::Acquire),
            cpu.timer_corrupted.load(Ordering::Acquire),
        );
        if allocations == 0 || corrupted > 0 {
            result = Err(format!(
                "CPU {}: {ticks} timer interrupts, {allocations} allocations, {corrupted} blocks corrupted",
                cpu.index
            ));
        }
        detail += &format!(
            "{}CPU {}: {ticks} ticks, {allocations} blocks allocated+freed in the handler, {refused} refused",
            if detail.is_empty() { "" } else { "; " },
            cpu.index
        );
    }
    report("interrupt_handlers_allocate", None, result.map(|()| detail))
}

/// Prints a test's line (naming the CPU when several run tests); true if
/// it passed.
fn report(name: &str, cpu: Option<usize>, result: Result<String, String>) -> bool {
    let on = cpu.map(|cpu| format!(" on CPU {cpu}")).unwrap_or_default();
    match result {
        Ok(detail) => {
            println!("test {name}{on} ... ok ({detail})");
            true
        }
        Err(why) => {
            println!("test {name}{on} ... FAILED: {why}");
            false
        }
    }
}

/// Checks that every frame the pool started with is either free or visible
/// in a page-table hierarchy: as a heap page or page table of a window, or
/// as a kernel stack. Only exact while no other CPU maps or unmaps. Also checks that each window's count of resident
/// pages agrees with its page tables. A leaked or doubly-owned frame breaks
/// the equation.
pub fn frame_ledger() -> Result<(), String> {
    // Every CPU's stack is in the same PML4 slot.
    let stack = paging::census(VirtAddr::new(KERNEL_STACK_GUARD));
    let mut in_use = stack.tables + stack.pages;
    for window in WINDOWS {
        let census = paging::census(VirtAddr::new(window.layout.start));
        ensure!(
            census.pages == window.resident_pages(),
            "{} window: page tables map {} pages, the provider counts {}",
            window.name,
            census.pages,
            window.resident_pages()
        );
        in_use += census.tables + census.pages;
    }
    let free = FRAMES.free_frames();
    ensure!(
        free + in_use == FRAMES.total_frames(),
        "frame ledger: {free} free + {in_use} mapped != {} total",
        FRAMES.total_frames()
    );
    ensure!(
        FRAMES.count_free_bits() == free,
        "free bitmap holds {} frames, counter says {free}",
        FRAMES.count_free_bits()
    );
    ensure!(
        FRAMES.uncommitted_frames() <= free,
        "more frames promised than free"
    );
    Ok(())
}

/// The byte a pattern puts at offset `i` of block number `seed`.
pub fn pattern_byte(seed: usize, i: usize) -> u8 {
    (seed.wrapping_mul(131) ^ i.wrapping_mul(7) ^ (i >> 8)) as u8
}

/// Fills `len` bytes at `ptr` with the pattern of `seed`.
///
/// # Safety
///
/// `ptr..ptr + len` must be writable and owned by the caller.
pub unsafe fn fill(ptr: *mut u8, len: usize, seed: usize) {
    for i in 0..len {
        // SAFETY: inside the caller's block.
        unsafe { ptr.add(i).write(pattern_byte(seed, i)) };
    }
}

/// Checks `len` bytes at `ptr` against the pattern of `seed`.
///
/// # Safety
///
/// `ptr..ptr + len` must be readable.
pub unsafe fn check(ptr: *const u8, len: usize, seed: usize) -> Result<(), String> {
    for i in 0..len {
        // SAFETY: inside the caller's block.
        let byte = unsafe { ptr.add(i).read() };
        if byte != pattern_byte(seed, i) {
            return Err(format!(
                "byte {i} of block {seed} at {ptr:p} is {byte:#x}, expected {:#x}",
                pattern_byte(seed, i)
            ));
        }
    }
    Ok(())
}
