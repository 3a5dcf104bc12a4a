//! Deliberate failures (`fail=...` on the command line), to prove that the
//! runner turns each way a kernel can die into a failed run.
//!
//! - `outside-heap`: writes to an address in no heap window: the page-fault
//!   handler must refuse it and fail the run.
//! - `use-after-free`: writes to a LARGE block after it was freed and its run
//!   given back: the window page is no longer reserved, so the same.
//! - `stack-overflow`: recurses into the kernel stack's guard page: the
//!   fault is reported from the page-fault handler's IST stack.
//! - `triple-fault`: loads an empty IDT and raises an exception: the CPU
//!   resets, `-no-reboot` makes QEMU exit with status 0, and the runner must
//!   still call that a failure.
//! - `panic`: a Rust panic.
//! - `hang`: stops the CPU for good: only the runner's timeout ends it.

use core::alloc::Layout;
use core::hint::black_box;

use x86_64::VirtAddr;
use x86_64::structures::DescriptorTablePointer;

use crate::HEAP;
use crate::layout::STRAY_ADDRESS;
use crate::println;

/// Runs the failure `how`. Returns (false) only if it did not kill the run.
pub fn fail(how: &str) -> bool {
    println!("deliberate failure: {how}");
    match how {
        "outside-heap" => {
            // SAFETY: none: this write is meant to fault. The address is
            // canonical and mapped nowhere.
            unsafe { (STRAY_ADDRESS as *mut u64).write_volatile(0xdead) };
        }
        "use-after-free" => {
            let layout = Layout::from_size_align(256 * 1024, 16).expect("valid layout");
            let block = HEAP.allocate(layout).expect("a LARGE block");
            // SAFETY: `block` came from HEAP and is freed once.
            unsafe { HEAP.deallocate(block) }.expect("valid free");
            // Make the heap give the run back instead of caching it.
            HEAP.trim();
            // SAFETY: none: a use after free, meant to fault.
            unsafe { block.as_ptr().write_volatile(1) };
        }
        "stack-overflow" => {
            println!("recursed {} levels", recurse(0));
        }
        "triple-fault" => {
            let empty = DescriptorTablePointer {
                limit: 0,
                base: VirtAddr::zero(),
            };
            // SAFETY: none: an empty IDT turns the next exception into a
            // triple fault, which is the point.
            unsafe { x86_64::instructions::tables::lidt(&empty) };
            x86_64::instructions::interrupts::int3();
        }
        "panic" => panic!("deliberate panic"),
        "hang" => crate::exit::halt_forever(),
        _ => println!(
            "unknown failure {how:?} (outside-heap, use-after-free, stack-overflow, triple-fault, panic, hang)"
        ),
    }
    println!("deliberate failure {how:?} did not stop the kernel");
    false
}

/// Uses 4 KiB of stack per level, until something stops it.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 4096]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(frame[0])
}
