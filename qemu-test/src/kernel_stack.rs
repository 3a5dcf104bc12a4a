//! The kernel stack the tests run on.
//!
//! The boot stack lives in `.bss`, inside the identity map's huge pages,
//! where an overflow would silently overwrite whatever lies below it. So the
//! kernel moves to a stack of 4 KiB pages mapped just above an unmapped
//! guard page: running off its bottom raises a page fault, which the handler
//! (on its own IST stack) reports as a stack overflow.

use core::arch::asm;

use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, PageTableFlags};

use crate::demand_paging::commitment;
use crate::frames::FRAMES;
use crate::layout::{KERNEL_STACK_GUARD, KERNEL_STACK_PAGES, KERNEL_STACK_TOP, PAGE_SIZE};
use crate::paging;

/// Maps the kernel stack and calls `next` on it, for good.
pub fn switch_to_guarded_stack(next: extern "sysv64" fn() -> !) -> ! {
    let bottom = KERNEL_STACK_GUARD + PAGE_SIZE;
    // The stack keeps its frames (and their page tables) forever.
    assert!(
        FRAMES.try_commit(commitment(bottom, KERNEL_STACK_PAGES as usize)),
        "no frames for the kernel stack"
    );
    for i in 0..KERNEL_STACK_PAGES {
        let page = Page::containing_address(VirtAddr::new(bottom + i * PAGE_SIZE));
        let frame = FRAMES.take_committed().expect("committed frame");
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        // SAFETY: the stack pages are in no window and not mapped yet; the
        // frame is ours; its tables are committed above.
        unsafe { paging::map(page, frame, flags) }.expect("mapping the kernel stack");
    }
    // SAFETY: the stack just mapped is ours alone; its top is 16-byte
    // aligned, as a call expects; `next` never returns, so nothing of the
    // boot stack is needed again.
    unsafe {
        asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {next}",
            "ud2",
            top = in(reg) KERNEL_STACK_TOP,
            next = in(reg) next,
            options(noreturn),
        )
    }
}
