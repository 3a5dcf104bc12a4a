//! How much the caches keep: every bound in one place.
//!
//! A front cache holds, per class, at most two magazines (the loaded one
//! and the previous one); a class's depot holds full magazines that caches
//! gave back. A magazine's capacity is bounded in bytes, so small classes
//! hold many blocks and large ones few; the depot of a class is bounded in
//! magazines and in bytes. Beyond the bounds, blocks go back to their zones.

use super::magazine::MAGAZINE_ENTRIES;
use crate::provider::MIN_PAGE_SIZE;
use crate::size_class::{CLASS_SIZES, NUM_CLASSES};
use crate::zone;

/// Bytes of blocks one magazine may hold.
pub const MAGAZINE_MAX_BYTES: usize = 32 * 1024;
/// Full magazines a class's depot may hold...
pub const DEPOT_MAX_MAGAZINES: usize = 64;
// A depot's count and low-water mark are kept in a byte each (`ClassState`).
const _: () = assert!(DEPOT_MAX_MAGAZINES <= u8::MAX as usize);
/// ... and bytes of blocks it may hold...
pub const DEPOT_MAX_BYTES: usize = 4 << 20;
/// ... or, for a class whose free blocks give pages back in their zones
/// (blocks of a page and more, `purge.rs`), this many: a block kept in a
/// depot keeps all its pages, one back in its zone keeps one. Such blocks
/// are at most 7 per magazine, so the depot saves a lock per block or few
/// (not per 31). realloc_strings' buffers growing through the 8-32 KiB
/// classes left 64 blocks (1.7 MiB) per class in the depots: peak RSS 31.0
/// MiB at 4 MiB, 28.8 MiB at 256 KiB. (256 KiB for every class gives 25.2
/// MiB, but a batch of 1000 blocks of 512 B or 4 KiB then goes through the
/// zones: 180 -> 268 and 318 -> 495 instructions per pair.)
pub const DEPOT_MAX_BYTES_PAGED: usize = 256 << 10;

/// A depot is trimmed (`depot_trim.rs`) only in classes whose magazines
/// hold at least this many bytes (blocks of 576 B and up): a trim costs
/// two zone operations per block (the drain, then the refill if the
/// depot was needed after all) and gives back a magazine's bytes. For
/// small classes that is the most zone traffic for the fewest bytes:
/// trimming every class cost `producer_consumer 2 300000` 1.8% more
/// instructions (callgrind: 107.6M -> 109.5M), 0.1% with this bound, and
/// the same footprint on realloc_strings (22.5 MiB).
pub(crate) const TRIM_MIN_MAGAZINE_BYTES: usize = MAGAZINE_MAX_BYTES / 2;

/// Empty magazines a front cache keeps for its next exchanges with the
/// depots (`FrontCache::spares`): 32 magazines, 16 KiB of heap metadata,
/// spare a loop that allocates and frees batches of 1000 small blocks the
/// magazine pool's lock on every exchange. (Magazines never go back to the
/// provider before the heap is dropped, so kept spares only make other
/// owners carve new ones sooner.)
pub(crate) const SPARES_MAX: usize = 32;

/// A front cache looks for classes it stopped using once every this many
/// of its slow-path events (refills and pushes that find a magazine full).
pub const DECAY_PERIOD: u16 = 16;
/// A class without activity (a slow-path event, or a change in the blocks
/// its magazines hold, seen at a scan) during the cache's last this many
/// events is idle, at first: its magazines' blocks go back to their zones,
/// and its depot is drained, so zones it emptied can be released or
/// decommitted.
pub const IDLE_EVENTS: u16 = 128;
/// A class shed and used again soon after doubles the events it must stay
/// without activity, up to `IDLE_EVENTS << PATIENCE_MAX_SHIFT`: a steady
/// load pays for a few mistaken sheds, then none.
pub(crate) const PATIENCE_MAX_SHIFT: u8 = 6;
/// The most events a class may stay without activity before it is idle.
pub const IDLE_EVENTS_MAX: u16 = IDLE_EVENTS << PATIENCE_MAX_SHIFT;
// The clock wraps at 2^16: twice the longest patience must stay below half
// of that for `wrapping_sub` to order events.
const _: () =
    assert!(IDLE_EVENTS > DECAY_PERIOD && 2 * (IDLE_EVENTS_MAX as u32) < u16::MAX as u32 / 2);
// `FrontCache::held` has a bit per class.
const _: () = assert!(NUM_CLASSES <= 2 * 64);

/// Blocks a magazine of class `index` holds.
const fn capacity_for(index: usize) -> usize {
    let by_bytes = MAGAZINE_MAX_BYTES / CLASS_SIZES[index] as usize;
    if by_bytes > MAGAZINE_ENTRIES {
        MAGAZINE_ENTRIES
    } else if by_bytes < 1 {
        1
    } else {
        by_bytes
    }
}

/// Per class: blocks per magazine, and full magazines its depot may keep.
pub(crate) struct Bounds {
    pub(crate) magazine: [u16; NUM_CLASSES],
    pub(crate) depot: [u16; NUM_CLASSES],
    /// What one front cache can hold at most, in bytes.
    pub(crate) cache_bytes: usize,
}

pub(crate) const BOUNDS: Bounds = {
    let mut b = Bounds {
        magazine: [0; NUM_CLASSES],
        depot: [0; NUM_CLASSES],
        cache_bytes: 0,
    };
    let mut i = 0;
    while i < NUM_CLASSES {
        let cap = capacity_for(i);
        let magazine_bytes = cap * CLASS_SIZES[i] as usize;
        let max_bytes = if zone::has_free_pages(CLASS_SIZES[i] as usize, MIN_PAGE_SIZE) {
            DEPOT_MAX_BYTES_PAGED
        } else {
            DEPOT_MAX_BYTES
        };
        let by_bytes = max_bytes / magazine_bytes;
        b.magazine[i] = cap as u16;
        b.depot[i] = if by_bytes < DEPOT_MAX_MAGAZINES {
            by_bytes as u16
        } else {
            DEPOT_MAX_MAGAZINES as u16
        };
        b.cache_bytes += 2 * magazine_bytes;
        i += 1;
    }
    b
};

/// Blocks a cache asks the zones for at its `n`-th refill of a class (when
/// the depot has no full magazine): 2, 4, 8, ... up to a magazine, so an
/// owner that uses a class once does not borrow a magazine's worth (a
/// thread that allocates a few blocks and exits would otherwise pin pages
/// of every class it touched).
#[inline]
pub(crate) fn refill_blocks(n: u8) -> usize {
    2usize << n.min(5)
}

/// The most one front cache can hold, in bytes of blocks (two magazines
/// per class): a static bound.
pub const CACHE_MAX_BYTES: usize = BOUNDS.cache_bytes;

const _: () = assert!(CACHE_MAX_BYTES <= 8 << 20);
