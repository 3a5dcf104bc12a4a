//! The small-region pool (`src/coalesce/`): SMALL requests of a heap whose
//! span is under 2 MiB come from segments of boundary-tagged blocks. Every
//! pointer is still validated, every block keeps its bytes, and `visit`
//! and `stats` stay exact.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{OwnedArena, Rng, arena_aligned};
use ft_malloc::{BlockInfo, Heap, HeapError, HeapVisitor, Kind, MIN_PAGE_SIZE, ZoneInfo};

type PoolHeap = Heap<OwnedArena>;

fn pool_heap(bytes: usize) -> PoolHeap {
    Heap::new(arena_aligned(bytes, MIN_PAGE_SIZE))
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Every live block `visit` reports: its kind, address and requested size.
#[derive(Default)]
struct Blocks(Vec<(Kind, usize, usize)>);

impl HeapVisitor for Blocks {
    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        self.0.push((zone.kind, block.start, block.requested));
    }
}

#[test]
fn bad_pointers_double_frees_and_overflows_are_refused() {
    let heap = pool_heap(100 << 10);
    let a = heap.allocate(layout(300)).unwrap();
    let b = heap.allocate(layout(500)).unwrap();
    let c = heap.allocate(layout(700)).unwrap();
    unsafe {
        // Interior and misaligned pointers, and a header's address.
        for bad in [a.add(16), a.add(1), a.sub(16), b.add(256)] {
            assert_eq!(heap.deallocate(bad), Err(HeapError::InvalidPointer));
        }
        heap.deallocate(b).unwrap();
        assert_eq!(heap.deallocate(b), Err(HeapError::DoubleFree));
        // One byte past the request: the canary. The block stays refused
        // (it leaks), as an overflowed block does on every path.
        c.as_ptr().add(700).write(0);
        assert_eq!(heap.deallocate(c), Err(HeapError::Overflow));
        heap.deallocate(a).unwrap();
        // `b`'s neighbours joined it: its old address is no block at all.
        assert!(heap.deallocate(b).is_err());
    }
    assert_eq!(heap.stats().errors, 7);
    assert_eq!(heap.stats().live_blocks, 1);
}

#[test]
fn blocks_are_listed_under_small_with_their_requested_sizes() {
    let heap = pool_heap(64 << 10);
    let sizes = [200, 1000, 129, 16 << 10, 40];
    let blocks: Vec<_> = sizes
        .iter()
        .map(|&s| heap.allocate(layout(s)).unwrap())
        .collect();
    let mut seen = Blocks::default();
    heap.visit(&mut seen);
    let mut want: Vec<_> = blocks
        .iter()
        .zip(sizes)
        // A TINY request joins the pool once it has a segment.
        .map(|(p, s)| (Kind::Small, p.as_ptr().addr(), s))
        .collect();
    want.sort_by_key(|w| w.1);
    assert_eq!(seen.0, want);
    let stats = heap.stats();
    assert_eq!(stats.live_bytes, sizes.iter().sum::<usize>());
    for (p, s) in blocks.iter().zip(sizes) {
        assert_eq!(heap.usable_size(*p), Ok(s));
        unsafe { heap.deallocate(*p).unwrap() };
    }
    heap.trim();
    assert_eq!(heap.stats().mapped_bytes, 0);
}

#[test]
fn realloc_keeps_the_bytes_in_place_or_moved() {
    let heap = pool_heap(100 << 10);
    let mut p = heap.allocate(layout(200)).unwrap();
    unsafe { p.as_ptr().write_bytes(7, 200) };
    for size in [180, 150, 2000, 9000, 300, 100, 30] {
        p = unsafe { heap.reallocate(p, layout(size)) }.unwrap();
        let kept = size.min(150);
        assert!((0..kept).all(|i| unsafe { p.as_ptr().add(i).read() } == 7));
        assert_eq!(heap.usable_size(p), Ok(size));
    }
    unsafe { heap.deallocate(p).unwrap() };
    assert_eq!(heap.stats().live_blocks, 0);
}

/// A mixed load churning at the edge of a 64 KiB heap (16 KiB under Miri,
/// which runs fewer steps): refusals come and go, freed neighbours join,
/// every block keeps its bytes, the counters stay exact, and the heap gives
/// every page back at the end.
#[test]
fn a_full_pool_under_churn_keeps_every_byte() {
    let heap = pool_heap(if cfg!(miri) { 16 << 10 } else { 64 << 10 });
    let mut rng = Rng(0x900d_5eed);
    let mut blocks: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
    let mut refused = 0;
    let steps = if cfg!(miri) { 300 } else { 20_000 };
    for step in 0..steps {
        if blocks.is_empty() || rng.below(3) < 2 {
            let size = rng.mixed_size();
            let align = if rng.below(8) == 0 {
                64 << rng.below(4)
            } else {
                16
            };
            let Some(p) = heap.allocate(Layout::from_size_align(size, align).unwrap()) else {
                refused += 1;
                continue;
            };
            assert!(p.as_ptr().addr().is_multiple_of(align));
            let tag = step as u8;
            unsafe { p.as_ptr().write_bytes(tag, size) };
            blocks.push((p, size, tag));
        } else {
            let (p, size, tag) = blocks.swap_remove(rng.below(blocks.len()));
            assert!((0..size).all(|i| unsafe { p.as_ptr().add(i).read() } == tag));
            unsafe { heap.deallocate(p) }.unwrap();
        }
        if step % 64 == 0 {
            let stats = heap.stats();
            assert_eq!(stats.live_blocks, blocks.len());
            assert_eq!(stats.live_bytes, blocks.iter().map(|b| b.1).sum::<usize>());
        }
    }
    assert!(refused > 0, "the heap never filled");
    for (p, size, tag) in blocks {
        assert!((0..size).all(|i| unsafe { p.as_ptr().add(i).read() } == tag));
        unsafe { heap.deallocate(p) }.unwrap();
    }
    heap.trim();
    assert_eq!(heap.stats().mapped_bytes, 0);
    assert_eq!(heap.stats().errors, 0);
}
