//! Pages of free blocks given back inside zones that still hold live
//! blocks (`src/purge.rs`), over real `mmap`: how many pages stay resident
//! (`mincore`), that purged blocks serve again, that a double free of one
//! is still caught, and that a class in steady use is never purged.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use ft_malloc::{FrontCache, Heap, HeapError, HeapVisitor, ZoneInfo};

use common::{DecommitCounted as Counted, decommit_counted_heap as heap, decommits};

/// 16 KiB blocks: four pages each, of which a free block keeps one.
const BLOCK: usize = 16 * 1024;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

#[derive(Default)]
struct Zones(Vec<ZoneInfo>);

impl HeapVisitor for Zones {
    fn zone(&mut self, zone: &ZoneInfo) {
        self.0.push(*zone);
    }
}

/// Resident pages of the heap's only zone of `block_size` blocks.
fn resident_pages(heap: &Heap<Counted>, block_size: usize) -> usize {
    let mut zones = Zones::default();
    heap.visit(&mut zones);
    let zone = zones
        .0
        .iter()
        .find(|z| z.block_size == block_size)
        .expect("a zone of that class");
    let mut vec = vec![0u8; zone.len / 4096];
    let rc = unsafe { libc::mincore(zone.start as *mut _, zone.len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    vec.iter().filter(|v| **v & 1 != 0).count()
}

/// 100 blocks written in full, then all but the last freed: the zone keeps
/// a page per free block (its link and free mark), not four.
fn fill_then_leave_one(heap: &Heap<Counted>) -> (Vec<NonNull<u8>>, NonNull<u8>) {
    let mut blocks: Vec<_> = (0..100)
        .map(|_| heap.allocate(layout(BLOCK)).unwrap())
        .collect();
    for b in &blocks {
        unsafe { b.as_ptr().write_bytes(0xa5, BLOCK) };
    }
    let kept = blocks.pop().unwrap();
    for &b in &blocks {
        unsafe { heap.deallocate(b) }.unwrap();
    }
    (blocks, kept)
}

/// Blocks a purge interval holds: 256 KiB of 16 KiB blocks (1/8 of the
/// 100 blocks is less).
const INTERVAL: usize = 16;

#[test]
#[cfg_attr(miri, ignore)] // real mmap and mincore
fn a_zone_left_by_most_of_its_blocks_gives_their_pages_back() {
    let heap = heap();
    let (_, kept) = fill_then_leave_one(&heap);
    let resident = resident_pages(&heap, BLOCK);
    // Before: all 400 block pages and the header stayed resident. Now the
    // 99 free blocks' heads, the live block, the header; and the blocks of
    // the last two intervals (not yet judged) with all their pages.
    assert!(
        resident <= 99 + 4 + 2 + 2 * INTERVAL * 3,
        "{resident} pages resident with one block of 100 live"
    );
    // Each free block was decommitted once, not at every purge.
    let calls = decommits(&heap);
    assert!(calls <= 99, "{calls} decommits for 99 freed blocks");
    // The rest goes when the class is idle (here: `trim`), once each.
    heap.trim();
    let resident = resident_pages(&heap, BLOCK);
    assert!(
        resident <= 99 + 4 + 2,
        "{resident} pages resident after trim with one block of 100 live"
    );
    let calls = decommits(&heap);
    assert!(calls <= 99, "{calls} decommits for 99 freed blocks");
    // The live block is untouched.
    assert!((0..BLOCK).all(|i| unsafe { kept.as_ptr().add(i).read() } == 0xa5));
    unsafe { heap.deallocate(kept) }.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn purged_blocks_serve_again_and_their_double_free_is_caught() {
    let heap = heap();
    let (freed, kept) = fill_then_leave_one(&heap);
    assert!(decommits(&heap) > 0, "the zone was purged");
    // A purged block freed again: its free mark survived (it is in the
    // page the block keeps), on the locked path and on a cache's lock-free
    // one alike.
    assert_eq!(
        unsafe { heap.deallocate(freed[0]) },
        Err(HeapError::DoubleFree)
    );
    let mut cache = FrontCache::new();
    assert_eq!(
        unsafe { cache.deallocate(&heap, freed[1]) },
        Err(HeapError::DoubleFree)
    );
    // Every purged block is handed out again, holds what it is given, and
    // a zeroed allocation reads zero.
    let again: Vec<_> = (0..99)
        .map(|i| {
            let p = if i % 2 == 0 {
                heap.allocate(layout(BLOCK)).unwrap()
            } else {
                heap.allocate_zeroed(layout(BLOCK)).unwrap()
            };
            if i % 2 == 1 {
                assert!((0..BLOCK).all(|j| unsafe { p.as_ptr().add(j).read() } == 0));
            }
            unsafe { p.as_ptr().write_bytes(i as u8, BLOCK) };
            p
        })
        .collect();
    let mut zones = Zones::default();
    heap.visit(&mut zones);
    assert_eq!(
        zones.0.len(),
        1,
        "the purged blocks were reused, not new ones"
    );
    for (i, p) in again.iter().enumerate() {
        assert!((0..BLOCK).all(|j| unsafe { p.as_ptr().add(j).read() } == i as u8));
        unsafe { heap.deallocate(*p) }.unwrap();
    }
    unsafe { heap.deallocate(kept) }.unwrap();
}

/// A class in steady use, on the zone path (no cache): blocks freed and
/// allocated again one at a time, or a few at a time, with many live.
/// No purge: the zone never holds much more free memory than it did.
#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn a_class_in_steady_use_is_never_purged() {
    let heap = heap();
    let mut live: Vec<_> = (0..90)
        .map(|_| heap.allocate(layout(BLOCK)).unwrap())
        .collect();
    let mut seed = 1u64;
    for _ in 0..20_000 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        // Up to 4 blocks (64 KiB) out and back in.
        let n = 1 + (seed >> 40) as usize % 4;
        let at = (seed >> 20) as usize % (live.len() - n);
        for b in live.drain(at..at + n).collect::<Vec<_>>() {
            unsafe { heap.deallocate(b) }.unwrap();
        }
        for _ in 0..n {
            let b = heap.allocate(layout(BLOCK)).unwrap();
            unsafe { b.as_ptr().write_bytes(1, BLOCK) };
            live.push(b);
        }
    }
    assert_eq!(decommits(&heap), 0, "a steady class was purged");
    for b in live {
        unsafe { heap.deallocate(b) }.unwrap();
    }
}

/// A class in steady use in batches larger than a purge interval: 60
/// blocks (960 KiB) out and back, over and over, next to 40 live ones.
/// The first rounds may purge (a burst of frees looks like blocks left
/// behind until they are taken again), then the zone's patience has grown
/// past the batch and nothing more is purged. A rule that purged whatever
/// was freed past a threshold (512 KiB) decommitted 32 blocks per round
/// (9,600 calls in 300 rounds), and the next round faulted them in again.
#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn batches_larger_than_the_interval_are_not_purged_over_and_over() {
    let heap = heap();
    let live: Vec<_> = (0..40)
        .map(|_| heap.allocate(layout(BLOCK)).unwrap())
        .collect();
    let mut warm = 0;
    for round in 0..300 {
        if round == 20 {
            warm = decommits(&heap);
        }
        let batch: Vec<_> = (0..60)
            .map(|_| heap.allocate(layout(BLOCK)).unwrap())
            .collect();
        for &b in &batch {
            unsafe { b.as_ptr().write_bytes(1, BLOCK) };
        }
        for b in batch {
            unsafe { heap.deallocate(b) }.unwrap();
        }
    }
    let steady = decommits(&heap) - warm;
    assert!(warm <= 100, "{warm} decommits in the first 20 rounds");
    assert_eq!(
        steady, 0,
        "{steady} decommits in 280 steady rounds (warm-up: {warm})"
    );
    for b in live {
        unsafe { heap.deallocate(b) }.unwrap();
    }
}

/// Blocks of a page and more freed through a front cache: past two
/// magazines and a depot of `DEPOT_MAX_BYTES_PAGED`, they go back to their
/// zone, which gives their pages back (before, the depot kept 64 of them,
/// every page resident).
#[test]
#[cfg_attr(miri, ignore)] // real mmap and mincore
fn a_cache_keeps_few_blocks_of_a_page_and_more() {
    let heap = heap();
    let mut cache = FrontCache::new();
    let mut blocks: Vec<_> = (0..100)
        .map(|_| cache.allocate(&heap, layout(BLOCK)).unwrap())
        .collect();
    for b in &blocks {
        unsafe { b.as_ptr().write_bytes(0x5a, BLOCK) };
    }
    let kept = blocks.pop().unwrap();
    for b in blocks {
        unsafe { cache.deallocate(&heap, b) }.unwrap();
    }
    // 256 KiB of depot (16 blocks) and two magazines of two blocks.
    let cached = heap.stats().cached_blocks;
    assert!(cached <= 20, "{cached} blocks of 16 KiB cached");
    // Their pages, the live block's, a page per other free block, the
    // header, and the blocks of the last two intervals.
    let resident = resident_pages(&heap, BLOCK);
    assert!(
        resident <= 4 * 21 + 79 + 2 + 2 * INTERVAL * 3,
        "{resident} pages resident with {cached} blocks cached and one live"
    );
    unsafe { cache.deallocate(&heap, kept) }.unwrap();
    cache.flush(&heap);
}

/// The purge's walks of a zone's free list over the arena provider (whose
/// `decommit` does nothing), for Miri: two interval checks (each skips the
/// 26 blocks freed last and purges the 26 below) and `trim` (the other
/// 47), then every block is usable and holds what it is given.
#[test]
fn purging_over_an_arena_keeps_every_block() {
    const SIZE: usize = 10_000; // class 10240: 25 blocks per 256 KiB interval
    // A span of 32 zones' worth, so the class gets full zones (100 blocks).
    let heap: Heap<common::OwnedArena> = Heap::new(common::arena(33 << 20));
    let mut blocks: Vec<_> = (0..100)
        .map(|i| {
            let p = heap.allocate(layout(SIZE)).unwrap();
            unsafe { p.as_ptr().write(i as u8) };
            p
        })
        .collect();
    let mut zones = Zones::default();
    heap.visit(&mut zones);
    assert!(zones.0.iter().all(|z| z.capacity >= 100), "full zones");
    let kept = blocks.pop().unwrap();
    for b in blocks {
        unsafe { heap.deallocate(b) }.unwrap();
    }
    heap.trim();
    let again: Vec<_> = (0..99)
        .map(|i| {
            let p = heap.allocate(layout(SIZE)).unwrap();
            unsafe {
                p.as_ptr().write(i as u8);
                p.as_ptr().add(SIZE - 1).write(i as u8);
            }
            p
        })
        .collect();
    for (i, p) in again.into_iter().enumerate() {
        assert_eq!(unsafe { p.as_ptr().read() }, i as u8);
        assert_eq!(unsafe { p.as_ptr().add(SIZE - 1).read() }, i as u8);
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(unsafe { kept.as_ptr().read() }, 99);
    unsafe { heap.deallocate(kept) }.unwrap();
}
