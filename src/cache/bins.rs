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
/// Blocks a magazine holds at least (if `MAGAZINE_MAX_BYTES` allows)...
pub const MAGAZINE_BLOCKS: usize = 31;
/// ... and more, up to `MAGAZINE_ENTRIES` (63), while they take at most
/// this many bytes: the small classes, where most of the traffic is, reach
/// their slow paths half as often (`bench/pairs_callgrind.sh` "mix" and
/// 512 B: 4 instructions less a pair), while the bytes a cache holds grow
/// little. With 63 blocks up to 32 KiB (every class to 512 B), each thread
/// of `producer_consumer` (sizes 16..512 B) held twice the bytes: peak RSS
/// 4.8 -> 6.6 MiB with 4 pairs.
pub const MAGAZINE_BIG_MAX_BYTES: usize = 8 * 1024;
/// Full magazines a class's depot may hold...
pub const DEPOT_MAX_MAGAZINES: usize = 64;
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

/// Empty magazines a front cache keeps for its next exchanges with the
/// depots (`FrontCache::spares`): 16 magazines of 63 blocks, 16 KiB of heap
/// metadata, spare a loop that allocates and frees batches of 1000 small
/// blocks the magazine pool's lock on every exchange (32 of 31 blocks
/// before: the same metadata; `bench/pairs_callgrind.sh` costs the same
/// with 16 or 32 of 63). (Magazines never go back to the
/// provider before the heap is dropped, so kept spares only make other
/// owners carve new ones sooner.)
pub(crate) const SPARES_MAX: usize = 16;

/// Blocks that make one tick of a front cache's idle-class clock. The clock
/// counts the blocks that went through a class's loaded magazine (popped or
/// pushed, net) between two slow-path events of the class, rounded up to
/// whole ticks and at least one per event, not the events: so the decay's
/// speed does not follow the magazines' size. With 63-block magazines a loop
/// reaches the slow paths half as often as with 31-block ones, for the same
/// traffic and the same clock; an event after a few blocks (a slow-start
/// refill, a class whose magazines hold one block) is one tick, as before.
pub const BLOCKS_PER_TICK: usize = 32;
/// A front cache looks for classes it stopped using once every this many
/// ticks of its clock (`BLOCKS_PER_TICK`; a class whose magazines hold
/// fewer blocks ticks once per slow-path event: a refill, or a push that
/// finds a magazine full).
pub const DECAY_PERIOD: u16 = 16;
// A tick may advance the clock by more than one: the scan runs when it
// passes a multiple of the period, found with a mask.
const _: () = assert!(DECAY_PERIOD.is_power_of_two());
/// A class without activity (a slow-path event, or a change in the blocks
/// its magazines hold, seen at a scan) during the cache's last this many
/// ticks is idle, at first: its magazines' blocks go back to their zones,
/// and its depot is drained, so zones it emptied can be released or
/// decommitted.
pub const IDLE_EVENTS: u16 = 128;
/// A class shed and used again soon after doubles the ticks it must stay
/// without activity, up to `IDLE_EVENTS << PATIENCE_MAX_SHIFT`: a steady
/// load pays for a few mistaken sheds, then none.
pub(crate) const PATIENCE_MAX_SHIFT: u8 = 6;
/// The most ticks a class may stay without activity before it is idle.
pub const IDLE_EVENTS_MAX: u16 = IDLE_EVENTS << PATIENCE_MAX_SHIFT;
// The clock wraps at 2^16: twice the longest patience must stay below half
// of that for `wrapping_sub` to order events.
const _: () =
    assert!(IDLE_EVENTS > DECAY_PERIOD && 2 * (IDLE_EVENTS_MAX as u32) < u16::MAX as u32 / 2);
// `FrontCache::held` has a bit per class.
const _: () = assert!(NUM_CLASSES <= 2 * 64);

/// Blocks a magazine of class `index` holds.
const fn capacity_for(index: usize) -> usize {
    let size = CLASS_SIZES[index] as usize;
    let by_bytes = MAGAZINE_MAX_BYTES / size;
    let base = if by_bytes > MAGAZINE_BLOCKS {
        MAGAZINE_BLOCKS
    } else if by_bytes < 1 {
        1
    } else {
        by_bytes
    };
    let big = MAGAZINE_BIG_MAX_BYTES / size;
    if big > MAGAZINE_ENTRIES {
        MAGAZINE_ENTRIES
    } else if big > base {
        big
    } else {
        base
    }
}
const _: () = assert!(MAGAZINE_BLOCKS <= MAGAZINE_ENTRIES);

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

/// Ticks of the idle-class clock for a slow-path event after `blocks`
/// blocks went through the loaded magazine (`BLOCKS_PER_TICK`).
#[inline(always)]
pub(crate) fn ticks_for(blocks: usize) -> u16 {
    // At most a magazine: `MAGAZINE_ENTRIES` is far below 2^16 ticks.
    blocks.div_ceil(BLOCKS_PER_TICK).max(1) as u16
}

/// The most one front cache can hold, in bytes of blocks (two magazines
/// per class): a static bound.
pub const CACHE_MAX_BYTES: usize = BOUNDS.cache_bytes;

const _: () = assert!(CACHE_MAX_BYTES <= 8 << 20);
