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
//! new block from the cache and goes back to it like a free, without the
//! free's check again (this call's check vouched for it; the claim of its
//! free mark still decides a free racing in). Anything the check cannot
//! vouch for (LARGE, a span, an invalid pointer) takes the heap's locked
//! path, which decides and reports.
//!
//! A growing block moves to a class with room to grow ([`growth_class`]):
//! room for one more step of its ratio, or two for a known grower (the
//! block this cache's last move produced, `FrontCache::last_grown`).

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use super::{Checked, Entry, FrontCache};
use crate::canary;
use crate::error::{HeapError, ReallocError};
use crate::free_mark;
use crate::heap::Heap;
use crate::provider::PageProvider;
use crate::realloc::{growth_class, resizes_in_place};
use crate::size_class::{DEFAULT_ALIGN, SizeClass, ZoneGeometry};
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
    #[inline(always)]
    pub unsafe fn reallocate<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let (class, entry, mark) = match heap.check_for_cache::<true>(ptr) {
            Checked::Keep(class, entry, mark) => (class, entry, mark),
            // SAFETY: per the contract.
            refused => return unsafe { not_vouched_for(heap, ptr, new_layout, refused) },
        };
        let new_size = new_layout.size();
        let g = class.geometry();
        // The common step in place, with nothing else to find (every block
        // is `DEFAULT_ALIGN`ed): more than half the block, at most all of it.
        if new_size <= g.block_size
            && new_size * 2 > g.block_size
            && new_layout.align() <= DEFAULT_ALIGN
        {
            // SAFETY: a live block of `class` the caller holds, vouched for
            // by the check, whose free mark is `mark`; `new_size` fits it.
            unsafe { resize_in_place(entry, g, new_size, mark) };
            return Ok(ptr);
        }
        // SAFETY: as above.
        unsafe { self.resize_or_move(heap, class, entry, mark, new_layout) }
    }

    /// The rest of [`reallocate`](Self::reallocate), out of its way: a
    /// resize that stays in its class all the same (`resizes_in_place`:
    /// a shrink, an aligned layout), or a move.
    ///
    /// # Safety
    ///
    /// As for [`realloc_by_move`](Self::realloc_by_move).
    #[inline(never)]
    unsafe fn resize_or_move<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        entry: Entry,
        mark: usize,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let ptr = entry.block;
        let aligned = ptr.as_ptr().addr().is_multiple_of(new_layout.align());
        // Growth past the block moves without finding a class for it.
        if aligned
            && new_layout.size() <= class.block_size()
            && resizes_in_place(class, new_layout.size(), new_layout.align())
        {
            // SAFETY: per the contract; the new size fits the block.
            unsafe { resize_in_place(entry, class.geometry(), new_layout.size(), mark) };
            return Ok(ptr);
        }
        // SAFETY: per the contract.
        unsafe { self.realloc_by_move(heap, class, entry, mark, new_layout) }
    }

    /// The move of [`reallocate`](Self::reallocate): a new block (with
    /// room for the next step of a growing block, [`growth_class`]), the
    /// copy, and the old block back to this cache. The old block is not
    /// checked again: the check that vouched for it is this call's, and
    /// the caller holds the block; the claim of its free mark still
    /// refuses a free of it racing in meanwhile (the caller's bug: the new
    /// block is theirs whatever happens).
    ///
    /// # Safety
    ///
    /// `entry` is the caller's live block of `class`, checked by
    /// `check_for_cache` in this call, whose free mark is `mark`.
    #[inline(always)]
    unsafe fn realloc_by_move<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        entry: Entry,
        mark: usize,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let new_size = new_layout.size();
        let ptr = entry.block;
        // SAFETY: the slot of the block the caller holds.
        let old_size = unsafe { zone::load_own_size(entry.size_slot, class.geometry().size_width) };
        let again = self.last_grown == ptr.as_ptr();
        let new = match growth_class(old_size, again, new_layout) {
            Some(roomy) => match self.pop(roomy) {
                Some(e) => Some(Self::hand_out(e, roomy, new_size)),
                None => self.allocate_slow(heap, roomy, new_layout),
            },
            None => self.allocate(heap, new_layout),
        }
        .ok_or(ReallocError::OutOfMemory)?;
        self.last_grown = new.as_ptr();
        // SAFETY: two live blocks, distinct, each holding the copied length.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size)) };
        // SAFETY: per the contract (the copy is done: the mark overwrites
        // the block's first word).
        if !unsafe { free_mark::claim(ptr, mark) } {
            heap.count_error(HeapError::DoubleFree);
            return Ok(new);
        }
        if !self.push(class, entry) {
            self.push_slow(heap, class, entry);
        }
        Ok(new)
    }
}

/// Records `new_size` for the block of `entry` and moves its canary to the
/// new end (a shrink leaves the old one among the slack, unchecked).
///
/// # Safety
///
/// `entry` is a live block the caller holds, of a class with geometry `g`,
/// whose free mark is `mark`; `new_size <= g.block_size`.
#[inline(always)]
unsafe fn resize_in_place(entry: Entry, g: &ZoneGeometry, new_size: usize, mark: usize) {
    // SAFETY: per the contract.
    unsafe {
        zone::store_size(entry.size_slot, g.size_width, new_size);
        if new_size < g.block_size {
            canary::arm_past(entry.block, new_size, mark);
        }
    }
}

/// What [`FrontCache::reallocate`] does with a pointer its check did not
/// vouch for: the heap's locked path decides (LARGE, a span, anything
/// doubtful), or the refusal is counted and returned.
///
/// # Safety
///
/// As for [`Heap::reallocate`].
#[cold]
#[inline(never)]
unsafe fn not_vouched_for<P: PageProvider, R: RawMutex>(
    heap: &Heap<P, R>,
    ptr: NonNull<u8>,
    new_layout: Layout,
    checked: Checked,
) -> Result<NonNull<u8>, ReallocError> {
    match checked {
        // SAFETY: per the contract.
        Checked::Locked | Checked::Keep(..) => unsafe { heap.reallocate(ptr, new_layout) },
        Checked::DoubleFree => Err(ReallocError::Invalid(
            heap.count_error(HeapError::DoubleFree),
        )),
        Checked::Overflow => Err(ReallocError::Invalid(heap.count_error(HeapError::Overflow))),
    }
}
