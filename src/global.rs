//! `GlobalAlloc`, so a `static Heap` can be a Rust program's or a kernel's
//! `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::heap::Heap;
use crate::provider::PageProvider;

// SAFETY: `allocate` returns blocks of at least `layout.size()` bytes at
// `layout.align()`, distinct while live; `dealloc`/`realloc` only act on
// blocks the page map vouches for.
unsafe impl<P: PageProvider + Sync, R: RawMutex + Send + Sync> GlobalAlloc for Heap<P, R> {
    // `match`es, not `map_or`, and `matches!`, not `is_ok`: in a kernel's
    // debug build (opt-level 0) each combinator is a function call.
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.allocate(layout) {
            Some(block) => block.as_ptr(),
            None => ptr::null_mut(),
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.allocate_zeroed(layout) {
            Some(block) => block.as_ptr(),
            None => ptr::null_mut(),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: the caller gives up the block. A refused pointer is a
            // caller bug that `GlobalAlloc` cannot report; the heap ignores it.
            let result = unsafe { self.deallocate(ptr) };
            debug_assert!(matches!(result, Ok(())), "dealloc of {ptr:p}: {result:?}");
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        // SAFETY: `GlobalAlloc::realloc` guarantees the new layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: the caller owns `ptr` and uses only the result on success.
        match unsafe { self.reallocate(ptr, new_layout) } {
            Ok(block) => block.as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }
}
