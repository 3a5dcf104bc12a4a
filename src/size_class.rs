//! Size classes and zone geometry: the one place where the allocator's sizes
//! are decided.
//!
//! | kind  | request size        | classes                                   | served from            |
//! |-------|---------------------|-------------------------------------------|------------------------|
//! | TINY  | 0 ..= 128 B         | 16, 32, 48, ... 128 (step 16)             | TINY zones, one class each |
//! | SMALL | 129 ..= 32 KiB      | 8 classes per doubling: 144, 160, ... 256, 288, ... 32 KiB | SMALL zones, one class each |
//! | LARGE | above 32 KiB        | none: whole pages                         | a page run of its own  |
//!
//! Eight classes per doubling bound the rounding waste above 128 bytes by
//! 1/8 = 12.5% of the request; LARGE runs waste less than one page, which is
//! under 12.5% of any request above [`SMALL_MAX`].
//!
//! A class has two zone layouts ([`ZoneGeometry`]), with the same block size
//! and the same exact-division constants, so indexing costs the same in both:
//!
//! - a **full** zone ([`GEOMETRY`]) holds at least [`ZONE_MIN_BLOCKS`]
//!   blocks and is at least [`ZONE_MIN_BYTES`] long (the seed's rule);
//! - a **scarce** zone ([`SCARCE_GEOMETRY`]) is the fewest pages that hold
//!   one block, or up to [`SCARCE_MAX_EXTRA_PAGES`] more if that makes its
//!   blocks fill at least [`SCARCE_FILL_EIGHTHS`]/8 of it (else the best
//!   fill of those): one page of 16-byte blocks, 9 pages for one 32 KiB
//!   block.
//!
//! A new zone is full if the provider's span is unknown or at least
//! [`ZONE_SPAN_SHARE`] times the full zone, and scarce otherwise; a full zone
//! the provider refuses is tried again as a scarce one
//! ([`SizeClass::prefers_full_zone`]). So a heap of a few pages carves
//! zones of a few pages, and a large one keeps the seed's 100 blocks.
//!
//! Where a class would get scarce zones (a small span), only every
//! [`SizeClass::scarce_class`] gets zones: the powers of two up to 128 and
//! the 1.5x and 2x steps of every doubling above (16 classes instead of 40
//! from 16 to 2048 bytes), and the classes in between take their blocks.
//! A few pages cannot hold a zone for each of 72 classes; at most 1/3 of a
//! block is lost to the coarser step instead.

use crate::provider::MIN_PAGE_SIZE;
use crate::zone::ZONE_HEADER_SIZE;

mod exact;
mod table;

use exact::inverse_mod_2_64;
use table::{ALIGNED_CLASS, CLASS_BY_GRANULE, CLASS_TABLE_MAX, NO_CLASS};

/// Largest TINY request.
pub const TINY_MAX: usize = 128;
/// Spacing of the TINY classes, which is also the default alignment.
pub const TINY_STEP: usize = 16;
/// Largest SMALL request; anything larger is LARGE.
pub const SMALL_MAX: usize = 32 * 1024;
/// SMALL classes per doubling of the size (waste bound 1/8).
pub const CLASSES_PER_DOUBLING: usize = 8;
/// Alignment every block gets without asking (`max_align_t` on x86_64).
pub const DEFAULT_ALIGN: usize = 16;
/// Every zone holds at least this many blocks of its class (the subject's rule).
pub const ZONE_MIN_BLOCKS: usize = 100;
/// A zone is never smaller than this (16 pages, the seed's TINY zone), so
/// classes of small blocks do not call the provider every few blocks.
pub const ZONE_MIN_BYTES: usize = 16 * MIN_PAGE_SIZE;
/// A full zone is used only if the provider's span (when it has one) is at
/// least this many times its size: a zone may take 1/32 of the memory.
pub const ZONE_SPAN_SHARE: usize = 32;
/// A scarce zone's blocks fill at least this many eighths of it, if some
/// page count up to [`SCARCE_MAX_EXTRA_PAGES`] above the least allows it.
pub const SCARCE_FILL_EIGHTHS: usize = 7;
/// A scarce zone has at most this many pages more than the fewest that hold
/// one block.
pub const SCARCE_MAX_EXTRA_PAGES: usize = 7;
/// Where zones are scarce, SMALL classes borrow the zones of the next of
/// this many coarse steps per doubling ([`SizeClass::scarce_class`]).
pub const SCARCE_STEPS_PER_DOUBLING: usize = 4;
/// Blocks of a class start at a multiple of `min(lowest set bit of the block
/// size, this)`, which makes power-of-two-sized blocks naturally aligned.
pub const MAX_BLOCK_ALIGN: usize = MIN_PAGE_SIZE;

const TINY_CLASSES: usize = TINY_MAX / TINY_STEP;
const SMALL_DOUBLINGS: usize = (SMALL_MAX / TINY_MAX).trailing_zeros() as usize;
/// Number of size classes (TINY and SMALL).
pub const NUM_CLASSES: usize = TINY_CLASSES + SMALL_DOUBLINGS * CLASSES_PER_DOUBLING;

/// Which of the three kinds a zone or block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Requests of at most [`TINY_MAX`] bytes.
    Tiny,
    /// Requests of at most [`SMALL_MAX`] bytes.
    Small,
    /// Requests above [`SMALL_MAX`], each in its own page run.
    Large,
}

impl Kind {
    /// `"TINY"`, `"SMALL"` or `"LARGE"`, as `show_alloc_mem` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Tiny => "TINY",
            Kind::Small => "SMALL",
            Kind::Large => "LARGE",
        }
    }
}

/// A TINY or SMALL size class (an index into the class table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeClass(u8);

impl SizeClass {
    /// The class at `index`, if there is one.
    pub const fn from_index(index: usize) -> Option<Self> {
        if index < NUM_CLASSES {
            Some(SizeClass(index as u8))
        } else {
            None
        }
    }

    /// The class at `index`, unchecked (for the page map's decoder).
    ///
    /// # Safety
    ///
    /// `index < NUM_CLASSES`.
    #[inline(always)]
    pub(crate) const unsafe fn from_index_unchecked(index: usize) -> Self {
        SizeClass(index as u8)
    }

    /// Position in the class table.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Size of every block of this class.
    #[inline(always)]
    pub const fn block_size(self) -> usize {
        // Through a reference (a promoted constant): at opt-level 0,
        // indexing the `const` itself copies the whole table first.
        let tables: &'static ClassTables = &CLASS_TABLES;
        tables.sizes[self.0 as usize] as usize
    }

    /// [`block_size`](Self::block_size) without the bounds check (a class
    /// index is below `NUM_CLASSES` by construction): for `malloc`'s path.
    #[inline(always)]
    pub(crate) fn block_size_unchecked(self) -> usize {
        let tables: &'static ClassTables = &CLASS_TABLES;
        // SAFETY: every `SizeClass` holds an index below `NUM_CLASSES`,
        // the table's length.
        unsafe { *tables.sizes.get_unchecked(self.0 as usize) as usize }
    }

    /// Bytes of a block's requested-size slot in a zone of this class
    /// (`ZoneGeometry::size_width`, the same in both layouts): 1 for TINY,
    /// 2 for SMALL. Decided by the class index, with no table to read.
    #[inline(always)]
    pub(crate) const fn size_width(self) -> usize {
        if (self.0 as usize) < TINY_CLASSES {
            1
        } else {
            2
        }
    }

    /// TINY or SMALL.
    #[inline]
    pub const fn kind(self) -> Kind {
        if self.block_size() <= TINY_MAX {
            Kind::Tiny
        } else {
            Kind::Small
        }
    }

    /// The class for a request of `size` bytes at the default alignment, or
    /// `None` if the request is LARGE.
    #[inline(always)]
    pub const fn for_size(size: usize) -> Option<Self> {
        if size <= CLASS_TABLE_MAX {
            // One load (`CLASS_BY_GRANULE`), through a reference: at
            // opt-level 0, indexing the `const` itself copies its 2 KiB
            // first (and `div_ceil` is a call).
            let tables: &'static ClassTables = &CLASS_TABLES;
            #[expect(clippy::manual_div_ceil, reason = "a call at opt-level 0")]
            let granule = (size + TINY_STEP - 1) / TINY_STEP;
            return Some(SizeClass(tables.by_granule[granule]));
        }
        None
    }

    /// [`for_size`](Self::for_size), computed (to build its table).
    #[inline]
    const fn for_size_computed(size: usize) -> Option<Self> {
        if size <= TINY_MAX {
            // 0 shares the first class: malloc(0) returns a real block.
            let index = size.saturating_sub(1) / TINY_STEP;
            return Some(SizeClass(index as u8));
        }
        if size > SMALL_MAX {
            return None;
        }
        // Group g covers (2^e, 2^(e+1)] with e = floor(log2(size - 1)) >= 7,
        // split in 8 steps of 2^(e-3).
        let s = size - 1;
        let e = (usize::BITS - 1 - s.leading_zeros()) as usize;
        let step_shift = e - CLASSES_PER_DOUBLING.trailing_zeros() as usize;
        let within = (s >> step_shift) & (CLASSES_PER_DOUBLING - 1);
        let group = e - TINY_MAX.trailing_zeros() as usize;
        Some(SizeClass(
            (TINY_CLASSES + group * CLASSES_PER_DOUBLING + within) as u8,
        ))
    }

    /// The smallest class whose every block holds `size` bytes at alignment
    /// `align` (a power of two), or `None` if the request must be LARGE.
    #[inline]
    pub const fn for_layout(size: usize, align: usize) -> Option<Self> {
        if align <= DEFAULT_ALIGN {
            return Self::for_size(size);
        }
        if align > MAX_BLOCK_ALIGN {
            return None;
        }
        let size = if size < align { align } else { size };
        let Some(class) = Self::for_size(size) else {
            return None;
        };
        // Blocks of a class are aligned to the lowest set bit of the block
        // size (up to a page): the first class from this one whose size is
        // a multiple of `align`, from a table (`ALIGNED_CLASS`).
        let step = (align / DEFAULT_ALIGN).trailing_zeros() as usize - 1;
        match ALIGNED_CLASS[class.0 as usize][step] {
            NO_CLASS => None,
            found => Some(SizeClass(found)),
        }
    }

    /// The layout of this class's full zones.
    #[inline]
    pub(crate) const fn geometry(self) -> &'static ZoneGeometry {
        // SAFETY: every `SizeClass` holds an index below `NUM_CLASSES` (each
        // constructor checks it), the table's length; this skips the bounds
        // check on the hottest table of the allocator.
        unsafe { &*GEOMETRY.as_ptr().add(self.0 as usize) }
    }

    /// Blocks one zone of this class holds (at least 100): how many a front
    /// cache's [`refill`](crate::Heap::refill) can get without a new zone.
    pub const fn blocks_per_zone(self) -> usize {
        self.geometry().capacity
    }

    /// Bytes of one zone of this class (a multiple of [`MIN_PAGE_SIZE`]),
    /// what the provider is asked for when the class needs a zone.
    pub const fn zone_bytes(self) -> usize {
        self.geometry().zone_bytes
    }

    /// The layout of this class's scarce zones (same block size and division,
    /// fewer blocks).
    #[inline]
    pub const fn scarce_geometry(self) -> &'static ZoneGeometry {
        &SCARCE_GEOMETRY[self.0 as usize]
    }

    /// The class whose zones serve this one where zones are scarce: the
    /// next power of two for TINY classes, the next 1.5x or 2x step of the
    /// doubling for SMALL ones. Its block size is a multiple of every
    /// alignment this class's is.
    #[inline]
    pub const fn scarce_class(self) -> SizeClass {
        let index = self.0 as usize;
        if index < TINY_CLASSES {
            let size = self.block_size().next_power_of_two();
            return SizeClass((size / TINY_STEP - 1) as u8);
        }
        // Round the step within the doubling up to the next coarse one.
        let stride = CLASSES_PER_DOUBLING / SCARCE_STEPS_PER_DOUBLING;
        let within = (index - TINY_CLASSES) % CLASSES_PER_DOUBLING;
        SizeClass((index - within % stride + stride - 1) as u8)
    }

    /// Whether a new zone of this class should be a full one, for a
    /// provider whose runs all lie in a span of `span` bytes (`None`:
    /// unknown). A refused full zone falls back to a scarce one either way.
    pub const fn prefers_full_zone(self, span: Option<usize>) -> bool {
        match span {
            None => true,
            Some(span) => self.geometry().zone_bytes <= span / ZONE_SPAN_SHARE,
        }
    }

    /// Every class, smallest first.
    pub fn all() -> impl Iterator<Item = SizeClass> {
        (0..NUM_CLASSES).map(|i| SizeClass(i as u8))
    }
}

/// The block sizes and the size -> class table in one constant, so that a
/// `malloc` that reads both (the class of its size, then the block size
/// for the slack canary) finds them from one address.
#[repr(C)]
pub(crate) struct ClassTables {
    pub(crate) sizes: [u32; NUM_CLASSES],
    by_granule: [u8; CLASS_TABLE_MAX / TINY_STEP + 1],
}

pub(crate) const CLASS_TABLES: ClassTables = ClassTables {
    sizes: CLASS_SIZES,
    by_granule: CLASS_BY_GRANULE,
};

/// Block size of every class.
pub const CLASS_SIZES: [u32; NUM_CLASSES] = {
    let mut sizes = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < TINY_CLASSES {
        sizes[i] = ((i + 1) * TINY_STEP) as u32;
        i += 1;
    }
    let mut base = TINY_MAX;
    while i < NUM_CLASSES {
        let step = base / CLASSES_PER_DOUBLING;
        let mut k = 1;
        while k <= CLASSES_PER_DOUBLING {
            sizes[i] = (base + k * step) as u32;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    sizes
};

/// How a zone of one class is laid out. Offsets are from the zone start.
///
/// ```text
/// | header | live bitmap | requested sizes | pad | block 0 | block 1 | ... | tail |
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneGeometry {
    /// Zone length in bytes (a multiple of [`MIN_PAGE_SIZE`]).
    pub zone_bytes: usize,
    /// Blocks in the zone (at least [`ZONE_MIN_BLOCKS`] in a full zone, at
    /// least one in a scarce one).
    pub capacity: usize,
    /// Block size.
    pub block_size: usize,
    /// Offset of the live bitmap (one bit per block, in `u64` words).
    pub bitmap_offset: usize,
    /// Offset of the requested-size array.
    pub sizes_offset: usize,
    /// Bytes per requested-size entry: 1 for TINY (sizes up to 128), 2 for SMALL.
    pub size_width: usize,
    /// Offset of block 0.
    pub blocks_offset: usize,
    /// The inverse, modulo 2^64, of the block size's odd part: with
    /// [`exact_rotate`](Self::exact_rotate), one multiply and one rotate
    /// give the index of a block boundary, and a huge number for any other
    /// offset ([`ZoneGeometry::exact_index`]).
    pub exact_inverse: u64,
    /// The block size's trailing zero bits.
    pub exact_rotate: u32,
}

/// Full-zone geometry of every class.
pub static GEOMETRY: [ZoneGeometry; NUM_CLASSES] = geometry_table(false);

/// Scarce-zone geometry of every class.
pub static SCARCE_GEOMETRY: [ZoneGeometry; NUM_CLASSES] = geometry_table(true);

/// No zone holds more blocks than this: fewer than a page has bytes, so a
/// free-list link (an index + 1, `zone.rs`) is never the value of a block
/// address, and a pointer written over a link is refused.
pub(crate) const MAX_ZONE_BLOCKS: usize = MIN_PAGE_SIZE - 1;

const _: () = {
    let (full, scarce) = (geometry_table(false), geometry_table(true));
    let mut i = 0;
    while i < NUM_CLASSES {
        assert!(full[i].capacity <= MAX_ZONE_BLOCKS && scarce[i].capacity <= MAX_ZONE_BLOCKS);
        // `SizeClass::size_width` needs no table: both layouts agree.
        let width = SizeClass(i as u8).size_width();
        assert!(full[i].size_width == width && scarce[i].size_width == width);
        i += 1;
    }
};

const fn geometry_table(scarce: bool) -> [ZoneGeometry; NUM_CLASSES] {
    let mut table = [ZoneGeometry {
        zone_bytes: 0,
        capacity: 0,
        block_size: 0,
        bitmap_offset: 0,
        sizes_offset: 0,
        size_width: 0,
        blocks_offset: 0,
        exact_inverse: 0,
        exact_rotate: 0,
    }; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        let block_size = CLASS_SIZES[i] as usize;
        table[i] = if scarce {
            scarce_geometry_for(block_size)
        } else {
            geometry_for(block_size)
        };
        i += 1;
    }
    table
}

const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Offset of block 0 in a zone of `capacity` blocks of `block_size`.
const fn blocks_offset(block_size: usize, capacity: usize, width: usize) -> usize {
    let lowest_bit = 1 << block_size.trailing_zeros();
    let block_align = if lowest_bit < MAX_BLOCK_ALIGN {
        lowest_bit
    } else {
        MAX_BLOCK_ALIGN
    };
    let bitmap_bytes = capacity.div_ceil(64) * 8;
    align_up(
        ZONE_HEADER_SIZE + bitmap_bytes + capacity * width,
        block_align,
    )
}

const fn size_width(block_size: usize) -> usize {
    if block_size <= TINY_MAX { 1 } else { 2 }
}

/// The bytes of the fewest pages that hold `blocks` blocks.
const fn zone_bytes_for(block_size: usize, blocks: usize) -> usize {
    let width = size_width(block_size);
    align_up(
        blocks_offset(block_size, blocks, width) + blocks * block_size,
        MIN_PAGE_SIZE,
    )
}

const fn geometry_for(block_size: usize) -> ZoneGeometry {
    let mut zone_bytes = zone_bytes_for(block_size, ZONE_MIN_BLOCKS);
    if zone_bytes < ZONE_MIN_BYTES {
        zone_bytes = ZONE_MIN_BYTES;
    }
    layout(block_size, zone_bytes)
}

const fn scarce_geometry_for(block_size: usize) -> ZoneGeometry {
    let least = zone_bytes_for(block_size, 1);
    let mut best = layout(block_size, least);
    let mut extra = 0;
    while extra <= SCARCE_MAX_EXTRA_PAGES {
        let g = layout(block_size, least + extra * MIN_PAGE_SIZE);
        let used = (g.capacity * block_size) as u64;
        if used * 8 >= (SCARCE_FILL_EIGHTHS * g.zone_bytes) as u64 {
            return g;
        }
        // Keep the best fill (used / zone_bytes, cross-multiplied; in u64
        // so that 32-bit targets do not overflow).
        let best_used = (best.capacity * block_size) as u64;
        if used * best.zone_bytes as u64 > best_used * g.zone_bytes as u64 {
            best = g;
        }
        extra += 1;
    }
    best
}

/// The layout of a zone of `zone_bytes` for `block_size`: as many blocks as
/// fit after their metadata.
const fn layout(block_size: usize, zone_bytes: usize) -> ZoneGeometry {
    let width = size_width(block_size);
    // Fill the zone: the largest capacity whose metadata and blocks fit.
    let mut capacity = zone_bytes / block_size;
    while blocks_offset(block_size, capacity, width) + capacity * block_size > zone_bytes {
        capacity -= 1;
    }
    let bitmap_offset = ZONE_HEADER_SIZE;
    ZoneGeometry {
        zone_bytes,
        capacity,
        block_size,
        bitmap_offset,
        sizes_offset: bitmap_offset + capacity.div_ceil(64) * 8,
        size_width: width,
        blocks_offset: blocks_offset(block_size, capacity, width),
        exact_inverse: inverse_mod_2_64((block_size >> block_size.trailing_zeros()) as u64),
        exact_rotate: block_size.trailing_zeros(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn every_size_maps_to_the_smallest_class_that_fits() {
        for size in 0..=SMALL_MAX {
            let class = SizeClass::for_size(size).unwrap();
            assert!(class.block_size() >= size, "size {size}");
            if class.index() > 0 {
                let smaller = SizeClass::from_index(class.index() - 1).unwrap();
                assert!(smaller.block_size() < size.max(1), "size {size}");
            }
        }
        assert_eq!(SizeClass::for_size(SMALL_MAX + 1), None);
        assert_eq!(SizeClass::for_size(usize::MAX), None);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn waste_above_128_bytes_is_at_most_one_eighth() {
        for size in TINY_MAX + 1..=SMALL_MAX {
            let bs = SizeClass::for_size(size).unwrap().block_size();
            assert!((bs - size) * 8 <= size, "size {size} -> {bs}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn table_is_increasing_multiples_of_sixteen() {
        assert_eq!(NUM_CLASSES, 72);
        assert_eq!(CLASS_SIZES[NUM_CLASSES - 1] as usize, SMALL_MAX);
        for w in CLASS_SIZES.windows(2) {
            assert!(w[0] < w[1]);
            assert_eq!(w[1] % 16, 0);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn zones_hold_at_least_100_blocks_and_fit() {
        for class in SizeClass::all() {
            let g = class.geometry();
            assert!(g.capacity >= ZONE_MIN_BLOCKS, "{g:?}");
            assert_eq!(g.size_width, class.size_width());
            assert_eq!(class.scarce_geometry().size_width, class.size_width());
            assert!(g.zone_bytes >= ZONE_MIN_BYTES);
            assert_eq!(g.zone_bytes % MIN_PAGE_SIZE, 0);
            assert!(g.blocks_offset + g.capacity * g.block_size <= g.zone_bytes);
            assert!(g.sizes_offset + g.capacity * g.size_width <= g.blocks_offset);
            let align = (1 << g.block_size.trailing_zeros()).min(MAX_BLOCK_ALIGN);
            assert_eq!(g.blocks_offset % align, 0);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn scarce_zones_are_small_fit_and_share_the_magic() {
        for class in SizeClass::all() {
            let (g, full) = (class.scarce_geometry(), class.geometry());
            assert!(g.capacity >= 1, "{g:?}");
            assert!(g.zone_bytes <= full.zone_bytes, "{g:?}");
            assert_eq!(g.zone_bytes % MIN_PAGE_SIZE, 0);
            assert!(g.blocks_offset + g.capacity * g.block_size <= g.zone_bytes);
            assert!(g.sizes_offset + g.capacity * g.size_width <= g.blocks_offset);
            assert_eq!(
                g.blocks_offset % (1 << g.block_size.trailing_zeros()).min(MAX_BLOCK_ALIGN),
                0
            );
            assert_eq!(
                (g.block_size, g.exact_inverse, g.exact_rotate),
                (full.block_size, full.exact_inverse, full.exact_rotate)
            );
            // At most SCARCE_MAX_EXTRA_PAGES above the fewest pages that hold a block.
            let least = zone_bytes_for(g.block_size, 1);
            assert!(g.zone_bytes <= least + SCARCE_MAX_EXTRA_PAGES * MIN_PAGE_SIZE);
        }
        // The figures the docs quote.
        let tiny = SizeClass::for_size(16).unwrap().scarce_geometry();
        assert_eq!(tiny.zone_bytes, MIN_PAGE_SIZE);
        assert!(tiny.capacity >= 230, "{tiny:?}");
        assert_eq!(
            SizeClass::for_size(SMALL_MAX)
                .unwrap()
                .scarce_geometry()
                .zone_bytes,
            9 * MIN_PAGE_SIZE
        );
    }

    #[test]
    fn scarce_classes_are_the_coarse_steps_and_keep_alignment() {
        let mut anchors = SizeClass::all()
            .filter(|c| c.scarce_class() == *c)
            .map(SizeClass::block_size);
        for expected in [16, 32, 64, 128, 160, 192, 224, 256, 320, 384, 448, 512] {
            assert_eq!(anchors.next(), Some(expected));
        }
        for class in SizeClass::all() {
            let anchor = class.scarce_class();
            assert!(anchor >= class && anchor.scarce_class() == anchor);
            let (size, big) = (class.block_size(), anchor.block_size());
            assert!(big * 4 <= size * 5 || size <= TINY_MAX, "{size} -> {big}");
            let align = 1 << size.trailing_zeros();
            assert_eq!(big % align, 0, "{size} -> {big}");
        }
    }

    #[test]
    fn full_zones_need_a_span_of_32_zones() {
        let class = SizeClass::for_size(16).unwrap();
        let full = class.geometry().zone_bytes;
        assert!(class.prefers_full_zone(None));
        assert!(class.prefers_full_zone(Some(full * ZONE_SPAN_SHARE)));
        assert!(!class.prefers_full_zone(Some(full * ZONE_SPAN_SHARE - 1)));
        assert!(!class.prefers_full_zone(Some(16 * 1024)));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn aligned_classes_give_aligned_blocks() {
        let mut align = 32;
        while align <= MAX_BLOCK_ALIGN {
            for size in [0, 1, 17, align - 1, align, align + 1, 3 * align, SMALL_MAX] {
                match SizeClass::for_layout(size, align) {
                    Some(c) => {
                        assert!(c.block_size() >= size.max(align));
                        assert_eq!(c.block_size() % align, 0);
                        assert_eq!(c.geometry().blocks_offset % align, 0);
                    }
                    None => assert!(size > SMALL_MAX - align),
                }
            }
            align *= 2;
        }
        assert_eq!(SizeClass::for_layout(8, 8192), None);
    }
}
