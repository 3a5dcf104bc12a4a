//! Reallocation of LARGE blocks: their runs resized by the provider, in
//! place or moved, with the page map kept right through a move.

use core::alloc::Layout;
use core::ptr::NonNull;

use lock_api::RawMutex;

use crate::error::ReallocError;
use crate::heap::Heap;
use crate::large::{LARGE_KEEP_MIN, LargeBlock, LargeState};
use crate::page_map::Owner;
use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::size_class::SizeClass;

/// Whether a LARGE block resized to `new_size` bytes at `align` keeps its
/// run (resized by the provider) rather than moving to a class's block: a
/// size no class holds, or one of at least [`LARGE_KEEP_MIN`] bytes. The
/// run is cut to the pages the new size needs, so it wastes less than a
/// page, and a shrink that stays pays no copy (the random actions at 30000
/// copied up to 32 KiB out of LARGE runs into classes: 1163 -> 1022
/// instructions per operation with the cache's changes).
fn stays_large(new_size: usize, align: usize) -> bool {
    SizeClass::for_layout(new_size, align).is_none() || new_size >= LARGE_KEEP_MIN
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// A LARGE block's realloc: the run resized by the provider (in place,
    /// or moved), or a copy into a block of a class.
    pub(super) fn realloc_large(
        &self,
        start: NonNull<u8>,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let new_size = new_layout.size();
        let mut state = self.large.lock();
        let mut block = self
            .large_block(start, ptr)
            .map_err(ReallocError::Invalid)?;
        let aligned = ptr.as_ptr().addr().is_multiple_of(new_layout.align());
        if !aligned || !stays_large(new_size, new_layout.align()) {
            // Misaligned for the new layout, or small enough for a class
            // and below `LARGE_KEEP_MIN`.
            drop(state);
            // SAFETY: `ptr` is live and the caller's.
            return unsafe { self.realloc_by_copy(ptr, block.requested, new_layout) };
        }
        let page = self.page_size();
        let needed = block
            .user_offset
            .checked_add(new_size.max(1))
            .and_then(|n| n.checked_next_multiple_of(page))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or(ReallocError::OutOfMemory)?;
        // A bounded provider moves a run by copying all of it: while its
        // span has room, a fresh run and a copy of the requested bytes come
        // first and the move last; once it is tight, the move first, since
        // its joining of the free pages around the run matters more.
        let cheap_move = self.provider.moves_without_copying();
        let move_first = cheap_move || self.span_is_tight();
        if needed != block.run_len {
            let resized = self
                .resize_run(&mut state, &block, needed, move_first)
                .or_else(|| self.grow_over_cached(&mut state, &block, needed));
            match resized {
                Some(new_start) => {
                    block.start = new_start;
                    block.run_len = needed;
                }
                // Shrinking that the provider cannot do keeps the bigger run.
                None if needed < block.run_len => {}
                None => {
                    drop(state);
                    // SAFETY: `ptr` is live and the caller's.
                    let copied = unsafe { self.realloc_by_copy(ptr, block.requested, new_layout) };
                    // A bounded provider tries the move (again) last: the
                    // failed allocation trimmed the heap, which may have
                    // freed the pages around the run.
                    if copied.is_ok() || cheap_move {
                        return copied;
                    }
                    return self.realloc_large_by_move(start, ptr, new_size, needed);
                }
            }
        }
        block.requested = new_size;
        self.write_large_header(&block);
        Ok(block.user())
    }

    /// Grows a live LARGE run in place over the cached run right after it
    /// (a run freed there, kept for reuse, is what most often stands in
    /// the way of growth in a packed arena): that run leaves the cache, its
    /// pages go back to the provider, and the live run grows into them.
    /// Under the LARGE lock (`state`), as `resize_run`: the provider calls
    /// are those of a live run's resize (see the protocol in `large.rs`).
    /// `None` if there is no such cached run of the pages the growth needs,
    /// or if the provider refused the growth (another run took the pages
    /// in between: the caller copies).
    fn grow_over_cached(
        &self,
        state: &mut LargeState,
        block: &LargeBlock,
        needed: usize,
    ) -> Option<NonNull<u8>> {
        let more = needed.checked_sub(block.run_len).filter(|&more| more > 0)?;
        let end = block.start.as_ptr().addr() + block.run_len;
        let (next, len) = state.cache.take_at(end, more)?;
        // SAFETY: just unlinked from the cache: unregistered and unused.
        unsafe { self.unmap_cached(next, len) };
        self.resize_run(state, block, needed, false)
    }

    /// The last resort of a bounded provider's LARGE growth: no fresh run
    /// fits, but the run may fit where it is together with the free pages
    /// around it (the provider moves it there).
    #[cold]
    fn realloc_large_by_move(
        &self,
        start: NonNull<u8>,
        ptr: NonNull<u8>,
        new_size: usize,
        needed: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        let mut state = self.large.lock();
        // The caller still owns the block (the copy failed and left it), so
        // it cannot have moved; checked again all the same.
        let mut block = self
            .large_block(start, ptr)
            .map_err(ReallocError::Invalid)?;
        let new_start = self
            .resize_run(&mut state, &block, needed, true)
            .ok_or(ReallocError::OutOfMemory)?;
        block.start = new_start;
        block.run_len = needed;
        block.requested = new_size;
        self.write_large_header(&block);
        Ok(block.user())
    }

    /// Asks the provider to resize a LARGE run to `needed` bytes: in place
    /// first, then (if `may_move`, for runs that need no more than page
    /// alignment) by moving it. The caller holds the LARGE lock (`state`).
    ///
    /// The page map stays right in all three outcomes of a move (see the
    /// protocol in `page_map.rs`): the run is unregistered *before* the
    /// provider may move it, because the provider can hand the old pages to
    /// another run the moment they are free; afterwards it is registered
    /// where it now is: at a new address, at the same one (the neighbour
    /// went away in between), or where it was (the move was refused). The
    /// node reserve is filled first, so that registration cannot fail.
    fn resize_run(
        &self,
        state: &mut LargeState,
        block: &LargeBlock,
        needed: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        // SAFETY: the run is live, ours, and locked. In place, nothing moves
        // and the registered granule (in the first page) stays.
        let resized = unsafe {
            self.provider
                .resize(block.start, block.run_len, needed, false)
        };
        if let Some(start) = resized {
            self.count_resize(block.run_len, needed);
            return Some(start);
        }
        // Only growth moves, and only runs that need no more than page
        // alignment (a moved run is only page aligned).
        if !may_move || needed < block.run_len || block.user_offset >= MIN_PAGE_SIZE {
            return None;
        }
        if !state
            .reserve
            .fill(&self.provider, &self.counters.metadata_bytes)
        {
            return None;
        }
        let old_owner = Owner::Large { base: block.start };
        self.page_map
            .unregister(block.user().as_ptr().addr(), 1, old_owner);
        // SAFETY: as above; the run is unregistered, and only this thread
        // (holding the LARGE lock and the caller's block) uses it.
        let moved = unsafe {
            self.provider
                .resize(block.start, block.run_len, needed, true)
        };
        // A refused resize leaves the run as it was: register it again.
        let start = moved.unwrap_or(block.start);
        let registered = self.page_map.register(
            &self.provider,
            start.as_ptr().addr() + block.user_offset,
            1,
            Owner::Large { base: start },
            &self.counters.metadata_bytes,
            Some(&mut state.reserve),
        );
        // One granule needs at most the two nodes the reserve holds.
        debug_assert!(registered, "a moved LARGE run could not be registered");
        if moved.is_some() {
            self.count_resize(block.run_len, needed);
        }
        moved
    }
}
