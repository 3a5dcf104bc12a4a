//! Giving back the pages of free blocks inside zones that still hold live
//! blocks.
//!
//! A zone goes back to the provider, or is reset and decommitted, only when
//! its last block is freed (`free.rs`, `Heap::after_free`). A zone of large
//! blocks that a wave of allocations filled and then mostly left (a string
//! builder's buffers growing through the classes of 8 to 32 KiB) keeps its
//! free blocks' pages resident for as long as one block is live, and the
//! next class fills its own zone meanwhile.
//!
//! # Policy
//!
//! When a free puts a block of at least a page (and a head, see
//! `zone/free_pages.rs`) on its zone's free list, the zone counts the free
//! blocks it got since it last gave pages back (`ZoneState::purged_free`,
//! lowered whenever a free finds fewer free blocks than that: allocations
//! took some). Once those are worth [`PURGE_MIN_BYTES`] and a
//! [`PURGE_CARVED_SHARE`] of the zone's carved bytes, each of them gives
//! back its whole pages past its head, one `PageProvider::decommit` each,
//! and the count starts again. The free list is a stack (frees push,
//! allocations pop), so the blocks freed since the last purge are its top:
//! each block is decommitted once per stay on the list, never twice.
//!
//! - A class in steady use never gets there: a malloc/free loop keeps the
//!   zone's free count where it was, and front caches keep its blocks out
//!   of the zones altogether (only their overflow comes back).
//! - Every purge follows at least [`PURGE_MIN_BYTES`] of blocks freed into
//!   the zone and not taken again, so its system calls (one per block, each
//!   block once per stay on the list) are amortised over that much memory
//!   the program gave up.
//! - Only blocks whose live bit is clear are touched: a block lent to a
//!   cache is invisible here (its holder may hand it out without a lock).
//!
//! Everything runs under the class lock that the free holds anyway.

use core::ptr::NonNull;

use lock_api::RawMutex;

use crate::heap::{ClassState, Heap};
use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::zone::{self, ZoneHeader};

/// Bytes of blocks freed into one zone (and not taken again) that make it
/// give back the pages of those blocks: at least this many...
pub(crate) const PURGE_MIN_BYTES: usize = 512 * 1024;
/// ... and at least this share (1/n) of the bytes the zone has carved, so
/// that the swings of a class in steady use rarely get there. Measured
/// (`strace -c -f`, peak RSS) on realloc_strings and on 8 threads freeing
/// each other's blocks (`hosted/tests/c/threads.c 8 100000`): 128 KiB
/// alone made 6,792 and 3,050 `madvise` calls; 512 KiB or 1/4, 5,221 and
/// 699, for the same peak RSS (28.8 MiB on realloc_strings; 1/2 lets it
/// grow to 30.1).
pub(crate) const PURGE_CARVED_SHARE: usize = 4;

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// A block of `block_size` bytes was just put on `zone`'s free list:
    /// gives back the pages of the zone's free blocks if enough were freed
    /// since it last did (see the module docs).
    ///
    /// # Safety
    ///
    /// `zone` is a live zone of the class locked through `_state`, holding
    /// at least one free block.
    #[inline]
    pub(crate) unsafe fn note_block_freed(
        &self,
        _state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        block_size: usize,
    ) {
        // Pages are at least `MIN_PAGE_SIZE`: a constant test first keeps
        // the small classes' zone frees from asking the provider.
        if !zone::has_free_pages(block_size, MIN_PAGE_SIZE) {
            return;
        }
        let page = self.page_size();
        if !zone::has_free_pages(block_size, page) {
            return;
        }
        // SAFETY: per the contract.
        let (free, z) = unsafe { (zone::free_blocks(zone), zone::state_mut(zone)) };
        // Allocations took blocks since the last look: count from here (the
        // blocks they left may be purged ones or not; assuming purged errs
        // on the side of fewer purges).
        let purged = (z.purged_free as usize).min(free - 1);
        z.purged_free = purged as u32;
        let recent = free - purged;
        // SAFETY: per the contract.
        let carved = unsafe { zone::carved_bytes(zone) };
        if recent * block_size >= PURGE_MIN_BYTES.max(carved / PURGE_CARVED_SHARE) {
            z.purged_free = free as u32;
            // SAFETY: per the contract.
            unsafe { self.purge_free_pages(zone, page, recent) };
        }
    }

    /// Decommits the pages past its head of each of the `recent` blocks
    /// last freed into `zone` (the top of its free list; those below were
    /// purged before, or were never counted: see `note_block_freed`).
    ///
    /// # Safety
    ///
    /// `zone` is a live zone whose class lock the caller holds.
    #[cold]
    #[inline(never)]
    unsafe fn purge_free_pages(&self, zone: NonNull<ZoneHeader>, page: usize, recent: usize) {
        // SAFETY: live zone, lock held; each range is whole pages of a free
        // block past its head, which nothing reads until the block is
        // handed out again (`zone/free_pages.rs`).
        unsafe {
            zone::for_each_recent_free_tail(zone, page, recent, |start, len| {
                self.provider.decommit(start, len)
            })
        };
    }
}
