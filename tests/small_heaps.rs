//! Small heaps: a kernel's or a microcontroller's few pages. The heap must
//! be useful from a 16 KiB region on (issue 11): every class whose block
//! fits works, at least half of the region holds live data, and a `static`
//! heap costs a page at most before its first use.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{Counting, OwnedArena, Rng, arena_aligned};
use ft_malloc::NUM_CLASSES;
use ft_malloc::{ArenaProvider, Heap, MIN_PAGE_SIZE, SizeClass};

type SmallHeap = Heap<Counting<OwnedArena>>;

/// A heap over a page-aligned region of `bytes`, as a kernel would give it.
fn small_heap(bytes: usize) -> SmallHeap {
    Heap::new(Counting::new(arena_aligned(bytes, MIN_PAGE_SIZE)))
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Writes the block's first and last byte, so overlapping blocks show.
fn touch(p: NonNull<u8>, size: usize, tag: u8) {
    unsafe {
        p.as_ptr().write(tag);
        p.as_ptr().add(size - 1).write(tag);
    }
}

fn check(p: NonNull<u8>, size: usize, tag: u8) {
    unsafe {
        assert_eq!(p.as_ptr().read(), tag);
        assert_eq!(p.as_ptr().add(size - 1).read(), tag);
    }
}

#[test]
fn a_static_heap_costs_at_most_a_page() {
    let size = core::mem::size_of::<Heap<ArenaProvider>>();
    println!("Heap<ArenaProvider>: {size} bytes");
    assert!(size <= 4096, "Heap<ArenaProvider> is {size} bytes");
}

#[test]
fn half_of_16_kib_holds_16_byte_blocks() {
    let heap = small_heap(16 << 10);
    let mut blocks = Vec::new();
    while let Some(p) = heap.allocate(layout(16)) {
        touch(p, 16, blocks.len() as u8);
        blocks.push(p);
    }
    let live = blocks.len() * 16;
    assert!(live >= 8 << 10, "only {live} bytes of 16-byte blocks");
    for (i, &p) in blocks.iter().enumerate() {
        check(p, 16, i as u8);
        unsafe { heap.deallocate(p).unwrap() };
    }
    assert_eq!(heap.stats().live_blocks, 0);
}

/// The largest block a fresh 16 KiB region can hold: all its 4 pages (the
/// page map of so small a span lives inside the `Heap`), less a LARGE run's
/// 32-byte header. Larger requests cannot fit, whatever the heap does with
/// its classes: that is what "every class works" can mean in 16 KiB.
const LARGEST_IN_16_KIB: usize = 4 * MIN_PAGE_SIZE - 32;

/// Every class works in a fresh 16 KiB region up to that bound: the
/// smallest and the largest request of each class (cut at the bound), each
/// on a fresh heap, and the bound itself; one byte more is refused.
#[test]
fn every_size_that_fits_works_in_a_fresh_16_kib_region() {
    let mut sizes = vec![LARGEST_IN_16_KIB];
    let mut smallest = 0;
    for index in 0..NUM_CLASSES {
        let class = SizeClass::from_index(index).unwrap();
        for size in [smallest, class.block_size()] {
            sizes.push(size.min(LARGEST_IN_16_KIB));
        }
        smallest = class.block_size() + 1;
    }
    for size in sizes {
        let heap = small_heap(16 << 10);
        let p = heap.allocate(layout(size)).unwrap_or_else(|| {
            panic!("{size} bytes refused: {:?}", heap.stats());
        });
        // (A 0-byte block has no byte to write: its first is the slack
        // canary.)
        if size > 0 {
            touch(p, size, size as u8);
            check(p, size, size as u8);
        }
        unsafe { heap.deallocate(p).unwrap() };
    }
    let heap = small_heap(16 << 10);
    assert!(heap.allocate(layout(LARGEST_IN_16_KIB + 1)).is_none());
    // The page map took nothing from the region.
    assert_eq!(heap.stats().metadata_bytes, 0);
}

/// Allocates mixed 16..2048-byte blocks (`Rng::mixed_size`) until the heap
/// has refused `refusals` requests in a row; returns the live requested
/// bytes at the first refusal and at the end (every block still checked and
/// freed).
fn fill_mixed(heap: &SmallHeap, seed: u64, refusals: usize) -> (usize, usize) {
    let mut rng = Rng(seed);
    let mut blocks = Vec::new();
    let (mut live, mut at_first, mut in_a_row) = (0, None, 0);
    while in_a_row < refusals {
        let size = rng.mixed_size();
        let Some(p) = heap.allocate(layout(size)) else {
            at_first.get_or_insert(live);
            in_a_row += 1;
            continue;
        };
        in_a_row = 0;
        touch(p, size, blocks.len() as u8);
        blocks.push((p, size));
        live += size;
    }
    for (i, &(p, size)) in blocks.iter().enumerate() {
        check(p, size, i as u8);
        unsafe { heap.deallocate(p).unwrap() };
    }
    (at_first.unwrap_or(live), live)
}

/// Half of 64 KiB holds a mixed load at the heap's *first* refusal, on
/// every seed (60-70% over these seeds), and 67-73% once it is full (it
/// refuses 64 requests in a row). Before spans (`src/span.rs`) the first
/// refusal came at 43-64%, under half on one seed of these 8: a full
/// class's request found no page, while free blocks of smaller classes lay
/// side by side.
#[test]
fn half_of_64_kib_holds_a_mixed_load() {
    // One seed under Miri (which interprets every access), eight natively.
    let seeds = if cfg!(miri) { 1 } else { 8 };
    for seed in 1..=seeds {
        let heap = small_heap(64 << 10);
        let (first, full) = fill_mixed(&heap, seed, 64);
        assert!(
            first >= 32 << 10,
            "seed {seed}: only {first} bytes at the first refusal"
        );
        assert!(full >= 42 << 10, "seed {seed}: only {full} bytes live");
    }
}

/// A live block from [`churn`]: address, size, and the tag at its ends.
type Tagged = (NonNull<u8>, usize, u8);

/// Runs `steps` steps of churn: below `target` live requested bytes it
/// allocates a mixed size, else frees a random block (its ends checked).
/// Panics on a refusal, naming the seed and the step. Returns the blocks
/// still live.
fn churn(heap: &SmallHeap, seed: u64, target: usize, steps: usize) -> Vec<Tagged> {
    let mut rng = Rng(seed);
    let mut blocks: Vec<Tagged> = Vec::new();
    let mut live = 0;
    for step in 0..steps {
        if live < target || blocks.is_empty() {
            let size = rng.mixed_size();
            let p = heap
                .allocate(layout(size))
                .unwrap_or_else(|| panic!("seed {seed}: {size} bytes refused at step {step}"));
            touch(p, size, step as u8);
            blocks.push((p, size, step as u8));
            live += size;
        } else {
            let (p, size, tag) = blocks.swap_remove(rng.below(blocks.len()));
            check(p, size, tag);
            unsafe { heap.deallocate(p).unwrap() };
            live -= size;
        }
    }
    blocks
}

/// Frees blocks from [`churn`], checking their ends.
fn free_churned(heap: &SmallHeap, blocks: Vec<Tagged>) {
    for (p, size, tag) in blocks {
        check(p, size, tag);
        unsafe { heap.deallocate(p).unwrap() };
    }
}

/// The benchmark's minimum-region load (`--min-region`, BENCHMARKS.md):
/// 256 KiB of mixed requests live, 20,000 steps of churn, here with this
/// file's generator. It runs in 336 KiB on every seed (these seeds need
/// 324-328 KiB with the pool, `src/coalesce/`; talc needs 312 KiB on the
/// benchmark's). With zones alone it needed 372-380 KiB, and before spans
/// 396-408 KiB.
#[test]
#[cfg_attr(miri, ignore)]
fn the_minimum_region_load_runs_in_336_kib() {
    for seed in 1..=4 {
        let heap = small_heap(336 << 10);
        let blocks = churn(&heap, seed, 256 << 10, 20_000);
        free_churned(&heap, blocks);
    }
}

/// blog_os's heap: 100 KiB. A mixed load with churn runs in the pool's
/// segments (TINY blocks in zones until the pool has one), not in a page
/// run per block (which took about 204,000 provider calls before issue 11).
#[test]
fn a_100_kib_heap_runs_a_mixed_load_without_a_run_per_block() {
    let heap = small_heap(100 << 10);
    // Keep about 24 KiB live: allocate below it, else free.
    let steps = if cfg!(miri) { 2_000 } else { 20_000 };
    let blocks = churn(&heap, 7, 24 << 10, steps);
    let stats = heap.stats();
    let calls = stats.map_calls + stats.unmap_calls + stats.resize_calls;
    // Segments, mostly kept (26 calls with zones alone).
    println!("{calls} provider calls");
    assert!(calls < 100, "{calls} provider calls");
    free_churned(&heap, blocks);
}

#[test]
fn a_large_arena_still_gets_full_zones() {
    let heap = small_heap(8 << 20);
    let p = heap.allocate(layout(16)).unwrap();
    let zone = heap.stats().mapped_bytes;
    assert_eq!(zone, SizeClass::for_size(16).unwrap().zone_bytes());
    unsafe { heap.deallocate(p).unwrap() };
}

/// Fills a fresh 100 KiB region (blog_os's heap) with mixed 16..2048-byte
/// blocks until the first refusal; returns the live requested bytes then.
fn fill_100_kib(seed: u64) -> usize {
    let heap = small_heap(100 << 10);
    fill_mixed(&heap, seed, 1).0
}

/// blog_os's 100 KiB heap holds at least 90% of mixed 16..2048-byte blocks
/// at the first refusal, on every seed: SMALL requests of a small region
/// come from the pool (`src/coalesce/`), where freed neighbours join. With
/// zones alone it was 64-73% (talc: 95.5-96.1%, linked_list_allocator
/// 98.5-99.3%, bench `--fill`).
#[test]
fn blog_os_heap_fills_to_90_percent() {
    let seeds = if cfg!(miri) { 1 } else { 5 };
    for seed in 1..=seeds {
        let first = fill_100_kib(seed);
        let share = first * 1000 / (100 << 10);
        println!("seed {seed}: {first} bytes at the first refusal ({share}‰)");
        assert!(
            first * 10 >= 9 * (100 << 10),
            "seed {seed}: only {first} bytes ({share}‰) at the first refusal"
        );
    }
}

/// Page-aligned 4 KiB blocks (a kernel's page tables) fill every page of a
/// 100 KiB region, as many as linked_list_allocator fits: 25. They take
/// bare runs (`coalesce/bare.rs`) with no header.
#[test]
fn page_aligned_pages_fill_100_kib() {
    let heap = small_heap(100 << 10);
    let page = Layout::from_size_align(4096, 4096).unwrap();
    let mut blocks = Vec::new();
    while let Some(p) = heap.allocate(page) {
        assert!(p.as_ptr().addr().is_multiple_of(4096));
        touch(p, 4096, blocks.len() as u8);
        blocks.push(p);
    }
    assert_eq!(blocks.len(), 25);
    assert_eq!(heap.stats().live_bytes, 25 * 4096);
    for (i, &p) in blocks.iter().enumerate() {
        check(p, 4096, i as u8);
        unsafe { heap.deallocate(p).unwrap() };
    }
    assert!(unsafe { heap.deallocate(blocks[0]) }.is_err());
    assert_eq!(heap.stats().live_blocks, 0);
}
