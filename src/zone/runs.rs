//! Runs of adjacent free blocks, for spans (`span.rs`): found in the live
//! bitmap and taken out of the free list in one go.
//!
//! A run may reach past the carved blocks (up to the zone's capacity): the
//! blocks it skips over are carved as free. The free list is then rebuilt
//! from the bitmap, in address order, which also takes back any blocks a
//! cut list had leaked. All of this is a last resort under the class lock,
//! linear in the zone's blocks.

use core::ptr::NonNull;

use super::{
    FreeLink, ZoneHeader, bit_is_set, bitmap_word, block_ptr, carved_count, geometry, set_carved,
    state, state_mut,
};
use crate::free_mark;

/// The first of `n` adjacent free blocks (carved and free, or not yet
/// carved) whose address is a multiple of `align`, if the zone has them.
/// Word by word: a run of live or free blocks is skipped at once.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds.
pub(crate) unsafe fn find_free_run(
    zone: NonNull<ZoneHeader>,
    n: usize,
    align: usize,
) -> Option<usize> {
    // SAFETY: live zone, lock held.
    let (g, capacity) = unsafe { (geometry(zone), state(zone).capacity as usize) };
    // Blocks never carved have their bit clear (bits are set when a block
    // is handed out, and cleared when it comes back or its zone resets):
    // a clear bit below the capacity is a free block.
    let (mut index, mut start, mut run) = (0, 0, 0);
    while index < capacity {
        let left_in_word = (64 - index % 64).min(capacity - index);
        // SAFETY: `index < capacity`: inside the bitmap.
        let bits = unsafe { *bitmap_word(zone, g, index) } >> (index % 64);
        if run == 0 {
            let live = (bits.trailing_ones() as usize).min(left_in_word);
            if live > 0 {
                index += live;
                continue;
            }
            // SAFETY: a block of the zone.
            if !unsafe { block_ptr(zone, index) }
                .addr()
                .get()
                .is_multiple_of(align)
            {
                index += 1;
                continue;
            }
            start = index;
        }
        let free = (bits.trailing_zeros() as usize).min(left_in_word);
        if run + free >= n {
            return Some(start);
        }
        run += free;
        index += free;
        if free < left_in_word {
            // A live block ends the run.
            run = 0;
        }
    }
    None
}

/// Marks blocks `start..start + n` live (they were free, per
/// [`find_free_run`]) and relinks the zone's other free blocks.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds, and the run
/// came from [`find_free_run`] under the same lock hold.
pub(crate) unsafe fn take_run(zone: NonNull<ZoneHeader>, start: usize, n: usize) {
    // SAFETY: live zone, lock held.
    let g = unsafe { geometry(zone) };
    // SAFETY: live zone, lock held.
    let carved = unsafe { carved_count(zone) } as usize;
    let carved = carved.max(start + n);
    for index in start..start + n {
        // SAFETY: `index < capacity`: inside the bitmap.
        unsafe { *bitmap_word(zone, g, index) |= 1 << (index % 64) };
    }
    // SAFETY: lock held; the run ends at or before the capacity.
    unsafe { set_carved(zone, carved as u32) };
    let mut head: FreeLink = 0;
    for index in (0..carved).rev() {
        // SAFETY: `index < carved <= capacity`.
        if unsafe { bit_is_set(zone, g, index) } {
            continue;
        }
        // SAFETY: a free carved block of this zone: ours to write.
        unsafe {
            let block = block_ptr(zone, index);
            block.as_ptr().cast::<FreeLink>().write(head);
            free_mark::set(block);
        }
        head = index + 1;
    }
    // SAFETY: live zone, lock held.
    let z = unsafe { state_mut(zone) };
    z.free = head as u32;
    z.live += n as u32;
}
