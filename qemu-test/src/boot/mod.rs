//! Boot: from QEMU's PVH entry to `kernel_main`.
//!
//! The assembly in `entry.s` (explained there) runs first, in 32-bit
//! protected mode, and brings the CPU into 64-bit long mode with the first
//! GiB identity-mapped. Everything else is Rust.

use crate::layout::{BOOT_STACK_SIZE, IDENTITY_MAP_GIB};

/// ELF note type naming the 32-bit PVH entry point (Xen's `elfnote.h`).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

core::arch::global_asm!(
    include_str!("entry.s"),
    XEN_ELFNOTE_PHYS32_ENTRY = const XEN_ELFNOTE_PHYS32_ENTRY,
    IDENTITY_MAP_GIB = const IDENTITY_MAP_GIB,
    BOOT_STACK_SIZE = const BOOT_STACK_SIZE,
    bss_start = sym __bss_start,
    bss_end = sym __bss_end,
    kernel_main = sym crate::kernel_main,
    options(att_syntax),
);

unsafe extern "C" {
    // Defined by linker.ld: the bounds of .bss and of the whole image.
    static __bss_start: u8;
    static __bss_end: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The physical (= virtual, identity-mapped) range the kernel image occupies,
/// `.bss` included (so the boot page tables and boot stack too).
pub fn kernel_image() -> core::ops::Range<u64> {
    (&raw const __kernel_start) as u64..(&raw const __kernel_end) as u64
}
