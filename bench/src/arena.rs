//! The one 128 MiB arena that every allocator runs on, one allocator at a time.
//!
//! It is a zero-initialised `static` (so it lives in `.bss` and costs nothing in
//! the binary). Before the first trial every page is touched, so no allocator
//! pays the first-touch page faults for the others; before each trial the
//! whole arena is zeroed, so every allocator starts from the same bytes and no
//! peer can read free-list pointers another one left behind.

use crate::spec::{ARENA_ALIGN, ARENA_SIZE};
use std::ptr::NonNull;

#[repr(C, align(4096))]
struct Arena([u8; ARENA_SIZE]);

const _: () = assert!(align_of::<Arena>() == ARENA_ALIGN);

static mut ARENA: Arena = Arena([0; ARENA_SIZE]);

/// Where the arena starts. Only raw pointers to it ever exist: allocators are
/// handed `(start, ARENA_SIZE)` and own the bytes for one trial.
pub fn start() -> NonNull<u8> {
    // Taking the address of a `static mut` creates no reference and reads nothing.
    NonNull::new((&raw mut ARENA).cast::<u8>()).expect("a static is never at address 0")
}

/// Touches one byte per page so that the pages are resident before any timing.
pub fn prefault() {
    let base = start().as_ptr();
    for offset in (0..ARENA_SIZE).step_by(4096) {
        // SAFETY: `offset < ARENA_SIZE`, so the byte is inside the arena, and no
        // allocator is alive while this runs (it is called before any trial).
        unsafe { base.add(offset).write_volatile(0) };
    }
}

/// Zeroes the arena's first `len` bytes (the part the next allocator gets)
/// between two allocators.
///
/// # Safety
///
/// No allocator built on the arena may be alive, no pointer into it may be
/// used afterwards, and `len <= ARENA_SIZE`.
pub unsafe fn scrub(len: usize) {
    // SAFETY: the range is inside the arena; the caller guarantees nobody
    // else uses it now.
    unsafe { start().as_ptr().write_bytes(0, len.min(ARENA_SIZE)) };
}
