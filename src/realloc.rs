//! Reallocation: in place when the block's class still fits or its LARGE run
//! can be resized by the provider; otherwise allocate, copy, free. A failed
//! reallocation leaves the old block as it was.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use lock_api::{MutexGuard, RawMutex};

use crate::canary;
use crate::error::{HeapError, ReallocError};
use crate::free::check_canary;
use crate::free_mark;
use crate::heap::{ClassState, Heap, own};
use crate::page_map::Owner;
use crate::provider::PageProvider;
use crate::size_class::{DEFAULT_ALIGN, SMALL_MAX, SizeClass};
use crate::span;
use crate::zone::{self, ZoneHeader};

mod large;

/// A block stays in its class when the new size still fits and would not
/// fit a class less than half its size: shrinking further moves it, so a
/// shrunk buffer does not pin a big block.
#[inline]
pub(crate) fn stays_in_class(class: SizeClass, new: Option<SizeClass>) -> bool {
    new.is_some_and(|new| new <= class && new.block_size() * 2 >= class.block_size())
}

/// Whether a block of `class` holding `old_size` bytes stays where it is
/// for `new_size` bytes at `align`: it grows within the block (its room
/// for growth, [`growth_class`], is there to be grown into, however much
/// of it is still empty), or [`stays_in_class`] (found without the new
/// size's class when it fills more than half the block, the common case,
/// which that class then does too).
#[inline(always)]
pub(crate) fn resizes_in_place(
    class: SizeClass,
    old_size: usize,
    new_size: usize,
    align: usize,
) -> bool {
    let block_size = class.block_size();
    (new_size <= block_size
        && (new_size * 2 > block_size || new_size >= old_size)
        && align <= DEFAULT_ALIGN)
        || stays_in_class(class, SizeClass::for_layout(new_size, align))
}

/// A block that grows by a quarter to a half at once is likely to grow
/// again by the same ratio (a string builder's +50% steps): it moves to a
/// class with room for that next step, which then stays in place. A known
/// grower (`again`: the block a front cache moved last, so it grows a
/// third time) gets room for the next two steps while that room is at
/// most [`GROWER_ROOM_MAX`]: it then moves at every third step instead of
/// every other. `None` for other resizes: small appends (they would pin
/// slack for nothing), doublings (the container over-allocates already;
/// the heap's own path gives them room, `allocate_for_growth`), shrinks,
/// LARGE sizes.
///
/// No floor: a room of at least the largest TINY block (128 B) would save
/// one move of a string builder's 14 steps (2,470 -> 2,346 instructions a
/// round) but make every string grown once or twice from 16 B and kept
/// hold 128 B instead of 48 or 64 (200,000 of them: 28.8 MiB peak instead
/// of 13.3; glibc 9.2-12.3). The footprint wins.
///
/// The price is slack at rest: a block that stops growing keeps up to the
/// ratio (1.5 at +50%) of its size, or the ratio squared under the bound.
#[inline]
pub(crate) fn growth_class(old_size: usize, again: bool, new_layout: Layout) -> Option<SizeClass> {
    if old_size > SMALL_MAX {
        return None;
    }
    growth_class_of_small(old_size, again, new_layout)
}

/// [`growth_class`] for a caller that knows `old_size` is a TINY or SMALL
/// block's recorded size (at most [`SMALL_MAX`]: the front cache's move):
/// one test fewer.
#[inline(always)]
pub(crate) fn growth_class_of_small(
    old_size: usize,
    again: bool,
    new_layout: Layout,
) -> Option<SizeClass> {
    debug_assert!(old_size <= SMALL_MAX);
    let new_size = new_layout.size();
    // `low <= new_size <= old_size + old_size / 2` as one comparison.
    let low = old_size + old_size / 4;
    if new_size.wrapping_sub(low) > old_size / 2 - old_size / 4 {
        return None;
    }
    // `new_size` is then at most 48 KiB, one step's room at most 72 KiB:
    // the products stay below 2^32, in 32 bits (one division instruction
    // each, without the 64-bit operand's test). An `old_size` of 0 (with
    // a `new_size` of 0) has no ratio.
    let (new, old) = (new_size as u32, old_size as u32);
    let one_step = (new * new).checked_div(old)?;
    let mut room = one_step;
    if again {
        let two_steps = one_step * new / old;
        if two_steps as usize <= GROWER_ROOM_MAX {
            room = two_steps;
        }
    }
    SizeClass::for_layout(room as usize, new_layout.align())
}

/// A known grower gets room for two more steps only up to this many bytes
/// (`growth_class`): two steps' room costs about 15% more memory at rest
/// than one (100,000 strings grown by +50% to 100..4000 B and kept: 313
/// against 273 MiB), and the bound keeps that cost to small blocks, where
/// a move costs the same instructions but the slack few bytes.
pub(crate) const GROWER_ROOM_MAX: usize = 1024;

/// What [`Heap::resize_checked`] found.
enum Resize {
    /// Resized where it is.
    InPlace,
    /// Checked and good, but it must move: what its free after the copy
    /// needs ([`Heap::free_moved`]).
    Move(Moved),
    /// Something to check again on the full way (which reports it).
    Doubt,
}

/// A block [`Heap::resize_checked`] checked whole (every check of
/// `validate_small` and `check_canary`, under its class lock) and found
/// must move: its recorded size, its size slot and its free mark's value,
/// so that its free after the copy checks only what may have changed
/// since (the zone's liveness, through the release count; a racing free,
/// through the claim).
struct Moved {
    old_size: usize,
    size_slot: *mut u8,
    mark: usize,
}

/// A block that a realloc moves grows by this factor to that factor
/// squared (a vector doubling its capacity): it gets a block for this many
/// times its new size.
const DOUBLING: usize = 2;

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// A new block for a TINY or SMALL block of `old_size` bytes that a
    /// realloc moves to hold `layout.size()`. Where there is room
    /// ([`room_to_grow`](Self::room_to_grow)), a growing block gets a
    /// block of a bigger class, recorded at its new size, so that its next
    /// step stays in place (`stays_in_class`):
    /// - one that doubles (two to four times its size: a vector growing)
    ///   gets the class for twice its new size, so a vector growing through
    ///   the classes moves at every other step, not at every step;
    /// - one that grows by a quarter to a half gets room for one more step
    ///   of that ratio ([`growth_class`]: a string builder's +50% steps).
    ///
    /// Anything else gets the block its size asks for.
    fn allocate_for_growth(&self, old_size: usize, layout: Layout) -> Option<NonNull<u8>> {
        let size = layout.size();
        let doubling =
            (old_size.max(1) * DOUBLING..=old_size * DOUBLING * DOUBLING).contains(&size);
        let roomy = if doubling {
            size.checked_mul(DOUBLING)
                .and_then(|room| SizeClass::for_layout(room, layout.align()))
        } else {
            growth_class(old_size, false, layout)
        };
        if let Some(class) = roomy
            && self.room_to_grow()
        {
            return self.alloc_small(class, layout, false, true);
        }
        self.allocate(layout)
    }

    /// Whether a doubling block may get room for its next doubling: not in
    /// a span too small for the heap's stacks (`heap_cache::AREA_MIN_SPAN`),
    /// nor in one the heap has mostly mapped, where every page counts.
    fn room_to_grow(&self) -> bool {
        // One look at the span (a provider call), not two.
        self.span_bytes().is_none_or(|span| {
            span >= crate::heap_cache::AREA_MIN_SPAN
                && self.counters.mapped_bytes.load(Ordering::Relaxed)
                    <= span / crate::heap::TIGHT_SPAN_DIVISOR
        })
    }

    /// Resizes the block at `ptr` to `new_layout.size()` bytes with at least
    /// `new_layout.align()` alignment, keeping its contents up to the smaller
    /// of the old and new sizes. Returns the block's new address.
    ///
    /// On error the old block is untouched and still owned by the caller.
    ///
    /// # Safety
    ///
    /// If `ptr` is a live block of this heap and the call succeeds, only the
    /// returned pointer may be used afterwards.
    pub unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        // A zone's block first (as `deallocate` does): the lookup trimmed to
        // zones, one lock, every check made once (`resize_checked`). The
        // move is inlined here (a call with its eight arguments cost the
        // random actions 1-3 instructions per operation); the full way and
        // everything but zones are calls of their own.
        let seen = self.page_map.releases();
        if let Some((base, class)) = self.page_map.lookup_zone(ptr.as_ptr().addr()) {
            // The block through the heap's own pointer (`heap::own`).
            let ptr = own(base, ptr);
            let state = self.class(class);
            let zone = base.cast();
            // SAFETY: the map named this zone of `class` when `seen` was
            // read; its lock is held through `state`.
            return match unsafe { self.resize_checked(zone, class, ptr, seen, new_layout) } {
                Resize::InPlace => Ok(ptr),
                Resize::Move(moved) => {
                    drop(state);
                    self.realloc_checked_by_move(zone, class, ptr, seen, moved, new_layout)
                }
                Resize::Doubt => {
                    self.realloc_small_locked(state, zone, class, ptr, seen, new_layout)
                }
            };
        }
        self.reallocate_slow(ptr, new_layout)
    }

    /// [`reallocate`](Self::reallocate) of anything but a zone's block:
    /// LARGE runs, a small region's pool and bare runs, and pointers that
    /// are none of these.
    #[inline(never)]
    fn reallocate_slow(
        &self,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let (owner, seen, ptr) = self.find_block(ptr);
        let result = match (owner, seen) {
            (Some(Owner::Zone { base, class }), seen) => {
                let state = self.class(class);
                return self.realloc_small_locked(state, base.cast(), class, ptr, seen, new_layout);
            }
            (Some(Owner::Large { base }), _) => self.realloc_large(base, ptr, new_layout),
            (Some(Owner::Pool { base }), _) => self.pool_realloc(base, ptr, new_layout),
            (Some(Owner::Bare { base }), _) => self.bare_realloc(base, ptr, new_layout),
            (None, _) => Err(ReallocError::Invalid(HeapError::InvalidPointer)),
        };
        if let Err(ReallocError::Invalid(_)) = result {
            self.count_error(());
        }
        result
    }

    /// The common realloc of a zone's block, under its class lock: every
    /// check of the full way (`validate_small`, `check_canary`) made once,
    /// on values read once, as `free_to_heap_cache` does for a free:
    /// nothing unregistered since the lookup, the zone's guard, a carved
    /// block boundary (`exact_index`), the live bit, no free mark (a block
    /// on a stack or in a cache is freed already), a size slot that is not
    /// a span's, the slack canary. Then either the new size and canary are
    /// written ([`Resize::InPlace`]), or the block is known good and must
    /// move ([`Resize::Move`]). Any doubt changes nothing: the full way
    /// checks again under the same lock, decides and reports.
    ///
    /// # Safety
    ///
    /// The page map named `zone` (of `class`) for `ptr` when the release
    /// count was `seen`; the caller holds `class`'s lock.
    #[inline(always)]
    unsafe fn resize_checked(
        &self,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
        new_layout: Layout,
    ) -> Resize {
        let new_size = new_layout.size();
        // SAFETY (the whole block): the zone is live while nothing was
        // unregistered since the lookup (its class lock is held), tested
        // first; the bitmap, size slot and block reads are guarded by
        // `index < carved`, tested before them.
        unsafe {
            if self.page_map.releases() != seen || !zone::guard_ok(zone) {
                return Resize::Doubt;
            }
            // The header's precomputed check, as the stack's free reads it.
            let check = zone::boundary(zone);
            // Wrapping: below block 0 is no block boundary, which
            // `exact_index` maps far above any count.
            let index = check.exact_index(ptr.as_ptr().addr());
            if index >= zone::carved_hint(zone) as u64 {
                return Resize::Doubt;
            }
            let index = index as usize;
            let mark = free_mark::value(ptr);
            if !zone::is_live(zone, index) || free_mark::is_set_to(ptr, mark) {
                return Resize::Doubt;
            }
            // One branch on the slot's width, known from the class.
            let (slot, width) = if class.size_width() == 1 {
                (check.size_slot(zone, 1, index), 1)
            } else {
                (check.size_slot(zone, 2, index), 2)
            };
            let old_size = zone::load_own_size(slot, width);
            let block_size = check.block_size();
            // More than the block is a span's (the full way's).
            if old_size > block_size || !canary::intact_for(ptr, old_size, block_size, mark) {
                return Resize::Doubt;
            }
            // `resizes_in_place`, its common case (within the block, at
            // most the blocks' own alignment) on the zone's block size
            // already read, and no division (alignments are powers of two).
            let align = new_layout.align();
            let within = new_size <= block_size
                && (new_size * 2 > block_size || new_size >= old_size)
                && align <= DEFAULT_ALIGN;
            // (A size past the block has a larger class: no need to find it.)
            if !within
                && (ptr.as_ptr().addr() & (align - 1) != 0
                    || new_size > block_size
                    || !stays_in_class(class, SizeClass::for_layout(new_size, align)))
            {
                return Resize::Move(Moved {
                    old_size,
                    size_slot: slot,
                    mark,
                });
            }
            zone::store_size(slot, width, new_size);
            if new_size < block_size {
                // The canary moves to the new end (a shrink leaves the old
                // one among the slack, unchecked).
                canary::arm_past(ptr, new_size, mark);
            }
        }
        Resize::InPlace
    }

    /// Resizes the TINY or SMALL block at `ptr` to `new_size` bytes where
    /// it is, if its block holds them: its requested size and slack canary
    /// move to the new end. Never moves, allocates or frees: `Ok(false)`,
    /// nothing changed, when the block cannot (a LARGE block, a span, a
    /// small region's pool block, or a block smaller than `new_size`). For a caller that handles every move
    /// itself (the hosted hardened mode's `realloc`, which frees the old
    /// block through its quarantine).
    ///
    /// # Errors
    ///
    /// The pointer is not a live block of this heap, or its slack canary was
    /// overwritten: nothing changed.
    ///
    /// # Safety
    ///
    /// If `ptr` is a live block of this heap, the caller holds it (no other
    /// thread frees or resizes it meanwhile).
    pub unsafe fn resize_in_block(
        &self,
        ptr: NonNull<u8>,
        new_size: usize,
    ) -> Result<bool, HeapError> {
        let (owner, seen, ptr) = self.find_block(ptr);
        let (base, class, seen) = match (owner, seen) {
            (Some(Owner::Zone { base, class }), seen) => (base, class, seen),
            (Some(Owner::Large { .. }), _) => return Ok(false),
            // A small region's pool block is checked, then left to the
            // caller to move (the pool resizes in place on `reallocate`).
            (Some(Owner::Pool { base }), _) => return self.pool_usable(base, ptr).map(|_| false),
            (Some(Owner::Bare { base }), _) => return self.bare_usable(base, ptr).map(|_| false),
            (None, _) => return Err(HeapError::InvalidPointer),
        };
        let zone = base.cast();
        let _state = self.class(class);
        let index = self.validate_small(zone, class, ptr, seen)?;
        // SAFETY: validated block of a live zone, lock held.
        let (old_size, block_size) = unsafe { check_canary(zone, index, ptr) }?;
        // A span (`span.rs`) keeps its size: its blocks go back together.
        if old_size > block_size || new_size > block_size {
            return Ok(false);
        }
        // SAFETY: as above; the new size fits the block.
        unsafe {
            zone::set_requested(zone, index, new_size);
            canary::arm(ptr, new_size, block_size);
        }
        Ok(true)
    }

    /// The full way of a zone block's realloc, under the class lock the
    /// caller took (`state`): checks, decides and reports; a block that
    /// moves goes on to [`realloc_small_by_move`](Self::realloc_small_by_move)
    /// with the lock dropped.
    #[inline(never)]
    fn realloc_small_locked(
        &self,
        state: MutexGuard<'_, R, ClassState>,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let new_size = new_layout.size();
        let checked = (|| {
            let index = self.validate_small(zone, class, ptr, seen)?;
            // SAFETY: validated block of a live zone, lock held.
            let (old_size, block_size) = unsafe { check_canary(zone, index, ptr) }?;
            let aligned = ptr.as_ptr().addr().is_multiple_of(new_layout.align());
            // A span (`span.rs`) always moves: its blocks go back together.
            let one_block = old_size <= block_size;
            if aligned
                && one_block
                && resizes_in_place(class, old_size, new_size, new_layout.align())
            {
                // SAFETY: as above; the new size fits the block. The canary
                // moves to the new end (a shrink leaves the old one among
                // the slack, unchecked).
                unsafe {
                    zone::set_requested(zone, index, new_size);
                    canary::arm(ptr, new_size, block_size);
                }
                return Ok(None);
            }
            if !one_block {
                // SAFETY: as above; checked as a whole before it moves.
                unsafe { span::check_span(zone, index, ptr, old_size) }?;
            }
            Ok(Some(old_size))
        })();
        drop(state);
        match checked {
            Ok(None) => Ok(ptr),
            Ok(Some(old_size)) => {
                self.realloc_small_by_move(zone, class, ptr, seen, old_size, new_layout)
            }
            Err(e) => Err(ReallocError::Invalid(self.count_error(e))),
        }
    }

    /// Moves a zone's block that was checked under its class lock (now
    /// released) and holds `old_size` bytes: a new block
    /// ([`allocate_for_growth`](Self::allocate_for_growth)), the copy, and
    /// the old block freed through the zone found before (checked again
    /// under the lock, as any free: to the heap's stack if it has room),
    /// without a second lookup.
    ///
    /// Inlined into [`reallocate`](Self::reallocate), which the move
    /// mostly comes from; `realloc_small_locked` calls it too.
    #[inline(always)]
    fn realloc_small_by_move(
        &self,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
        old_size: usize,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let new = self
            .allocate_for_growth(old_size, new_layout)
            .ok_or(ReallocError::OutOfMemory)?;
        // SAFETY: both blocks are live, distinct, and hold the copied length.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_layout.size()))
        };
        // A failure means the caller freed it concurrently, which is their
        // bug: the new block is theirs.
        let mut state = self.class(class);
        // SAFETY: the map named this zone of `class` when `seen` was read.
        if !unsafe { self.free_to_heap_cache(&mut state, zone, class, ptr, seen) } {
            let _ = self
                .free_small_locked(state, zone, class, ptr, seen)
                .map_err(|e| self.count_error(e));
        }
        Ok(new)
    }

    /// [`realloc_small_by_move`](Self::realloc_small_by_move) of a block
    /// [`resize_checked`](Self::resize_checked) checked whole: the old
    /// block is freed with [`free_moved`](Self::free_moved).
    #[inline(always)]
    fn realloc_checked_by_move(
        &self,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
        moved: Moved,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let new = self
            .allocate_for_growth(moved.old_size, new_layout)
            .ok_or(ReallocError::OutOfMemory)?;
        // SAFETY: both blocks are live, distinct, and hold the copied length.
        unsafe {
            ptr::copy_nonoverlapping(
                ptr.as_ptr(),
                new.as_ptr(),
                moved.old_size.min(new_layout.size()),
            )
        };
        // SAFETY: checked whole by `resize_checked` when the release count
        // was `seen`.
        unsafe { self.free_moved(zone, class, ptr, seen, &moved) };
        Ok(new)
    }

    /// Frees the block a realloc moved away from, which `resize_checked`
    /// checked whole under its class lock in this same call: to the heap's
    /// stack if it has room and nothing was unregistered since (the zone
    /// is then the same live zone, and its header, live bit, size slot and
    /// canary what the check read: only the caller, who holds the block,
    /// changes them), claimed first (a racing free of the same block is
    /// refused, as any double free). Anything else goes the whole way,
    /// which checks everything again. A failure means the caller freed it
    /// concurrently, which is their bug: the new block is theirs.
    ///
    /// # Safety
    ///
    /// `resize_checked` returned `moved` for `ptr` in `zone` (of `class`),
    /// whose release count was `seen`.
    #[inline(always)]
    unsafe fn free_moved(
        &self,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
        moved: &Moved,
    ) {
        let mut state = self.class(class);
        if self.heap_cache.has_room(&state)
            && self.page_map.releases() == seen
            // SAFETY: the zone is live (nothing unregistered since the
            // check, and its lock is held), `ptr` one of its carved blocks.
            && unsafe { free_mark::claim(ptr, moved.mark) }
        {
            // SAFETY: as above; the stack has room, `size_slot` is the
            // block's (read by the check).
            unsafe {
                if class.size_width() == 1 {
                    self.push_claimed::<1>(&mut state, class, ptr, moved.size_slot, moved.mark);
                } else {
                    self.push_claimed::<2>(&mut state, class, ptr, moved.size_slot, moved.mark);
                }
            }
            return;
        }
        let _ = self
            .free_small_locked(state, zone, class, ptr, seen)
            .map_err(|e| self.count_error(e));
    }

    /// Allocate, copy `min(old_size, new size)` bytes, free the old block.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this heap with at least `old_size` bytes.
    unsafe fn realloc_by_copy(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let new = self.allocate(new_layout).ok_or(ReallocError::OutOfMemory)?;
        // SAFETY: both blocks are live, distinct, and hold the copied length.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_layout.size()));
            // The block was validated; a failure here means the caller freed
            // it concurrently, which is their bug: the new block is theirs.
            let _ = self.deallocate(ptr);
        }
        Ok(new)
    }
}
