//! How much a front cache keeps: every bound in one place.
//!
//! A bin holds blocks of one class. Small classes get many slots (they are
//! allocated most often and cost little to keep), large ones a few; the
//! bound is in bytes, so the whole cache holds at most
//! [`CACHE_MAX_BYTES`] whatever the program does.

use crate::size_class::{CLASS_SIZES, NUM_CLASSES};

/// Bytes one bin may hold, before the slot limits below.
pub const BIN_BYTES: usize = 8 * 1024;
/// Most slots of a bin (the smallest classes reach it).
pub const BIN_MAX_SLOTS: usize = 32;
/// Fewest slots of a bin: even the largest class keeps a block, so a loop
/// of one allocation and one free never takes a lock.
pub const BIN_MIN_SLOTS: usize = 1;

/// Slots of the bin of class `index`.
const fn slots_for(index: usize) -> usize {
    let by_bytes = BIN_BYTES / CLASS_SIZES[index] as usize;
    if by_bytes > BIN_MAX_SLOTS {
        BIN_MAX_SLOTS
    } else if by_bytes < BIN_MIN_SLOTS {
        BIN_MIN_SLOTS
    } else {
        by_bytes
    }
}

/// Where each bin's slots start in the cache's one array of slots, and how
/// many it has.
pub(crate) struct BinLayout {
    pub(crate) start: [u16; NUM_CLASSES],
    pub(crate) slots: [u16; NUM_CLASSES],
    pub(crate) total: usize,
    pub(crate) max_bytes: usize,
}

pub(crate) const LAYOUT: BinLayout = {
    let mut layout = BinLayout {
        start: [0; NUM_CLASSES],
        slots: [0; NUM_CLASSES],
        total: 0,
        max_bytes: 0,
    };
    let mut i = 0;
    while i < NUM_CLASSES {
        let slots = slots_for(i);
        layout.start[i] = layout.total as u16;
        layout.slots[i] = slots as u16;
        layout.total += slots;
        layout.max_bytes += slots * CLASS_SIZES[i] as usize;
        i += 1;
    }
    layout
};

/// Slots in a cache, all bins together.
pub const CACHE_SLOTS: usize = LAYOUT.total;
/// The most a cache can hold, in bytes of blocks (a static bound).
pub const CACHE_MAX_BYTES: usize = LAYOUT.max_bytes;

/// Blocks a bin takes from the heap at once when it is empty, and gives
/// back at once when it is full: half of it, so that a program that
/// alternates around the boundary does not take the lock every time.
#[inline(always)]
pub(crate) fn batch(slots: usize) -> usize {
    slots.div_ceil(2)
}

// The bounds the documentation promises, checked when the crate builds.
const _: () = assert!(CACHE_MAX_BYTES <= 1 << 20);
const _: () = assert!(CACHE_SLOTS <= 1024);
