//! The size → class table: one load for every TINY or SMALL request
//! (`SizeClass::for_size`); and the class → aligned class table: one more
//! for a request above the default alignment (`SizeClass::for_layout`).

use super::{DEFAULT_ALIGN, MAX_BLOCK_ALIGN, NUM_CLASSES, SMALL_MAX, SizeClass, TINY_STEP};

/// Requests up to this many bytes find their class with one table load
/// ([`CLASS_BY_GRANULE`]): all of them, so that the allocation's path has
/// no second way to the class (2 KiB of read-only data, of which a program
/// touches the lines of the sizes it asks for).
pub(super) const CLASS_TABLE_MAX: usize = SMALL_MAX;

/// The class of every request of `16 * (g - 1) + 1 ..= 16 * g` bytes, at
/// index `g` (0 for 0 bytes), up to [`CLASS_TABLE_MAX`]: every class's block
/// size is a multiple of 16, so no such granule of sizes straddles two
/// classes. 2049 bytes.
pub(super) const CLASS_BY_GRANULE: [u8; CLASS_TABLE_MAX / TINY_STEP + 1] = {
    let mut table = [0u8; CLASS_TABLE_MAX / TINY_STEP + 1];
    let mut g = 0;
    while g < table.len() {
        match SizeClass::for_size_computed(g * TINY_STEP) {
            Some(class) => table[g] = class.0,
            None => panic!("the table covers SMALL sizes only"),
        }
        g += 1;
    }
    table
};

/// Alignments above [`DEFAULT_ALIGN`] that a class's blocks can have: 32
/// bytes to [`MAX_BLOCK_ALIGN`], a power of two each (8 with 4 KiB pages).
pub(super) const ALIGN_STEPS: usize = (MAX_BLOCK_ALIGN / DEFAULT_ALIGN).trailing_zeros() as usize;

/// [`ALIGNED_CLASS`]'s entry for "no class": the request is LARGE.
pub(super) const NO_CLASS: u8 = u8::MAX;

/// At `[c][k]`: the smallest class from `c` on whose block size is a
/// multiple of `DEFAULT_ALIGN << (k + 1)` (its blocks are then aligned to
/// it: they are aligned to the lowest set bit of their size, up to a
/// page), or [`NO_CLASS`]. It replaces a search of up to eight classes,
/// each with a division (the random actions' aligned requests, one
/// allocation in 16, paid 55 instructions there). 576 bytes.
pub(super) const ALIGNED_CLASS: [[u8; ALIGN_STEPS]; NUM_CLASSES] = {
    let mut table = [[NO_CLASS; ALIGN_STEPS]; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        let mut k = 0;
        while k < ALIGN_STEPS {
            let align = DEFAULT_ALIGN << (k + 1);
            let mut found = c;
            while found < NUM_CLASSES && !SizeClass(found as u8).block_size().is_multiple_of(align)
            {
                found += 1;
            }
            if found < NUM_CLASSES {
                table[c][k] = found as u8;
            }
            k += 1;
        }
        c += 1;
    }
    table
};
const _: () = assert!(NUM_CLASSES < NO_CLASS as usize);

#[cfg(test)]
mod tests {
    use crate::size_class::{DEFAULT_ALIGN, MAX_BLOCK_ALIGN, SMALL_MAX, SizeClass};

    /// The search the aligned table replaces.
    fn aligned_by_search(size: usize, align: usize) -> Option<SizeClass> {
        let mut class = SizeClass::for_size(size.max(align))?;
        while !class.block_size().is_multiple_of(align) {
            class = SizeClass::from_index(class.index() + 1)?;
        }
        Some(class)
    }

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic: nothing for Miri to check
    fn the_aligned_table_and_the_search_agree() {
        let mut align = DEFAULT_ALIGN * 2;
        while align <= MAX_BLOCK_ALIGN {
            for size in (0..=SMALL_MAX + 1)
                .step_by(7)
                .chain([align - 1, align, align + 1])
            {
                let class = SizeClass::for_layout(size, align);
                assert_eq!(class, aligned_by_search(size, align), "{size} at {align}");
                if let Some(class) = class {
                    assert!(class.block_size() >= size && class.block_size().is_multiple_of(align));
                }
            }
            align *= 2;
        }
        assert_eq!(SizeClass::for_layout(16, MAX_BLOCK_ALIGN * 2), None);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn the_table_and_the_formula_agree_on_every_size() {
        for size in 0..=SMALL_MAX + 1 {
            assert_eq!(
                SizeClass::for_size(size),
                SizeClass::for_size_computed(size),
                "size {size}"
            );
        }
    }
}
