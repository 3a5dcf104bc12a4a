//! Spans: the last resort of a full small heap. A SMALL request for which
//! no zone can be mapped takes a run of adjacent free blocks in a zone of a
//! smaller SMALL class, handed out as one block, before it borrows a
//! larger class's free block or a page run of its own (`alloc.rs`).
//!
//! ```text
//! zone of 768-byte blocks, a 1380-byte request:
//! | live | free | free | live |   ->   | live | span head   follower | live |
//!                                             ^ pointer   (2 blocks)
//! size slots:                                 1380        FOLLOWER
//! ```
//!
//! Why: a segregated heap strands free blocks in the classes that freed
//! them. In a small region the classes that a big request needs fill up
//! while smaller classes hold free blocks side by side; joining them is the
//! coalescing such a heap otherwise lacks, paid for only when the request
//! would fail (`BENCHMARKS.md`, "Minimum region").
//!
//! How a span is told from a block (under the class lock; the zone's size
//! slots are the only record, nothing is added to the hot paths):
//!
//! - the head's size slot holds the requested size, larger than the class's
//!   block size: `n = requested.div_ceil(block size)` blocks, all marked
//!   live in the bitmap, the head first;
//! - each follower's slot holds [`FOLLOWER`], which no request can be (a
//!   SMALL request is at most 32 KiB, a slot holds up to 65535): freeing or
//!   resizing a follower's address is refused as an invalid pointer;
//! - the slack canary sits right after the requested bytes, in whichever
//!   block of the span that falls.
//!
//! Every path that reads a size slot knows the rule: the front cache's
//! lock-free free sends a slot above the block size to the locked path
//! (`cache/depot.rs`), the locked free returns all `n` blocks
//! (`free.rs`), a resize always moves a span (`realloc.rs`),
//! `usable_size` answers the requested size, and introspection reports the
//! head with `n` blocks' bytes and skips the followers (`introspect.rs`).
//! TINY zones (one-byte slots) take no spans.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::canary;
use crate::error::HeapError;
use crate::free_mark;
use crate::heap::{ClassState, Heap};
use crate::provider::PageProvider;
use crate::size_class::{NUM_CLASSES, SizeClass, TINY_MAX};
use crate::zone::{self, ZoneHeader};

/// A span joins at most this many blocks: a 2 KiB request may join
/// 144-byte blocks, a 32 KiB one none smaller than 2 KiB. It bounds the
/// search and the walk that checks a span on free.
pub(crate) const SPAN_MAX_BLOCKS: usize = 16;

/// The size slot of a span's follower blocks (SMALL slots are two bytes).
pub(crate) const FOLLOWER: usize = u16::MAX as usize;

/// The number of blocks of `block_size` bytes a span for `requested` bytes
/// joins: one for a request that fits a block (an over-aligned request can
/// take a single suitably aligned block of a smaller class this way).
#[inline]
pub(crate) fn blocks_for(requested: usize, block_size: usize) -> usize {
    requested.div_ceil(block_size).max(1)
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// A span for `layout` (a request of `class`) in a zone of a smaller
    /// SMALL class: the class that wastes least (`n * block - size`) first,
    /// of two that waste the same the one that joins fewer blocks. `None`
    /// if no zone has the adjacent free blocks.
    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_span(
        &self,
        class: SizeClass,
        layout: Layout,
        zeroed: bool,
    ) -> Option<NonNull<u8>> {
        let size = layout.size();
        let first_small = SizeClass::for_size(TINY_MAX + 1)?.index();
        // (waste, blocks, class index) of every candidate class.
        let mut candidates = [(0, 0, 0); NUM_CLASSES];
        let mut count = 0;
        for index in (first_small..class.index()).rev() {
            let block_size = SizeClass::from_index(index)?.block_size();
            let n = blocks_for(size, block_size);
            if n > SPAN_MAX_BLOCKS {
                break;
            }
            candidates[count] = (n * block_size - size, n, index);
            count += 1;
        }
        candidates[..count].sort_unstable();
        for &(_, n, index) in &candidates[..count] {
            let smaller = SizeClass::from_index(index)?;
            let mut state = self.class(smaller);
            // SAFETY: the class lock is held through `state`.
            if let Some(head) = unsafe { take_span(&mut state, n, size, layout.align()) } {
                drop(state);
                // SAFETY: the span's `n` blocks are ours; `size` fits them.
                unsafe { hand_out(head, n, size, smaller.block_size(), zeroed) };
                return Some(head);
            }
        }
        None
    }

    /// Frees a span whose head is block `index` at `ptr`, validated
    /// (`validate_small`) and holding `requested` bytes: refused if it is
    /// a follower or its canary was overwritten ([`check_span`]).
    ///
    /// # Safety
    ///
    /// As for `free_validated`: validated under the lock held through
    /// `state`.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free_span(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        index: usize,
        ptr: NonNull<u8>,
        requested: usize,
    ) -> Result<(), HeapError> {
        // SAFETY: per the contract.
        let bytes = unsafe { check_span(zone, index, ptr, requested) }?;
        // SAFETY: per the contract.
        let block_size = unsafe { zone::layout_of(zone) }.block_size;
        for i in index..index + bytes / block_size {
            // SAFETY: `check_span` proved every block of the span live and
            // ours; each goes back as a block of its own (its size slot is
            // written again when it is next handed out).
            unsafe { zone::push(zone, i, zone::block_ptr(zone, i)) };
        }
        // SAFETY: per the contract.
        unsafe { self.after_free(state, zone) };
        Ok(())
    }
}

/// Takes `n` adjacent free blocks from a listed zone of the class locked
/// through `state`, recorded as a span of `size` bytes; returns its head.
///
/// # Safety
///
/// The class lock is held through `state`.
unsafe fn take_span(
    state: &mut ClassState,
    n: usize,
    size: usize,
    align: usize,
) -> Option<NonNull<u8>> {
    let mut cursor = state.with_room;
    while let Some(zone) = NonNull::new(cursor) {
        // SAFETY: listed zones are live; the lock is held.
        unsafe {
            cursor = zone::state(zone).next;
            let Some(start) = zone::find_free_run(zone, n, align) else {
                continue;
            };
            if zone::state(zone).live == 0 {
                state.empty_zones -= 1;
            }
            zone::take_run(zone, start, n);
            zone::set_requested(zone, start, size);
            for follower in start + 1..start + n {
                zone::set_requested(zone, follower, FOLLOWER);
            }
            if zone::is_full(zone) {
                state.unlink(zone);
            }
            return Some(zone::block_ptr(zone, start));
        }
    }
    None
}

/// Clears the free marks of a span's blocks, arms its slack canary and
/// zeroes its requested bytes if asked.
///
/// # Safety
///
/// `head` is the first of `n` blocks of `block_size` bytes the caller
/// holds, `size <= n * block_size`.
unsafe fn hand_out(head: NonNull<u8>, n: usize, size: usize, block_size: usize, zeroed: bool) {
    for i in 0..n {
        // SAFETY: the blocks are ours, adjacent in one zone.
        unsafe { free_mark::clear(head.add(i * block_size)) };
    }
    // SAFETY: `size` is inside the span.
    unsafe { canary::arm(head, size, n * block_size) };
    if zeroed {
        // SAFETY: the span is ours and at least `size` bytes long.
        unsafe { ptr::write_bytes(head.as_ptr(), 0, size) };
    }
}

/// Checks a block whose size slot holds more than the block size: a span's
/// head (its followers live and marked) or a follower (whose address is no
/// block the caller was given). Returns the span's length in bytes.
///
/// # Safety
///
/// Block `index` was validated by `validate_small` under the class lock,
/// which is still held; `requested` is its size slot, above the block size.
#[cold]
#[inline(never)]
pub(crate) unsafe fn check_head(
    zone: NonNull<ZoneHeader>,
    index: usize,
    requested: usize,
) -> Result<usize, HeapError> {
    if requested == FOLLOWER {
        return Err(HeapError::InvalidPointer);
    }
    // SAFETY: per the contract.
    let g = unsafe { zone::layout_of(zone) };
    if requested == zone::cached_size(g.size_width) {
        // A cache keeps the block (`zone/sizes.rs`): freed already (a free
        // that raced the one that cached it gets here past the mark check).
        return Err(HeapError::DoubleFree);
    }
    let block_size = g.block_size;
    let n = blocks_for(requested, block_size);
    // SAFETY: live zone, lock held.
    if n > SPAN_MAX_BLOCKS || index + n > unsafe { zone::carved(zone) } {
        return Err(HeapError::Corrupted);
    }
    for i in index + 1..index + n {
        // SAFETY: `i < carved`: a block of the live zone.
        let follower = unsafe { zone::is_live(zone, i) && zone::requested(zone, i) == FOLLOWER };
        if !follower {
            return Err(HeapError::Corrupted);
        }
    }
    Ok(n * block_size)
}

/// [`check_head`], and the span's slack canary: what a free or a resize
/// checks. Returns the span's length in bytes.
///
/// # Safety
///
/// As for [`check_head`]; `ptr` is block `index`.
#[cold]
#[inline(never)]
pub(crate) unsafe fn check_span(
    zone: NonNull<ZoneHeader>,
    index: usize,
    ptr: NonNull<u8>,
    requested: usize,
) -> Result<usize, HeapError> {
    // SAFETY: per the contract.
    let bytes = unsafe { check_head(zone, index, requested) }?;
    // SAFETY: the span is the caller's, `requested <= bytes`.
    if unsafe { canary::intact(ptr, requested, bytes) } {
        Ok(bytes)
    } else {
        Err(HeapError::Overflow)
    }
}
