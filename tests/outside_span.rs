//! Runs outside the provider's span: a provider whose span is full may hand
//! out runs wholly outside it (`PageProvider::span`), as `libft_malloc.so`'s
//! address window does once a process outgrows it. The page map keeps them
//! in a tree beside its flat array: blocks there are allocated, found, freed
//! and visited like the others, and pointers there that no run holds are
//! still refused.

mod common;

use std::alloc::Layout;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use common::{OwnedArena, arena_aligned};
use ft_malloc::{BlockInfo, Heap, HeapError, HeapVisitor, MIN_PAGE_SIZE, PageProvider, ZoneInfo};

/// Starts of the live blocks, in the order `visit` gives them.
#[derive(Default)]
struct Starts(Vec<usize>);

impl HeapVisitor for Starts {
    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        self.0.push(block.start);
    }
}

fn visit<P: PageProvider>(heap: &Heap<P>) -> Vec<usize> {
    let mut starts = Starts::default();
    heap.visit(&mut starts);
    starts.0
}

/// A span over `inside` (its region); once that is full, runs come from
/// `outside`, a separate region elsewhere in memory.
struct Overflowing {
    inside: OwnedArena,
    outside: OwnedArena,
}

impl Overflowing {
    fn in_span(&self, addr: usize) -> bool {
        let (start, end) = self.inside.span().unwrap();
        (start..end).contains(&addr)
    }
}

// SAFETY: forwards each run to the arena it came from; runs from `inside`
// lie in the reported span, runs from `outside` wholly outside it (two
// disjoint buffers), and none is moved (`may_move` is dropped).
unsafe impl PageProvider for Overflowing {
    fn page_size(&self) -> usize {
        MIN_PAGE_SIZE
    }
    fn span(&self) -> Option<(usize, usize)> {
        self.inside.span()
    }
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        self.inside
            .map(len, align)
            .or_else(|| self.outside.map(len, align))
    }
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        if self.in_span(run.as_ptr().addr()) {
            unsafe { self.inside.unmap(run, len) }
        } else {
            unsafe { self.outside.unmap(run, len) }
        }
    }
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old: usize,
        new: usize,
        _may_move: bool,
    ) -> Option<NonNull<u8>> {
        if self.in_span(run.as_ptr().addr()) {
            unsafe { self.inside.resize(run, old, new, false) }
        } else {
            unsafe { self.outside.resize(run, old, new, false) }
        }
    }
}

#[test]
fn blocks_outside_a_full_span_live_and_die_like_the_others() {
    // 4 MiB: a span with SMALL zones and a mapped (not inline) flat array.
    let heap = Heap::new(Overflowing {
        inside: arena_aligned(4 << 20, MIN_PAGE_SIZE),
        outside: arena_aligned(16 << 20, MIN_PAGE_SIZE),
    });
    let sizes = [24, 200, 3000, 40_000, 150_000];
    let mut blocks = Vec::new();
    let mut outside = 0;
    let mut i = 0;
    // Fill the span, then as much again outside it.
    while outside < 100 {
        let size = sizes[i % sizes.len()];
        i += 1;
        let layout = Layout::from_size_align(size, 8).unwrap();
        let p = heap
            .allocate(layout)
            .unwrap_or_else(|| panic!("block {i} ({outside} outside) failed"));
        unsafe { p.as_ptr().write_bytes(i as u8, size) };
        outside += usize::from(!heap.provider().in_span(p.as_ptr().addr()));
        blocks.push((p, size, i as u8));
    }
    let visited = visit(&heap);
    assert_eq!(
        visited.len(),
        blocks.len(),
        "every block is visited, in or out"
    );
    assert!(
        visited.is_sorted(),
        "in address order across the span's edge"
    );
    assert_eq!(heap.stats().live_blocks, blocks.len());
    // A pointer outside the span that no run holds is refused.
    let stray = heap.provider().outside.span().unwrap().1 - MIN_PAGE_SIZE;
    // (An address only: the heap must refuse it without reading it.)
    let stray = blocks[0].0.map_addr(|_| NonZeroUsize::new(stray).unwrap());
    assert!(matches!(
        unsafe { heap.deallocate(stray) },
        Err(HeapError::InvalidPointer)
    ));
    for (p, size, tag) in blocks.drain(..) {
        let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
        // Every 509th byte and the last (all of them made Miri too slow).
        assert!(
            (0..size)
                .step_by(509)
                .chain([size - 1])
                .all(|k| bytes[k] == tag),
            "block {p:p} kept its bytes"
        );
        unsafe { heap.deallocate(p) }.expect("a live block frees");
        // Freed once: the second free is caught, outside the span too.
        assert!(unsafe { heap.deallocate(p) }.is_err());
    }
    assert!(visit(&heap).is_empty());
    assert_eq!(heap.stats().live_blocks, 0);
}
