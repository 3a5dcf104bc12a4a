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
//! The common step is split out for a caller that wants it without a call
//! or a stack frame (the hosted C `realloc`):
//! [`FrontCache::resize_in_place`] checks the block and writes the new size
//! in place, or hands back what it found ([`InPlace`]: the block vouched
//! for, in two words, for [`FrontCache::reallocate_vouched`]; a refusal,
//! counted when the caller takes it; or a decline, for the locked path).
//! [`FrontCache::reallocate`] is the two put together.
//!
//! A growing block moves to a class with room to grow
//! ([`growth_class`](crate::realloc::growth_class)):
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
use crate::realloc::{growth_class_of_small, resizes_in_place};
use crate::size_class::{CLASS_SIZES, DEFAULT_ALIGN, SizeClass};
use crate::zone;

/// What the lock-free step of a realloc ([`FrontCache::resize_in_place`])
/// did with a pointer.
pub enum InPlace {
    /// A live block that holds the new size where it is: its recorded size
    /// and slack canary were rewritten; the pointer stays valid.
    Done,
    /// A live TINY or SMALL block, vouched for by the check, that does not
    /// stay in place as simply: [`FrontCache::reallocate_vouched`] resizes
    /// or moves it. Nothing was changed.
    Vouched(Vouched),
    /// A block freed already or whose slack canary was overwritten:
    /// nothing was changed; [`Refusal::count`] gives the error.
    Refused(Refusal),
    /// Nothing the lock-free check can vouch for (LARGE, a span, an invalid
    /// pointer): nothing was changed, [`FrontCache::reallocate`] or
    /// [`Heap::reallocate`] decides (and reports).
    Declined,
}

/// Why [`FrontCache::resize_in_place`] refused a pointer, not yet counted
/// in the heap's error count: counting it is a call, which the common
/// step's caller keeps out of its way.
#[must_use = "`Refusal::count` counts the error and gives it"]
pub struct Refusal(HeapError);

impl Refusal {
    /// Counts the refusal in `heap`'s error count and gives the error.
    #[cold]
    #[inline(never)]
    pub fn count<P: PageProvider, R: RawMutex>(self, heap: &Heap<P, R>) -> HeapError {
        heap.count_error(self.0)
    }
}

/// What [`FrontCache::resize_in_place`] found about a block it vouched for,
/// for [`FrontCache::reallocate_vouched`]: two words, so that a caller can
/// pass it on in registers.
#[derive(Clone, Copy)]
pub struct Vouched {
    size_slot: *mut u8,
    class: SizeClass,
}

impl Vouched {
    /// Whether [`FrontCache::reallocate_vouched`] moves the block to grow
    /// it: `new_layout` is bigger than the block, at the default alignment
    /// (every block has it), a move whatever the rest decides. Its other
    /// cases (a shrink, an aligned layout) are out of line.
    #[inline(always)]
    #[must_use]
    pub fn grows_by_move(self, new_layout: Layout) -> bool {
        // SAFETY: a class index is below `NUM_CLASSES`, the table's length
        // (no bounds check on the move's path, as `hand_out`).
        let block_size = unsafe { *CLASS_SIZES.get_unchecked(self.class.index()) } as usize;
        new_layout.size() > block_size && new_layout.align() <= DEFAULT_ALIGN
    }
}

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
        // SAFETY: per the contract (and `vouched` comes from this call's
        // check of `ptr`).
        unsafe {
            match Self::resize_in_place(heap, ptr, new_layout) {
                InPlace::Done => Ok(ptr),
                InPlace::Vouched(vouched) => {
                    self.reallocate_vouched(heap, ptr, vouched, new_layout)
                }
                InPlace::Refused(refusal) => Err(ReallocError::Invalid(refusal.count(heap))),
                InPlace::Declined => heap.reallocate(ptr, new_layout),
            }
        }
    }

    /// The common step of a realloc, without a lock and without a cache:
    /// the lock-free check (`check_for_cache`: a carved block boundary, not
    /// marked free, its slack canary intact), then, for a new size from the
    /// recorded one to all of the block at the default alignment (a growth
    /// within the block: nothing else to find), the new size and canary
    /// written in place
    /// ([`InPlace::Done`]). Anything else is handed back to the caller:
    /// the rest of [`reallocate`](Self::reallocate) for a block vouched
    /// for, the heap's locked path for what the check cannot vouch for.
    /// Inlined, so that a C `realloc` needs no call and no stack frame for
    /// its common case.
    ///
    /// # Safety
    ///
    /// If `ptr` is a live block of `heap`, the caller holds it: no other
    /// thread frees or resizes it meanwhile.
    #[inline(always)]
    pub unsafe fn resize_in_place<P: PageProvider, R: RawMutex>(
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> InPlace {
        let (class, entry, mark, old_size) = match heap.check_for_cache::<true>(ptr) {
            Checked::Keep(class, entry, mark, requested) => (class, entry, mark, requested),
            Checked::Locked => return InPlace::Declined,
            Checked::DoubleFree => return InPlace::Refused(Refusal(HeapError::DoubleFree)),
            Checked::Overflow => return InPlace::Refused(Refusal(HeapError::Overflow)),
        };
        let new_size = new_layout.size();
        // Every block is `DEFAULT_ALIGN`ed.
        if grows_within(class, old_size, new_size) && new_layout.align() <= DEFAULT_ALIGN {
            // SAFETY: a live block of `class` the caller holds, vouched for
            // by the check, whose free mark is `mark`; `new_size` fits it.
            unsafe { resize_in_place(entry, class, new_size, mark) };
            return InPlace::Done;
        }
        InPlace::Vouched(Vouched {
            size_slot: entry.size_slot,
            class,
        })
    }

    /// The rest of [`reallocate`](Self::reallocate) for a block that
    /// [`resize_in_place`](Self::resize_in_place) vouched for: a resize
    /// that stays in its class all the same (a shrink, an aligned layout),
    /// or a move (a new block from this cache, with room for the next step
    /// of a growing block, the copy, the old block back to this cache
    /// without a second check).
    ///
    /// # Safety
    ///
    /// `vouched` is what `resize_in_place(heap, ptr, ..)` returned, and the
    /// caller has done nothing with the block since (it still holds it).
    #[inline(always)]
    pub unsafe fn reallocate_vouched<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
        vouched: Vouched,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        // The block through the heap's own pointer to its zone, which the
        // slot (in the zone's header area) carries (`heap::own`).
        // SAFETY: the caller's block's address, not zero.
        let ptr =
            unsafe { NonNull::new_unchecked(vouched.size_slot.with_addr(ptr.as_ptr().addr())) };
        let entry = Entry {
            block: ptr,
            size_slot: vouched.size_slot,
        };
        // The check's mark, computed again (two instructions) rather than
        // carried: `Vouched` stays two words.
        let mark = free_mark::value(ptr);
        let class = vouched.class;
        // Inlined into the caller, so that a C `realloc`'s move is one
        // function from its entry to the copy, its alignment a constant
        // (no class lookup for other alignments).
        if vouched.grows_by_move(new_layout) {
            // SAFETY: per the contract, the check vouched for this block
            // of `class`, whose size slot is `size_slot`.
            return unsafe { self.realloc_by_move(heap, class, entry, mark, new_layout) };
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
        // SAFETY: the slot of the block the caller holds.
        let old_size = unsafe { zone::load_own_size(entry.size_slot, class.size_width()) };
        if aligned
            && new_layout.size() <= class.block_size()
            && resizes_in_place(class, old_size, new_layout.size(), new_layout.align())
        {
            // SAFETY: per the contract; the new size fits the block.
            unsafe { resize_in_place(entry, class, new_layout.size(), mark) };
            return Ok(ptr);
        }
        // SAFETY: per the contract.
        unsafe { self.realloc_by_move(heap, class, entry, mark, new_layout) }
    }

    /// The move of [`reallocate`](Self::reallocate): a new block (with
    /// room for the next step of a growing block, `growth_class`), the
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
        let old_size = unsafe { zone::load_own_size(entry.size_slot, class.size_width()) };
        let again = self.last_grown == ptr.as_ptr();
        // The recorded size of a checked block (at most its size), and a
        // new size past it.
        let new = match growth_class_of_small(old_size, again, new_layout) {
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
        let replaced = unsafe { free_mark::claim_over(ptr, mark) };
        if replaced == mark {
            heap.count_error(HeapError::DoubleFree);
            return Ok(new);
        }
        // SAFETY: the slot of the block just taken back (`zone/sizes.rs`).
        unsafe { zone::store_cached(entry.size_slot, class.size_width()) };
        if !self.push(class, entry) {
            self.push_slow(heap, class, entry, replaced);
        }
        Ok(new)
    }
}

/// Whether a block of `class` holding `old_size` bytes grows (or keeps
/// its size) within itself for `new_size` bytes: `old_size <= new_size <=
/// block_size`, as two comparisons (one register fewer than a single
/// unsigned one: the inlined step then saves none). The common step of a
/// realloc (the room a growing block was given, `growth_class`, grown
/// into); a shrink is decided out of line (`resizes_in_place`). The old
/// size is the one the check read (`Checked::Keep`): reading it again
/// tested the slot's width a second time.
#[inline(always)]
fn grows_within(class: SizeClass, old_size: usize, new_size: usize) -> bool {
    // The check refuses a recorded size past the block (a span's).
    debug_assert!(old_size <= class.block_size());
    old_size <= new_size && new_size <= class.block_size()
}

/// Records `new_size` for the block of `entry` and moves its canary to the
/// new end (a shrink leaves the old one among the slack, unchecked). The
/// block size and the slot's width come from the class index (a constant
/// table, a comparison), not from its geometry: fewer loads.
///
/// # Safety
///
/// `entry` is a live block of `class` the caller holds, whose free mark is
/// `mark`; `new_size <= class.block_size()`.
#[inline(always)]
unsafe fn resize_in_place(entry: Entry, class: SizeClass, new_size: usize, mark: usize) {
    // SAFETY: per the contract.
    unsafe {
        zone::store_size(entry.size_slot, class.size_width(), new_size);
        if new_size < class.block_size() {
            canary::arm_past(entry.block, new_size, mark);
        }
    }
}
