//! free_sized and free_aligned_sized (C23): `free` told the block's size
//! (and alignment). C23 makes a wrong size undefined behaviour: by default
//! the block is freed as `free` would; with `FT_MALLOC_SIZED_CHECK` (part of
//! the hardened mode) a size that cannot be the block's is reported as
//! misuse and the block is not freed.

use core::ffi::c_void;

use super::alloc::{free, free_plain};
use crate::config::{self, Defences};
use crate::{hardened, lifecycle, report};

/// The sized free (also C++'s sized `operator delete`): checked if asked,
/// else plain `free`, at `free`'s cost when no setting is on.
#[inline(always)]
pub(super) fn free_with_size(function: &str, ptr: *mut c_void, size: usize) {
    // The sized check is not in `config::plain()`'s mask (plain `free`
    // ignores it): one load tells both.
    if config::plain_unsized() {
        return free_plain(function, ptr);
    }
    checked_free_with_size(function, ptr, size);
}

#[cold]
#[inline(never)]
fn checked_free_with_size(function: &str, ptr: *mut c_void, size: usize) {
    let config = lifecycle::settings();
    if config.defences.has(Defences::SIZED_CHECK) {
        hardened::release(function, ptr, Some(size), config.defences);
        if let Some(fd) = config.trace_fd {
            report::trace(fd, format_args!("{function}({ptr:p}, {size})"));
        }
        return;
    }
    // SAFETY: the caller keeps `free`'s contract.
    unsafe { free(ptr) }
}

/// `free_sized(3)` (C23): frees `ptr`, a block of `size` bytes from
/// `malloc`, `calloc` or `realloc`.
///
/// # Safety
///
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(ptr: *mut c_void, size: usize) {
    free_with_size("free_sized", ptr, size);
}

/// `free_aligned_sized(3)` (C23): frees `ptr`, a block of `size` bytes
/// from `aligned_alloc(align, size)`.
///
/// # Safety
///
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(ptr: *mut c_void, align: usize, size: usize) {
    let _ = align;
    free_with_size("free_aligned_sized", ptr, size);
}
