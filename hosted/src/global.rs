//! [`FtMalloc`]: the same heap as Rust's `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use ft_malloc::ReallocError;

use crate::policy::Misuse;
use crate::{lifecycle, thread_cache};

/// Routes a Rust program's allocations to the process heap that also serves
/// the C functions of this library:
///
/// ```ignore
/// #[global_allocator]
/// static GLOBAL: ft_malloc_hosted::FtMalloc = ft_malloc_hosted::FtMalloc;
/// ```
///
/// The first allocation registers the heap's fork handlers
/// (`pthread_atfork`): a child forked while another thread held a heap lock
/// can still allocate. (With `c-abi` the library's load-time constructor has
/// registered them already.)
///
/// A pointer the heap refuses in `dealloc`/`realloc` (which safe Rust cannot
/// produce) is reported like a bad `free`, per `the misuse policy (`policy.rs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct FtMalloc;

// SAFETY: every method forwards to `HEAP`, which returns blocks of at least
// `layout.size()` bytes aligned to `layout.align()`, never hands out a live
// block twice, and validates every pointer it is given back.
unsafe impl GlobalAlloc for FtMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // The lock-free path first, calling nothing. A thread with a cache
        // has allocated before, so the process is ready (`ensure`).
        if layout.align() <= ft_malloc::DEFAULT_ALIGN
            && let Some(block) = thread_cache::allocate_cached(layout.size())
        {
            return block.as_ptr();
        }
        alloc_slow(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        lifecycle::ensure();
        thread_cache::allocate_zeroed(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let Some(block) = NonNull::new(ptr) else {
            return;
        };
        // SAFETY: the lock-free check validates the pointer before using
        // it, and changes nothing when it declines.
        match unsafe { thread_cache::try_deallocate(block) } {
            Some(Ok(())) => {}
            Some(Err(error)) => Misuse::Heap(error).report("dealloc", ptr.cast()),
            None => dealloc_locked(block),
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some(block), Ok(new_layout)) = (
            NonNull::new(ptr),
            Layout::from_size_align(new_size, layout.align()),
        ) else {
            return ptr::null_mut();
        };
        // SAFETY: `reallocate` validates the pointer and leaves the block
        // untouched on failure, as `GlobalAlloc::realloc` requires.
        match unsafe { thread_cache::reallocate(block, new_layout) } {
            Ok(new) => new.as_ptr(),
            Err(ReallocError::OutOfMemory) => ptr::null_mut(),
            Err(ReallocError::Invalid(error)) => {
                Misuse::Heap(error).report("realloc", ptr.cast());
                ptr::null_mut()
            }
        }
    }
}

/// `alloc` beyond the thread's loaded magazine: readies the process on the
/// first call, then the thread cache's full path.
#[cold]
#[inline(never)]
fn alloc_slow(layout: Layout) -> *mut u8 {
    lifecycle::ensure();
    thread_cache::allocate(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
}

/// What the lock-free `dealloc` declined: the thread cache's full path.
#[cold]
#[inline(never)]
fn dealloc_locked(block: NonNull<u8>) {
    // SAFETY: `deallocate` validates the pointer before using it.
    if let Err(error) = unsafe { thread_cache::deallocate(block) } {
        Misuse::Heap(error).report("dealloc", block.as_ptr().cast());
    }
}
