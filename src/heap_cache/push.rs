//! The free's way into the heap's stack (`heap_cache.rs`): every check of
//! the full way, each value read once, the claim, and the push if the
//! stack has room; a block checked and claimed past a full stack is left
//! to the caller (`free.rs`), which gives it back to its zone.

use core::ptr::NonNull;

use lock_api::RawMutex;

use crate::cache::Entry;
use crate::canary;
use crate::free_mark;
use crate::heap::{ClassState, Heap};
use crate::provider::PageProvider;
use crate::size_class::SizeClass;
use crate::zone::{self, ZoneHeader};

/// What [`Heap::free_checked_fast`] did with a block.
pub(crate) enum FastFree {
    /// Pushed on its class's stack: freed.
    Stacked,
    /// Checked and claimed (its mark set), block `.0` of its zone: the
    /// stack is full or not open, the caller gives it back to its zone.
    Claimed(usize),
    /// A check failed or the block is a span's: nothing changed, the
    /// caller's full path decides and reports.
    Doubt,
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Keeps the block at `ptr` in `class`'s stack if the stack has room
    /// and the block is a handed-out block (not a span) of `zone` with its
    /// canary intact; returns whether it did. Every check of
    /// `validate_small` and `check_canary` is made, each value read once,
    /// and the free mark's claim refuses a double free; on any doubt it
    /// returns `false` having changed nothing, and the caller's full path
    /// decides and reports.
    ///
    /// # Safety
    ///
    /// The page map named `zone` (of `class`) for `ptr` when the release
    /// count was `seen`; the caller holds `class`'s lock (`state`).
    #[inline(always)]
    pub(crate) unsafe fn free_to_heap_cache(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
    ) -> bool {
        if !self.heap_cache.has_room(state) {
            return false;
        }
        // SAFETY: per the contract; the stack has room, so a checked block
        // is pushed, never left claimed.
        let kept = unsafe { self.free_checked_fast(state, zone, class, ptr, seen) };
        matches!(kept, FastFree::Stacked)
    }

    /// The free's checks under the class lock, each value read once, and
    /// the claim (`deallocate`'s common path): the block is then pushed on
    /// the stack if it has room ([`FastFree::Stacked`]), or left claimed
    /// for the caller to give back to its zone ([`FastFree::Claimed`]: the
    /// stack is full or not open). Every check of `validate_small` and
    /// `check_canary` is made; on any doubt (a span, any error) nothing is
    /// changed ([`FastFree::Doubt`]) and the caller's full path decides
    /// and reports.
    ///
    /// # Safety
    ///
    /// The page map named `zone` (of `class`) for `ptr` when the release
    /// count was `seen`; the caller holds `class`'s lock (`state`).
    #[inline(always)]
    pub(crate) unsafe fn free_checked_fast(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
    ) -> FastFree {
        // Nothing unregistered since the lookup: the zone is alive (its
        // class lock is held, so it stays so); otherwise the full path
        // looks again.
        // SAFETY (all the block below): a live zone, its lock held; the
        // bitmap, size slot and block reads are guarded by `index <
        // carved`, which is tested first.
        unsafe {
            if self.page_map.releases() != seen || !zone::guard_ok(zone) {
                return FastFree::Doubt;
            }
            // The header's precomputed check (one cache line with the
            // guard): no load of the layout's address, no offset to add.
            let check = zone::boundary(zone);
            // Wrapping: a pointer below block 0 gives an offset that is no
            // block boundary, which `exact_index` maps far above any count.
            // One multiply and a rotate decide the boundary and the index
            // at once (no multiply back to check a quotient).
            let index = check.exact_index(ptr.as_ptr().addr());
            if index >= zone::carved_hint(zone) as u64 {
                return FastFree::Doubt;
            }
            let index = index as usize;
            if !zone::is_live(zone, index) {
                return FastFree::Doubt;
            }
            // One branch on the slot's width, known from the class; each
            // way goes on to its end, so the slot's store after the claim
            // is one instruction, with no second test of the width.
            if class.size_width() == 1 {
                self.claim_checked::<1>(state, zone, check, class, ptr, index)
            } else {
                self.claim_checked::<2>(state, zone, check, class, ptr, index)
            }
        }
    }

    /// The end of [`free_checked_fast`](Self::free_checked_fast) for a
    /// block whose size slot is `WIDTH` bytes: the size slot and the canary
    /// checked, the claim, the push if the stack has room.
    ///
    /// # Safety
    ///
    /// As for `free_checked_fast`, and `index` is a carved block of `zone`
    /// (its header's precomputed `check`, class `class` of slot width
    /// `WIDTH`), live.
    #[inline(always)]
    unsafe fn claim_checked<const WIDTH: usize>(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        check: &zone::Boundary,
        class: SizeClass,
        ptr: NonNull<u8>,
        index: usize,
    ) -> FastFree {
        // SAFETY (all the block below): per the contract.
        unsafe {
            let mark = free_mark::value(ptr);
            let size_slot = check.size_slot(zone, WIDTH, index);
            let requested = zone::load_own_size(size_slot, WIDTH);
            // A block armed for more than its size is a span's (the full
            // path's); one armed for less has a canary. One compare with
            // the block size, two branches.
            if check.above_block(requested)
                || check.has_slack(requested) && !canary::intact_past(ptr, requested, mark)
            {
                return FastFree::Doubt;
            }
            // The class lock does not keep a front cache's lock-free free of
            // the same block out: the claim decides (`free_mark.rs`). The
            // loser changed nothing (it swapped the mark for the mark); the
            // full way reports the double free.
            if !free_mark::claim(ptr, mark) {
                return FastFree::Doubt;
            }
            // Tested after the checks, not before: a full stack's free is
            // checked here too, and its block goes to the zone without a
            // second round of checks.
            if !self.heap_cache.has_room(state) {
                return FastFree::Claimed(index);
            }
            self.push_claimed::<WIDTH>(state, class, ptr, size_slot, mark);
        }
        FastFree::Stacked
    }

    /// Pushes a block this free has checked and claimed (its mark set by
    /// `free_mark::claim`) onto `class`'s stack.
    ///
    /// # Safety
    ///
    /// The caller holds `class`'s lock (`state`), whose stack has room;
    /// `ptr` is a handed-out block of a live zone of `class`, checked as
    /// `free_checked_fast` does, `size_slot` its size slot, and this
    /// free's claim set its mark `mark`.
    #[inline(always)]
    pub(crate) unsafe fn push_claimed<const WIDTH: usize>(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        ptr: NonNull<u8>,
        size_slot: *mut u8,
        mark: usize,
    ) {
        debug_assert!(self.heap_cache.has_room(state));
        // Read last (the caller saw it below `DEPTH`, and the lock is
        // held): the checks before keep one value fewer in registers.
        let len = state.stack_len;
        // SAFETY: per the contract: the block is ours, `len < DEPTH`.
        unsafe {
            // Cached, for introspection (`zone/sizes.rs`): after the claim,
            // which made the block this free's.
            zone::store_cached(size_slot, WIDTH);
            // The mark in the first word too: a block written after its free
            // (a use-after-free) is reported when it is handed out again.
            ptr.as_ptr().cast::<usize>().write(mark);
            // `len < DEPTH`: the stack is open and has room.
            self.heap_cache
                .entry(class.index(), len as usize)
                .write(Entry {
                    block: ptr,
                    size_slot,
                });
        }
        state.stack_len = len + 1;
    }

    /// [`push_claimed`](Self::push_claimed) for a class's first free,
    /// which opened the stack: the size slot and the mark found again.
    ///
    /// # Safety
    ///
    /// The caller holds `class`'s lock (`state`), whose stack has room;
    /// `ptr` is block `index` of `zone`, a live zone of `class`, checked
    /// and claimed as `free_checked_fast` does.
    #[cold]
    pub(crate) unsafe fn push_claimed_slow(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        index: usize,
        ptr: NonNull<u8>,
    ) {
        let mark = free_mark::value(ptr);
        // SAFETY: per the contract.
        unsafe {
            let size_slot = zone::size_slot(zone, index);
            if class.size_width() == 1 {
                self.push_claimed::<1>(state, class, ptr, size_slot, mark);
            } else {
                self.push_claimed::<2>(state, class, ptr, size_slot, mark);
            }
        }
    }
}
