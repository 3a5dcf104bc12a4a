//! Two threads free the same TINY or SMALL block at the same instant: the
//! free mark must decide, so that exactly one free is accepted and the
//! other is refused as a double free, with the heap unchanged.
//!
//! Real threads, real mappings. Each round one thread allocates a block,
//! both wait at a spin barrier, then both free it at once. The racing
//! window is a few dozen instructions (the lock-free check reads the mark,
//! then the size slot and the slack canary, then marks the block), so it
//! takes many rounds: with a plain load and a later plain store (before the
//! atomic claim, `free_mark.rs`), both frees got through in 150 to 300 of
//! 40,000 rounds between two caches, and in 1 to 17 of 40,000 between a
//! cache and the locked path (whose window is narrower; hence more rounds
//! here). The block then sat in two magazines, and later allocations
//! returned it twice.
//!
//! Two pairings: two front caches (both lock-free), and a front cache
//! against the heap's locked path (`Heap::deallocate`), which the class
//! lock does not serialise against the cache.

mod common;

use std::alloc::Layout;
use std::collections::HashSet;
use std::hint::spin_loop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Mmap;
use ft_malloc::{FrontCache, Heap, HeapError};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// A two-thread spin barrier: each crossing `n` (1, 2, ...) waits until both
/// threads have arrived `n` times. Spinning keeps both threads on their
/// cores so that the frees after it start together; it yields now and then
/// so that a loaded machine still makes progress.
struct Barrier(AtomicUsize);

impl Barrier {
    fn cross(&self, n: usize) {
        self.0.fetch_add(1, Ordering::AcqRel);
        let mut spins = 0u32;
        while self.0.load(Ordering::Acquire) < 2 * n {
            spins += 1;
            if spins.is_multiple_of(1 << 12) {
                std::thread::yield_now();
            } else {
                spin_loop();
            }
        }
    }
}

/// How the second thread frees.
#[derive(Clone, Copy)]
enum Second {
    /// Through a front cache of its own (lock-free).
    Cache,
    /// Through the heap's locked path.
    Heap,
}

const OK: usize = 1;
const DOUBLE_FREE: usize = 2;

fn code(result: Result<(), HeapError>) -> usize {
    match result {
        Ok(()) => OK,
        Err(HeapError::DoubleFree) => DOUBLE_FREE,
        Err(e) => panic!("a racing free was refused as {e:?}, not as a double free"),
    }
}

/// Races `rounds` pairs of frees of one block, each accepted once; then
/// checks that no two live blocks alias.
fn race(second: Second, size: usize, rounds: usize) {
    let heap: Heap<Mmap> = Heap::new(Mmap);
    let block = AtomicUsize::new(0);
    let second_result = AtomicUsize::new(0);
    let barrier = Barrier(AtomicUsize::new(0));
    let mut first_cache = FrontCache::new();
    let mut second_cache = FrontCache::new();
    let mut both_accepted = 0;
    std::thread::scope(|s| {
        let (heap, block, second_result, barrier) = (&heap, &block, &second_result, &barrier);
        let second_cache = &mut second_cache;
        s.spawn(move || {
            for round in 0..rounds {
                barrier.cross(2 * round + 1);
                let p = NonNull::new(block.load(Ordering::Acquire) as *mut u8).unwrap();
                // SAFETY: a block of `heap`; the race is the test.
                let r = unsafe {
                    match second {
                        Second::Cache => second_cache.deallocate(heap, p),
                        Second::Heap => heap.deallocate(p),
                    }
                };
                second_result.store(code(r), Ordering::Release);
                barrier.cross(2 * round + 2);
            }
        });
        for round in 0..rounds {
            let p = first_cache.allocate(heap, layout(size)).unwrap();
            // The program's bytes: the mark's word holds something else.
            unsafe { p.as_ptr().write_bytes(0x5a, size) };
            block.store(p.as_ptr().addr(), Ordering::Release);
            barrier.cross(2 * round + 1);
            let first = code(unsafe { first_cache.deallocate(heap, p) });
            barrier.cross(2 * round + 2);
            let second = second_result.load(Ordering::Acquire);
            if first == OK && second == OK {
                both_accepted += 1;
            } else {
                assert_eq!(
                    first + second,
                    OK + DOUBLE_FREE,
                    "round {round}: neither free was accepted"
                );
            }
        }
    });
    // Every block either cache holds comes out once, and no block twice.
    let mut live = HashSet::new();
    let mut aliased = 0;
    for cache in [&mut first_cache, &mut second_cache] {
        for _ in 0..=cache.cached_blocks() {
            let p = cache.allocate(&heap, layout(size)).unwrap();
            if !live.insert(p.as_ptr().addr()) {
                aliased += 1;
            }
        }
    }
    assert_eq!(
        (both_accepted, aliased),
        (0, 0),
        "(rounds where both racing frees were accepted, blocks handed out twice)"
    );
    assert_eq!(heap.stats().errors, rounds, "one refusal per round");
}

#[test]
fn two_caches_freeing_one_block_at_once_accept_exactly_one_free() {
    race(Second::Cache, 48, 40_000);
}

#[test]
fn a_cache_and_the_locked_path_freeing_one_block_at_once_accept_exactly_one_free() {
    race(Second::Heap, 48, 120_000);
}

#[test]
fn racing_frees_of_a_small_block_accept_exactly_one_free() {
    race(Second::Cache, 1000, 40_000);
}
