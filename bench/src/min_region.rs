//! The minimum region: the smallest arena, in pages, on which an allocator
//! runs one fixed mixed workload without refusing a single request, found
//! by bisection (`--min-region`). It measures what a small heap costs: the
//! allocator's metadata, its size classes' rounding and its fragmentation.
//!
//! The workload: request sizes from 16 to 2047 bytes, drawn like the other
//! workloads' (a cap `U[17, 2048)`, then the size `U[16, cap)`), at 16-byte
//! alignment. Below [`LIVE_TARGET`] live requested bytes it allocates,
//! otherwise it frees a random live block: [`STEPS`] steps of churn around
//! the target, then everything is freed.

use std::alloc::GlobalAlloc;

use fastrand::Rng;

use crate::blocks::LiveBlocks;
use crate::peers::{Peer, Workload};
use crate::spec::ARENA_SIZE;

/// Live requested bytes the workload keeps.
pub const LIVE_TARGET: usize = 256 << 10;
/// Steps of the workload.
pub const STEPS: usize = 20_000;
/// The bisection's unit.
const PAGE: usize = 4096;

/// The mixed workload; its output is whether no request was refused.
pub struct MixedLoad {
    /// Seed of the action sequence (the same for every region and allocator).
    pub seed: u64,
}

impl Workload for MixedLoad {
    type Output = bool;

    fn run<A: GlobalAlloc>(&mut self, allocator: &A, name: &'static str) -> bool {
        let mut blocks = LiveBlocks::new(allocator, name);
        // The requested sizes, kept in the same order as `blocks`.
        let mut sizes: Vec<usize> = Vec::new();
        let mut rng = Rng::with_seed(self.seed);
        let mut live = 0;
        for _ in 0..STEPS {
            if live < LIVE_TARGET || sizes.is_empty() {
                let cap = rng.usize(17..2048);
                let size = rng.usize(16..cap);
                if !blocks.alloc(size, 16) {
                    blocks.free_all();
                    return false;
                }
                sizes.push(size);
                live += size;
            } else {
                let index = rng.usize(0..sizes.len());
                live -= sizes.swap_remove(index);
                blocks.free(index);
            }
        }
        blocks.free_all();
        true
    }
}

/// The smallest region, in bytes (a whole number of pages), on which `peer`
/// runs the workload; `None` if even the whole arena is too small.
pub fn min_region(peer: Peer, seed: u64) -> Option<usize> {
    let fits = |pages: usize| peer.run_fresh_in(pages * PAGE, &mut MixedLoad { seed });
    let (mut low, mut high) = (0, ARENA_SIZE / PAGE);
    if !fits(high) {
        return None;
    }
    // `low` fails (or is empty), `high` fits.
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if fits(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some(high * PAGE)
}
