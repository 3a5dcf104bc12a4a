//! The pool's free lists: one doubly linked list per size bin, two bins
//! per doubling from [`MIN_BLOCK`] up, and a mask of the bins that hold a
//! block. A request scans its own bin first fit and then takes the first
//! block that fits in the next non-empty bins (TLSF's and talc's shape).
//!
//! Links are offsets from the pool's origin (the provider's span start),
//! so a link fits the 32-bit words of a header; turning one back into a
//! pointer goes through the page map, which holds the segment's pointer.

use crate::coalesce::block::{self, MIN_BLOCK, NONE};

/// Bins: two per doubling from 32 bytes (up to 128 KiB, past every SMALL
/// request); the last takes every larger block. Few, because they live in
/// the `Heap` (a `static` heap stays within a page, `tests/small_heaps.rs`).
pub(crate) const BINS: usize = 24;
const _: () = assert!(BINS <= u32::BITS as usize);

/// The bin of a free block of `size` bytes (`size >= MIN_BLOCK`).
pub(crate) fn bin_of(size: usize) -> usize {
    let e = (usize::BITS - 1 - size.leading_zeros()) as usize;
    let half = (size >> (e - 1)) & 1;
    let first = MIN_BLOCK.trailing_zeros() as usize;
    ((e - first) * 2 + half).min(BINS - 1)
}

/// The heads of the bins and the mask of non-empty ones.
pub(crate) struct Bins {
    pub(crate) heads: [u32; BINS],
    pub(crate) mask: u32,
}

impl Bins {
    pub(crate) const fn new() -> Self {
        Bins {
            heads: [NONE; BINS],
            mask: 0,
        }
    }

    /// Puts the free block at `h` (offset `off`, header already written
    /// with null links) at the head of its bin. `at` turns an offset into
    /// its header's pointer.
    ///
    /// # Safety
    ///
    /// `h` is a free block of a live segment, on no list; the pool lock is
    /// held; `at` returns live free blocks for the offsets on the lists.
    pub(crate) unsafe fn insert(&mut self, h: *mut u8, off: u32, at: impl Fn(u32) -> *mut u8) {
        // SAFETY: per the contract.
        let size = unsafe { block::read(h) }.size as usize;
        let bin = bin_of(size);
        let head = self.heads[bin];
        // SAFETY: per the contract.
        unsafe {
            block::set_links(h, head, NONE);
            if head != NONE {
                let next = at(head);
                let (n, _) = block::read(next).links();
                block::set_links(next, n, off);
            }
        }
        self.heads[bin] = off;
        self.mask |= 1 << bin;
    }

    /// Takes the free block at `h` (offset `off`) off its bin.
    ///
    /// # Safety
    ///
    /// `h` is a free block on the lists; the pool lock is held; `at` as for
    /// [`insert`](Self::insert).
    pub(crate) unsafe fn remove(&mut self, h: *mut u8, off: u32, at: impl Fn(u32) -> *mut u8) {
        // SAFETY: per the contract.
        let hd = unsafe { block::read(h) };
        let (next, prev) = hd.links();
        let bin = bin_of(hd.size as usize);
        // SAFETY: per the contract: linked blocks are free blocks on the lists.
        unsafe {
            if prev == NONE {
                debug_assert_eq!(self.heads[bin], off);
                self.heads[bin] = next;
            } else {
                let p = at(prev);
                let (_, pp) = block::read(p).links();
                block::set_links(p, next, pp);
            }
            if next != NONE {
                let n = at(next);
                let (nn, _) = block::read(n).links();
                block::set_links(n, nn, prev);
            }
        }
        if self.heads[bin] == NONE {
            self.mask &= !(1 << bin);
        }
    }

    /// The first free block, in bin order from `size`'s bin, for which
    /// `fits(header)` holds: its offset and header pointer.
    ///
    /// # Safety
    ///
    /// The pool lock is held; `at` as for [`insert`](Self::insert).
    pub(crate) unsafe fn find(
        &self,
        size: usize,
        at: impl Fn(u32) -> *mut u8,
        mut fits: impl FnMut(*mut u8) -> bool,
    ) -> Option<(u32, *mut u8)> {
        let mut mask = self.mask & (!0u32 << bin_of(size));
        while mask != 0 {
            let bin = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let mut off = self.heads[bin];
            while off != NONE {
                let h = at(off);
                if fits(h) {
                    return Some((off, h));
                }
                // SAFETY: per the contract, a listed free block.
                off = unsafe { block::read(h) }.links().0;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_grow_by_halves_of_a_doubling() {
        assert_eq!(bin_of(32), 0);
        assert_eq!(bin_of(47), 0);
        assert_eq!(bin_of(48), 1);
        assert_eq!(bin_of(64), 2);
        assert_eq!(bin_of(96), 3);
        assert_eq!(bin_of(usize::MAX / 2), BINS - 1);
    }
}
