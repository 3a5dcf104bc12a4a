//! The zone header's precomputed boundary check: what a lock-free free
//! reads to decide whether a pointer is a block of the zone, and which.

use core::ptr::NonNull;

use super::ZoneHeader;
use crate::size_class::ZoneGeometry;

/// The geometry a front cache's lock-free check of a freed pointer needs
/// (`cache/depot.rs`), in the zone's header with addresses made absolute:
/// no load of the geometry's address, no addition of offsets on `free`.
/// Set when the zone is made, never changed.
#[repr(C)]
pub(crate) struct Boundary {
    /// Block 0's address.
    pub(crate) first_block: usize,
    /// `ZoneGeometry::exact_inverse`.
    pub(crate) exact_inverse: u64,
    /// Block 0's size slot's address (`ZoneGeometry::sizes_offset` from
    /// the header): a slot's address is one addition away.
    sizes: usize,
    /// The block size (`free` compares a size slot's value with it in
    /// memory, in 32 bits).
    block_size: u32,
    /// `ZoneGeometry::exact_rotate`.
    exact_rotate: u32,
}

impl Boundary {
    /// The check of a zone at `base` (its header's address) laid out as
    /// `g`.
    pub(super) fn new(base: usize, g: &ZoneGeometry) -> Self {
        Boundary {
            first_block: base + g.blocks_offset,
            exact_inverse: g.exact_inverse,
            sizes: base + g.sizes_offset,
            block_size: g.block_size as u32,
            exact_rotate: g.exact_rotate,
        }
    }

    /// The index of the carved block starting at `addr` if it is a block
    /// boundary (a number no block count reaches otherwise, also for an
    /// address before block 0: its offset wraps), as
    /// `ZoneGeometry::exact_index`.
    #[inline(always)]
    pub(crate) fn exact_index(&self, addr: usize) -> u64 {
        (addr.wrapping_sub(self.first_block) as u64)
            .wrapping_mul(self.exact_inverse)
            .rotate_right(self.exact_rotate)
    }

    /// Where block `index` of `zone` (whose boundary this is) keeps its
    /// requested size, for slots of `width` bytes (the zone's class's
    /// `size_width`).
    #[inline(always)]
    pub(crate) fn size_slot(
        &self,
        zone: NonNull<ZoneHeader>,
        width: usize,
        index: usize,
    ) -> *mut u8 {
        // The zone's provenance, the slot's address.
        zone.as_ptr()
            .cast::<u8>()
            .with_addr(self.sizes + index * width)
    }

    /// The zone's block size.
    #[inline(always)]
    pub(crate) fn block_size(&self) -> usize {
        self.block_size as usize
    }

    /// Whether a size slot's value `requested` is above the block size
    /// (a span's record, or "cached"): [`has_slack`](Self::has_slack)'s
    /// compare in 32 bits, with memory, so the two share one `cmp` (a slot
    /// holds at most 16 bits).
    #[inline(always)]
    pub(crate) fn above_block(&self, requested: usize) -> bool {
        requested as u32 > self.block_size
    }

    /// Whether a block armed for `requested` bytes has slack (a canary).
    #[inline(always)]
    pub(crate) fn has_slack(&self, requested: usize) -> bool {
        (requested as u32) < self.block_size
    }
}

#[cfg(test)]
mod tests {
    use core::ptr::NonNull;

    use super::Boundary;
    use crate::size_class::SizeClass;
    use crate::zone::{ZoneHeader, sizes::size_slot_in};

    /// The header's copy answers as the geometry it was made from: the
    /// size slots' addresses, the block size and its compares.
    #[test]
    fn the_precomputed_check_matches_the_geometry() {
        let base = 0x1234_0000_usize;
        let zone = NonNull::new(core::ptr::without_provenance_mut::<ZoneHeader>(base)).unwrap();
        for class in SizeClass::all() {
            for g in [class.geometry(), class.scarce_geometry()] {
                let check = Boundary::new(base, g);
                assert_eq!(check.block_size(), g.block_size);
                for index in [0, 1, g.capacity - 1] {
                    assert_eq!(
                        check.size_slot(zone, g.size_width, index).addr(),
                        size_slot_in(zone, g, index).addr()
                    );
                    let at = check.exact_index(base + g.blocks_offset + index * g.block_size);
                    assert_eq!(at, index as u64);
                }
                for requested in [0, 1, g.block_size - 1] {
                    assert!(check.has_slack(requested) && !check.above_block(requested));
                }
                assert!(!check.has_slack(g.block_size) && !check.above_block(g.block_size));
                for above in [g.block_size + 1, 0xFE, 0xFFFE] {
                    if above > g.block_size {
                        assert!(check.above_block(above) && !check.has_slack(above));
                    }
                }
            }
        }
    }
}
