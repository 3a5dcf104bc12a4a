//! The heap-efficiency workload: how much of the arena holds live requested
//! bytes when the allocator first runs out, the method of talc's
//! `heap_efficiency` benchmark.
//!
//! All rounds run on one allocator. In a round, each step draws `d` uniform
//! over `0..10`:
//! - `d < 5` (5 in 10): allocate `request_size(10000)` bytes at `alignment()`;
//! - `d == 5` (1 in 10): free a random live block (if any);
//! - otherwise (4 in 10): reallocate a random live block (if any) to
//!   `U[1, 100000)` bytes.
//!
//! The round ends at the first refused allocation or reallocation; its score
//! is the sum of the requested sizes of the live blocks divided by the arena
//! size at that moment. Then every block is freed and the next round starts
//! on the same allocator. The result is the mean over the rounds.

use std::alloc::GlobalAlloc;

use fastrand::Rng;

use crate::blocks::LiveBlocks;
use crate::draw;
use crate::peers::Workload;
use crate::spec::{
    ARENA_SIZE, HE_ALLOC_DRAWS, HE_FREE_DRAW, HE_MAX_ALLOC, HE_MAX_REALLOC, HE_OUTCOMES,
};

/// A heap-efficiency run.
pub struct HeapEfficiency {
    /// Number of rounds.
    pub rounds: usize,
    /// Seed of the whole run's action sequence.
    pub seed: u64,
}

impl Workload for HeapEfficiency {
    /// Mean fraction of the arena that was live when a round ended.
    type Output = f64;

    fn run<A: GlobalAlloc>(&mut self, allocator: &A, name: &'static str) -> f64 {
        let mut blocks = LiveBlocks::new(allocator, name);
        let mut rng = Rng::with_seed(self.seed);
        let mut sum = 0.0;
        for _ in 0..self.rounds {
            while step(&mut blocks, &mut rng).is_ok() {}
            sum += blocks.requested_bytes() as f64 / ARENA_SIZE as f64;
            blocks.free_all();
        }
        if self.rounds == 0 {
            0.0
        } else {
            sum / self.rounds as f64
        }
    }
}

/// A request the allocator refused: its size and what it was.
#[derive(Clone, Copy, Debug)]
pub struct Refused {
    /// Bytes asked for.
    pub size: usize,
    /// Whether it was a reallocation (else an allocation).
    pub realloc: bool,
}

/// One step; `Err` when the allocator refused a request.
pub fn step<A: GlobalAlloc>(blocks: &mut LiveBlocks<'_, A>, rng: &mut Rng) -> Result<(), Refused> {
    let draw = rng.usize(0..HE_OUTCOMES);
    let (size, realloc, done) = if draw < HE_ALLOC_DRAWS {
        let size = draw::request_size(rng, HE_MAX_ALLOC);
        let align = draw::alignment(rng);
        (size, false, blocks.alloc(size, align))
    } else if blocks.len() == 0 {
        return Ok(());
    } else if draw == HE_FREE_DRAW {
        let index = rng.usize(0..blocks.len());
        blocks.free(index);
        return Ok(());
    } else {
        let index = rng.usize(0..blocks.len());
        let new_size = draw::realloc_size(rng, HE_MAX_REALLOC);
        (new_size, true, blocks.realloc(index, new_size))
    };
    if done {
        Ok(())
    } else {
        Err(Refused { size, realloc })
    }
}
