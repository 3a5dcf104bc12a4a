//! The requested sizes of a zone's blocks: one slot per block, right after
//! the live bitmap (one byte per TINY block, two per SMALL block,
//! `ZoneGeometry::size_width`). They keep `show_alloc_mem` exact and place
//! the slack canary; the slot belongs to whoever holds the block.

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
/// out without a lock); introspection reads it under the lock, hence the
/// atomic (relaxed: a plain store on every target).
///
/// # Safety
///
/// `slot` comes from [`size_slot`] of a live zone of a class of that
/// `width`, and `size` fits the class.
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
