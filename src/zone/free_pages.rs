//! The pages of a zone's free blocks that may go back to the provider
//! while the zone still holds live blocks (`purge.rs` decides when).
//!
//! # What a free block needs kept
//!
//! A block on its zone's free list is read through its first 16 bytes
//! only: the free-list link (first word, read by `pop` and by the list
//! rebuild of `runs.rs`) and the free mark (second word, read without a
//! lock by a front cache's double-free check, `free_mark.rs`). Its size
//! slot lives in the zone's header area, its live bit in the bitmap. No
//! other byte of a free block is read before the block is handed out
//! again, and a handed-out block's bytes are the new owner's to write
//! (`Popped::zeroed` is false for a block that was carved before).
//!
//! So the whole pages of a free block that lie past the page holding its
//! first 16 bytes may be decommitted: they read back as zero or as they
//! were, and the next owner's writes make them resident again (the
//! "touched again" half of the protocol is the page fault; the zone keeps
//! no per-page state). Only blocks whose live bit is clear qualify: a
//! block lent to a front cache or a depot has its bit set and may be
//! handed out by its holder at any moment, without the class lock.

use core::ptr::NonNull;

use super::{ZoneHeader, bitmap_word, blocks_start, carved_count, geometry, state};

/// Bytes at the start of a free block that stay resident (link and mark).
const KEPT_HEAD: usize = 16;

/// Free blocks of the zone (carved, live bit clear).
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds.
#[inline]
pub(crate) unsafe fn free_blocks(zone: NonNull<ZoneHeader>) -> usize {
    // SAFETY: per the contract.
    unsafe { carved_count(zone) as usize - state(zone).live as usize }
}

/// Whether a free block of `block_size` bytes can ever cover a whole page
/// past its head, with pages of `page` bytes.
#[inline]
pub(crate) const fn has_free_pages(block_size: usize, page: usize) -> bool {
    block_size >= page + KEPT_HEAD
}

/// Calls `f(start, len)` for the page-aligned range of each free block of
/// the zone that lies past the block's head (see the module docs), for
/// every free block that has one. Returns the bytes passed to `f`.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds; `page` is the
/// provider's page size (a power of two).
pub(crate) unsafe fn for_each_free_tail(
    zone: NonNull<ZoneHeader>,
    page: usize,
    mut f: impl FnMut(NonNull<u8>, usize),
) -> usize {
    // SAFETY: live zone, lock held.
    let (g, carved) = unsafe { (geometry(zone), carved_count(zone) as usize) };
    if !has_free_pages(g.block_size, page) {
        return 0;
    }
    let blocks = blocks_start(zone, g);
    let mut total = 0;
    for w in 0..carved.div_ceil(64) {
        // SAFETY: `w * 64 < carved <= capacity`: inside the bitmap.
        let live = unsafe { *bitmap_word(zone, g, w * 64) };
        let in_range = if carved - w * 64 >= 64 {
            u64::MAX
        } else {
            (1u64 << (carved - w * 64)) - 1
        };
        let mut free = !live & in_range;
        while free != 0 {
            let index = w * 64 + free.trailing_zeros() as usize;
            free &= free - 1;
            let block = blocks.wrapping_add(index * g.block_size);
            let start = (block.addr() + KEPT_HEAD).next_multiple_of(page);
            let end = (block.addr() + g.block_size) & !(page - 1);
            if end > start {
                let at = block.wrapping_add(start - block.addr());
                // A block inside the zone run: never null.
                f(NonNull::new(at).expect("inside the zone"), end - start);
                total += end - start;
            }
        }
    }
    total
}
