//! The requested sizes of a zone's blocks: one slot per block, right after
//! the live bitmap (one byte per TINY block, two per SMALL block,
//! `ZoneGeometry::size_width`). They keep `show_alloc_mem` exact and place
//! the slack canary; the slot belongs to whoever holds the block.
//!
//! # Held or cached: the slot says, the block is never read
//!
//! A block whose live bit is set is *lent*: the program holds it, or a
//! cache keeps it free (a front cache's magazine, a class's depot, the
//! plain heap's stack, `heap_cache.rs`). Introspection tells the two apart
//! by this slot alone: a cached block's slot holds [`CACHED`], a held
//! block's the size asked for (or a span's record, `span.rs`). The block's
//! own bytes are the program's: reading them (its free mark, as before)
//! was a read of memory the heap had given away, a data race with the
//! holder's writes, and a misreport of a program that stores the mark's
//! value.
//!
//! - **Who writes.** Whoever owns the block at that moment, with a relaxed
//!   atomic store (a plain `mov` on every target): [`CACHED`] when a block
//!   enters a cache (a front cache's free after its claim, `cache/mod.rs`
//!   and `cache/realloc.rs`; a refill lending blocks and the stack's free,
//!   under the class lock), the requested size when it is handed out (a
//!   cache's hand-out without a lock, the zone paths under it) or resized in
//!   place. A block leaves a cache only by being handed out or drained into
//!   its zone (its live bit cleared: nobody reads a free block's slot).
//! - **Who reads without owning.** Only introspection, under the class
//!   lock, with relaxed atomic loads. It may meet a cache's store at any
//!   moment: either value is an exact answer at that instant (a free is
//!   complete once the slot says [`CACHED`]; a hand-out once it holds the
//!   size). Every other reader holds the block (a free, a realloc,
//!   `usable_size`) and may read it plainly ([`load_own_size`]): no one
//!   else writes it meanwhile (a racing double free is the program's bug;
//!   its loser still finds the free mark, or [`CACHED`], and refuses).
//! - **Why a size above the block.** Every path that frees or resizes a
//!   block reads its slot first and sends a slot above the block size to
//!   the locked span path (`span::check_head`), which refuses [`CACHED`]
//!   as a double free: a cached block's second free is still caught, and
//!   its canary check never runs on the sentinel.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, Ordering};

use super::{ZoneHeader, geometry};
use crate::size_class::ZoneGeometry;

/// Where block `index` keeps the size its caller asked for: one byte per
/// TINY block, two per SMALL block (`ZoneGeometry::size_width`).
///
/// # Safety
///
/// `zone` is a mapped zone (its header is read for its layout).
#[inline(always)]
pub(crate) unsafe fn size_slot(zone: NonNull<ZoneHeader>, index: usize) -> *mut u8 {
    // SAFETY: per the contract.
    size_slot_in(zone, unsafe { geometry(zone) }, index)
}

/// [`size_slot`], for a caller that has read the zone's layout `g`.
#[inline(always)]
pub(crate) fn size_slot_in(zone: NonNull<ZoneHeader>, g: &ZoneGeometry, index: usize) -> *mut u8 {
    zone.as_ptr()
        .cast::<u8>()
        .wrapping_add(g.sizes_offset + index * g.size_width)
}

/// The size slot of a block a cache keeps (see the module documentation):
/// above every block size in either width (`0xFE` in a TINY block's byte,
/// TINY blocks are at most 128 bytes; `0xFFFE` in a SMALL block's two,
/// above `SMALL_MAX` and any span's head), and not a span follower's.
pub(crate) const CACHED: usize = 0xFFFE;

const _: () = {
    assert!(cached_size(1) > crate::size_class::TINY_MAX);
    assert!(cached_size(2) > crate::size_class::SMALL_MAX);
    assert!(cached_size(2) != crate::span::FOLLOWER);
};

/// [`CACHED`] as a slot of `width` bytes reads it back ([`store_size`]
/// keeps the low bytes).
#[inline(always)]
pub(crate) const fn cached_size(width: usize) -> usize {
    if width == 1 { CACHED & 0xFF } else { CACHED }
}

/// Records that a cache keeps the block of `slot` (free, still lent).
///
/// # Safety
///
/// As for [`store_size`]; the caller has just freed the block into a cache
/// (claimed it) or lends it to one under the class lock.
#[inline(always)]
pub(crate) unsafe fn store_cached(slot: *mut u8, width: usize) {
    // SAFETY: per the contract.
    unsafe { store_size(slot, width, CACHED) }
}

/// The layout of a zone (its class's full or scarce one), read from its
/// header: set when the zone is made, never changed.
///
/// # Safety
///
/// `zone` is a mapped zone.
#[inline(always)]
pub(crate) unsafe fn layout_of(zone: NonNull<ZoneHeader>) -> &'static ZoneGeometry {
    // SAFETY: per the contract.
    unsafe { geometry(zone) }
}

/// Records `size` in a block's size slot. The slot belongs to whoever holds
/// the block (the class lock's holder, or a front cache handing the block
/// out or keeping it without a lock); introspection reads it under the
/// lock, hence the atomic (relaxed: a plain store on every target).
///
/// # Safety
///
/// `slot` comes from [`size_slot`] of a live zone of a class of that
/// `width`, and `size` fits the class (or is [`CACHED`]).
#[inline(always)]
pub(crate) unsafe fn store_size(slot: *mut u8, width: usize, size: usize) {
    // SAFETY: per the contract: inside the zone's sizes array, aligned to
    // its width (the array starts 8-aligned).
    unsafe {
        if width == 1 {
            AtomicU8::from_ptr(slot).store(size as u8, Ordering::Relaxed);
        } else {
            AtomicU16::from_ptr(slot.cast()).store(size as u16, Ordering::Relaxed);
        }
    }
}

/// Records the size the caller asked for (for introspection).
///
/// # Safety
///
/// `zone` is live, `index < capacity`, `size <= block size`, and the caller
/// holds the block (or the class lock).
#[inline]
pub(crate) unsafe fn set_requested(zone: NonNull<ZoneHeader>, index: usize, size: usize) {
    // SAFETY: live zone.
    let width = unsafe { geometry(zone) }.size_width;
    // SAFETY: per the contract.
    unsafe { store_size(size_slot(zone, index), width, size) };
}

/// The size recorded by [`set_requested`] for block `index`.
///
/// # Safety
///
/// As for [`set_requested`].
#[inline]
pub(crate) unsafe fn requested(zone: NonNull<ZoneHeader>, index: usize) -> usize {
    // SAFETY: live zone.
    let width = unsafe { geometry(zone) }.size_width;
    // SAFETY: live zone.
    let slot = unsafe { size_slot(zone, index) };
    // SAFETY: per the contract.
    unsafe { load_size(slot, width) }
}

/// The size recorded in the size slot of a block the caller holds: a
/// plain read (only the holder writes the slot; introspection's reads do
/// not race with it), which compiles to one load after the width test.
///
/// # Safety
///
/// As for [`store_size`], and the caller holds the block.
#[inline(always)]
pub(crate) unsafe fn load_own_size(slot: *mut u8, width: usize) -> usize {
    // SAFETY: per the contract: inside the sizes array, aligned to its
    // width, written by no one else meanwhile.
    unsafe {
        if width == 1 {
            usize::from(slot.read())
        } else {
            usize::from(slot.cast::<u16>().read())
        }
    }
}

/// The size recorded in a block's size slot (see [`store_size`]).
///
/// # Safety
///
/// As for [`store_size`].
#[inline(always)]
unsafe fn load_size(slot: *mut u8, width: usize) -> usize {
    // SAFETY: as in `store_size`.
    unsafe {
        if width == 1 {
            AtomicU8::from_ptr(slot).load(Ordering::Relaxed) as usize
        } else {
            AtomicU16::from_ptr(slot.cast()).load(Ordering::Relaxed) as usize
        }
    }
}
