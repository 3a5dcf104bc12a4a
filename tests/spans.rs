//! Spans (`src/span.rs`): in a full small heap, a request whose classes
//! have no block and for which no page is left takes adjacent free blocks
//! of a smaller class as one block. Each test builds that state on purpose:
//! a 64 KiB region filled with 512-byte requests, then two neighbours freed.
//! The provider reports a 4 MiB span (`common::WideSpan`): a span under
//! 2 MiB would serve SMALL requests from its pool (`src/coalesce/`), where
//! freed neighbours join without spans; spans serve heaps with zones.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{OwnedArena, Rng, WideSpan, arena_aligned};
use ft_malloc::{BlockInfo, FrontCache, Heap, HeapError, HeapVisitor, MIN_PAGE_SIZE, ZoneInfo};

type SmallHeap = Heap<WideSpan<OwnedArena>>;

const REGION: usize = 64 << 10;
/// The span the provider reports: one with SMALL zones.
const SPAN: usize = 4 << 20;

fn small_heap() -> SmallHeap {
    Heap::new(WideSpan {
        inner: arena_aligned(REGION, MIN_PAGE_SIZE),
        wide: SPAN,
    })
}
/// The filler's class (a coarse class: its zones are its own).
const FILL: usize = 512;
/// A request of the next coarse class (1024), which has no zone.
const SPANNING: usize = 1000;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// A full heap of 512-byte blocks (the last ones in pages of their own),
/// with two neighbours in one zone freed; returns the heap, the live
/// blocks, and the freed pair's lower address.
fn full_with_a_hole() -> (SmallHeap, Vec<NonNull<u8>>, NonNull<u8>) {
    let heap = small_heap();
    let mut blocks = Vec::new();
    while let Some(p) = heap.allocate(layout(FILL)) {
        unsafe { p.as_ptr().write_bytes(0xa5, FILL) };
        blocks.push(p);
    }
    blocks.sort();
    let at = (0..blocks.len() - 1)
        .find(|&i| {
            let (a, b) = (blocks[i].as_ptr().addr(), blocks[i + 1].as_ptr().addr());
            // Neighbours in one zone (a LARGE run's block is page-aligned,
            // 512 bytes past another block only inside a zone).
            b - a == FILL && heap.zone_block_size(blocks[i]) == Some(FILL)
        })
        .expect("a zone with two blocks");
    let low = blocks.remove(at);
    let high = blocks.remove(at);
    unsafe {
        heap.deallocate(low).unwrap();
        heap.deallocate(high).unwrap();
    }
    (heap, blocks, low)
}

/// The live blocks as `visit` reports them.
#[derive(Default)]
struct Blocks(Vec<(BlockInfo, usize)>);

impl HeapVisitor for Blocks {
    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        self.0.push((*block, zone.block_size));
    }
}

fn visit(heap: &SmallHeap) -> Vec<(BlockInfo, usize)> {
    let mut blocks = Blocks::default();
    heap.visit(&mut blocks);
    blocks.0
}

/// Frees `blocks`; then `left` live blocks of `bytes` remain.
fn free_all(heap: &SmallHeap, blocks: &[NonNull<u8>], (left, bytes): (usize, usize)) {
    for &p in blocks {
        unsafe { heap.deallocate(p).unwrap() };
    }
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.live_bytes), (left, bytes));
}

#[test]
fn a_request_no_class_can_serve_joins_two_free_neighbours() {
    let (heap, blocks, low) = full_with_a_hole();
    // No zone of 1024-byte blocks and no free page: a span or nothing.
    let span = heap
        .allocate(layout(SPANNING))
        .expect("two free neighbours");
    assert_eq!(span, low);
    unsafe { span.as_ptr().write_bytes(0x3c, SPANNING) };
    assert_eq!(heap.usable_size(span), Ok(SPANNING));
    // Introspection shows one block of two blocks' bytes, not two blocks.
    let shown = visit(&heap);
    let (info, block_size) = shown
        .iter()
        .find(|(b, _)| b.start == span.as_ptr().addr())
        .expect("the span is shown");
    assert_eq!(
        (info.requested, info.usable, *block_size),
        (SPANNING, 2 * FILL, FILL)
    );
    assert!(
        shown
            .iter()
            .all(|(b, _)| b.start != span.as_ptr().addr() + FILL)
    );
    assert_eq!(heap.stats().live_bytes, blocks.len() * FILL + SPANNING);
    // The picture shows both of the span's blocks live: no free cell left.
    let mut picture = String::new();
    heap.write_text_picture(&mut picture, false).unwrap();
    let bars = picture
        .lines()
        .filter_map(|l| Some(&l[l.find('[')? + 1..l.find(']')?]));
    assert!(bars.clone().count() > 1, "{picture}");
    assert!(bars.clone().all(|bar| !bar.contains('.')), "{picture}");
    // A request of the same size now finds nothing.
    assert!(heap.allocate(layout(SPANNING)).is_none());

    unsafe { heap.deallocate(span) }.unwrap();
    // Both blocks are back, each a block of its own again.
    let a = heap.allocate(layout(FILL)).unwrap();
    let b = heap.allocate(layout(FILL)).unwrap();
    let mut got = [a.as_ptr().addr(), b.as_ptr().addr()];
    got.sort();
    assert_eq!(got, [low.as_ptr().addr(), low.as_ptr().addr() + FILL]);
    free_all(&heap, &[a, b], (blocks.len(), blocks.len() * FILL));
    free_all(&heap, &blocks, (0, 0));
}

#[test]
fn a_follower_is_no_block_and_a_span_is_freed_once() {
    let (heap, blocks, low) = full_with_a_hole();
    let span = heap.allocate(layout(SPANNING)).unwrap();
    let follower = unsafe { NonNull::new_unchecked(span.as_ptr().add(FILL)) };
    // The second block's address was never handed out.
    assert_eq!(
        unsafe { heap.deallocate(follower) },
        Err(HeapError::InvalidPointer)
    );
    assert_eq!(heap.usable_size(follower), Err(HeapError::InvalidPointer));
    assert!(unsafe { heap.reallocate(follower, layout(8)) }.is_err());
    // The span is untouched by the refused calls.
    assert_eq!(heap.usable_size(span), Ok(SPANNING));
    unsafe { heap.deallocate(span) }.unwrap();
    assert_eq!(unsafe { heap.deallocate(span) }, Err(HeapError::DoubleFree));
    assert_eq!(
        unsafe { heap.deallocate(follower) },
        Err(HeapError::DoubleFree)
    );
    assert_eq!(span, low);
    free_all(&heap, &blocks, (0, 0));
}

#[test]
fn an_overflow_past_a_span_is_caught_and_loses_nothing() {
    let (heap, blocks, _) = full_with_a_hole();
    let span = heap.allocate(layout(SPANNING)).unwrap();
    // The slack canary follows the requested bytes, in the second block.
    unsafe { span.as_ptr().add(SPANNING).write(0) };
    assert_eq!(unsafe { heap.deallocate(span) }, Err(HeapError::Overflow));
    assert!(matches!(
        unsafe { heap.reallocate(span, layout(100)) },
        Err(ft_malloc::ReallocError::Invalid(HeapError::Overflow))
    ));
    // The span stays live and out of reuse.
    assert_eq!(heap.usable_size(span), Ok(SPANNING));
    assert!(heap.allocate(layout(FILL)).is_none());
    free_all(&heap, &blocks, (1, SPANNING));
}

#[test]
fn a_span_is_zeroed_and_resized_by_moving() {
    let (heap, blocks, low) = full_with_a_hole();
    // The freed blocks hold links, marks and old bytes: all zero now.
    let span = heap.allocate_zeroed(layout(SPANNING)).unwrap();
    assert_eq!(span, low);
    let bytes = unsafe { std::slice::from_raw_parts(span.as_ptr(), SPANNING) };
    assert!(bytes.iter().all(|&b| b == 0));
    for i in 0..SPANNING {
        unsafe { span.as_ptr().add(i).write(i as u8) };
    }
    // Make room elsewhere: a shrink cannot stay in place (the span's
    // blocks go back together) and moves into the freed block.
    let room = blocks[blocks.len() / 2];
    unsafe { heap.deallocate(room) }.unwrap();
    let moved = unsafe { heap.reallocate(span, layout(300)) }.unwrap();
    assert_eq!(moved, room);
    assert!((0..300).all(|i| unsafe { moved.as_ptr().add(i).read() } == i as u8));
    // The span's two blocks were freed by the move.
    let a = heap.allocate(layout(FILL)).unwrap();
    let b = heap.allocate(layout(FILL)).unwrap();
    let mut got = [a.as_ptr().addr(), b.as_ptr().addr()];
    got.sort();
    assert_eq!(got, [low.as_ptr().addr(), low.as_ptr().addr() + FILL]);
    let rest: Vec<_> = blocks.iter().copied().filter(|&p| p != room).collect();
    free_all(&heap, &[moved, a, b], (rest.len(), rest.len() * FILL));
    free_all(&heap, &rest, (0, 0));
}

#[test]
fn a_front_cache_hands_a_span_back_to_its_zone() {
    let (heap, blocks, low) = full_with_a_hole();
    let mut cache = FrontCache::new();
    let span = cache.allocate(&heap, layout(SPANNING)).unwrap();
    assert_eq!(span, low);
    // The lock-free check sends a span to the heap, which frees both
    // blocks: none of them waits in the cache as a single block.
    unsafe { cache.deallocate(&heap, span) }.unwrap();
    assert_eq!(cache.cached_blocks(), 0);
    assert_eq!(
        unsafe { cache.deallocate(&heap, span) },
        Err(HeapError::DoubleFree)
    );
    let again = cache.allocate(&heap, layout(SPANNING)).unwrap();
    assert_eq!(again, low);
    let follower = unsafe { NonNull::new_unchecked(again.as_ptr().add(FILL)) };
    assert_eq!(
        unsafe { cache.deallocate(&heap, follower) },
        Err(HeapError::InvalidPointer)
    );
    unsafe { cache.deallocate(&heap, again) }.unwrap();
    cache.flush(&heap);
    free_all(&heap, &blocks, (0, 0));
}

/// Spans counted in a walk of the heap: blocks of more than their zone's
/// block size.
#[derive(Default)]
struct SpanCount(usize);

impl HeapVisitor for SpanCount {
    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        if zone.kind != ft_malloc::Kind::Large && block.usable > zone.block_size {
            self.0 += 1;
        }
    }
}

/// Whether the block still holds `tag` in each of its `size` bytes (every
/// 61st under Miri, which interprets each read).
fn assert_holds(p: NonNull<u8>, size: usize, tag: u8) {
    let step = if cfg!(miri) { 61 } else { 1 };
    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
    assert!(
        bytes
            .iter()
            .step_by(step)
            .chain(bytes.last())
            .all(|&b| b == tag),
        "a block changed"
    );
}

/// A mixed load churning at the edge of a 64 KiB heap: requests are
/// refused now and then, spans form and are freed, and every block keeps
/// its bytes.
#[test]
fn a_full_heap_under_churn_forms_spans_and_keeps_every_byte() {
    let heap: SmallHeap = small_heap();
    let mut rng = Rng(0x5ba7_5eed);
    let mut blocks: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
    let (mut spans_seen, mut refused) = (0, 0);
    let steps = if cfg!(miri) { 300 } else { 20_000 };
    for step in 0..steps {
        // Allocate two times in three: the heap stays full.
        if blocks.is_empty() || rng.below(3) < 2 {
            let size = 16 + rng.below(2032);
            let Some(p) = heap.allocate(layout(size)) else {
                refused += 1;
                continue;
            };
            let tag = step as u8;
            unsafe { p.as_ptr().write_bytes(tag, size) };
            blocks.push((p, size, tag));
        } else {
            let (p, size, tag) = blocks.swap_remove(rng.below(blocks.len()));
            assert_holds(p, size, tag);
            unsafe { heap.deallocate(p) }.unwrap();
        }
        if step % 64 == 0 {
            let mut count = SpanCount::default();
            heap.visit(&mut count);
            spans_seen += count.0;
            let stats = heap.stats();
            assert_eq!(stats.live_blocks, blocks.len());
            let live: usize = blocks.iter().map(|b| b.1).sum();
            assert_eq!(stats.live_bytes, live);
        }
    }
    assert!(refused > 0, "the heap never filled");
    assert!(spans_seen > 0, "no span formed");
    for (p, size, tag) in blocks {
        assert_holds(p, size, tag);
        unsafe { heap.deallocate(p) }.unwrap();
    }
    heap.trim();
    assert_eq!(heap.stats().mapped_bytes, 0);
}
