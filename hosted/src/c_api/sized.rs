//! free_sized and free_aligned_sized (C23): `free` told the block's size
//! (and alignment). C23 makes a wrong size undefined behaviour; the library
//! frees the block as `free` would.

use core::ffi::c_void;

use super::alloc::free;

/// `free_sized(3)` (C23): frees `ptr`, a block of `size` bytes from
/// `malloc`, `calloc` or `realloc`.
///
/// # Safety
///
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(ptr: *mut c_void, size: usize) {
    let _ = size;
    // SAFETY: same contract.
    unsafe { free(ptr) }
}

/// `free_aligned_sized(3)` (C23): frees `ptr`, a block of `size` bytes
/// from `aligned_alloc(align, size)`.
///
/// # Safety
///
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(ptr: *mut c_void, align: usize, size: usize) {
    let _ = (align, size);
    // SAFETY: same contract.
    unsafe { free(ptr) }
}
