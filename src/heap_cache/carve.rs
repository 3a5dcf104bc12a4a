//! Carving ahead into the heap's stack (`heap_cache.rs`): an allocation
//! that finds its class's stack empty and carves a fresh block (a zone
//! with no free block left, handing out its next uncarved one) lends the
//! zone's next uncarved blocks to the stack as well, under the class lock
//! it holds. A heap's first blocks of a class (a kernel filling its tables
//! at boot) then come from the stack, a pop each, instead of a trip to the
//! zone each.
//!
//! The blocks lent are exactly those a free would have stacked: live in
//! their zone's bitmap, marked free in their first two words, `CACHED` in
//! their size slots (`zone/sizes.rs`), so introspection counts them as
//! cached and a free of one is refused as a double free. Only blocks that
//! end in the page the carved block ends in are lent (as a front cache's
//! refill does, `cache/depot.rs`): marking them touches no page the
//! program did not touch already. At most [`CARVE_AHEAD`] at once, so that
//! the stack keeps room for frees.

use core::ptr::NonNull;

use lock_api::RawMutex;

use super::{DEPTH, NEVER_STACK, NO_STACK};
use crate::cache::Entry;
use crate::free_mark;
use crate::heap::{ClassState, Heap};
use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::size_class::SizeClass;
use crate::zone::{self, ZoneHeader};

/// Blocks an allocation that carves lends to its empty stack at most: half
/// a stack, the other half left for the frees to come.
pub(crate) const CARVE_AHEAD: usize = DEPTH / 2;

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// An allocation found `class`'s stack empty (or not open) and carved
    /// the block at `carved` from `zone`: lends the zone's next uncarved
    /// blocks that end in the page `carved` ends in, at most
    /// [`CARVE_AHEAD`], to the stack, the next one on top (so that they go
    /// out in address order). Opens the stack if it was not (making the
    /// area if no class has); a class without one is left alone.
    ///
    /// # Safety
    ///
    /// The caller holds `class`'s lock (`state`); `zone` is a live zone of
    /// `class` that just carved the block at `carved` (it has no free
    /// block).
    #[inline(never)]
    pub(crate) unsafe fn carve_ahead(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        zone: NonNull<ZoneHeader>,
        carved: NonNull<u8>,
    ) {
        if state.stack_len == NEVER_STACK
            || (state.stack_len == NO_STACK && !self.open_stack(state, class))
            || state.stack_len != 0
        {
            return;
        }
        let block_size = class.block_size();
        let end = carved.as_ptr().addr() + block_size;
        let page_end = (end - 1) / MIN_PAGE_SIZE * MIN_PAGE_SIZE + MIN_PAGE_SIZE;
        let n = ((page_end - end) / block_size).min(CARVE_AHEAD);
        if class.size_width() == 1 {
            // SAFETY: per the contract; the stack is open and empty.
            unsafe { self.lend_carved::<1>(state, class, zone, n) };
        } else {
            // SAFETY: as above.
            unsafe { self.lend_carved::<2>(state, class, zone, n) };
        }
    }

    /// Lends up to `n` (at most `DEPTH`) blocks `zone` carves to `class`'s
    /// empty stack, whose size slots are `WIDTH` bytes.
    ///
    /// # Safety
    ///
    /// As for [`carve_ahead`](Self::carve_ahead); the stack is open and
    /// empty, `n <= DEPTH`.
    #[inline(always)]
    unsafe fn lend_carved<const WIDTH: usize>(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        zone: NonNull<ZoneHeader>,
        n: usize,
    ) {
        debug_assert!(state.stack_len == 0 && n <= DEPTH);
        // SAFETY: a live zone, its lock held, with no free block (it just
        // carved).
        let (n, first, mut block) = unsafe { zone::carve_run(zone, n) };
        if n == 0 {
            return;
        }
        let block_size = class.block_size();
        let key = free_mark::key();
        // SAFETY: a live zone; `first` is one of its carved blocks.
        let mut size_slot = unsafe { zone::size_slot(zone, first) };
        // The first carved on top: they go out in address order.
        // SAFETY: the stack is open, `n - 1 < DEPTH`.
        let mut entry = unsafe { self.heap_cache.entry(class.index(), n - 1) };
        for _ in 0..n {
            // SAFETY: each block is the stack's from now on: free, so
            // marked (in its first two words, as a stacked block is, and
            // in its size slot, for introspection); its size slot and its
            // entry advance with it, inside the zone and the stack.
            unsafe {
                let block_ptr = NonNull::new_unchecked(block);
                let mark = key ^ block.addr();
                zone::store_cached(size_slot, WIDTH);
                free_mark::set_to(block_ptr, mark);
                block.cast::<usize>().write(mark);
                entry.write(Entry {
                    block: block_ptr,
                    size_slot,
                });
                block = block.wrapping_add(block_size);
                size_slot = size_slot.wrapping_add(WIDTH);
                entry = entry.wrapping_sub(1);
            }
        }
        state.stack_len = n as u8;
        // SAFETY: a live zone, its lock held, listed (it had room for the
        // block the caller carved without filling up).
        unsafe {
            if zone::is_full(zone) {
                state.unlink(zone);
            }
        }
    }
}
