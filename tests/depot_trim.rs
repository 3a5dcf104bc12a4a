//! The depot's surplus (`src/cache/depot_trim.rs`): magazines of a class in
//! use that nobody took for a whole sweep interval go back to the zones,
//! and the zones that empties are released; a batch loop, whose depot
//! empties every round, never gives anything back. Over real `mmap`.

mod common;

use std::alloc::Layout;

use ft_malloc::FrontCache;

use common::{decommit_counted_heap as heap, decommits};

/// A wave of 2000 blocks of 2000 B (class 2048: 16 per magazine, a depot of
/// 64 magazines) goes out and back; then the class stays in use at a low
/// level, 40 blocks out and back, so its cache exchanges magazines with
/// the depot all the time, but never reaches the bottom 60 of them: they
/// go back, and the zones they leave empty are released.
#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn a_depot_surplus_of_a_class_in_use_goes_back_to_the_zones() {
    let (cached_after_wave, stats) = wave_then_trickle(2000);
    // Two magazines in the cache and the few the loop cycles through the
    // depot; before, the 64 of the wave stayed there (1056 blocks).
    assert!(
        stats.cached_blocks <= 8 * 16,
        "{} blocks cached ({cached_after_wave} after the wave)",
        stats.cached_blocks
    );
}

/// The same with blocks of 64 B: magazines of 31 blocks, 2 KiB, under
/// `TRIM_MIN_MAGAZINE_BYTES` (a trim would cost a zone operation per
/// block for little memory): the depot keeps its blocks.
#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn a_small_class_keeps_its_depot() {
    let (cached_after_wave, stats) = wave_then_trickle(64);
    assert!(
        stats.cached_blocks + 100 >= cached_after_wave,
        "{} blocks cached ({cached_after_wave} after the wave)",
        stats.cached_blocks
    );
}

/// 2000 blocks of `size` out and back (a wave), then 3000 rounds of 40
/// blocks out and back in the same class, each block checked. Returns the
/// blocks cached after the wave, and the heap's stats at the end (before
/// the cache is flushed).
fn wave_then_trickle(size: usize) -> (usize, ft_malloc::Stats) {
    let heap = heap();
    let mut cache = FrontCache::new();
    let layout = Layout::from_size_align(size, 8).unwrap();
    let wave: Vec<_> = (0..2000)
        .map(|_| cache.allocate(&heap, layout).unwrap())
        .collect();
    for b in wave {
        unsafe { cache.deallocate(&heap, b) }.unwrap();
    }
    let (cached_after_wave, mapped_after_wave) =
        (heap.stats().cached_blocks, heap.stats().mapped_bytes);
    assert!(
        cached_after_wave >= 1000,
        "{cached_after_wave} blocks cached"
    );
    for round in 0..3000u32 {
        let blocks: Vec<_> = (0..40)
            .map(|_| cache.allocate(&heap, layout).unwrap())
            .collect();
        for (i, b) in blocks.iter().enumerate() {
            unsafe { b.as_ptr().cast::<u32>().write(round ^ i as u32) };
        }
        for (i, b) in blocks.into_iter().enumerate() {
            assert_eq!(unsafe { b.as_ptr().cast::<u32>().read() }, round ^ i as u32);
            unsafe { cache.deallocate(&heap, b) }.unwrap();
        }
    }
    let stats = heap.stats();
    if size >= 1024 {
        // The zones the drained blocks left empty went.
        assert!(
            stats.mapped_bytes < mapped_after_wave / 2,
            "{} of {mapped_after_wave} bytes still mapped",
            stats.mapped_bytes
        );
    }
    cache.flush(&heap);
    (cached_after_wave, stats)
}

/// `bench/pairs_callgrind.sh`'s shape: a batch of 4 KiB blocks out, then
/// back, over and over; 500 of them, which the cache and the depot (64
/// magazines of 8) hold whole, so that, once warm, no block goes back to
/// its zone. The depot empties in every round, so its low-water mark is 0
/// at every visit: nothing is drained, no zone is released and mapped
/// again, no page decommitted. (A trim that drained all but one magazine
/// at each visit, ignoring the mark, made about 100 maps and unmaps and 70 decommits here.)
#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn a_batch_loop_keeps_its_depot() {
    let heap = heap();
    let mut cache = FrontCache::new();
    let layout = Layout::from_size_align(4096, 16).unwrap();
    let provider_calls = |heap: &ft_malloc::Heap<common::DecommitCounted>| {
        let s = heap.stats();
        (s.map_calls, s.unmap_calls, decommits(heap))
    };
    let mut warm = (0, 0, 0);
    for round in 0..600 {
        if round == 20 {
            warm = provider_calls(&heap);
        }
        let batch: Vec<_> = (0..500)
            .map(|_| cache.allocate(&heap, layout).unwrap())
            .collect();
        for b in batch {
            unsafe { cache.deallocate(&heap, b) }.unwrap();
        }
    }
    assert_eq!(
        provider_calls(&heap),
        warm,
        "(map, unmap, decommit) calls after 580 steady rounds, against after 20"
    );
    cache.flush(&heap);
}
