//! The kernel stacks: one per CPU.
//!
//! The boot stack lives in `.bss`, inside the identity map's huge pages,
//! where an overflow would silently overwrite whatever lies below it. So
//! every CPU runs on a stack of 4 KiB pages mapped just above an unmapped
//! guard page: running off its bottom raises a page fault, which the handler
//! (on its own IST stack) reports as a stack overflow. The bootstrap CPU
//! moves there from the boot stack ([`switch_to_guarded_stack`]); the other
//! CPUs start on theirs, mapped before they are woken ([`map_stack`]).

use core::arch::asm;

use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, PageTableFlags};

use crate::demand_paging::commitment;
use crate::frames::FRAMES;
use crate::layout::{KERNEL_STACK_PAGES, PAGE_SIZE, kernel_stack_guard, kernel_stack_top};
use crate::paging;

/// Maps CPU `cpu`'s kernel stack (its frames and page tables are kept
/// forever) and returns its top.
pub fn map_stack(cpu: usize) -> u64 {
    let bottom = kernel_stack_guard(cpu) + PAGE_SIZE;
    assert!(
        FRAMES.try_commit(commitment(bottom, KERNEL_STACK_PAGES as usize)),
        "no frames for CPU {cpu}'s kernel stack"
    );
    for i in 0..KERNEL_STACK_PAGES {
        let page = Page::containing_address(VirtAddr::new(bottom + i * PAGE_SIZE));
        let frame = FRAMES.take_committed().expect("committed frame");
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        // SAFETY: the stack pages are in no window and not mapped yet (each
        // CPU's stack is mapped once, by the bootstrap CPU); the frame is
        // ours; its tables are committed above.
        unsafe { paging::map(page, frame, flags) }.expect("mapping a kernel stack");
    }
    // The commitment stays made, tables the stack did not need included
    // (a later CPU's stack may share them): stacks are never unmapped.
    kernel_stack_top(cpu)
}

/// Maps the bootstrap CPU's kernel stack and calls `next` on it, for good.
pub fn switch_to_guarded_stack(next: extern "sysv64" fn() -> !) -> ! {
    let top = map_stack(0);
    // SAFETY: the stack just mapped is ours alone; its top is 16-byte
    // aligned, as a call expects; `next` never returns, so nothing of the
    // boot stack is needed again.
    unsafe {
        asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {next}",
            "ud2",
            top = in(reg) top,
            next = in(reg) next,
            options(noreturn),
        )
    }
}
