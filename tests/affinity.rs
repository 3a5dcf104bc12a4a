//! Zone affinity (`src/cache/affinity.rs`): front caches refill their TINY
//! classes from zones of their own,
//! so that two owners that never share a block never share a cache line
//! (of blocks, or of the zone's size slots); and a depot deep in other
//! caches' magazines gives them out rather than let each owner carve more.
//! Over real mappings (`Mmap`: the span is unknown, so classes get full
//! zones of their own and caches get homes) and real threads; and over an
//! arena large enough for homes, for Miri (`make miri`).

mod common;

use std::alloc::Layout;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Barrier;

use common::{Mmap, OwnedArena, Rng, arena};
use ft_malloc::{BlockInfo, FrontCache, Heap, HeapVisitor, ZoneInfo};

const LINE: usize = 64;

/// Sizes that homes cover (TINY; `hosted/bench/cxx_objects.cpp`'s small
/// objects, with their vtable).
const SIZES: [usize; 4] = [24, 48, 64, 108];

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// The zone (its start) of every live block.
#[derive(Default)]
struct ZoneOf(HashMap<usize, usize>);

impl HeapVisitor for ZoneOf {
    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        self.0.insert(block.start, zone.start);
    }
}

/// Fails if a cache line holds blocks of both sets, or if both sets have
/// blocks in one zone (whose size slots would then share lines).
fn assert_apart<P: ft_malloc::PageProvider>(
    heap: &Heap<P>,
    a: &[NonNull<u8>],
    b: &[NonNull<u8>],
    what: &str,
) {
    let mut zones = ZoneOf::default();
    heap.visit(&mut zones);
    let zone_of = |p: &NonNull<u8>| zones.0[&p.as_ptr().addr()];
    let zones_a: std::collections::HashSet<usize> = a.iter().map(zone_of).collect();
    let shared_zones = b.iter().filter(|p| zones_a.contains(&zone_of(p))).count();
    let lines_a: std::collections::HashSet<usize> =
        a.iter().map(|p| p.as_ptr().addr() / LINE).collect();
    let shared_lines = b
        .iter()
        .filter(|p| lines_a.contains(&(p.as_ptr().addr() / LINE)))
        .count();
    assert_eq!(
        (shared_zones, shared_lines),
        (0, 0),
        "{what}: blocks of the second owner in the first one's zones and lines"
    );
}

#[test]
#[cfg_attr(miri, ignore = "real mappings and threads: too slow under Miri")]
fn caches_refilling_in_turn_get_zones_of_their_own() {
    let heap: Heap<Mmap> = Heap::new(Mmap);
    let mut caches = [FrontCache::new(), FrontCache::new()];
    let mut blocks: [Vec<NonNull<u8>>; 2] = [Vec::new(), Vec::new()];
    // One block each in turn: every refill of one cache comes between two
    // of the other's (a shared zone hands them neighbouring blocks).
    for i in 0..2000 {
        for (cache, mine) in caches.iter_mut().zip(&mut blocks) {
            mine.push(
                cache
                    .allocate(&heap, layout(SIZES[i % SIZES.len()]))
                    .unwrap(),
            );
        }
    }
    assert_apart(&heap, &blocks[0], &blocks[1], "refills in turn");
    for (cache, mine) in caches.iter_mut().zip(&mut blocks) {
        for p in mine.drain(..) {
            unsafe { cache.deallocate(&heap, p) }.unwrap();
        }
        cache.flush(&heap);
    }
    heap.trim();
    assert_eq!(heap.stats().live_blocks, 0);
}

#[test]
#[cfg_attr(miri, ignore = "real mappings and threads: too slow under Miri")]
fn a_cache_takes_its_own_magazines_back_from_the_depot() {
    let heap: Heap<Mmap> = Heap::new(Mmap);
    let (mut a, mut b) = (FrontCache::new(), FrontCache::new());
    let alloc = |cache: &mut FrontCache, n: usize| -> Vec<NonNull<u8>> {
        (0..n)
            .map(|i| {
                cache
                    .allocate(&heap, layout(if i % 2 == 0 { 32 } else { 112 }))
                    .unwrap()
            })
            .collect()
    };
    let (blocks_a, blocks_b) = (alloc(&mut a, 200), alloc(&mut b, 200));
    // `b` gives its magazines to the depot first, then `a`: the depot's top
    // magazines hold `a`'s blocks.
    for p in blocks_b {
        unsafe { b.deallocate(&heap, p) }.unwrap();
    }
    for p in &blocks_a {
        unsafe { a.deallocate(&heap, *p) }.unwrap();
    }
    let again = alloc(&mut b, 200);
    let blocks_a = alloc(&mut a, 200);
    assert_apart(&heap, &blocks_a, &again, "after a round through the depot");
    for p in again {
        unsafe { b.deallocate(&heap, p) }.unwrap();
    }
    for p in blocks_a {
        unsafe { a.deallocate(&heap, p) }.unwrap();
    }
    a.flush(&heap);
    b.flush(&heap);
}

#[test]
#[cfg_attr(miri, ignore = "real mappings and threads: too slow under Miri")]
fn a_flushed_cache_leaves_its_zone_to_the_next() {
    let heap: Heap<Mmap> = Heap::new(Mmap);
    let mut first = FrontCache::new();
    let mut blocks: Vec<_> = (0..300)
        .map(|_| first.allocate(&heap, layout(64)).unwrap())
        .collect();
    let kept = blocks.pop().unwrap(); // the zone stays, with room
    for p in blocks {
        unsafe { first.deallocate(&heap, p) }.unwrap();
    }
    first.flush(&heap); // a thread's exit
    heap.trim(); // the depot's blocks back to the zone
    assert_eq!(heap.stats().tiny_zones, 1);
    let mut next = FrontCache::new();
    // Fewer than the zone has free: `trim` gave its never-carved tail back.
    let blocks: Vec<_> = (0..200)
        .map(|_| next.allocate(&heap, layout(64)).unwrap())
        .collect();
    assert_eq!(
        heap.stats().tiny_zones,
        1,
        "the next cache claims the zone given up, and maps none"
    );
    for p in blocks.into_iter().chain([kept]) {
        unsafe { next.deallocate(&heap, p) }.unwrap();
    }
    next.flush(&heap);
}

/// `hosted/bench/private_churn.c`'s load, in TINY sizes: threads that
/// never share a block replace random blocks of their working sets, at
/// the same time. No cache line (nor zone) may hold live blocks of two of
/// them at the end.
#[test]
#[cfg_attr(miri, ignore = "real mappings and threads: too slow under Miri")]
fn threads_that_never_share_a_block_never_share_a_line() {
    const THREADS: usize = 2;
    const WORKING_SET: usize = 512;
    const STEPS: usize = 100_000;
    let heap: Heap<Mmap> = Heap::new(Mmap);
    let done = Barrier::new(THREADS + 1);
    let checked = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (heap, done, checked) = (&heap, &done, &checked);
                s.spawn(move || {
                    let mut cache = FrontCache::new();
                    let mut rng = Rng(0x9e37_79b9 * (t as u64 + 1));
                    let mut set: Vec<Option<NonNull<u8>>> = vec![None; WORKING_SET];
                    for _ in 0..STEPS {
                        let slot = rng.below(WORKING_SET);
                        if let Some(p) = set[slot].take() {
                            unsafe { cache.deallocate(heap, p) }.unwrap();
                        }
                        let size = 1 + rng.below(128);
                        let p = cache.allocate(heap, layout(size)).unwrap();
                        unsafe { p.as_ptr().write_bytes(t as u8, size) };
                        set[slot] = Some(p);
                    }
                    let live: Vec<NonNull<u8>> = set.iter().flatten().copied().collect();
                    let addrs: Vec<usize> = live.iter().map(|p| p.as_ptr().addr()).collect();
                    done.wait();
                    checked.wait();
                    for p in live {
                        unsafe { cache.deallocate(heap, p) }.unwrap();
                    }
                    cache.flush(heap);
                    addrs
                })
            })
            .collect();
        done.wait();
        // The zones of the live blocks, while the workers hold them (their
        // addresses come back through the joins).
        let mut zones = ZoneOf::default();
        heap.visit(&mut zones);
        checked.wait();
        let sets: Vec<Vec<usize>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let zone_of = |addr: &usize| zones.0[addr];
        for (i, a) in sets.iter().enumerate() {
            for b in &sets[i + 1..] {
                let zones_a: std::collections::HashSet<usize> = a.iter().map(zone_of).collect();
                let lines_a: std::collections::HashSet<usize> =
                    a.iter().map(|p| p / LINE).collect();
                let shared_zones = b.iter().filter(|p| zones_a.contains(&zone_of(p))).count();
                let shared_lines = b.iter().filter(|p| lines_a.contains(&(*p / LINE))).count();
                assert_eq!(
                    (shared_zones, shared_lines),
                    (0, 0),
                    "live blocks of two threads in one zone, or in one line"
                );
            }
        }
    });
    heap.trim();
    assert_eq!(heap.stats().live_blocks, 0);
}

/// The same rules over an arena (4 MiB: a span that allows every TINY
/// class full zones, so caches get homes), small enough for Miri: refills
/// in turn, a round through the depot, and the homes given back at flush.
#[test]
fn homes_in_an_arena() {
    let heap: Heap<OwnedArena> = Heap::new(arena(4 << 20));
    let (mut a, mut b) = (FrontCache::new(), FrontCache::new());
    let (mut blocks_a, mut blocks_b) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let size = if i % 2 == 0 { 24 } else { 112 };
        blocks_a.push(a.allocate(&heap, layout(size)).unwrap());
        blocks_b.push(b.allocate(&heap, layout(size)).unwrap());
    }
    assert_apart(&heap, &blocks_a, &blocks_b, "refills in turn, in an arena");
    for p in blocks_b.drain(..) {
        unsafe { b.deallocate(&heap, p) }.unwrap();
    }
    for p in blocks_a.drain(..) {
        unsafe { a.deallocate(&heap, p) }.unwrap();
    }
    let again: Vec<_> = (0..100)
        .map(|_| b.allocate(&heap, layout(24)).unwrap())
        .collect();
    let blocks_a: Vec<_> = (0..100)
        .map(|_| a.allocate(&heap, layout(24)).unwrap())
        .collect();
    assert_apart(&heap, &blocks_a, &again, "after the depot, in an arena");
    for p in again {
        unsafe { b.deallocate(&heap, p) }.unwrap();
    }
    for p in blocks_a {
        unsafe { a.deallocate(&heap, p) }.unwrap();
    }
    a.flush(&heap);
    b.flush(&heap);
    // Given back: a third cache claims a zone left, and maps none.
    let zones = heap.stats().tiny_zones;
    let mut c = FrontCache::new();
    let p = c.allocate(&heap, layout(24)).unwrap();
    assert_eq!(heap.stats().tiny_zones, zones);
    unsafe { c.deallocate(&heap, p) }.unwrap();
    c.flush(&heap);
    heap.trim();
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.cached_blocks), (0, 0));
}

/// A producer's blocks freed by its consumer pile up in the depot; a cache
/// that finds none of its own there, but a depot of several magazines of
/// another's, takes those rather than carve blocks of its own: without
/// that, every owner carved its own supply while the others' magazines
/// waited in the depot up to its bound (`producer_consumer`'s peak RSS
/// doubled with homes for classes up to 1 KiB). One magazine of another cache
/// still waits for its owner (the next test).
#[test]
fn a_deep_depot_of_other_caches_blocks_is_used_before_a_new_home() {
    let heap: Heap<OwnedArena> = Heap::new(arena(4 << 20));
    let (mut producer, mut consumer, mut other) =
        (FrontCache::new(), FrontCache::new(), FrontCache::new());
    let blocks: Vec<_> = (0..200)
        .map(|_| producer.allocate(&heap, layout(128)).unwrap())
        .collect();
    for p in blocks {
        unsafe { consumer.deallocate(&heap, p) }.unwrap();
    }
    let zones = heap.stats().tiny_zones;
    let taken: Vec<_> = (0..100)
        .map(|_| other.allocate(&heap, layout(128)).unwrap())
        .collect();
    assert_eq!(
        heap.stats().tiny_zones,
        zones,
        "the depot's magazines served the third cache: no home of its own"
    );
    for p in taken {
        unsafe { other.deallocate(&heap, p) }.unwrap();
    }
    for cache in [&mut producer, &mut consumer, &mut other] {
        cache.flush(&heap);
    }
    heap.trim();
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.cached_blocks), (0, 0));
}

/// Two caches in step, each with its magazine of the other's kind in the
/// depot at times: one magazine of another cache is left for its owner,
/// and the cache refills from its home (its blocks and the other's stay
/// apart).
#[test]
fn one_magazine_of_another_cache_waits_for_its_owner() {
    let heap: Heap<OwnedArena> = Heap::new(arena(4 << 20));
    let (mut a, mut b) = (FrontCache::new(), FrontCache::new());
    let blocks_b: Vec<_> = (0..70)
        .map(|_| b.allocate(&heap, layout(128)).unwrap())
        .collect();
    // `b`'s two magazines fill (31 blocks each, with the few its refills
    // left), then one goes to the depot, and the last ones start another.
    for p in blocks_b {
        unsafe { b.deallocate(&heap, p) }.unwrap();
    }
    let blocks_a: Vec<_> = (0..40)
        .map(|_| a.allocate(&heap, layout(128)).unwrap())
        .collect();
    let again_b: Vec<_> = (0..40)
        .map(|_| b.allocate(&heap, layout(128)).unwrap())
        .collect();
    assert_apart(&heap, &blocks_a, &again_b, "one magazine in the depot");
    for p in blocks_a {
        unsafe { a.deallocate(&heap, p) }.unwrap();
    }
    for p in again_b {
        unsafe { b.deallocate(&heap, p) }.unwrap();
    }
    a.flush(&heap);
    b.flush(&heap);
}
