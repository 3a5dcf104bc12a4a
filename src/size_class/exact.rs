//! Exact division by a block size: whether an offset is a block boundary,
//! and which block, with one multiply and one rotate
//! ([`ZoneGeometry::exact_index`]), for the front cache's lock-free check.

use super::ZoneGeometry;

impl ZoneGeometry {
    /// `offset / block_size` if `offset` is a multiple of the block size,
    /// and otherwise a number above 2^48, far above any block count
    /// ([`MAX_ZONE_BLOCKS`](super::MAX_ZONE_BLOCKS)). So, for every `offset` (one that wrapped
    /// below zero, from a pointer before block 0, included),
    /// `exact_index(offset) < carved` holds exactly when a block below
    /// `carved` starts at `offset`: one multiply, one rotate and one
    /// compare, where a division (or a multiply back) would also be needed
    /// to check the remainder.
    ///
    /// Why: with `block_size = odd << k` and `inv` the odd part's inverse
    /// modulo 2^64, a multiple `q * block_size` times `inv` is `q << k`
    /// (no wrap: `q * block_size < 2^64`), which the rotate turns back into
    /// `q`. An offset with one of its low `k` bits set keeps it set in the
    /// product (`inv` is odd), and the rotate moves it to the top bits. A
    /// multiple of `2^k` that is not one of the odd part maps, on the
    /// `64 - k` bits left, outside `[0, (2^(64-k) - 1) / odd]`: the
    /// multiples of `odd` fill that range already, and multiplying by `inv`
    /// is a bijection (Granlund and Montgomery, "Division by invariant
    /// integers using multiplication", 1994, section 9).
    #[inline(always)]
    pub const fn exact_index(&self, offset: usize) -> u64 {
        (offset as u64)
            .wrapping_mul(self.exact_inverse)
            .rotate_right(self.exact_rotate)
    }
}

/// The inverse of the odd `odd` modulo 2^64 (Newton's iteration: each step
/// doubles the bits that are right, from 3 for `x = odd`).
pub(super) const fn inverse_mod_2_64(odd: u64) -> u64 {
    let mut x = odd;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(x)));
        i += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use crate::size_class::{MAX_ZONE_BLOCKS, SizeClass};

    #[test]
    #[cfg_attr(miri, ignore)] // pure arithmetic over every size: nothing for Miri to check
    fn exact_index_finds_block_boundaries_and_nothing_else() {
        for class in SizeClass::all() {
            let g = class.geometry();
            let bs = g.block_size;
            assert_eq!(
                (bs as u64).wrapping_mul(g.exact_inverse) >> g.exact_rotate,
                1
            );
            // Every offset in the zone: a boundary gives its index, anything
            // else a number no block count reaches.
            for off in 0..g.zone_bytes {
                let index = g.exact_index(off);
                if off % bs == 0 {
                    assert_eq!(index, (off / bs) as u64, "{bs} {off}");
                } else {
                    assert!(index > (MAX_ZONE_BLOCKS as u64), "{bs} {off} -> {index}");
                }
            }
            // Pointers before block 0 (offsets that wrapped) and far past
            // the zone.
            for delta in 1..=4 * bs + 1 {
                assert!(g.exact_index(delta.wrapping_neg()) > MAX_ZONE_BLOCKS as u64);
                assert!(g.exact_index(g.zone_bytes + delta) > g.capacity as u64);
            }
            assert!(g.exact_index(usize::MAX) > MAX_ZONE_BLOCKS as u64);
        }
    }
}
