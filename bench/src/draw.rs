//! The random choices of both workloads, written from the description of
//! talc's benchmark method (not from its code).

use fastrand::Rng;

/// A request size biased towards small values: first a cap `U[16, max)`, then
/// the size `U[4, cap)`. Most sizes land in the two or three binary orders of
/// magnitude below `max`, fewer near it.
pub fn request_size(rng: &mut Rng, max: usize) -> usize {
    let cap = rng.usize(16..max);
    rng.usize(4..cap)
}

/// An alignment strongly biased towards 8 bytes:
/// `8 << (trailing_zeros(random u16) / 2)`, i.e. 8 B with probability 3/4,
/// 16 B 3/16, 32 B 3/64, ..., up to 2 KiB when the u16 is zero.
pub fn alignment(rng: &mut Rng) -> usize {
    8 << (rng.u16(..).trailing_zeros() / 2)
}

/// A reallocation target `U[1, bound)`.
pub fn realloc_size(rng: &mut Rng, bound: usize) -> usize {
    rng.usize(1..bound)
}

/// A seed for one (trial, max size, phase) series, identical for every allocator
/// so that all of them replay the same action sequence.
pub fn series_seed(base: u64, trial: usize, max_size: usize, phase: u64) -> u64 {
    // splitmix64's finaliser: distinct inputs give unrelated streams.
    let mut z = base
        ^ (trial as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (max_size as u64).rotate_left(24)
        ^ phase.rotate_left(48);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_alignments_stay_in_range() {
        let mut rng = Rng::with_seed(1);
        for _ in 0..100_000 {
            let size = request_size(&mut rng, 200);
            assert!((4..199).contains(&size));
            let align = alignment(&mut rng);
            assert!(align.is_power_of_two() && (8..=2048).contains(&align));
            assert!((1..600).contains(&realloc_size(&mut rng, 600)));
        }
    }

    #[test]
    fn alignment_is_mostly_eight() {
        let mut rng = Rng::with_seed(2);
        let eights = (0..40_000).filter(|_| alignment(&mut rng) == 8).count();
        // 3/4 of the draws: 30_000 +- a few hundred.
        assert!((29_000..31_000).contains(&eights), "{eights}");
    }
}
