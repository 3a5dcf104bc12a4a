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

use super::{FreeLink, ZoneHeader, blocks_start, carved_count, geometry, link_ok, state};

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

/// Walks the zone's free list from its top (the block freed last: the
/// list is a stack, frees push on it and allocations pop it), skips `skip`
/// blocks, then calls `f(start, len)` for the page-aligned range past the
/// head (see the module docs) of each of the next `count` blocks. Returns
/// the bytes passed to `f`. A link that does not name a free carved block
/// ends the walk (`pop` cuts the list there).
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds; `page` is the
/// provider's page size (a power of two).
pub(crate) unsafe fn for_each_free_tail(
    zone: NonNull<ZoneHeader>,
    page: usize,
    skip: usize,
    count: usize,
    mut f: impl FnMut(NonNull<u8>, usize),
) -> usize {
    // SAFETY: live zone, lock held.
    let (g, mut link) = unsafe { (geometry(zone), state(zone).free as FreeLink) };
    if !has_free_pages(g.block_size, page) {
        return 0;
    }
    let blocks = blocks_start(zone, g);
    let mut total = 0;
    for at in 0..skip + count {
        // SAFETY: live zone; `link_ok` bounds the index by the carved count.
        if link == 0 || !unsafe { link_ok(zone, g, link) } {
            break;
        }
        let block = blocks.wrapping_add((link - 1) * g.block_size);
        // SAFETY: a free carved block: its head (first page) is resident
        // and holds its link.
        link = unsafe { block.cast::<FreeLink>().read() };
        let start = (block.addr() + KEPT_HEAD).next_multiple_of(page);
        let end = (block.addr() + g.block_size) & !(page - 1);
        if at >= skip && end > start {
            let at = block.wrapping_add(start - block.addr());
            // A block inside the zone run: never null.
            f(NonNull::new(at).expect("inside the zone"), end - start);
            total += end - start;
        }
    }
    total
}
