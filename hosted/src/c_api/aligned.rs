//! posix_memalign, aligned_alloc, memalign, valloc, pvalloc: the aligned
//! allocations, with glibc 2.38's rules for odd alignments.

use core::ffi::c_void;

use super::{DEFAULT_ALIGN, allocate, or_enomem};
use crate::config::Config;
use crate::os::{self, ErrnoGuard};
use crate::{lifecycle, report};

/// Largest alignment `memalign` rounds to; above it no power of two exists
/// (glibc's `SIZE_MAX / 2 + 1` check).
const MAX_ALIGN: usize = usize::MAX / 2 + 1;

/// glibc's `_mid_memalign`: alignments up to the default are plain
/// allocations, larger non-powers of two are rounded up to the next power of
/// two, impossible ones are `EINVAL`. Sets `errno` on failure.
fn memalign_like(align: usize, size: usize, config: Config) -> *mut c_void {
    let align = if align <= DEFAULT_ALIGN {
        DEFAULT_ALIGN
    } else if align > MAX_ALIGN {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    } else {
        align.next_power_of_two()
    };
    or_enomem(allocate(size, align, config))
}

/// `memalign(3)`: like glibc, a non-power-of-two alignment is rounded up, one
/// above `SIZE_MAX / 2 + 1` fails with `EINVAL`.
///
/// # Safety
///
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    let config = lifecycle::settings();
    let block = memalign_like(align, size, config);
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("memalign({align}, {size}) = {block:p}"));
    }
    block
}

/// `aligned_alloc(3)`, C17 as glibc 2.38 reads it: an alignment that is not a
/// power of two (0 included) fails with `EINVAL`; the size need not be a
/// multiple of the alignment.
///
/// # Safety
///
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    let config = lifecycle::settings();
    let block = if align.is_power_of_two() {
        memalign_like(align, size, config)
    } else {
        os::set_errno(libc::EINVAL);
        core::ptr::null_mut()
    };
    if let Some(fd) = config.trace_fd {
        report::trace(
            fd,
            format_args!("aligned_alloc({align}, {size}) = {block:p}"),
        );
    }
    block
}

/// `posix_memalign(3)`: returns `EINVAL` unless `align` is a power-of-two
/// multiple of `sizeof(void *)`, `ENOMEM` when out of memory, 0 with the block
/// in `*out` otherwise. `*out` is written only on success. Like glibc's, it
/// also sets `errno = ENOMEM` when out of memory (glibc's
/// `tst-malloc-thread-fail` checks it; every failing allocation sets it), and
/// leaves `errno` alone otherwise.
///
/// # Safety
///
/// `out` must be valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    let config = lifecycle::settings();
    let word = size_of::<*mut c_void>();
    let result = if !align.is_multiple_of(word) || !(align / word).is_power_of_two() {
        libc::EINVAL
    } else {
        let errno = ErrnoGuard::save();
        let block = memalign_like(align, size, config);
        if block.is_null() {
            // Out of memory: `memalign_like` set `errno = ENOMEM`; keep it.
            core::mem::forget(errno);
            libc::ENOMEM
        } else {
            // SAFETY: the caller gives a writable `out`.
            unsafe { out.write(block) };
            0
        }
    };
    if let Some(fd) = config.trace_fd {
        report::trace(
            fd,
            format_args!("posix_memalign({align}, {size}) = {result}"),
        );
    }
    result
}

/// `valloc(3)`: page-aligned memory.
///
/// # Safety
///
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    let config = lifecycle::settings();
    let block = memalign_like(os::page_size(), size, config);
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("valloc({size}) = {block:p}"));
    }
    block
}

/// `pvalloc(3)`: page-aligned, size rounded up to whole pages (at least one);
/// `ENOMEM` if rounding overflows.
///
/// # Safety
///
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let config = lifecycle::settings();
    let page = os::page_size();
    let block = match size.max(1).checked_next_multiple_of(page) {
        Some(rounded) => memalign_like(page, rounded, config),
        None => or_enomem(None),
    };
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("pvalloc({size}) = {block:p}"));
    }
    block
}
