//! malloc, calloc, realloc, reallocarray, reallocf, free, cfree,
//! malloc_usable_size.

use core::alloc::Layout;
use core::ffi::c_void;
use core::ptr::{self, NonNull};

use ft_malloc::cache::{InPlace, Refusal, Vouched};
use ft_malloc::{FrontCache, ReallocError};

use super::{DEFAULT_ALIGN, SCRIBBLE_FREED, allocate, c_layout, or_enomem};
use crate::config::{self, Config};
use crate::policy::Misuse;
use crate::{HEAP, hardened, lifecycle, os, report, thread_cache};

/// `malloc(3)`. `malloc(0)` returns a unique pointer that can be freed.
/// Sizes above `PTRDIFF_MAX` fail with `ENOMEM`.
///
/// # Safety
///
/// None beyond C's: the result is uninitialised memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // One compare decides "the settings ask nothing" and "not LARGE".
    if config::plain_and_small(size) {
        if let Some(block) = thread_cache::allocate_cached(size) {
            return block.as_ptr().cast();
        }
        return malloc_plain(size);
    }
    malloc_gated(size)
}

/// `malloc` past its gate: a LARGE size when [`config::plain`] holds (the
/// heap's LARGE path: front caches keep no LARGE blocks), or settings that
/// ask for more.
#[cold]
#[inline(never)]
fn malloc_gated(size: usize) -> *mut c_void {
    if config::plain() {
        return or_enomem(
            Layout::from_size_align(size, DEFAULT_ALIGN)
                .ok()
                .and_then(|layout| HEAP.allocate(layout)),
        );
    }
    malloc_with_settings(size)
}

/// `malloc` when [`config::plain`] holds and the thread's loaded magazine
/// had no block: a call of its own, so that the fast path above calls
/// nothing and needs no stack frame.
#[cold]
#[inline(never)]
fn malloc_plain(size: usize) -> *mut c_void {
    or_enomem(thread_cache::allocate_size(size))
}

/// `malloc` when a setting asks for more (scribble, trace), or before the
/// settings are read.
#[cold]
#[inline(never)]
fn malloc_with_settings(size: usize) -> *mut c_void {
    if let Some(defences) = config::defences_only()
        && defences.on_alloc()
    {
        return or_enomem(hardened::allocate(size, DEFAULT_ALIGN, false, defences));
    }
    let config = lifecycle::settings();
    let block = or_enomem(allocate(size, DEFAULT_ALIGN, config));
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("malloc({size}) = {block:p}"));
    }
    block
}

/// `calloc(3)`: `count * size` zero bytes, `ENOMEM` if the product overflows.
/// Fresh pages from the kernel are already zero and are not cleared again.
///
/// # Safety
///
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    if config::plain() {
        return or_enomem(
            count
                .checked_mul(size)
                .and_then(|bytes| c_layout(bytes, DEFAULT_ALIGN))
                .and_then(thread_cache::allocate_zeroed),
        );
    }
    calloc_with_settings(count, size)
}

/// `calloc` when a setting asks for more (trace, defences), or before the
/// settings are read. (Scribbling leaves calloc's memory zero.)
#[cold]
#[inline(never)]
fn calloc_with_settings(count: usize, size: usize) -> *mut c_void {
    let config = lifecycle::settings();
    let block = or_enomem(count.checked_mul(size).and_then(|bytes| {
        if config.defences.on_alloc() {
            hardened::allocate(bytes, DEFAULT_ALIGN, true, config.defences)
        } else {
            thread_cache::allocate_zeroed(c_layout(bytes, DEFAULT_ALIGN)?)
        }
    }));
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("calloc({count}, {size}) = {block:p}"));
    }
    block
}

/// Frees `ptr` for `function` (named in reports). Returns whether the heap
/// accepted the pointer. `errno` is preserved: every system call the heap
/// may make on this path restores it.
#[inline]
pub(super) fn release(function: &str, ptr: *mut c_void, config: Config) -> bool {
    if config.defences.on_free() {
        return hardened::release(function, ptr, None, config.defences);
    }
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return true;
    };
    if config.scribble
        && let Ok(usable) = HEAP.usable_size(block)
    {
        // SAFETY: the heap vouches for `usable` bytes of this live block,
        // which the caller is giving up.
        unsafe { ptr::write_bytes(block.as_ptr(), SCRIBBLE_FREED, usable) };
    }
    // SAFETY: `deallocate` validates the pointer before touching anything.
    match unsafe { thread_cache::deallocate(block) } {
        Ok(()) => true,
        Err(error) => {
            Misuse::Heap(error).report(function, ptr);
            false
        }
    }
}

/// `free(3)`. `free(NULL)` does nothing. A pointer the library never returned
/// (or already freed) is reported and ignored, per `FT_MALLOC_CHECK`.
/// `errno` is left unchanged.
///
/// # Safety
///
/// `ptr` must not be used after it is freed. Bad pointers are caught, not
/// obeyed, but a block freed by mistake is still freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    free_plain("free", ptr);
}

/// `free`'s body; `function` names it in reports. One load gives both
/// "the settings ask nothing" and the page map (`config::free_gate`);
/// anything the lock-free free declines (NULL, LARGE, settings, a thread
/// without a cache, a gate not yet set) goes to [`free_declined`],
/// tail-called, so the fast path needs no stack frame.
#[inline(always)]
pub(super) fn free_plain(function: &str, ptr: *mut c_void) {
    let flat = config::free_gate();
    let key = config::free_key();
    // SAFETY: the gate is the heap's flat map or the sentinel, and the key
    // read after it the heap's (`config::free_key`); the check validates
    // the pointer before touching anything, and changes nothing when it
    // declines.
    match unsafe { thread_cache::try_deallocate_flat(flat, key, ptr.cast::<u8>()) } {
        Some(Ok(())) => {}
        Some(Err(error)) => Misuse::Heap(error).report(function, ptr),
        None => free_declined(function, ptr),
    }
}

/// What `free`'s lock-free path declined: the settings' path if they ask
/// for more (reported as `free`, as before the gate), else the full path
/// (after setting `free`'s gate if the heap has published its map since).
#[cold]
#[inline(never)]
fn free_declined(function: &str, ptr: *mut c_void) {
    if !config::plain() {
        return free_with_settings(ptr);
    }
    config::refresh_free_gate();
    free_locked(function, ptr);
}

/// What the lock-free free declined (NULL, a LARGE block, a thread without
/// a cache, a pointer to refuse): the thread cache's full path, then the
/// report.
#[cold]
#[inline(never)]
fn free_locked(function: &str, ptr: *mut c_void) {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return;
    };
    // SAFETY: `deallocate` validates the pointer before touching anything.
    if let Err(error) = unsafe { thread_cache::deallocate(block) } {
        Misuse::Heap(error).report(function, block.as_ptr().cast());
    }
}

/// `free` when a setting asks for more (scribble, trace), or before the
/// settings are read.
#[cold]
#[inline(never)]
fn free_with_settings(ptr: *mut c_void) {
    if let Some(defences) = config::defences_only()
        && defences.on_free()
    {
        hardened::release("free", ptr, None, defences);
        return;
    }
    let config = lifecycle::settings();
    release("free", ptr, config);
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("free({ptr:p})"));
    }
}

/// `cfree(3)`: an old name of `free`, still exported by glibc.
///
/// # Safety
///
/// As [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cfree(ptr: *mut c_void) {
    // SAFETY: same contract.
    unsafe { free(ptr) }
}

/// What a realloc-like call ended in.
enum Resized {
    /// The (possibly moved) block, or NULL after `realloc(p, 0)` freed `p`.
    Done(*mut c_void),
    /// No memory; the old block is intact.
    OutOfMemory,
    /// The old pointer was refused (and reported).
    Refused,
}

/// The shared body of `realloc`, `reallocarray` and `reallocf`.
fn resize(function: &str, ptr: *mut c_void, size: usize, config: Config) -> Resized {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return match allocate(size, DEFAULT_ALIGN, config) {
            Some(new) => Resized::Done(new.as_ptr().cast()),
            None => Resized::OutOfMemory,
        };
    };
    if size == 0 {
        // glibc: realloc(p, 0) frees p and returns NULL.
        return if release(function, ptr, config) {
            Resized::Done(ptr::null_mut())
        } else {
            Resized::Refused
        };
    }
    if config.defences.on_free() {
        return match hardened::reallocate(function, ptr, size, config.defences) {
            Ok(Some(new)) => Resized::Done(new.as_ptr().cast()),
            Ok(None) => Resized::OutOfMemory,
            Err(()) => Resized::Refused,
        };
    }
    reallocate_block(function, block, size)
}

/// Resizes `block` (not yet validated) to `size > 0` bytes through the
/// thread's cache, reporting a refused pointer.
#[inline(always)]
fn reallocate_block(function: &str, block: NonNull<u8>, size: usize) -> Resized {
    let Some(layout) = c_layout(size, DEFAULT_ALIGN) else {
        return Resized::OutOfMemory;
    };
    // SAFETY: `reallocate` validates the pointer first and leaves the old
    // block untouched on any error.
    match unsafe { thread_cache::reallocate(block, layout) } {
        Ok(new) => Resized::Done(new.as_ptr().cast()),
        Err(ReallocError::OutOfMemory) => Resized::OutOfMemory,
        Err(ReallocError::Invalid(error)) => {
            Misuse::Heap(error).report(function, block.as_ptr().cast());
            Resized::Refused
        }
    }
}

/// The C result of a [`Resized`]: NULL + `ENOMEM` when out of memory, NULL
/// with `errno` untouched for a refused pointer.
fn resized_to_c(outcome: Resized) -> *mut c_void {
    match outcome {
        Resized::Done(block) => block,
        Resized::OutOfMemory => {
            os::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
        Resized::Refused => ptr::null_mut(),
    }
}

/// `realloc(3)`. `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p`
/// and returns NULL (glibc); on failure NULL + `ENOMEM` and `p` is intact; a
/// pointer the library never returned is reported and NULL returned.
///
/// The common step (a TINY or SMALL block that holds the new size where it
/// is) calls nothing and needs no stack frame: the lock-free check and the
/// size written in place (`FrontCache::resize_in_place`); a move is a tail
/// call to [`realloc_vouched`], everything else to [`realloc_cold`].
///
/// # Safety
///
/// On success `ptr` must not be used any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if config::plain()
        && size != 0
        && let Some(block) = NonNull::new(ptr.cast::<u8>())
        && let Some(layout) = c_layout(size, DEFAULT_ALIGN)
    {
        // SAFETY: the check validates the pointer before anything is
        // trusted, and changes nothing unless the block stays in place.
        match unsafe { FrontCache::resize_in_place(&HEAP, block, layout) } {
            InPlace::Done => return ptr,
            InPlace::Vouched(vouched) => return realloc_vouched(block, vouched, size),
            InPlace::Refused(refusal) => return realloc_refused(refusal, ptr),
            InPlace::Declined => {}
        }
    }
    realloc_cold(ptr, size)
}

/// `realloc` of a block the lock-free check vouched for that does not stay
/// in place as simply (a move, mostly): the rest, through the thread's
/// cache. One function from here to the copy (`FrontCache`'s move is
/// inlined), with the C alignment a constant: `size` is the one the entry
/// made a layout of.
#[inline(never)]
fn realloc_vouched(block: NonNull<u8>, vouched: Vouched, size: usize) -> *mut c_void {
    // SAFETY: `realloc` made a layout of `size` at this alignment (no
    // larger than `isize::MAX`, the alignment a power of two).
    let layout = unsafe { Layout::from_size_align_unchecked(size, DEFAULT_ALIGN) };
    if vouched.grows_by_move(layout) {
        // SAFETY: `vouched` is this call's check of `block`, untouched
        // since.
        match unsafe { thread_cache::grow_vouched(block, vouched, layout) } {
            Some(Ok(new)) => return new.as_ptr().cast(),
            Some(Err(error)) => return realloc_failed(error, block),
            None => {}
        }
    }
    realloc_vouched_rest(block, vouched, layout)
}

/// [`realloc_vouched`] when the block does not simply grow by a move
/// through the thread's cache: a shrink, or a thread without a cache.
#[inline(never)]
fn realloc_vouched_rest(block: NonNull<u8>, vouched: Vouched, layout: Layout) -> *mut c_void {
    // SAFETY: `vouched` is this call's check of `block`, untouched since.
    match unsafe { thread_cache::reallocate_vouched(block, vouched, layout) } {
        Ok(new) => new.as_ptr().cast(),
        Err(error) => realloc_failed(error, block),
    }
}

/// A `realloc` that failed: NULL, with `ENOMEM` when out of memory, or
/// the refused pointer reported (`errno` untouched). Out of the way of
/// [`realloc_vouched`]'s move.
#[cold]
#[inline(never)]
fn realloc_failed(error: ReallocError, block: NonNull<u8>) -> *mut c_void {
    resized_to_c(match error {
        ReallocError::OutOfMemory => Resized::OutOfMemory,
        ReallocError::Invalid(error) => {
            Misuse::Heap(error).report("realloc", block.as_ptr().cast());
            Resized::Refused
        }
    })
}

/// `realloc` of a block the lock-free check refused (freed already, its
/// canary overwritten): reported, NULL returned, `errno` untouched.
#[cold]
#[inline(never)]
fn realloc_refused(refusal: Refusal, ptr: *mut c_void) -> *mut c_void {
    Misuse::Heap(refusal.count(&HEAP)).report("realloc", ptr);
    ptr::null_mut()
}

/// `realloc` in every other case: a setting asks for more, NULL or a zero
/// size, a size no layout has, a block the lock-free check cannot vouch
/// for (LARGE, invalid: the heap's locked path decides and reports).
#[cold]
#[inline(never)]
fn realloc_cold(ptr: *mut c_void, size: usize) -> *mut c_void {
    if config::plain()
        && size != 0
        && let Some(block) = NonNull::new(ptr.cast::<u8>())
    {
        return resized_to_c(reallocate_block("realloc", block, size));
    }
    let config = lifecycle::settings();
    let block = resized_to_c(resize("realloc", ptr, size, config));
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("realloc({ptr:p}, {size}) = {block:p}"));
    }
    block
}

/// `reallocarray(3)`: `realloc(ptr, count * size)`, with NULL + `ENOMEM` and
/// `ptr` intact if the product overflows.
///
/// # Safety
///
/// As [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    let config = lifecycle::settings();
    let block = resized_to_c(match count.checked_mul(size) {
        Some(bytes) => resize("reallocarray", ptr, bytes, config),
        None => Resized::OutOfMemory,
    });
    if let Some(fd) = config.trace_fd {
        report::trace(
            fd,
            format_args!("reallocarray({ptr:p}, {count}, {size}) = {block:p}"),
        );
    }
    block
}

/// `reallocf(3)` (BSD): like `realloc`, but frees `ptr` when out of memory,
/// so `p = reallocf(p, n)` never leaks.
///
/// # Safety
///
/// `ptr` must not be used after the call unless it was refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocf(ptr: *mut c_void, size: usize) -> *mut c_void {
    let config = lifecycle::settings();
    let outcome = resize("reallocf", ptr, size, config);
    if matches!(outcome, Resized::OutOfMemory) {
        release("reallocf", ptr, config);
    }
    let block = resized_to_c(outcome);
    if let Some(fd) = config.trace_fd {
        report::trace(fd, format_args!("reallocf({ptr:p}, {size}) = {block:p}"));
    }
    block
}

/// `malloc_usable_size(3)`: bytes usable at `ptr` (at least what was asked),
/// 0 for NULL. A pointer the library never returned is reported and 0 returned.
///
/// # Safety
///
/// None: the pointer is validated before anything is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    if !config::plain() {
        let config = lifecycle::settings();
        if config.defences.on_free() {
            return hardened::usable_size(ptr, config.defences);
        }
    }
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return 0;
    };
    match HEAP.usable_size(block) {
        Ok(usable) => usable,
        Err(error) => {
            Misuse::Heap(error).report("malloc_usable_size", ptr);
            0
        }
    }
}
