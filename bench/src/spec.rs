//! Every number of the benchmark, in one place. The defaults are the issue's
//! specification (itself talc's published `random_actions` and
//! `heap_efficiency` method, on a 128 MiB arena); command-line options may
//! only shorten a run, never change what a default run measures.

use std::time::Duration;

/// Size of the one arena every allocator runs on.
pub const ARENA_SIZE: usize = 128 << 20;
/// The arena's alignment: a page, like memory a kernel would hand over.
pub const ARENA_ALIGN: usize = 4096;

/// Random actions: trials per allocator and max size (the score is the median).
pub const TRIALS: usize = 7;
/// Random actions: untimed warm-up before each measured run.
pub const WARMUP: Duration = Duration::from_millis(2);
/// Random actions: length of each measured run.
pub const DURATION: Duration = Duration::from_millis(200);
/// Random actions: actions between two looks at the clock.
pub const BATCH: usize = 100;
/// Random actions: the largest request size of each series.
pub const MAX_SIZES: &[usize] = &[200, 1000, 3000, 10000, 30000];
/// Random actions: a reallocation asks for `U[1, REALLOC_FACTOR * max)` bytes.
pub const REALLOC_FACTOR: usize = 3;
/// Random actions: below this many live blocks every non-realloc action allocates.
pub const MIN_LIVE_BLOCKS: usize = 300;
/// Random actions: the draw is uniform over `0..ACTION_OUTCOMES`.
pub const ACTION_OUTCOMES: usize = 7;
/// Random actions: the draw value that means "reallocate" (1 in 7).
pub const REALLOC_DRAW: usize = 6;
/// Random actions: draws below this allocate even with enough live blocks (3 in 7).
pub const ALLOC_DRAWS: usize = 3;

/// Heap efficiency: rounds, all on one allocator.
pub const HE_ROUNDS: usize = 300;
/// Heap efficiency: fresh allocations draw their size with this maximum.
pub const HE_MAX_ALLOC: usize = 10000;
/// Heap efficiency: a reallocation asks for `U[1, HE_MAX_REALLOC)` bytes.
pub const HE_MAX_REALLOC: usize = 100_000;
/// Heap efficiency: the draw is uniform over `0..HE_OUTCOMES`.
pub const HE_OUTCOMES: usize = 10;
/// Heap efficiency: draws below this allocate (5 in 10).
pub const HE_ALLOC_DRAWS: usize = 5;
/// Heap efficiency: the one draw that frees (1 in 10); the rest reallocate (4 in 10).
pub const HE_FREE_DRAW: usize = 5;

/// Seed of the action sequences; a (trial, size) pair derives its own from it.
pub const SEED: u64 = 0x6674_5f6d_616c_6c6f; // "ft_mallo"
/// Live-block bookkeeping is reserved up front so the harness itself never
/// reallocates its vector inside a measured run.
pub const LIVE_CAPACITY: usize = 1 << 17;

/// `--quick`: fewer and shorter trials and heap-efficiency rounds.
pub const QUICK_TRIALS: usize = 3;
/// `--quick`: length of each measured run.
pub const QUICK_DURATION: Duration = Duration::from_millis(50);
/// `--quick`: heap-efficiency rounds.
pub const QUICK_HE_ROUNDS: usize = 20;
