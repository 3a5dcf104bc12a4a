//! A bounded provider whose span the heap has mostly mapped (more than half:
//! `TIGHT_SPAN_DIVISOR`) is *tight*: new zones take their fewest pages, a
//! cached LARGE run is cut to the request, and a growing LARGE run may move
//! into the free pages around it. Each test first makes the span tight with
//! one big LARGE block.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{OwnedArena, arena_aligned};
use ft_malloc::{Heap, HeapVisitor, Kind, MIN_PAGE_SIZE, SizeClass, ZoneInfo};

const PAGE: usize = MIN_PAGE_SIZE;

fn heap(bytes: usize) -> Heap<OwnedArena> {
    Heap::new(arena_aligned(bytes, PAGE))
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// The zones and runs of a heap, in address order.
#[derive(Default)]
struct Runs(Vec<ZoneInfo>);

impl HeapVisitor for Runs {
    fn zone(&mut self, zone: &ZoneInfo) {
        self.0.push(*zone);
    }
}

fn runs(heap: &Heap<OwnedArena>) -> Vec<ZoneInfo> {
    let mut runs = Runs::default();
    heap.visit(&mut runs);
    runs.0
}

/// A LARGE block over more than half of an 8 MiB arena.
fn fill_half(heap: &Heap<OwnedArena>) -> NonNull<u8> {
    heap.allocate(layout(4200 << 10)).unwrap()
}

#[test]
fn a_tight_span_gets_scarce_zones() {
    let heap = heap(8 << 20);
    let class = SizeClass::for_size(16).unwrap();
    // 8 MiB is 32 full zones of 64 KiB: roomy, a full zone first.
    let first = heap.allocate(layout(16)).unwrap();
    assert_eq!(heap.stats().mapped_bytes, class.zone_bytes());
    let big = fill_half(&heap);
    // Fill the full zone, then one block more: the new zone is a page.
    let mut blocks = vec![first];
    while heap.stats().tiny_zones == 1 {
        blocks.push(heap.allocate(layout(16)).unwrap());
    }
    let zones: Vec<usize> = runs(&heap)
        .iter()
        .filter(|z| z.kind == Kind::Tiny)
        .map(|z| z.len)
        .collect();
    assert_eq!(zones.len(), 2);
    assert!(zones.contains(&class.zone_bytes()), "{zones:?}");
    assert!(
        zones.contains(&class.scarce_geometry().zone_bytes),
        "{zones:?}"
    );
    for p in blocks.into_iter().chain([big]) {
        unsafe { heap.deallocate(p).unwrap() };
    }
}

#[test]
fn a_tight_span_cuts_a_cached_large_run_to_the_request() {
    let heap = heap(8 << 20);
    let big = fill_half(&heap);
    // The first free of a run this long is unmapped and raises the cache
    // threshold (glibc's adaptive threshold); the second is cached.
    for cached in [false, true] {
        let freed = heap.allocate(layout(200 << 10)).unwrap();
        unsafe { heap.deallocate(freed).unwrap() };
        assert_eq!(heap.stats().large_cached_bytes > 200 << 10, cached);
    }
    // Half the cached run: served from it, without its other half.
    let p = heap.allocate(layout(100 << 10)).unwrap();
    let len = runs(&heap)
        .iter()
        .find(|r| r.kind == Kind::Large && (r.start..r.start + r.len).contains(&p.as_ptr().addr()))
        .map(|r| r.len)
        .unwrap();
    assert_eq!(len, ((100 << 10) + 32usize).next_multiple_of(PAGE));
    for p in [p, big] {
        unsafe { heap.deallocate(p).unwrap() };
    }
}

/// The arena is full of three LARGE blocks; the first is freed. The second
/// cannot grow in place (the third follows it) and no fresh run is as big
/// as the first's pages and its own together, but those two together are:
/// the provider moves it down, contents and all.
#[test]
fn a_growing_large_block_joins_the_free_pages_before_it() {
    let heap = heap(1 << 20);
    let a = heap.allocate(layout(300 << 10)).unwrap();
    let b = heap.allocate(layout(300 << 10)).unwrap();
    let mut c_size = 1 << 20;
    let c = loop {
        match heap.allocate(layout(c_size)) {
            Some(c) => break c,
            None => c_size -= PAGE,
        }
    };
    // Nothing else fits.
    assert!(heap.allocate(layout(64 << 10)).is_none());
    unsafe {
        for i in 0..300 << 10 {
            b.as_ptr().add(i).write(i as u8);
        }
        heap.deallocate(a).unwrap();
        let grown = heap.reallocate(b, layout(580 << 10)).unwrap();
        assert!(grown < b, "moved down over the freed block");
        for i in 0..300 << 10 {
            assert_eq!(grown.as_ptr().add(i).read(), i as u8);
        }
        heap.deallocate(grown).unwrap();
        heap.deallocate(c).unwrap();
    }
    assert_eq!(heap.stats().live_blocks, 0);
}
