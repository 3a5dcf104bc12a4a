//! Reallocation through a front cache: a TINY or SMALL block resized
//! without a lock.
//!
//! [`Heap::reallocate`] validates the block under its class lock, and a
//! move allocates and frees through the zones, under the lock again: about
//! 500 instructions per step of a growing string. Here the block is vouched
//! for by the caches' lock-free check (`check_for_cache`: a carved block
//! boundary, not marked free, its slack canary intact); a block that stays
//! in its class has its recorded size and canary rewritten in place (the
//! caller holds it: nobody else writes its size slot, and the slot is
//! atomic for the readers that walk the heap); a block that moves takes a
//! new block from the cache and goes back to it like any free. Anything
//! the check cannot vouch for (LARGE, a span, an invalid pointer) takes
//! the heap's locked path, which decides and reports.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use super::{Checked, FrontCache};
use crate::canary;
use crate::error::{HeapError, ReallocError};
use crate::heap::Heap;
use crate::provider::PageProvider;
use crate::realloc::stays_in_class;
use crate::size_class::SizeClass;
use crate::zone;

impl FrontCache {
    /// Reallocates like [`Heap::reallocate`], through this cache: without
    /// a lock for a TINY or SMALL block that stays in its class or moves to
    /// another class. On error the old block is untouched.
    ///
    /// # Safety
    ///
    /// As [`Heap::reallocate`]: if `ptr` is a live block of `heap` and the
    /// call succeeds, only the returned pointer may be used afterwards.
    pub unsafe fn reallocate<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let (class, entry) = match heap.check_for_cache::<true>(ptr) {
            Checked::Keep(class, entry, _) => (class, entry),
            // SAFETY: per the contract.
            Checked::Locked => return unsafe { heap.reallocate(ptr, new_layout) },
            Checked::DoubleFree => {
                return Err(ReallocError::Invalid(
                    heap.count_error(HeapError::DoubleFree),
                ));
            }
            Checked::Overflow => {
                return Err(ReallocError::Invalid(heap.count_error(HeapError::Overflow)));
            }
        };
        let new_size = new_layout.size();
        let g = class.geometry();
        let aligned = ptr.as_ptr().addr().is_multiple_of(new_layout.align());
        if aligned && stays_in_class(class, SizeClass::for_layout(new_size, new_layout.align())) {
            // SAFETY: a live block of `class` the caller holds, vouched for
            // by the check; `new_size` fits it. The canary moves to the new
            // end (a shrink leaves the old one among the slack, unchecked).
            unsafe {
                zone::store_size(entry.size_slot, g.size_width, new_size);
                canary::arm(ptr, new_size, g.block_size);
            }
            return Ok(ptr);
        }
        // SAFETY: the slot of the block the caller holds.
        let old_size = unsafe { zone::load_own_size(entry.size_slot, g.size_width) };
        let new = match growth_class(old_size, new_layout) {
            Some(roomy) => match self.pop(roomy) {
                Some(e) => Some(Self::hand_out(e, roomy, new_size)),
                None => self.allocate_slow(heap, roomy, new_layout),
            },
            None => self.allocate(heap, new_layout),
        }
        .ok_or(ReallocError::OutOfMemory)?;
        // SAFETY: two live blocks, distinct, each holding the copied length.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size)) };
        // The old block goes back as any free (checked again: a concurrent
        // free of it by the caller is their bug, and the new block is theirs
        // whatever happens).
        // SAFETY: the caller gives the old block up.
        let _ = unsafe { self.deallocate(heap, ptr) };
        Ok(new)
    }
}

/// A block that grows by a quarter to a half at once is likely to grow
/// again by the same ratio (a string builder's +50% steps): it moves to a
/// class with room for that next step, which then stays in place. `None`
/// for other resizes: small appends (they would pin slack for nothing),
/// doublings (the container over-allocates already), shrinks, LARGE sizes.
fn growth_class(old_size: usize, new_layout: Layout) -> Option<SizeClass> {
    let new_size = new_layout.size();
    if old_size == 0 || new_size < old_size + old_size / 4 || new_size > old_size + old_size / 2 {
        return None;
    }
    let next = new_size.checked_mul(new_size)? / old_size;
    SizeClass::for_layout(next, new_layout.align())
}
