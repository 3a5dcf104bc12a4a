//! The LARGE cache (`src/large.rs`, `src/large/cache.rs`): freed runs are
//! reused across threads and sizes, within bounds, and age out when LARGE
//! traffic stops. Over real `mmap`.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use ft_malloc::{FrontCache, Heap};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Sizes between 40 KiB and 60 KiB, a different stream per `seed`.
fn sizes(seed: u64, n: usize) -> Vec<usize> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (40 << 10) + (x >> 33) as usize % (20 << 10)
        })
        .collect()
}

fn fill(heap: &Heap<common::Mmap>, sizes: &[usize]) -> Vec<(NonNull<u8>, usize)> {
    sizes
        .iter()
        .map(|&size| {
            let p = heap.allocate(layout(size)).unwrap();
            unsafe { p.as_ptr().write_bytes(0xa5, size) };
            (p, size)
        })
        .collect()
}

fn free_all(heap: &Heap<common::Mmap>, blocks: Vec<(NonNull<u8>, usize)>) {
    for (p, _) in blocks {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}

/// mstress's pattern: a thread frees a burst of LARGE blocks as it ends,
/// another thread allocates LARGE blocks of other sizes. The runs must be
/// reused, not unmapped and mapped again (with 16 cache slots, 32 of these
/// 48 runs were unmapped and mapped again).
#[test]
fn a_burst_of_large_frees_serves_other_sizes_in_another_thread() {
    let heap = Heap::new(common::Mmap);
    let blocks = fill(&heap, &sizes(1, 48));
    let sent: Vec<usize> = blocks.iter().map(|(p, _)| p.as_ptr().addr()).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for addr in sent {
                let p = NonNull::new(addr as *mut u8).unwrap();
                unsafe { heap.deallocate(p) }.unwrap();
            }
        });
    });
    let before = heap.stats();
    assert_eq!(before.large_runs, 0);
    let again = std::thread::scope(|s| {
        s.spawn(|| {
            fill(&heap, &sizes(2, 48))
                .into_iter()
                .map(|(p, n)| (p.as_ptr().addr(), n))
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap()
    });
    let after = heap.stats();
    let maps = after.map_calls - before.map_calls;
    let unmaps = after.unmap_calls - before.unmap_calls;
    println!(
        "{maps} maps, {unmaps} unmaps, {} resizes",
        after.resize_calls - before.resize_calls
    );
    assert!(
        maps <= 4 && unmaps <= 4,
        "{maps} maps and {unmaps} unmaps for 48 runs"
    );
    free_all(
        &heap,
        again
            .into_iter()
            .map(|(a, n)| (NonNull::new(a as *mut u8).unwrap(), n))
            .collect(),
    );
}

/// When LARGE frees stop, the heap's small-block traffic ages the cache:
/// runs nobody reuses are unmapped after a couple of rounds of a front
/// cache's depot sweep (they stayed for ever before).
#[test]
fn cached_runs_age_out_when_large_traffic_stops() {
    let heap = Heap::new(common::Mmap);
    let blocks = fill(&heap, &sizes(3, 24));
    free_all(&heap, blocks);
    assert!(heap.stats().large_cached_bytes > 24 * (40 << 10));
    let mut cache = FrontCache::new();
    for _ in 0..500 {
        let batch: Vec<_> = (0..200)
            .map(|_| cache.allocate(&heap, layout(64)).unwrap())
            .collect();
        for p in batch {
            unsafe { cache.deallocate(&heap, p) }.unwrap();
        }
    }
    assert_eq!(heap.stats().large_cached_bytes, 0);
    cache.flush(&heap);
}

/// While LARGE frees go on, only the bounds limit the cache: at most 64
/// runs and 64 MiB, the oldest runs unmapped first.
#[test]
fn the_cache_holds_at_most_64_runs_and_64_mib() {
    let heap = Heap::new(common::Mmap);
    let small = fill(&heap, &sizes(4, 100));
    free_all(&heap, small);
    let cached = heap.stats().large_cached_bytes;
    assert!(
        (64 * (40 << 10)..=64 * (64 << 10)).contains(&cached),
        "{cached} bytes cached for 100 runs of 40-60 KiB"
    );
    let big = fill(&heap, &vec![2 << 20; 40]);
    free_all(&heap, big);
    let cached = heap.stats().large_cached_bytes;
    assert!(cached <= 64 << 20, "{cached} bytes cached");
    assert!(cached >= 30 * (2 << 20), "{cached} bytes cached");
}

/// The cache's size bins (`src/large/cache.rs`) keep the policy of one
/// list: the smallest run that fits, in the request's bin or a higher one,
/// unless it is more than 4x too big; else the largest smaller run, grown.
#[test]
fn a_request_takes_the_smallest_fitting_run_across_size_bins() {
    let heap: Heap<common::Mmap> = Heap::new(common::Mmap);
    // Raise the adaptive threshold so that runs up to 2 MiB are cached.
    let big = heap.allocate(layout(2 << 20)).unwrap();
    unsafe { heap.deallocate(big) }.unwrap();
    let sizes = [40 << 10, 100 << 10, 300 << 10, 1536 << 10];
    let runs: Vec<NonNull<u8>> = sizes
        .iter()
        .map(|&s| heap.allocate(layout(s)).unwrap())
        .collect();
    for &p in &runs {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    let maps = heap.stats().map_calls;
    let take = |size: usize| {
        let p = heap.allocate(layout(size)).unwrap();
        unsafe { p.as_ptr().write_bytes(1, size) };
        p
    };
    let a = take(90 << 10);
    assert_eq!(a, runs[1], "90 KiB: the 100 KiB run, same bin");
    let b = take(200 << 10);
    assert_eq!(b, runs[2], "200 KiB: the 300 KiB run, a bin above");
    let c = take(1200 << 10);
    assert_eq!(c, runs[3], "1.2 MiB: the 1.5 MiB run");
    assert_eq!(heap.stats().map_calls, maps, "all from the cache");
    // Only the 40 KiB run is left: a request 4x past it grows it.
    let d = take(170 << 10);
    let stats = heap.stats();
    assert_eq!(stats.map_calls, maps, "grown, not mapped");
    assert_eq!(stats.large_cached_bytes, 0);
    // A run more than 4x too big waits for a bigger request.
    unsafe { heap.deallocate(c) }.unwrap();
    let e = take(100 << 10);
    assert_ne!(e, c);
    assert_eq!(heap.stats().map_calls, maps + 1);
    for p in [a, b, d, e] {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}
