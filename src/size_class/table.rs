//! The size → class table: one load for every TINY or SMALL request
//! (`SizeClass::for_size`).

use super::{SMALL_MAX, SizeClass, TINY_STEP};

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

#[cfg(test)]
mod tests {
    use crate::size_class::{SMALL_MAX, SizeClass};

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
