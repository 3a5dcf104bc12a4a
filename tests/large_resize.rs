//! A LARGE block's resize and the LARGE cache's choice (branch `actions`):
//! a block shrunk to a class's size of at least 16 KiB keeps its run, cut
//! to the pages it needs, with every check of a free and a realloc intact;
//! a smaller one moves to a zone; a freed run of exactly
//! the pages a request needs is taken before any other (the most recent
//! of that length first).

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{Counting, arena};
use ft_malloc::{Heap, HeapError, ReallocError, SMALL_MAX};

type ArenaHeap = Heap<Counting<common::OwnedArena>>;

const PAGE: usize = 4096;
/// What `large.rs` puts before the user pointer at the default alignment.
const HEADER: usize = 32;
/// The smallest size a shrunk LARGE block keeps its run for
/// (`LARGE_KEEP_MIN`).
const KEEP_MIN: usize = 16 << 10;

fn heap() -> ArenaHeap {
    Heap::new(Counting::new(arena(4 << 20)))
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Every byte natively; under Miri a sparse sample, both ends included.
const STRIDE: usize = if cfg!(miri) { 509 } else { 1 };

fn positions(len: usize) -> impl Iterator<Item = usize> {
    (0..len).step_by(STRIDE).chain([len - 1])
}

fn fill(p: NonNull<u8>, len: usize, seed: u8) {
    for i in positions(len) {
        unsafe { p.as_ptr().add(i).write(seed.wrapping_add(i as u8)) };
    }
}

/// Checks the first `keep` bytes of what `fill(p, written, seed)` wrote.
fn check(p: NonNull<u8>, keep: usize, written: usize, seed: u8) {
    for i in positions(written).filter(|&i| i < keep) {
        assert_eq!(
            unsafe { p.as_ptr().add(i).read() },
            seed.wrapping_add(i as u8)
        );
    }
}

/// A LARGE request whose run is exactly `pages` pages.
fn size_for_pages(pages: usize) -> usize {
    pages * PAGE - HEADER
}

#[test]
fn a_large_block_shrunk_to_16_kib_or_more_keeps_its_run() {
    let heap = heap();
    let p = heap.allocate(layout(48_000)).unwrap();
    fill(p, 48_000, 3);
    let mapped = heap.stats().mapped_bytes;
    // A class's size (under SMALL_MAX) of at least 16 KiB.
    let new = 30_000;
    assert!((KEEP_MIN..=SMALL_MAX).contains(&new));
    let q = unsafe { heap.reallocate(p, layout(new)) }.unwrap();
    assert_eq!(q, p, "no move, no copy");
    check(q, new, 48_000, 3);
    assert_eq!(
        heap.usable_size(q),
        Ok((HEADER + new).next_multiple_of(PAGE) - HEADER)
    );
    let stats = heap.stats();
    assert_eq!(stats.large_runs, 1);
    assert_eq!(stats.live_bytes, new);
    assert_eq!(stats.small_zones, 0, "no zone was made for it");
    // The pages past the new end went back to the provider.
    let cut = (HEADER + 48_000).next_multiple_of(PAGE) - (HEADER + new).next_multiple_of(PAGE);
    assert_eq!(mapped - stats.mapped_bytes, cut);
    // Every check still holds: the block frees once, and only once.
    unsafe { heap.deallocate(q) }.unwrap();
    assert_eq!(
        unsafe { heap.deallocate(q) },
        Err(HeapError::InvalidPointer)
    );
    assert_eq!(heap.stats().large_runs, 0);
}

#[test]
fn a_large_block_shrunk_below_16_kib_moves_to_a_zone() {
    let heap = heap();
    let p = heap.allocate(layout(48_000)).unwrap();
    fill(p, 48_000, 5);
    let q = unsafe { heap.reallocate(p, layout(KEEP_MIN - 1)) }.unwrap();
    assert_ne!(q, p);
    check(q, KEEP_MIN - 1, 48_000, 5);
    let stats = heap.stats();
    assert_eq!(stats.large_runs, 0, "the run was freed");
    assert_eq!(stats.small_zones, 1);
    assert_eq!(heap.usable_size(q), Ok(KEEP_MIN - 1));
    // The old pointer is dead.
    assert!(matches!(
        unsafe { heap.reallocate(p, layout(10)) },
        Err(ReallocError::Invalid(_))
    ));
    unsafe { heap.deallocate(q) }.unwrap();
}

#[test]
fn a_large_block_shrunk_to_a_fifth_keeps_its_run_from_16_kib() {
    let heap = heap();
    let p = heap.allocate(layout(90_000)).unwrap();
    fill(p, 90_000, 6);
    let q = unsafe { heap.reallocate(p, layout(KEEP_MIN)) }.unwrap();
    assert_eq!(q, p, "kept, however much smaller");
    check(q, KEEP_MIN, 90_000, 6);
    assert_eq!(heap.stats().large_runs, 1);
    assert_eq!(heap.stats().small_zones, 0);
    unsafe { heap.deallocate(q) }.unwrap();
}

#[test]
fn a_kept_run_grows_and_shrinks_again_with_its_contents() {
    let heap = heap();
    let mut p = heap.allocate(layout(40_000)).unwrap();
    fill(p, 40_000, 7);
    let mut kept = 40_000;
    for new in [24_000, 60_000, 17_000, 100_000, 50_001, 33_000] {
        p = unsafe { heap.reallocate(p, layout(new)) }.unwrap();
        kept = kept.min(new);
        check(p, kept, 40_000, 7);
        assert_eq!(heap.stats().live_bytes, new);
    }
    unsafe { heap.deallocate(p) }.unwrap();
    assert_eq!(heap.stats().live_blocks, 0);
}

#[test]
fn a_shrink_to_an_alignment_the_block_lacks_moves() {
    let heap = heap();
    let p = heap.allocate(layout(48_000)).unwrap();
    fill(p, 48_000, 9);
    // The user pointer sits 32 bytes into a page: never 8 KiB aligned.
    let align = 8192;
    assert_ne!(p.as_ptr().addr() % align, 0);
    let q = unsafe { heap.reallocate(p, Layout::from_size_align(30_000, align).unwrap()) }.unwrap();
    assert_eq!(q.as_ptr().addr() % align, 0);
    check(q, 30_000, 48_000, 9);
    unsafe { heap.deallocate(q) }.unwrap();
}

#[test]
fn a_broken_header_is_refused_by_the_shrink() {
    let heap = heap();
    let p = heap.allocate(layout(48_000)).unwrap();
    // The header's guard word, 32 bytes before the user pointer.
    let header = unsafe { p.as_ptr().sub(HEADER) };
    let saved = unsafe { header.cast::<usize>().read() };
    unsafe { header.cast::<usize>().write(saved ^ 1) };
    assert_eq!(
        unsafe { heap.reallocate(p, layout(30_000)) },
        Err(ReallocError::Invalid(HeapError::Corrupted))
    );
    unsafe { header.cast::<usize>().write(saved) };
    unsafe { heap.deallocate(p) }.unwrap();
}

#[test]
fn the_cache_serves_an_exact_length_first_the_most_recent_one() {
    let heap = heap();
    // Four runs (10, 12, 10 and 11 pages) and live blocks between them, so
    // that no run can grow into its neighbour.
    let pages = [10, 12, 10, 11];
    let mut runs = Vec::new();
    let mut fences = Vec::new();
    for &n in &pages {
        runs.push(heap.allocate(layout(size_for_pages(n))).unwrap());
        fences.push(heap.allocate(layout(SMALL_MAX + 1)).unwrap());
    }
    for &p in &runs {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(heap.stats().large_cached_bytes, 43 * PAGE);
    // Exactly 10 pages: the second 10-page run (freed last), then the first.
    let a = heap.allocate(layout(size_for_pages(10))).unwrap();
    assert_eq!(a, runs[2]);
    let b = heap.allocate(layout(size_for_pages(10))).unwrap();
    assert_eq!(b, runs[0]);
    // 10 pages again: none is left; the smallest longer run (11 pages).
    let c = heap.allocate(layout(size_for_pages(10))).unwrap();
    assert_eq!(c, runs[3]);
    // 12 pages: exactly the last one.
    let d = heap.allocate(layout(size_for_pages(12))).unwrap();
    assert_eq!(d, runs[1]);
    assert_eq!(heap.stats().large_cached_bytes, 0);
    for p in [a, b, c, d].into_iter().chain(fences) {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}

#[test]
fn a_large_run_grows_over_the_cached_run_after_it() {
    let heap = heap();
    // LARGE runs of 10, 10 and 9 pages (9 pages: the smallest LARGE run).
    let a = heap.allocate(layout(size_for_pages(10))).unwrap();
    let b = heap.allocate(layout(size_for_pages(10))).unwrap();
    let fence = heap.allocate(layout(size_for_pages(9))).unwrap();
    // First fit: the runs lie one after the other.
    assert_eq!(b.as_ptr().addr(), a.as_ptr().addr() + 10 * PAGE);
    assert_eq!(fence.as_ptr().addr(), b.as_ptr().addr() + 10 * PAGE);
    fill(a, size_for_pages(10), 11);
    unsafe { heap.deallocate(b) }.unwrap();
    let before = heap.stats();
    assert_eq!(before.large_cached_bytes, 10 * PAGE);
    // 15 pages: the 10 cached ones after it give the 5 it lacks.
    let grown = unsafe { heap.reallocate(a, layout(size_for_pages(15))) }.unwrap();
    assert_eq!(grown, a, "grown in place, no copy");
    check(grown, size_for_pages(10), size_for_pages(10), 11);
    let after = heap.stats();
    assert_eq!(after.large_cached_bytes, 0, "the neighbour left the cache");
    assert_eq!(after.large_runs, 2);
    // The 5 pages the growth did not need went back to the provider.
    assert_eq!(before.mapped_bytes - after.mapped_bytes, 5 * PAGE);
    // The old neighbour's pointer is refused.
    assert_eq!(
        unsafe { heap.deallocate(b) },
        Err(HeapError::InvalidPointer)
    );
    for p in [grown, fence] {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}

#[test]
fn a_cached_neighbour_too_small_for_the_growth_stays_cached() {
    let heap = heap();
    let a = heap.allocate(layout(size_for_pages(10))).unwrap();
    let b = heap.allocate(layout(size_for_pages(9))).unwrap();
    let fence = heap.allocate(layout(size_for_pages(9))).unwrap();
    assert_eq!(b.as_ptr().addr(), a.as_ptr().addr() + 10 * PAGE);
    assert_eq!(fence.as_ptr().addr(), b.as_ptr().addr() + 9 * PAGE);
    fill(a, size_for_pages(10), 13);
    unsafe { heap.deallocate(b) }.unwrap();
    // 10 more pages: the 9 cached ones cannot give them; the block moves.
    let moved = unsafe { heap.reallocate(a, layout(size_for_pages(20))) }.unwrap();
    assert_ne!(moved, a);
    check(moved, size_for_pages(10), size_for_pages(10), 13);
    // The neighbour is still cached, and so is the run the block left.
    assert_eq!(heap.stats().large_cached_bytes, 9 * PAGE + 10 * PAGE);
    for p in [moved, fence] {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}
