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
//! # Policy: blocks that stayed free for a whole interval
//!
//! Only classes of blocks of at least a page (and a head, see
//! `zone/free_pages.rs`) have pages to give. A zone's free list is a stack
//! (frees push, allocations pop), so a block deep in it has not been
//! taken since it was pushed. Two marks, counted from the bottom of the
//! stack, are kept in the zone (`ZoneState::purged_free`, `purge_low`) and
//! lowered by each free to the depth the list had just before it (which is
//! its lowest since the previous free: only allocations came in between):
//!
//! - below `purged_free`, every block has given its pages back;
//! - `purge_low` is the lowest the list has been since the last check.
//!
//! A check comes when a free finds the list [`PURGE_MIN_BYTES`] (and a
//! [`PURGE_CARVED_SHARE`] of the zone's carved bytes, doubled per
//! `ZoneState::purge_patience`) above `purge_low`:
//! the blocks between `purged_free` and `purge_low` stayed free through
//! that whole interval, and decommit their pages past the head, one
//! `PageProvider::decommit` each; then both marks move up. So:
//!
//! - a class in steady use, even in batches larger than the interval
//!   (a thousand blocks out, a thousand back), empties its list each round:
//!   `purge_low` falls to the bottom and nothing is ever purged;
//! - a zone whose list swings wider than its interval without emptying
//!   (threads taking and giving batches out of step) has purged blocks
//!   taken again: each time, its interval doubles ([`PURGE_PATIENCE_MAX`]
//!   times at most), so a few mistaken purges, then none;
//! - each block is decommitted at most once per stay on the list;
//! - every purge is paid for by at least [`PURGE_MIN_BYTES`] freed into the
//!   zone above the purged blocks.
//!
//! # Blocks of several pages: at once, until the zone shows it is in use
//!
//! A block of [`PURGE_AT_ONCE_PAGES`] pages and more (16 KiB and up, with
//! 4 KiB pages: the classes of 18 to 32 KiB) reaches its zone's free list
//! only past the front caches (two magazines of a few blocks and a depot
//! of `DEPOT_MAX_BYTES_PAGED`), so a class in steady use rarely frees into
//! its zone at all; and one `madvise` gives back at least four pages. So
//! such a block gives its pages back at once, while the zone's patience is
//! 0: none of its purged blocks has been taken again. The first purged
//! block taken again raises the patience (as below) and the zone follows
//! the interval rule from then on (the patience outlives a reset of the
//! zone: it is the zone's record). Cost in a steady loop: the first few
//! frees into the zone, once (`tests/purge_at_once.rs`). What it saves:
//! a string builder's buffers that grow through the 18-32 KiB classes
//! leave each zone behind with up to two intervals (and a patience's
//! doublings) of blocks unpurged, 3.3 MiB of realloc_strings' peak
//! (BENCHMARKS.md, "realloc_strings' footprint").
//!
//! A zone whose frees stop has no next check: what is left above
//! `purged_free` is given back when its class goes idle
//! ([`Heap::purge_idle_zones`], from the front caches' decay: an idle
//! class shed, an untouched depot drained) or at `trim`.
//!
//! Only blocks on the free list are touched: a block lent to a cache has
//! its live bit set and may be handed out by its holder without a lock.
//! Everything runs under the class lock.

use core::ptr::NonNull;

use lock_api::RawMutex;

use crate::heap::{ClassState, Heap};
use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::zone::{self, ZoneHeader};

/// A free block that covers at least this many pages past its head gives
/// them back as soon as it reaches its zone's free list, while none of the
/// zone's purged blocks has been taken again (see the module docs).
pub(crate) const PURGE_AT_ONCE_PAGES: usize = 4;
/// Bytes of blocks freed into a zone above its list's lowest point that
/// make a check (see the module docs): at least this many...
pub(crate) const PURGE_MIN_BYTES: usize = 256 * 1024;
/// ... and at least this share (1/n) of the bytes the zone has carved...
pub(crate) const PURGE_CARVED_SHARE: usize = 8;
/// The interval is doubled each time purged blocks of the zone are taken
/// again, up to this many times (then no zone reaches it: 128 x 256 KiB).
pub(crate) const PURGE_PATIENCE_MAX: u8 = 7;
/// A zone of a class the front caches' decay found idle gives back the
/// pages of its free blocks not yet purged if they are at least this many
/// bytes (a few blocks are not worth a call each: the decay's steady-mix
/// test, `tests/decay.rs`, counted 21 decommits instead of at most 20).
pub(crate) const PURGE_IDLE_MIN_BYTES: usize = 64 * 1024;
// The marks are depths of a zone's free list, kept in 16 bits.
const _: () = assert!(crate::size_class::MAX_ZONE_BLOCKS <= u16::MAX as usize);
// Measured (`strace -c -f`, peak RSS): realloc_strings; 8 threads freeing
// each other's blocks (`hosted/tests/c/threads.c 8 100000`); 2 threads
// each taking 64 blocks of 20 KB and giving them back, 100,000 times
// (a class in steady use whose batches overflow the caches into the zones).
//
// | interval | realloc_strings | threads | 2 x 64 x 20 KB |
// |---|---|---|---|
// | 128 KiB or 1/8 of carved | 28.9 MiB, 5,999 madvise | 946 | 171 |
// | 256 KiB or 1/8 (this) | 29.5 MiB, 5,302 | 785 | 78 |
// | 512 KiB or 1/4 | 30.6 MiB, 3,555 | 1,039 | 49 |
// | 512 KiB or 1/4, no patience | 30.6 MiB, 3,555 | 1,091 | 2,888 |
// | purge all freed past 512 KiB or 1/4 | 28.8 MiB, 5,221 | 699 | 5,209,265 |
//
// (main: 33.0 MiB and 285; 12; 2.)

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// A block of `block_size` bytes was just pushed on `zone`'s free list:
    /// moves the marks, and at a check gives back the pages of the blocks
    /// that stayed free through the last interval (see the module docs).
    ///
    /// # Safety
    ///
    /// `zone` is a live zone of the class locked through `state`, holding
    /// at least one free block.
    #[inline(always)]
    pub(crate) unsafe fn note_block_freed(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        block_size: usize,
    ) {
        // Pages are at least `MIN_PAGE_SIZE`: a constant test keeps the
        // small classes' zone frees from going further.
        if zone::has_free_pages(block_size, MIN_PAGE_SIZE) {
            // SAFETY: per the contract.
            unsafe { self.note_paged_block_freed(state, zone, block_size) };
        }
    }

    /// [`note_block_freed`](Self::note_block_freed) for a class of a page
    /// and more: out of line, so that the other classes' frees stay small.
    ///
    /// # Safety
    ///
    /// As for `note_block_freed`.
    #[inline(never)]
    unsafe fn note_paged_block_freed(
        &self,
        _state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        block_size: usize,
    ) {
        let page = self.page_size();
        if !zone::has_free_pages(block_size, page) {
            return;
        }
        // SAFETY: per the contract.
        let (free, carved, z) = unsafe {
            (
                zone::free_blocks(zone),
                zone::carved_bytes(zone),
                zone::state_mut(zone),
            )
        };
        // The depth before this push: the list's lowest since the last free.
        // (Zones hold at most `MAX_ZONE_BLOCKS` < 2^16 blocks.)
        let before = (free - 1) as u16;
        if before < z.purged_free {
            // Purged blocks were taken again: this zone's swings are wider
            // than its interval.
            z.purged_free = before;
            z.purge_patience = (z.purge_patience + 1).min(PURGE_PATIENCE_MAX);
        }
        z.purge_low = z.purge_low.min(before);
        if z.purge_patience == 0 && zone::has_free_pages(block_size, PURGE_AT_ONCE_PAGES * page) {
            // At once: blocks of several pages in a zone none of whose
            // purged blocks was taken again (see the module docs). Every
            // block below this one gave its pages already (`before >=
            // purged_free`), but for those left when the zone was young.
            let purged = usize::from(z.purged_free);
            (z.purged_free, z.purge_low) = (free as u16, free as u16);
            // SAFETY: per the contract; the top `free - purged` blocks.
            unsafe { self.purge_free_pages(zone, page, 0, free - purged) };
            return;
        }
        let (low, purged) = (usize::from(z.purge_low), usize::from(z.purged_free));
        let interval = PURGE_MIN_BYTES.max(carved / PURGE_CARVED_SHARE) << z.purge_patience;
        if (free - low) * block_size < interval {
            return;
        }
        z.purge_low = free as u16;
        if low > purged {
            z.purged_free = low as u16;
            // SAFETY: per the contract; the blocks from `purged` to `low`
            // (from the bottom) are those below the top `free - low`.
            unsafe { self.purge_free_pages(zone, page, free - low, low - purged) };
        }
    }

    /// Gives back the pages of every free block of the class's zones that
    /// has not given them yet, in each zone where they are at least
    /// `min_bytes`: the class is idle (the front caches' decay found it so,
    /// with [`PURGE_IDLE_MIN_BYTES`]) or trimmed (0), so no interval will
    /// come to judge them. The caller holds the class lock (`state`).
    pub(crate) fn purge_idle_zones(&self, state: &ClassState, min_bytes: usize) {
        let page = self.page_size();
        let mut next = state.with_room;
        while let Some(zone) = NonNull::new(next) {
            // SAFETY: listed zones are live; the class lock is held.
            unsafe {
                next = zone::state(zone).next;
                if !zone::has_free_pages(zone::state(zone).class.block_size(), page) {
                    // A class of small blocks: nothing to give in any zone.
                    return;
                }
                if zone::state(zone).live == 0 {
                    // Empty: released or reset as a whole by the caller.
                    continue;
                }
                let free = zone::free_blocks(zone);
                let z = zone::state_mut(zone);
                let purged = usize::from(z.purged_free).min(free);
                let block_size = z.class.block_size();
                if free > purged && (free - purged) * block_size >= min_bytes {
                    (z.purged_free, z.purge_low) = (free as u16, free as u16);
                    self.purge_free_pages(zone, page, 0, free - purged);
                }
            }
        }
    }

    /// Decommits the pages past its head of each of `count` blocks of
    /// `zone`'s free list, after the top `skip` ones.
    ///
    /// # Safety
    ///
    /// `zone` is a live zone whose class lock the caller holds.
    #[cold]
    #[inline(never)]
    unsafe fn purge_free_pages(
        &self,
        zone: NonNull<ZoneHeader>,
        page: usize,
        skip: usize,
        count: usize,
    ) {
        // SAFETY: live zone, lock held; each range is whole pages of a free
        // block past its head, which nothing reads until the block is
        // handed out again (`zone/free_pages.rs`).
        unsafe {
            zone::for_each_free_tail(zone, page, skip, count, |start, len| {
                self.provider.decommit(start, len)
            })
        };
    }
}
