//! Behaviour of the heap through its public API, over the arena provider and
//! over real `mmap`.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{Counting, Mmap, arena};
use ft_malloc::{BlockInfo, Heap, HeapError, HeapVisitor, Kind, ReallocError, ZoneInfo};
use ft_malloc::{SMALL_MAX, TINY_MAX};

type ArenaHeap = Heap<Counting<common::OwnedArena>>;

fn arena_heap(bytes: usize) -> ArenaHeap {
    Heap::new(Counting::new(arena(bytes)))
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Every byte natively; under Miri (which interprets every access) a
/// sparse sample, still covering both ends of the block.
const STRIDE: usize = if cfg!(miri) { 509 } else { 1 };

fn positions(len: usize) -> impl Iterator<Item = usize> {
    (0..len).step_by(STRIDE).chain(len.checked_sub(1))
}

fn fill(p: NonNull<u8>, len: usize, seed: u8) {
    for i in positions(len) {
        unsafe { p.as_ptr().add(i).write(seed.wrapping_add(i as u8)) };
    }
}

/// Checks the first `keep` bytes of what `fill(p, written, seed)` wrote.
fn check_prefix(p: NonNull<u8>, keep: usize, written: usize, seed: u8) {
    for i in positions(written).filter(|&i| i < keep) {
        assert_eq!(
            unsafe { p.as_ptr().add(i).read() },
            seed.wrapping_add(i as u8),
            "byte {i}"
        );
    }
}

fn check(p: NonNull<u8>, len: usize, seed: u8) {
    for i in positions(len) {
        assert_eq!(
            unsafe { p.as_ptr().add(i).read() },
            seed.wrapping_add(i as u8),
            "byte {i}"
        );
    }
}

#[derive(Default)]
struct Collect {
    zones: Vec<ZoneInfo>,
    blocks: Vec<(ZoneInfo, BlockInfo)>,
}

impl HeapVisitor for Collect {
    fn zone(&mut self, zone: &ZoneInfo) {
        self.zones.push(*zone);
    }
    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        self.blocks.push((*zone, *block));
    }
}

const SIZES: [usize; 12] = [
    0,
    1,
    15,
    16,
    17,
    TINY_MAX,
    TINY_MAX + 1,
    1000,
    4096,
    SMALL_MAX,
    SMALL_MAX + 1,
    1 << 20,
];

#[test]
fn every_kind_round_trips_and_everything_goes_back() {
    let heap = arena_heap(16 << 20);
    let mut blocks = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        let p = heap.allocate(layout(size)).expect("allocation");
        assert_eq!(p.as_ptr().addr() % 16, 0);
        assert!(heap.usable_size(p).unwrap() >= size);
        fill(p, size, i as u8);
        blocks.push((p, size, i as u8));
    }
    let stats = heap.stats();
    assert_eq!(stats.live_blocks, SIZES.len());
    assert_eq!(stats.live_bytes, SIZES.iter().sum::<usize>());
    assert!(stats.tiny_zones >= 1 && stats.small_zones >= 1);
    assert_eq!(stats.large_runs, 2);

    let mut seen = Collect::default();
    heap.visit(&mut seen);
    let kinds: Vec<Kind> = seen.blocks.iter().map(|(z, _)| z.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == Kind::Tiny).count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == Kind::Large).count(), 2);
    let starts: Vec<usize> = seen.blocks.iter().map(|(_, b)| b.start).collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "blocks in address order"
    );
    assert!(
        seen.zones
            .windows(2)
            .all(|w| w[0].start + w[0].len <= w[1].start),
        "zones in order"
    );
    let mut requested: Vec<usize> = seen.blocks.iter().map(|(_, b)| b.requested).collect();
    requested.sort();
    let mut expected = SIZES.to_vec();
    expected.sort();
    assert_eq!(requested, expected);

    for (p, size, seed) in blocks {
        check(p, size, seed);
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(heap.stats().live_bytes, 0);
    heap.trim();
    let stats = heap.stats();
    assert_eq!(stats.mapped_bytes, 0, "{stats:?}");
    assert_eq!(heap.provider().held(), stats.metadata_bytes);
}

#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn drop_returns_every_page_even_with_live_blocks() {
    let provider = Counting::new(Mmap);
    {
        let heap: Heap<&Counting<Mmap>> = Heap::new(&provider);
        for &size in &SIZES {
            heap.allocate(layout(size)).unwrap();
        }
        assert!(provider.held() > 0);
    }
    assert_eq!(provider.held(), 0);
}

#[test]
fn bad_pointers_are_refused_and_change_nothing() {
    let heap = arena_heap(8 << 20);
    let small = heap.allocate(layout(100)).unwrap();
    let large = heap.allocate(layout(100_000)).unwrap();
    let before = heap.stats();
    let mut local = 0u64;
    let stack = NonNull::from(&mut local).cast::<u8>();
    let bad = [
        stack,
        unsafe { small.add(1) },
        unsafe { small.add(16) },
        unsafe { large.add(16) },
        unsafe { large.add(8192) },
        NonNull::new(std::ptr::without_provenance_mut(usize::MAX & !15)).unwrap(),
        NonNull::new(std::ptr::without_provenance_mut(16)).unwrap(),
    ];
    for p in bad {
        assert_eq!(
            unsafe { heap.deallocate(p) },
            Err(HeapError::InvalidPointer),
            "{p:p}"
        );
        assert_eq!(
            unsafe { heap.reallocate(p, layout(10)) },
            Err(ReallocError::Invalid(HeapError::InvalidPointer))
        );
        assert!(heap.usable_size(p).is_err());
    }
    let after = heap.stats();
    assert_eq!(
        (before.live_bytes, before.live_blocks),
        (after.live_bytes, after.live_blocks)
    );
    assert_eq!(after.errors, before.errors + 2 * bad.len());

    unsafe { heap.deallocate(small) }.unwrap();
    assert_eq!(
        unsafe { heap.deallocate(small) },
        Err(HeapError::DoubleFree)
    );
    unsafe { heap.deallocate(large) }.unwrap();
    assert!(unsafe { heap.deallocate(large) }.is_err());
    // The heap still works, and hands the freed block out again.
    let again = heap.allocate(layout(100)).unwrap();
    assert_eq!(again, small);
    unsafe { heap.deallocate(again) }.unwrap();
}

#[test]
fn double_free_in_a_busy_zone_does_not_corrupt_the_free_list() {
    let heap = arena_heap(8 << 20);
    let blocks: Vec<_> = (0..50)
        .map(|_| heap.allocate(layout(48)).unwrap())
        .collect();
    for &b in blocks.iter().step_by(2) {
        unsafe { heap.deallocate(b) }.unwrap();
    }
    for &b in blocks.iter().step_by(2) {
        assert_eq!(unsafe { heap.deallocate(b) }, Err(HeapError::DoubleFree));
    }
    // 25 fresh allocations must be 25 distinct blocks, none of them live.
    let fresh: Vec<_> = (0..25)
        .map(|_| heap.allocate(layout(48)).unwrap())
        .collect();
    let mut all: Vec<usize> = fresh
        .iter()
        .chain(blocks.iter().skip(1).step_by(2))
        .map(|p| p.as_ptr().addr())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 50);
}

#[test]
fn realloc_keeps_contents_through_every_kind() {
    let heap = arena_heap(32 << 20);
    let mut p = heap.allocate(layout(10)).unwrap();
    fill(p, 10, 7);
    let mut len = 10;
    for new in [
        100, 120, 2000, 40_000, 300_000, 5_000_000, 70_000, 3000, 5, 0, 64,
    ] {
        p = unsafe { heap.reallocate(p, layout(new)) }.unwrap();
        check_prefix(p, len.min(new), len, 7);
        fill(p, new, 7);
        len = new;
        assert_eq!(heap.stats().live_bytes, new);
        assert_eq!(heap.stats().live_blocks, 1);
    }
    unsafe { heap.deallocate(p) }.unwrap();
}

#[test]
fn realloc_in_place_within_a_class() {
    let heap = arena_heap(8 << 20);
    let p = heap.allocate(layout(1000)).unwrap();
    let q = unsafe { heap.reallocate(p, layout(1020)) }.unwrap();
    assert_eq!(p, q, "1000 and 1020 share a class");
    let r = unsafe { heap.reallocate(q, layout(900)) }.unwrap();
    assert_eq!(q, r, "shrinking a little stays");
    let s = unsafe { heap.reallocate(r, layout(20)) }.unwrap();
    assert_ne!(r, s, "shrinking a lot moves to a small class");
    unsafe { heap.deallocate(s) }.unwrap();
}

/// `resize_in_block` moves the request's end within the block (the slack
/// canary with it) and never moves the block: a size beyond the block, or a
/// LARGE block, is declined with nothing changed.
#[test]
fn resize_in_block_stays_or_declines() {
    let heap = arena_heap(8 << 20);
    let p = heap.allocate(layout(100)).unwrap();
    fill(p, 100, 3);
    let block = heap.zone_block_size(p).unwrap();
    assert_eq!(unsafe { heap.resize_in_block(p, block - 1) }, Ok(true));
    assert_eq!(heap.usable_size(p), Ok(block - 1));
    check_prefix(p, 100, 100, 3);
    assert_eq!(unsafe { heap.resize_in_block(p, block + 1) }, Ok(false));
    assert_eq!(heap.usable_size(p), Ok(block - 1));
    // The canary moved to the new end: a write there is an overflow.
    unsafe { p.as_ptr().add(block - 1).write(0) };
    assert_eq!(
        unsafe { heap.resize_in_block(p, 10) },
        Err(HeapError::Overflow)
    );
    assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::Overflow));
    // A request that fills its block exactly has no canary.
    let q = heap.allocate(layout(10)).unwrap();
    let full = heap.zone_block_size(q).unwrap();
    assert_eq!(unsafe { heap.resize_in_block(q, full) }, Ok(true));
    assert_eq!(heap.usable_size(q), Ok(full));
    unsafe { heap.deallocate(q) }.unwrap();
    assert_eq!(
        unsafe { heap.resize_in_block(q, 1) },
        Err(HeapError::DoubleFree)
    );
    let large = heap.allocate(layout(SMALL_MAX * 2)).unwrap();
    assert_eq!(unsafe { heap.resize_in_block(large, 10) }, Ok(false));
    unsafe { heap.deallocate(large) }.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn large_realloc_grows_16_to_128_mib_with_mremap() {
    let heap: Heap<Counting<Mmap>> = Heap::new(Counting::new(Mmap));
    let p = heap.allocate(layout(16 << 20)).unwrap();
    fill(p, 4096, 3);
    unsafe { p.as_ptr().add((16 << 20) - 1).write(0xAB) };
    // Block the pages right after the run so growing must move.
    let blocker = heap.allocate(layout(1 << 20)).unwrap();
    let q = unsafe { heap.reallocate(p, layout(128 << 20)) }.unwrap();
    check_prefix(q, 4096, 4096, 3);
    assert_eq!(unsafe { q.as_ptr().add((16 << 20) - 1).read() }, 0xAB);
    unsafe { q.as_ptr().add((128 << 20) - 1).write(1) };
    assert!(heap.stats().resize_calls >= 1);
    assert!(heap.usable_size(q).unwrap() >= 128 << 20);
    unsafe {
        heap.deallocate(q).unwrap();
        heap.deallocate(blocker).unwrap();
    }
}

#[test]
fn every_alignment_is_honoured() {
    let heap = arena_heap(64 << 20);
    let mut live = Vec::new();
    let mut align = 1;
    while align <= 1 << 20 {
        for size in [0, 1, 24, align, 3 * align + 1, 5000, 40_000] {
            let l = Layout::from_size_align(size, align).unwrap();
            let p = heap.allocate(l).unwrap_or_else(|| panic!("{l:?}"));
            assert_eq!(p.as_ptr().addr() % align, 0, "{l:?}");
            assert!(heap.usable_size(p).unwrap() >= size);
            fill(p, size, 1);
            live.push(p);
        }
        align *= 2;
    }
    for p in live {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}

#[test]
fn empty_zones_go_back_except_one_per_class() {
    let heap = arena_heap(64 << 20);
    let class = ft_malloc::SizeClass::for_size(4096).unwrap();
    let per_zone = class.blocks_per_zone();
    let blocks: Vec<_> = (0..per_zone * 5)
        .map(|_| heap.allocate(layout(4096)).unwrap())
        .collect();
    assert_eq!(heap.stats().small_zones, 5);
    for b in blocks {
        unsafe { heap.deallocate(b) }.unwrap();
    }
    assert_eq!(heap.stats().small_zones, 1, "one empty zone is kept");
    heap.trim();
    assert_eq!(heap.stats().small_zones, 0);
    assert_eq!(heap.stats().mapped_bytes, 0);
}

#[test]
fn malloc_free_loop_calls_the_provider_once() {
    let heap = arena_heap(8 << 20);
    for _ in 0..if cfg!(miri) { 300 } else { 10_000 } {
        let p = heap.allocate(layout(1024)).unwrap();
        unsafe { heap.deallocate(p) }.unwrap();
    }
    let s = heap.stats();
    assert_eq!((s.map_calls, s.unmap_calls), (1, 0), "{s:?}");
}

#[test]
fn zeroed_blocks_are_zero_even_when_reused() {
    let heap = arena_heap(8 << 20);
    for size in [40, 3000, 100_000] {
        let p = heap.allocate(layout(size)).unwrap();
        fill(p, size, 0xEE);
        unsafe { heap.deallocate(p) }.unwrap();
        let z = heap.allocate_zeroed(layout(size)).unwrap();
        assert!(positions(size).all(|i| unsafe { z.as_ptr().add(i).read() } == 0));
        unsafe { heap.deallocate(z) }.unwrap();
    }
}

#[test]
fn exhaustion_fails_cleanly_and_the_heap_carries_on() {
    let heap = arena_heap(2 << 20);
    let mut live = Vec::new();
    while let Some(p) = heap.allocate(layout(3000)) {
        live.push(p);
    }
    assert!(live.len() > 300);
    assert!(heap.allocate(layout(1 << 20)).is_none());
    // Free some: allocations work again.
    for p in live.drain(..100) {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    let p = heap.allocate(layout(3000)).expect("after frees");
    live.push(p);
    for p in live {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    heap.trim();
    assert_eq!(heap.stats().mapped_bytes, 0);
    assert!(
        heap.allocate(layout(1 << 20)).is_some(),
        "whole arena usable again"
    );
}

#[test]
fn small_heap_serves_a_block_it_has_no_zone_for() {
    // A 32 KiB class zone needs 3.2 MiB; a 1 MiB heap still serves 20 KiB.
    let heap = arena_heap(1 << 20);
    let p = heap
        .allocate(layout(20_000))
        .expect("falls back to a run of its own");
    fill(p, 20_000, 9);
    let q = unsafe { heap.reallocate(p, layout(30_000)) }.unwrap();
    check(q, 20_000, 9);
    unsafe { heap.deallocate(q) }.unwrap();
}

#[test]
fn impossible_sizes_fail_without_wrapping() {
    let heap = arena_heap(1 << 20);
    for size in [
        isize::MAX as usize - 4095,
        isize::MAX as usize - 64,
        // More than the arena, on every target (1 TiB on 64-bit ones).
        (1usize << (usize::BITS - 24)).max(1 << 30),
    ] {
        assert!(
            heap.allocate(Layout::from_size_align(size, 16).unwrap())
                .is_none()
        );
    }
    let p = heap.allocate(layout(10)).unwrap();
    assert_eq!(
        unsafe {
            heap.reallocate(
                p,
                Layout::from_size_align(isize::MAX as usize - 100, 16).unwrap(),
            )
        },
        Err(ReallocError::OutOfMemory)
    );
    unsafe { heap.deallocate(p) }.unwrap();
}

/// Pages of a zone resident according to `mincore`.
fn resident_pages(zone: &ZoneInfo) -> usize {
    let mut vec = vec![0u8; zone.len / 4096];
    let rc = unsafe { libc::mincore(zone.start as *mut _, zone.len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    vec.iter().filter(|v| **v & 1 != 0).count()
}

#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn a_kept_empty_zone_gives_its_pages_back() {
    let heap: Heap<Mmap> = Heap::new(Mmap);
    // 100 blocks of 4 KiB: 400 KiB carved, over the reset threshold.
    let blocks: Vec<_> = (0..100)
        .map(|_| heap.allocate(layout(4096)).unwrap())
        .collect();
    for b in &blocks {
        unsafe { b.as_ptr().write_bytes(1, 4096) };
    }
    for b in blocks {
        unsafe { heap.deallocate(b) }.unwrap();
    }
    let mut seen = Collect::default();
    heap.visit(&mut seen);
    assert_eq!(seen.zones.len(), 1, "the class keeps its empty zone");
    let resident = resident_pages(&seen.zones[0]);
    assert!(
        resident <= 1,
        "{resident} pages resident, only the header page should stay"
    );
    // And it serves again, from its first block.
    let p = heap.allocate_zeroed(layout(4096)).unwrap();
    assert!((0..4096).all(|i| unsafe { p.as_ptr().add(i).read() } == 0));
    unsafe { heap.deallocate(p) }.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn a_small_kept_zone_keeps_its_pages_for_the_next_round() {
    let heap: Heap<Mmap> = Heap::new(Mmap);
    let blocks: Vec<_> = (0..100)
        .map(|_| heap.allocate(layout(1024)).unwrap())
        .collect();
    for b in &blocks {
        unsafe { b.as_ptr().write_bytes(1, 1024) };
    }
    for b in blocks {
        unsafe { heap.deallocate(b) }.unwrap();
    }
    let mut seen = Collect::default();
    heap.visit(&mut seen);
    assert_eq!(
        resident_pages(&seen.zones[0]),
        26,
        "100 KiB carved: below the reset threshold"
    );
}

/// The page budget: 1024 blocks of 1 KiB, each written, must touch
/// about 256 pages (checked with `mincore` over every zone of the heap).
#[test]
#[cfg_attr(miri, ignore)]
fn lazy_carving_touches_only_the_pages_it_uses() {
    let heap: Heap<Mmap> = Heap::new(Mmap);
    let blocks: Vec<_> = (0..1024)
        .map(|_| heap.allocate(layout(1024)).unwrap())
        .collect();
    for b in &blocks {
        unsafe { b.as_ptr().write_bytes(1, 1024) };
    }
    let mut seen = Collect::default();
    heap.visit(&mut seen);
    let resident: usize = seen.zones.iter().map(resident_pages).sum();
    eprintln!("1024 x 1 KiB: {resident} pages resident");
    assert!((256..=272).contains(&resident), "{resident} pages resident");
    for b in blocks {
        unsafe { heap.deallocate(b) }.unwrap();
    }
}

#[test]
fn empty_blocks_with_page_alignment_stay_inside_their_run() {
    // Regression (found by the model test): a zero-byte LARGE block whose
    // user pointer was the run's end registered a granule outside the run.
    let heap = arena_heap(8 << 20);
    let a = heap
        .allocate(Layout::from_size_align(0, 8192).unwrap())
        .unwrap();
    let b = heap.allocate(layout(17)).unwrap();
    let c = heap
        .allocate(Layout::from_size_align(0, 8192).unwrap())
        .unwrap();
    let a = unsafe { heap.reallocate(a, Layout::from_size_align(0, 8192).unwrap()) }.unwrap();
    for p in [a, b, c] {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}

#[test]
fn trim_gives_back_the_never_carved_tail_of_a_zone() {
    // A class whose full zone (404 KiB) a 16 MiB arena affords (1/32 of it).
    const SIZE: usize = 4000;
    let heap = arena_heap(16 << 20);
    let class = ft_malloc::SizeClass::for_size(SIZE).unwrap();
    let zone_bytes = class.zone_bytes();
    let blocks: Vec<_> = (0..10)
        .map(|i| {
            let p = heap.allocate(layout(SIZE)).unwrap();
            fill(p, SIZE, i);
            p
        })
        .collect();
    assert_eq!(heap.stats().mapped_bytes, zone_bytes);
    let released = heap.trim();
    let kept = heap.stats().mapped_bytes;
    assert_eq!(released, zone_bytes - kept);
    assert!(
        kept <= 4096 + 10 * class.block_size() + 4096,
        "{kept} bytes kept"
    );
    // The capped zone is full now: the next block starts a new zone.
    let more = heap.allocate(layout(SIZE)).unwrap();
    assert_eq!(heap.stats().small_zones, 2);
    for (i, p) in blocks.into_iter().enumerate() {
        check(p, SIZE, i as u8);
        unsafe { heap.deallocate(p) }.unwrap();
    }
    unsafe { heap.deallocate(more) }.unwrap();
    heap.trim();
    assert_eq!(heap.stats().mapped_bytes, 0);
}

/// Small enough for Miri, whose data-race detector then checks the
/// lock-free page-map reads against zone creation and release.
#[test]
fn threads_share_one_arena_heap() {
    let heap = arena_heap(16 << 20);
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let heap = &heap;
            s.spawn(move || {
                let mut live: Vec<(NonNull<u8>, usize)> = Vec::new();
                for i in 0..rounds {
                    let size = [24, 200, 3000, 40_000][(i + t as usize) % 4];
                    let p = heap.allocate(layout(size)).unwrap();
                    fill(p, size, t);
                    live.push((p, size));
                    if live.len() > 24 || i % 3 == 2 {
                        // Free one of ours, and trim now and then so zones
                        // are released while other threads look them up.
                        let (q, len) = live.swap_remove(i % live.len());
                        check(q, len, t);
                        unsafe { heap.deallocate(q) }.unwrap();
                        if i % 8 == 0 {
                            heap.trim();
                        }
                    }
                }
                for (q, len) in live {
                    check(q, len, t);
                    unsafe { heap.deallocate(q) }.unwrap();
                }
            });
        }
    });
    heap.trim();
    assert_eq!(heap.stats().mapped_bytes, 0);
    assert_eq!(heap.stats().errors, 0);
}

/// Where the corruption handler was last called (0: never).
static CORRUPTION_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn note_corruption(error: HeapError, at: NonNull<u8>) {
    assert_eq!(error, HeapError::Corrupted);
    CORRUPTION_AT.store(at.as_ptr().addr(), std::sync::atomic::Ordering::SeqCst);
}

/// A use-after-free that writes a freed block's own address into its link
/// (`*(void **)p = p`) must not make the zone hand that block out twice,
/// and is reported. So is a link to a live block.
#[test]
fn a_poisoned_free_list_never_hands_a_block_out_twice() {
    let heap = arena_heap(1 << 20);
    heap.set_corruption_handler(note_corruption);
    let keep = heap.allocate(layout(32)).unwrap();
    let p = heap.allocate(layout(32)).unwrap();
    unsafe { heap.deallocate(p) }.unwrap();
    // The use-after-free: the free block's link now points at itself.
    unsafe { p.as_ptr().cast::<*mut u8>().write(p.as_ptr()) };
    let a = heap.allocate(layout(32)).unwrap();
    let b = heap.allocate(layout(32)).unwrap();
    assert_eq!(a, p);
    assert_ne!(a, b, "the same block was handed out twice");
    assert_eq!(
        CORRUPTION_AT.swap(0, std::sync::atomic::Ordering::SeqCst),
        p.as_ptr().addr()
    );
    // A link to a live block is refused the same way.
    unsafe { heap.deallocate(b) }.unwrap();
    unsafe { b.as_ptr().cast::<*mut u8>().write(keep.as_ptr()) };
    let c = heap.allocate(layout(32)).unwrap();
    let d = heap.allocate(layout(32)).unwrap();
    assert_eq!(c, b);
    assert!(d != keep && d != a && d != c);
    assert_eq!(heap.stats().errors, 2);
    for q in [keep, a, c, d] {
        unsafe { heap.deallocate(q) }.unwrap();
    }
}

/// The slack canary: one byte written just past the requested size of a
/// TINY or SMALL block (an off-by-one NUL, a write through a 0-byte block)
/// makes `deallocate` and `reallocate` refuse the block, which stays live
/// and out of reuse; writing every byte `usable_size` grants never does.
#[test]
fn a_write_past_the_requested_size_is_refused_and_the_block_kept() {
    let heap = arena_heap(1 << 20);
    for size in [0, 1, 24, 100, 1000, SMALL_MAX - 1] {
        let before = heap.stats().live_blocks;
        let p = heap.allocate(layout(size)).unwrap();
        assert_eq!(heap.usable_size(p), Ok(size));
        fill(p, size, 7);
        let q = heap.allocate(layout(size)).unwrap();
        unsafe { q.as_ptr().add(size).write(0) };
        assert_eq!(
            unsafe { heap.reallocate(q, layout(size + 1)) },
            Err(ReallocError::Invalid(HeapError::Overflow)),
            "{size}"
        );
        assert_eq!(unsafe { heap.deallocate(q) }, Err(HeapError::Overflow));
        assert_eq!(heap.stats().live_blocks, before + 2, "kept out of reuse");
        unsafe { heap.deallocate(p).unwrap() };
    }
    // A request that fills its block has no canary.
    let full = heap.allocate(layout(TINY_MAX)).unwrap();
    fill(full, TINY_MAX, 1);
    unsafe { heap.deallocate(full).unwrap() };
}

/// Resized in place, a block's canary moves to its new end; zeroed
/// allocations keep theirs past the zeros.
#[test]
fn the_canary_follows_in_place_resizes_and_zeroed_blocks() {
    let heap = arena_heap(1 << 20);
    let p = heap.allocate(layout(20)).unwrap();
    fill(p, 20, 3);
    let p = unsafe { heap.reallocate(p, layout(28)) }.unwrap();
    check(p, 20, 3);
    fill(p, 28, 4);
    let p = unsafe { heap.reallocate(p, layout(17)) }.unwrap();
    unsafe { p.as_ptr().add(17).write(b'x') };
    assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::Overflow));
    let z = heap.allocate_zeroed(layout(40)).unwrap();
    assert!((0..40).all(|i| unsafe { z.as_ptr().add(i).read() } == 0));
    unsafe { heap.deallocate(z).unwrap() };
}

/// glibc's adaptive mmap threshold: the first free of a LARGE run above
/// 128 KiB unmaps it (a later access faults) and raises the threshold to
/// its length, so the next run of that length is cached.
#[test]
fn the_first_big_free_unmaps_and_raises_the_cache_threshold() {
    let heap = arena_heap(8 << 20);
    let small_large = heap.allocate(layout(SMALL_MAX + 1)).unwrap();
    unsafe { heap.deallocate(small_large).unwrap() };
    assert!(heap.stats().large_cached_bytes > SMALL_MAX, "below 128 KiB");
    heap.trim();
    for cached in [false, true, true] {
        let p = heap.allocate(layout(1 << 20)).unwrap();
        unsafe { heap.deallocate(p).unwrap() };
        assert_eq!(heap.stats().large_cached_bytes > 1 << 20, cached);
    }
}

/// A free block's mark (its address mixed with the key, `free_mark.rs`)
/// stays in memory after its zone goes back to a provider that does not
/// zero, and a LARGE run later mapped there starts its user bytes at the
/// same address. Those bytes are the program's, uninitialized: a realloc
/// that copies them must not make a block at that address read as free
/// (a free refused as a double free, the block leaked). Found by the
/// small-arena model test.
#[test]
fn uninitialized_bytes_never_make_a_live_block_read_as_free() {
    let heap: Heap<_> = Heap::new(common::arena_aligned(64 << 10, 4096));
    let aligned = |size| Layout::from_size_align(size, 2048).unwrap();
    // A block freed, its zone given back: its mark stays in the arena.
    let a = heap.allocate(aligned(2000)).unwrap();
    unsafe { heap.deallocate(a) }.unwrap();
    heap.trim();
    // A LARGE run over the same pages, its user bytes at the same address.
    let large = heap.allocate(aligned(40_000)).unwrap();
    assert_eq!(large, a, "the scenario needs the run where the zone was");
    // Its first bytes move to a small block, the run goes back ...
    let small = unsafe { heap.reallocate(large, layout(100)) }.unwrap();
    heap.trim();
    // ... and come back to a block at the first address.
    let back = unsafe { heap.reallocate(small, aligned(1790)) }.unwrap();
    assert_eq!(back, a, "the scenario needs the block where it was");
    assert_eq!(heap.usable_size(back), Ok(1790));
    assert_eq!(unsafe { heap.deallocate(back) }, Ok(()));
    assert_eq!(heap.stats().live_blocks, 0);
}
