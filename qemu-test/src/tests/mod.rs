//! The kernel tests, run in QEMU. Each prints one line, `test NAME ... ok`
//! with what it measured, or `... FAILED: why`; the last line counts them
//! (`kernel tests: N passed, N failed`). The host-side test
//! (`qemu-test/tests/boot.rs`) boots the kernel and reads these lines.
//!
//! After every test the runner also checks that every frame is accounted
//! for (see [`frame_ledger`]).

mod collections;
mod frames_return;
mod oom;
mod page_faults;
mod patterns;
mod realloc;

use alloc::format;
use alloc::string::String;

use ft_malloc::Heap;
use x86_64::VirtAddr;

use crate::demand_paging::{TEST_HEAP as TEST_WINDOW, WINDOWS};
use crate::frames::FRAMES;
use crate::heap_provider::DemandPagedProvider;
use crate::layout::KERNEL_STACK_GUARD;
use crate::paging;
use crate::println;

/// A test: `Ok(what it measured)` or `Err(why it failed)`.
pub struct Test {
    name: &'static str,
    run: fn() -> Result<String, String>,
}

/// Every kernel test, in the order they run.
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
];

/// A second ft_malloc heap, over its own window, for the tests that count
/// faults and frames exactly: nothing but the test touches it.
pub static TEST_HEAP: Heap<DemandPagedProvider> = Heap::new(DemandPagedProvider::new(&TEST_WINDOW));

/// Fails the test with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

/// Runs every test; true if all passed.
pub fn run_all() -> bool {
    println!("running {} kernel tests", TESTS.len());
    let (mut passed, mut failed) = (0, 0);
    for test in TESTS {
        crate::print!("test {} ... ", test.name);
        let result = (test.run)().and_then(|detail| frame_ledger().map(|()| detail));
        match result {
            Ok(detail) => {
                passed += 1;
                println!("ok ({detail})");
            }
            Err(why) => {
                failed += 1;
                println!("FAILED: {why}");
            }
        }
    }
    println!("kernel tests: {passed} passed, {failed} failed");
    failed == 0
}

/// Checks that every frame the pool started with is either free or visible
/// in a page-table hierarchy: as a heap page or page table of a window, or
/// as the kernel stack. Also checks that each window's count of resident
/// pages agrees with its page tables. A leaked or doubly-owned frame breaks
/// the equation.
pub fn frame_ledger() -> Result<(), String> {
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
