//! The random-actions workload: throughput under a random mix of allocations,
//! frees and reallocations, the method of talc's `random_actions` benchmark.
//!
//! One action is one draw `d`, uniform over `0..7`. This is how talc's
//! benchmark reads its draw, and how this one does:
//! - `d == 6` (1 in 7): reallocate a random live block to `U[1, 3 * max)`
//!   bytes; with no live block the action does nothing and scores nothing;
//! - otherwise, if `d < 3` (3 in 7) *or* fewer than 300 blocks are live:
//!   allocate `request_size(max)` bytes at `alignment()`;
//! - otherwise (3 in 7 once 300 blocks are live): free a random live block.
//!
//! So the live set climbs to 300 blocks, then wanders above it (allocations
//! and frees are equally likely). The score counts completed operations:
//! refused allocations or reallocations score nothing and are reported.
//!
//! A run is a warm-up (its blocks are freed again, untimed) followed by the
//! measured part: batches of 100 actions until the time budget is spent, or,
//! with `--ops N`, exactly `N` actions (for exact instruction counts). The
//! time budget is the thread's CPU time by default (see `clock.rs`); the clock
//! is only read between batches, so a run may overshoot by part of a batch.
//! At the end every live block is freed, untimed, which checks all their tags.

use std::alloc::GlobalAlloc;
use std::time::{Duration, Instant};

use fastrand::Rng;

use crate::blocks::LiveBlocks;
use crate::clock::thread_cpu_time;
use crate::draw;
use crate::peers::Workload;
use crate::spec::{
    ACTION_OUTCOMES, ALLOC_DRAWS, BATCH, MIN_LIVE_BLOCKS, REALLOC_DRAW, REALLOC_FACTOR,
};

/// How long a measured run lasts.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// Batches of actions until the thread has run for this much CPU time.
    CpuTime(Duration),
    /// Batches of actions until this much wall-clock time has passed.
    WallTime(Duration),
    /// Exactly this many actions.
    Actions(usize),
}

/// One random-actions run.
pub struct RandomActions {
    /// The largest request size (reallocations go up to 3 times this).
    pub max_size: usize,
    /// Warm-up before the measured run.
    pub warmup: Budget,
    /// The measured run.
    pub budget: Budget,
    /// Seed of the warm-up's action sequence.
    pub warmup_seed: u64,
    /// Seed of the measured action sequence.
    pub seed: u64,
}

/// What one run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunResult {
    /// Completed operations in the measured run.
    pub ops: usize,
    /// The measured run's wall-clock time.
    pub wall: Duration,
    /// The benchmark thread's CPU time during the measured run.
    pub cpu: Duration,
    /// Refused allocations (warm-up and measured run).
    pub alloc_failures: usize,
    /// Refused reallocations (warm-up and measured run).
    pub realloc_failures: usize,
}

impl Workload for RandomActions {
    type Output = RunResult;

    fn run<A: GlobalAlloc>(&mut self, allocator: &A, name: &'static str) -> RunResult {
        let mut blocks = LiveBlocks::new(allocator, name);
        let mut rng = Rng::with_seed(self.warmup_seed);
        run_actions(&mut blocks, &mut rng, self.max_size, self.warmup);
        blocks.free_all();

        let mut rng = Rng::with_seed(self.seed);
        let (wall_start, cpu_start) = (Instant::now(), thread_cpu_time());
        let ops = run_actions(&mut blocks, &mut rng, self.max_size, self.budget);
        let (wall, cpu) = (wall_start.elapsed(), thread_cpu_time() - cpu_start);
        blocks.free_all();
        RunResult {
            ops,
            wall,
            cpu,
            alloc_failures: blocks.alloc_failures,
            realloc_failures: blocks.realloc_failures,
        }
    }
}

/// Runs actions within `budget`; returns the completed operations.
fn run_actions<A: GlobalAlloc>(
    blocks: &mut LiveBlocks<'_, A>,
    rng: &mut Rng,
    max_size: usize,
    budget: Budget,
) -> usize {
    let mut ops = 0;
    match budget {
        Budget::WallTime(duration) => {
            let start = Instant::now();
            while start.elapsed() < duration {
                ops += batch(blocks, rng, max_size);
            }
        }
        Budget::CpuTime(duration) => {
            // Run against the (cheap) wall clock until the CPU budget could
            // be spent, then read the (costly) CPU clock and top up whatever
            // the scheduler took away. On an idle machine that is one look.
            let cpu_start = thread_cpu_time();
            let mut remaining = duration;
            while !remaining.is_zero() {
                let start = Instant::now();
                while start.elapsed() < remaining {
                    ops += batch(blocks, rng, max_size);
                }
                remaining = duration.saturating_sub(thread_cpu_time() - cpu_start);
            }
        }
        Budget::Actions(count) => {
            for _ in 0..count {
                ops += usize::from(action(blocks, rng, max_size));
            }
        }
    }
    ops
}

/// One batch of actions between two looks at the clock; returns the
/// completed operations.
fn batch<A: GlobalAlloc>(blocks: &mut LiveBlocks<'_, A>, rng: &mut Rng, max_size: usize) -> usize {
    (0..BATCH)
        .map(|_| usize::from(action(blocks, rng, max_size)))
        .sum()
}

/// One action; returns whether it completed an operation.
fn action<A: GlobalAlloc>(blocks: &mut LiveBlocks<'_, A>, rng: &mut Rng, max_size: usize) -> bool {
    let draw = rng.usize(0..ACTION_OUTCOMES);
    if draw == REALLOC_DRAW {
        if blocks.len() == 0 {
            return false;
        }
        let index = rng.usize(0..blocks.len());
        let new_size = draw::realloc_size(rng, REALLOC_FACTOR * max_size);
        blocks.realloc(index, new_size)
    } else if draw < ALLOC_DRAWS || blocks.len() < MIN_LIVE_BLOCKS {
        let size = draw::request_size(rng, max_size);
        let align = draw::alignment(rng);
        blocks.alloc(size, align)
    } else {
        let index = rng.usize(0..blocks.len());
        blocks.free(index);
        true
    }
}
