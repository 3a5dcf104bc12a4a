//! The readers' side of the page map: the lookups, which take no lock
//! (the protocol is at the top of `page_map.rs`: what a lookup may trust,
//! and how `releases` proves the owner it found still registered).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{
    GRANULE_SHIFT, LEVELS, MAPPED_HEADER, MappedFlat, Owner, PageMap, TAG_MASK, ZONE_TAG_BASE,
    same_high_bits, slot_at, tree_index,
};
use crate::size_class::SizeClass;

impl PageMap {
    /// The slot of the granule holding `addr`, if its nodes exist.
    #[inline(always)]
    pub(super) fn existing_slot(&self, addr: usize) -> Option<&AtomicPtr<u8>> {
        match self.flat_index(addr) {
            // SAFETY: `flat_index` checked `g` against the array's length;
            // the array lives as long as the map.
            Ok(g) => Some(unsafe { slot_at(self.flat_array(), g) }),
            // SAFETY: `root` is null or a published tree root, never freed
            // while the map lives.
            Err(root) => unsafe { Self::tree_slot(root, addr) },
        }
    }

    /// The flat array's index of `addr`, or else the root of the tree that
    /// would hold it (null if there is none yet).
    ///
    /// A tree has `flat_len` 0, which no index is below, so one comparison
    /// tells both "flat" and "inside the span"; `flat_start` and the array
    /// were written before `flat_len` was published (Acquire here).
    #[inline(always)]
    pub(super) fn flat_index(&self, addr: usize) -> Result<usize, *mut u8> {
        let flat_len = self.flat_len.load(Ordering::Acquire);
        let g = addr.wrapping_sub(self.flat_start.load(Ordering::Relaxed)) >> GRANULE_SHIFT;
        if g < flat_len {
            Ok(g)
        } else {
            Err(self.tree.load(Ordering::Acquire))
        }
    }

    /// The leaf slot of `addr` in the tree at `root`, if its nodes exist.
    ///
    /// # Safety
    ///
    /// `root` is null or a published tree root of this map.
    #[inline(always)]
    pub(super) unsafe fn tree_slot<'a>(root: *mut u8, addr: usize) -> Option<&'a AtomicPtr<u8>> {
        if root.is_null() {
            return None;
        }
        let g = addr >> GRANULE_SHIFT;
        let mut node = root;
        let mut level = LEVELS - 1;
        while level > 0 {
            // SAFETY: published nodes are valid, zero-initialised, FANOUT
            // slots long and never freed while the map is alive.
            node = unsafe { slot_at(node, tree_index(g, level)) }.load(Ordering::Acquire);
            if node.is_null() {
                return None;
            }
            level -= 1;
        }
        // SAFETY: as above.
        Some(unsafe { slot_at(node, tree_index(g, 0)) })
    }

    /// The owner registered for the granule holding `addr`, if any.
    #[inline]
    pub(crate) fn lookup(&self, addr: usize) -> Option<Owner> {
        let owner = Owner::decode(self.existing_slot(addr)?.load(Ordering::Acquire))?;
        // In the tree, addresses that differ above `ADDRESS_BITS` share
        // slots; only an exact match of the high bits is the same owner.
        if !same_high_bits(owner.base().as_ptr().addr(), addr) {
            return None;
        }
        Some(owner)
    }

    /// The zone registered for the granule holding `addr`, if a zone (not a
    /// LARGE run) is: [`lookup`](Self::lookup) trimmed for the front
    /// cache's free path.
    #[inline(always)]
    pub(crate) fn lookup_zone(&self, addr: usize) -> Option<(NonNull<u8>, SizeClass)> {
        let slot = match self.mapped_slot(addr) {
            Some(slot) => slot,
            None => self.other_slot(addr)?,
        };
        Self::zone_of(slot)
    }

    /// The slot of `addr` if the provider's flat array holds it
    /// (libft_malloc.so's window): one bound, one load, no select between
    /// the flat arrays. `None` sends the caller to
    /// [`other_slot`](Self::other_slot).
    #[inline(always)]
    pub(crate) fn mapped_slot(&self, addr: usize) -> Option<*mut u8> {
        // SAFETY: the sentinel, or a published header: neither changes
        // while the map lives.
        unsafe { Self::mapped_slot_in(self.mapped(), addr) }
    }

    /// The provider's flat array's header, or [`NO_MAPPED_FLAT`](super::NO_MAPPED_FLAT).
    #[inline(always)]
    pub(crate) fn mapped(&self) -> *const MappedFlat {
        self.mapped.load(Ordering::Acquire)
    }

    /// [`mapped_slot`](Self::mapped_slot) with the header given.
    ///
    /// # Safety
    ///
    /// `mapped` is [`NO_MAPPED_FLAT`](super::NO_MAPPED_FLAT) or this map's
    /// [`mapped`](Self::mapped), read after its publication (Acquire).
    #[inline(always)]
    pub(crate) unsafe fn mapped_slot_in(mapped: *const MappedFlat, addr: usize) -> Option<*mut u8> {
        // SAFETY: per the contract: neither changes while the map lives.
        let MappedFlat { start, len } = unsafe { mapped.read() };
        let g = addr.wrapping_sub(start) >> GRANULE_SHIFT;
        // A flat slot is the address's own: no high bits to compare.
        // SAFETY: a published header is followed by its `len` slots, which
        // live as long as the map.
        (g < len).then(|| {
            unsafe {
                slot_at(
                    mapped.cast::<u8>().cast_mut().wrapping_add(MAPPED_HEADER),
                    g,
                )
            }
            .load(Ordering::Acquire)
        })
    }

    /// The zone a slot's value names, if it names one (not an empty slot,
    /// nor a LARGE run or the small-region pool's).
    #[inline(always)]
    pub(crate) fn zone_of(slot: *mut u8) -> Option<(NonNull<u8>, SizeClass)> {
        // Zone tags are the class index plus `ZONE_TAG_BASE`, the top of
        // the low byte's range; empty slots (0) and the other tags lie
        // below it (`page_map.rs`).
        let class = usize::from(slot.addr() as u8).wrapping_sub(ZONE_TAG_BASE);
        if class >= crate::size_class::NUM_CLASSES {
            return None;
        }
        let base = slot.map_addr(|a| a & !TAG_MASK);
        // SAFETY: a registered zone's start is never null; `class` was just
        // checked against the class count.
        unsafe {
            Some((
                NonNull::new_unchecked(base),
                SizeClass::from_index_unchecked(class),
            ))
        }
    }

    /// [`lookup_zone`](Self::lookup_zone)'s slot when the provider's flat
    /// array does not hold `addr`: the inline array's, or the tree's (its
    /// high bits checked), or `None`.
    #[inline(always)]
    pub(crate) fn other_slot(&self, addr: usize) -> Option<*mut u8> {
        match self.flat_index(addr) {
            // SAFETY: as in `existing_slot`.
            Ok(g) => Some(unsafe { slot_at(self.flat_array(), g) }.load(Ordering::Acquire)),
            Err(root) => {
                // SAFETY: as in `existing_slot`.
                let slot = unsafe { Self::tree_slot(root, addr) }?.load(Ordering::Acquire);
                same_high_bits(slot.addr(), addr).then_some(slot)
            }
        }
    }
}
