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
    /// The block size (a word: `free` compares with it in memory).
    pub(crate) block_size: usize,
    /// `ZoneGeometry::sizes_offset` (below a page).
    sizes_offset: u32,
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
            block_size: g.block_size,
            sizes_offset: g.sizes_offset as u32,
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
        zone.as_ptr()
            .cast::<u8>()
            .wrapping_add(self.sizes_offset as usize + index * width)
    }
}
