//! The real-mode trampoline the other CPUs start in (`trampoline.s`,
//! explained there), and its parameter block.

use core::sync::atomic::{Ordering, fence};

use x86_64::registers::control::Cr3;

use crate::layout::{AP_TRAMPOLINE, PAGE_SIZE};
use crate::paging::phys_to_virt;

core::arch::global_asm!(
    include_str!("trampoline.s"),
    AP_TRAMPOLINE = const AP_TRAMPOLINE,
    options(att_syntax),
);

unsafe extern "C" {
    // Defined in trampoline.s.
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_trampoline_parameters: u8;
}

/// What the trampoline reads at its end (`ap_trampoline_parameters`).
#[repr(C)]
struct Parameters {
    /// The page tables to load (the bootstrap CPU's).
    cr3: u64,
    /// The AP's kernel stack (16-byte aligned top).
    stack_top: u64,
    /// Passed to `entry` in %rdi.
    cpu_index: u64,
    /// Called in long mode on that stack.
    entry: u64,
}

/// The SIPI vector naming the trampoline's page.
pub const STARTUP_VECTOR: u8 = {
    assert!(AP_TRAMPOLINE.is_multiple_of(PAGE_SIZE) && AP_TRAMPOLINE < 0x10_0000);
    (AP_TRAMPOLINE >> 12) as u8
};

/// Copies the trampoline to its page and fills in its parameters for CPU
/// `cpu`, so the next SIPI sent with [`STARTUP_VECTOR`] runs
/// `entry(cpu)` on the stack whose top is `stack_top`.
///
/// # Safety
///
/// The trampoline page must not be in use: no AP may be between its SIPI and
/// its call of `entry` (APs start one at a time). `stack_top` must be the
/// top of a mapped stack that CPU owns.
pub unsafe fn prepare(cpu: usize, stack_top: u64, entry: extern "sysv64" fn(u64) -> !) {
    let start = &raw const ap_trampoline_start;
    // SAFETY: both symbols bound the trampoline's bytes in the kernel image.
    let len = unsafe { (&raw const ap_trampoline_end).offset_from(start) } as usize;
    assert!(len as u64 <= PAGE_SIZE, "the trampoline exceeds its page");
    // SAFETY: the parameters lie inside the trampoline, 8-byte aligned.
    let parameters_offset = unsafe { (&raw const ap_trampoline_parameters).offset_from(start) };
    let page = phys_to_virt(x86_64::PhysAddr::new(AP_TRAMPOLINE));
    let (pml4, _) = Cr3::read();
    // SAFETY: the trampoline page is conventional RAM below 1 MiB, never a
    // frame of the pool, identity-mapped, and unused now (caller); the
    // parameter block is inside the copy, aligned as `Parameters`.
    unsafe {
        core::ptr::copy_nonoverlapping(start, page, len);
        page.offset(parameters_offset)
            .cast::<Parameters>()
            .write_volatile(Parameters {
                cr3: pml4.start_address().as_u64(),
                stack_top,
                cpu_index: cpu as u64,
                entry: entry as usize as u64,
            });
    }
    // The SIPI (an APIC register write) must not be seen before the copy.
    fence(Ordering::SeqCst);
}
