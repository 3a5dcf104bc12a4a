//! Carving several blocks at once, for the heap's stack
//! (`heap_cache/carve.rs`): the carved count, the live bits and the live
//! count moved once for the run, not once a block.

use core::ptr::NonNull;

use super::{ZoneHeader, bitmap_word, blocks_start, carved_count, geometry, set_carved, state_mut};

/// Carves up to `n` blocks past the carved ones, marks them live and
/// returns how many it carved and the first one's index and address
/// (the others follow it, a block size apart). The zone's free list must
/// be empty (carving is what `pop` does then).
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds, with no free
/// block.
#[inline(always)]
pub(crate) unsafe fn carve_run(zone: NonNull<ZoneHeader>, n: usize) -> (usize, usize, *mut u8) {
    // SAFETY: the caller holds the lock, so the header is ours to change.
    let z = unsafe { state_mut(zone) };
    debug_assert_eq!(z.free, 0);
    // SAFETY: a live zone.
    let g = unsafe { geometry(zone) };
    // SAFETY: as above.
    let first = unsafe { carved_count(zone) } as usize;
    let n = n.min(z.capacity as usize - first);
    if n == 0 {
        return (0, first, blocks_start(zone, g));
    }
    // SAFETY: lock held; `first + n <= capacity`.
    unsafe { set_carved(zone, (first + n) as u32) };
    let mut index = first;
    let end = first + n;
    while index < end {
        // The bits of this bitmap word, at most to the word's end.
        let word_end = (index / 64 + 1) * 64;
        let stop = end.min(word_end);
        let count = stop - index;
        let bits = if count == 64 {
            u64::MAX
        } else {
            ((1u64 << count) - 1) << (index % 64)
        };
        // SAFETY: `index < capacity`: the bitmap word is inside the zone.
        unsafe { *bitmap_word(zone, g, index) |= bits };
        index = stop;
    }
    z.live += n as u32;
    let block = blocks_start(zone, g).wrapping_add(first * g.block_size);
    (n, first, block)
}
