//! The front cache: refill, drain, bound, remote frees, double frees of
//! cached blocks, bad pointers, and what introspection shows. Over the arena
//! provider, small enough for Miri.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{Counting, arena};
use ft_malloc::cache::{CACHE_MAX_BYTES, MAGAZINE_ENTRIES};
use ft_malloc::{BlockInfo, FrontCache, Heap, HeapError, HeapVisitor, ZoneInfo};

type ArenaHeap = Heap<Counting<common::OwnedArena>>;

fn arena_heap(bytes: usize) -> ArenaHeap {
    Heap::new(Counting::new(arena(bytes)))
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Requested sizes of the live blocks, in address order.
#[derive(Default)]
struct Sizes(Vec<(usize, usize)>);

impl HeapVisitor for Sizes {
    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        self.0.push((block.start, block.requested));
    }
}

#[test]
fn a_freed_block_is_kept_and_reused_without_the_heap() {
    let heap = arena_heap(1 << 20);
    let mut cache = FrontCache::new();
    let a = cache.allocate(&heap, layout(40)).unwrap();
    unsafe { a.as_ptr().write_bytes(0x5a, 40) };
    unsafe { cache.deallocate(&heap, a) }.unwrap();
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.live_bytes), (0, 0));
    assert!(stats.cached_blocks >= 1);
    assert_eq!(stats.cached_blocks, cache.cached_blocks());
    // The most recently freed block comes back first.
    let b = cache.allocate(&heap, layout(33)).unwrap();
    assert_eq!(a, b);
    let mut sizes = Sizes::default();
    heap.visit(&mut sizes);
    assert_eq!(
        sizes.0,
        vec![(b.as_ptr().addr(), 33)],
        "exact requested size"
    );
    unsafe { cache.deallocate(&heap, b) }.unwrap();
    cache.flush(&heap);
    assert_eq!(cache.cached_blocks(), 0);
    // Flushed blocks wait in the class's depot for the next cache; `trim`
    // gives them back to their zones.
    heap.trim();
    assert_eq!(heap.stats().cached_blocks, 0);
    assert_eq!(heap.stats().mapped_bytes, 0);
}

#[test]
fn bins_are_bounded_and_drain_in_batches() {
    let heap = arena_heap(8 << 20);
    let mut cache = FrontCache::new();
    let n = 3 * MAGAZINE_ENTRIES;
    let blocks: Vec<_> = (0..n)
        .map(|_| cache.allocate(&heap, layout(16)).unwrap())
        .collect();
    let mut unique = blocks.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), n, "a block handed out twice");
    for &b in &blocks {
        unsafe { cache.deallocate(&heap, b) }.unwrap();
        assert!(cache.cached_blocks() <= 2 * MAGAZINE_ENTRIES);
    }
    assert!(cache.cached_bytes() <= CACHE_MAX_BYTES);
    assert_eq!(heap.stats().live_blocks, 0);
    cache.flush(&heap);
    heap.trim();
    assert_eq!(heap.stats().cached_blocks, 0);
}

#[test]
fn a_double_free_of_a_cached_block_is_caught_on_every_path() {
    let heap = arena_heap(1 << 20);
    let mut mine = FrontCache::new();
    let mut other = FrontCache::new();
    let p = mine.allocate(&heap, layout(64)).unwrap();
    unsafe { mine.deallocate(&heap, p) }.unwrap();
    // Same cache, another cache, and the heap itself.
    assert_eq!(
        unsafe { mine.deallocate(&heap, p) },
        Err(HeapError::DoubleFree)
    );
    assert_eq!(
        unsafe { other.deallocate(&heap, p) },
        Err(HeapError::DoubleFree)
    );
    assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::DoubleFree));
    assert!(heap.usable_size(p).is_err());
    // Nothing changed: the block comes out once.
    let a = mine.allocate(&heap, layout(64)).unwrap();
    let b = mine.allocate(&heap, layout(64)).unwrap();
    assert_ne!(a, b);
    // (`usable_size` refuses without counting an error.)
    assert_eq!(heap.stats().errors, 3);
    // A block drained back to its zone is caught too.
    unsafe { mine.deallocate(&heap, a) }.unwrap();
    mine.flush(&heap);
    assert_eq!(
        unsafe { other.deallocate(&heap, a) },
        Err(HeapError::DoubleFree)
    );
    unsafe { mine.deallocate(&heap, b) }.unwrap();
    mine.flush(&heap);
}

#[test]
fn bad_pointers_are_refused_through_the_cache() {
    let heap = arena_heap(1 << 20);
    let mut cache = FrontCache::new();
    let p = cache.allocate(&heap, layout(48)).unwrap();
    let kept = cache.cached_blocks();
    let interior = NonNull::new(p.as_ptr().wrapping_add(8)).unwrap();
    let beyond = NonNull::new(p.as_ptr().wrapping_add(48 * 50)).unwrap();
    let mut local = 0u64;
    let foreign = NonNull::from(&mut local).cast::<u8>();
    for bad in [interior, beyond, foreign] {
        assert_eq!(
            unsafe { cache.deallocate(&heap, bad) },
            Err(HeapError::InvalidPointer),
            "{bad:p}"
        );
    }
    assert_eq!(cache.cached_blocks(), kept);
    unsafe { cache.deallocate(&heap, p) }.unwrap();
    cache.flush(&heap);
    assert_eq!(heap.stats().live_blocks, 0);
}

#[test]
fn large_blocks_and_zeroed_blocks_go_the_right_way() {
    let heap = arena_heap(4 << 20);
    let mut cache = FrontCache::new();
    let big = cache.allocate(&heap, layout(100_000)).unwrap();
    let small = cache.allocate(&heap, layout(100)).unwrap();
    unsafe { small.as_ptr().write_bytes(0xff, 100) };
    unsafe { cache.deallocate(&heap, small) }.unwrap();
    let zeroed = cache.allocate_zeroed(&heap, layout(100)).unwrap();
    assert_eq!(zeroed, small);
    assert!(
        unsafe { std::slice::from_raw_parts(zeroed.as_ptr(), 100) }
            .iter()
            .all(|&b| b == 0)
    );
    unsafe { cache.deallocate(&heap, big) }.unwrap();
    unsafe { cache.deallocate(&heap, zeroed) }.unwrap();
    assert_eq!(heap.stats().large_runs, 0);
    cache.flush(&heap);
    heap.trim();
    assert_eq!(heap.stats().mapped_bytes, 0);
}

/// One thread allocates, another frees (producer/consumer), each with its
/// own cache: blocks move through the class lock in batches, never twice.
#[test]
fn remote_frees_between_two_caches() {
    let heap = arena_heap(16 << 20);
    let rounds = if cfg!(miri) { 60 } else { 20_000 };
    /// A block on its way to the other thread, with its size's index.
    struct Sent(NonNull<u8>, usize);
    // SAFETY: the block is handed over: only the receiver uses it.
    unsafe impl Send for Sent {}
    let (tx, rx) = std::sync::mpsc::sync_channel::<Sent>(256);
    std::thread::scope(|s| {
        let heap = &heap;
        s.spawn(move || {
            let mut cache = FrontCache::new();
            for i in 0..rounds {
                let size = [24, 100, 700, 3000][i % 4];
                let p = cache.allocate(heap, layout(size)).unwrap();
                unsafe { p.as_ptr().write_bytes(i as u8, size) };
                tx.send(Sent(p, i % 4)).unwrap();
            }
            cache.flush(heap);
        });
        s.spawn(move || {
            let mut cache = FrontCache::new();
            for (i, Sent(p, kind)) in rx.into_iter().enumerate() {
                let size = [24, 100, 700, 3000][kind];
                let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
                assert!(bytes.iter().all(|&b| b == i as u8), "block {i} changed");
                unsafe { cache.deallocate(heap, p) }.unwrap();
            }
            cache.flush(heap);
        });
    });
    assert_eq!(heap.stats().live_blocks, 0);
    // The flushed magazines wait in the depots; trim gives them back.
    heap.trim();
    let stats = heap.stats();
    assert_eq!(
        (stats.live_blocks, stats.cached_blocks, stats.errors),
        (0, 0, 0)
    );
    assert_eq!(stats.mapped_bytes, 0);
}

/// Owners that come and go (threads that allocate a little and exit): each
/// new cache reuses what the last ones gave back, so neither the heap's
/// mapped memory nor its metadata (magazines) grows with their number.
#[test]
fn caches_that_come_and_go_leave_the_footprint_flat() {
    let heap = arena_heap(32 << 20);
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    let mut handed: Vec<NonNull<u8>> = Vec::new();
    let mut footprint = Vec::new();
    for round in 0..rounds {
        let mut cache = FrontCache::new();
        for p in handed.drain(..) {
            unsafe { cache.deallocate(&heap, p) }.unwrap();
        }
        let mine: Vec<_> = (0..64)
            .map(|i| {
                cache
                    .allocate(&heap, layout(16 + (i * 37 + round * 11) % 2000))
                    .unwrap()
            })
            .collect();
        handed.extend(&mine[..32]);
        for &p in &mine[32..] {
            unsafe { cache.deallocate(&heap, p) }.unwrap();
        }
        cache.flush(&heap);
        if round % (rounds / 10) == rounds / 10 - 1 {
            let s = heap.stats();
            footprint.push((s.mapped_bytes, s.metadata_bytes));
        }
    }
    let (early, late) = (footprint[1], footprint[footprint.len() - 1]);
    assert!(late.0 <= early.0 + (256 << 10), "{footprint:?}");
    assert_eq!(late.1, early.1, "magazines leaked: {footprint:?}");
}

/// Counts the blocks that zones of one block size lent to caches and depots.
struct CachedOf(usize, usize);

impl HeapVisitor for CachedOf {
    fn zone(&mut self, zone: &ZoneInfo) {
        if zone.block_size == self.0 {
            self.1 += zone.cached;
        }
    }
}

/// An owner that stops using a class (a program whose strings grew past it)
/// must not pin that class's blocks in its magazines and the depot for
/// ever: they would keep the class's zones non-empty, so never released nor
/// decommitted. After enough activity in other classes, the idle class's
/// blocks are back in their zones and the emptied zones are given back.
#[test]
fn blocks_of_a_class_the_owner_stopped_using_go_back_to_their_zones() {
    let heap = arena_heap(16 << 20);
    let mut cache = FrontCache::new();
    let idle = layout(1000);
    let busy = layout(48);
    let blocks: Vec<_> = (0..200)
        .map(|_| cache.allocate(&heap, idle).unwrap())
        .collect();
    for &b in &blocks {
        unsafe { cache.deallocate(&heap, b) }.unwrap();
    }
    let cached_of_idle = |heap: &ArenaHeap| {
        let mut v = CachedOf(1024, 0);
        heap.visit(&mut v);
        v.1
    };
    assert!(
        cached_of_idle(&heap) > 0,
        "the freed blocks are kept at first"
    );
    let mapped_while_kept = heap.stats().mapped_bytes;
    // Work in another class only, through the cache's slow paths (batches
    // larger than its two magazines).
    let rounds = if cfg!(miri) { 30 } else { 400 };
    for _ in 0..rounds {
        let batch: Vec<_> = (0..3 * MAGAZINE_ENTRIES)
            .map(|_| cache.allocate(&heap, busy).unwrap())
            .collect();
        for &b in &batch {
            unsafe { cache.deallocate(&heap, b) }.unwrap();
        }
    }
    assert_eq!(
        cached_of_idle(&heap),
        0,
        "the idle class's blocks are still held"
    );
    assert!(
        heap.stats().mapped_bytes < mapped_while_kept,
        "the idle class's emptied zone was not given back"
    );
    cache.flush(&heap);
    heap.trim();
    assert_eq!(heap.stats().cached_blocks, 0);
}

/// The slack canary on the cache's lock-free free path: an overwritten
/// canary is refused (the block stays live, out of every cache); a block
/// written up to its requested size goes into the cache.
#[test]
fn an_overwritten_canary_is_refused_by_the_cache() {
    let heap = arena_heap(1 << 20);
    let mut cache = FrontCache::new();
    for size in [0, 24, 500] {
        let p = cache.allocate(&heap, layout(size)).unwrap();
        let q = cache.allocate(&heap, layout(size)).unwrap();
        unsafe { p.as_ptr().write_bytes(0xaa, size) };
        unsafe { q.as_ptr().write_bytes(0xaa, size + 1) };
        assert_eq!(
            unsafe { cache.deallocate(&heap, q) },
            Err(HeapError::Overflow)
        );
        unsafe { cache.deallocate(&heap, p) }.unwrap();
        // The cached block comes back armed again, the refused one stays.
        let r = cache.allocate(&heap, layout(size)).unwrap();
        assert_eq!(r, p);
        assert_ne!(cache.allocate(&heap, layout(size)), Some(q));
    }
    cache.flush(&heap);
}

/// How many of 32 frees are followed by a malloc handing the block just
/// freed back, with `FrontCache::shuffle` before each malloc (with
/// `Some(seed)`) or without.
fn comebacks(seed: Option<usize>) -> usize {
    // Room for whole zones: in a scarce span a 40-byte request borrows a
    // coarser class's zones, and its blocks are cached under that class.
    let heap = arena_heap(16 << 20);
    let mut cache = FrontCache::new();
    let class = ft_malloc::SizeClass::for_size(40).unwrap();
    let blocks: Vec<_> = (0..64)
        .map(|_| cache.allocate(&heap, layout(40)).unwrap())
        .collect();
    for &b in &blocks[..32] {
        unsafe { cache.deallocate(&heap, b) }.unwrap();
    }
    let mut live: Vec<_> = blocks[32..].to_vec();
    let mut back = 0;
    for i in 0..32 {
        let freed = live[i];
        unsafe { cache.deallocate(&heap, freed) }.unwrap();
        if let Some(seed) = seed {
            cache.shuffle(class, seed.wrapping_mul(i + 1) >> 7);
        }
        let got = cache.allocate(&heap, layout(40)).unwrap();
        back += usize::from(got == freed);
        assert!(!live.contains(&got) || got == freed, "handed out twice");
        live[i] = got;
    }
    for b in live {
        unsafe { cache.deallocate(&heap, b) }.unwrap();
    }
    cache.flush(&heap);
    back
}

#[test]
fn shuffle_hands_out_another_cached_block_never_a_live_one() {
    let ordered = comebacks(None);
    assert!(ordered >= 28, "without a shuffle: {ordered} of 32");
    let shuffled = comebacks(Some(0x9e37_79b9));
    assert!(shuffled < 16, "{shuffled} of 32 came straight back");
    println!("came straight back: {ordered} of 32 in order, {shuffled} shuffled");
}

/// A loop of batches larger than two magazines exchanges magazines with the
/// depot on every few calls; the magazines (spares kept for the next
/// exchange included) are reused, never lost: once both loops below have
/// run, the heap's metadata stays flat over rounds of a steady cache and of
/// caches flushed one after the other while they hold spares (a leak of
/// one magazine per round would take a new 64 KiB chunk within 128 rounds).
#[test]
fn batch_loops_reuse_their_magazines_and_flush_gives_the_spares_back() {
    // Under Miri, a few rounds of fewer magazines still go through every
    // exchange (deposits, spares kept and taken, flushes) for its checks.
    let (magazines, rounds) = if cfg!(miri) { (4, 1) } else { (40, 130) };
    let heap = arena_heap(8 << 20);
    let batch = |cache: &mut FrontCache| -> Vec<_> {
        (0..magazines * MAGAZINE_ENTRIES)
            .map(|i| cache.allocate(&heap, layout(32 + 16 * (i % 2))).unwrap())
            .collect()
    };
    let steady = |cache: &mut FrontCache| {
        for b in batch(cache) {
            unsafe { cache.deallocate(&heap, b) }.unwrap();
        }
    };
    // A producer (left with the spares of its exchanges) and a consumer,
    // both flushed.
    let handed_over = || {
        let (mut producer, mut consumer) = (FrontCache::new(), FrontCache::new());
        for b in batch(&mut producer) {
            unsafe { consumer.deallocate(&heap, b) }.unwrap();
        }
        producer.flush(&heap);
        consumer.flush(&heap);
    };
    let mut cache = FrontCache::new();
    steady(&mut cache);
    handed_over();
    let metadata = heap.stats().metadata_bytes;
    for _ in 0..rounds {
        steady(&mut cache);
    }
    assert_eq!(heap.stats().metadata_bytes, metadata, "steady rounds");
    for _ in 0..rounds {
        handed_over();
    }
    assert_eq!(
        heap.stats().metadata_bytes,
        metadata,
        "caches flushed in turn"
    );
    cache.flush(&heap);
    assert_eq!(heap.stats().live_blocks, 0);
    heap.trim();
    assert_eq!(heap.stats().cached_blocks, 0);
}

/// A short-lived owner that takes a magazine from the depot and uses a few
/// of its blocks gives the rest back to the depot at flush, not block by
/// block to the zones (where the next owner would have to take them from
/// again, under the class lock): thread churn did both at every exit.
#[test]
fn a_barely_used_magazine_goes_back_to_the_depot_at_flush() {
    let heap = arena_heap(4 << 20);
    let mut first = FrontCache::new();
    let blocks: Vec<_> = (0..4 * MAGAZINE_ENTRIES)
        .map(|_| first.allocate(&heap, layout(64)).unwrap())
        .collect();
    for p in blocks {
        unsafe { first.deallocate(&heap, p) }.unwrap();
    }
    first.flush(&heap);
    let in_depot = heap.stats().cached_blocks;
    assert!(in_depot >= 2 * MAGAZINE_ENTRIES, "{in_depot}");

    let mut short_lived = FrontCache::new();
    let kept: Vec<_> = (0..3)
        .map(|_| short_lived.allocate(&heap, layout(64)).unwrap())
        .collect();
    short_lived.flush(&heap);
    assert_eq!(heap.stats().cached_blocks, in_depot - kept.len());
    for p in kept {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}

/// An inert cache (`FrontCache::inert`, what a thread without a cache
/// points at) declines every allocation and every free through its
/// raw-pointer fast paths, is never written, and leaves a declined free's
/// block to the full path as it found it, which frees it once: also a
/// request under 16 bytes, whose slack canary lies in the word the free's
/// claim swapped (undone by restoring that word, not by clearing it: a
/// cleared word read as an overflow, and libft_malloc.so aborted a forked
/// child whose cache could not be set up, in the stress harness).
#[test]
fn an_inert_cache_declines_and_leaves_the_block_to_the_full_path() {
    // A span above the page map's inline array: the provider's mapped flat
    // array, which the raw free's check covers.
    let heap = arena_heap(4 << 20);
    let mut inert = FrontCache::inert();
    let this = &raw mut inert;
    for size in [10, 40] {
        let p = heap.allocate(layout(size)).unwrap();
        // SAFETY: a valid inert cache.
        assert!(unsafe { FrontCache::allocate_cached_in(this, size) }.is_none());
        // SAFETY: a block of `heap`, freed below through the full path.
        assert_eq!(
            unsafe { FrontCache::try_deallocate_raw_in(this, &heap, p.as_ptr()) },
            None
        );
        assert_eq!(inert.cached_blocks(), 0);
        assert_eq!(
            heap.stats().live_blocks,
            1,
            "the block is still the program's"
        );
        // SAFETY: the block is live; not used afterwards.
        assert_eq!(unsafe { heap.deallocate(p) }, Ok(()), "{size} bytes");
        assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::DoubleFree));
        assert_eq!(heap.stats().live_blocks, 0);
    }
}
