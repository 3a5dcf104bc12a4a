//! `allocator_api2::alloc::Allocator` (feature `allocator-api2`): a heap
//! that is not the global allocator can still back collections,
//! `allocator_api2::vec::Vec::new_in(&heap)` and the like (`&Heap` is an
//! allocator through `allocator_api2`'s blanket impl for references).

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};
use lock_api::RawMutex;

use crate::error::ReallocError;
use crate::heap::Heap;
use crate::provider::PageProvider;

/// The slice `Allocator` returns: the block, `len` bytes (what was asked;
/// [`Heap::usable_size`] would say how much more fits, at the cost of a
/// lookup).
fn slice(block: NonNull<u8>, len: usize) -> NonNull<[u8]> {
    NonNull::slice_from_raw_parts(block, len)
}

// SAFETY: blocks are at least `layout.size()` bytes at `layout.align()`,
// stay valid until deallocated or the heap is dropped (and a heap cannot be
// dropped or moved while borrowed), and `grow`/`shrink` keep the contents
// up to the smaller size, as `reallocate` does.
unsafe impl<P: PageProvider, R: RawMutex> Allocator for Heap<P, R> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        match Heap::allocate(self, layout) {
            Some(block) => Ok(slice(block, layout.size())),
            None => Err(AllocError),
        }
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        match Heap::allocate_zeroed(self, layout) {
            Some(block) => Ok(slice(block, layout.size())),
            None => Err(AllocError),
        }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the caller gives up a block of this heap. A refused
        // pointer is a caller bug the trait cannot report; the heap ignores
        // it and counts it in `stats().errors`.
        let result = unsafe { Heap::deallocate(self, ptr) };
        debug_assert!(result.is_ok(), "deallocate of {ptr:p}: {result:?}");
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        _old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller owns `ptr`, a block of this heap; `reallocate`
        // honours `new_layout`'s alignment and leaves the block alone on
        // failure.
        unsafe { self.resize_block(ptr, new_layout) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        _old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `grow`.
        unsafe { self.resize_block(ptr, new_layout) }
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// `grow`/`shrink` through [`reallocate`](Self::reallocate).
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this heap, owned by the caller.
    unsafe fn resize_block(
        &self,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: per the contract.
        match unsafe { self.reallocate(ptr, new_layout) } {
            Ok(block) => Ok(slice(block, new_layout.size())),
            Err(ReallocError::OutOfMemory | ReallocError::Invalid(_)) => Err(AllocError),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use allocator_api2::vec::Vec;

    use crate::{ArenaProvider, Heap};

    #[test]
    fn a_vec_lives_on_the_heap_and_grows_through_reallocate() {
        let mut region = std::vec![0u8; 4 << 20];
        // SAFETY: the region outlives the heap (dropped at the end of the test).
        let provider = unsafe { ArenaProvider::new(region.as_mut_ptr(), region.len()) };
        let heap: Heap<ArenaProvider> = Heap::new(provider);
        let mut v: Vec<u64, &Heap<ArenaProvider>> = Vec::new_in(&heap);
        for i in 0..100_000u64 {
            v.push(i);
        }
        assert_eq!(heap.stats().live_blocks, 1);
        assert!(heap.stats().live_bytes >= 100_000 * 8);
        assert_eq!(v.iter().sum::<u64>(), 99_999 * 100_000 / 2);
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(heap.stats().live_bytes, 80);
        drop(v);
        assert_eq!(heap.stats().live_blocks, 0);
        drop(heap);
        drop(region);
    }
}
