//! Growing reallocs on a plain `Heap` (`src/realloc.rs`,
//! `allocate_for_growth`): a block that a realloc moves while it grows
//! geometrically gets room for its next step, so that step stays in
//! place; the room is slack after the recorded size, where the canary is
//! still checked, and a heap too small for slack gives none.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{Counting, arena};
use ft_malloc::{Heap, HeapError, ReallocError};

type ArenaHeap = Heap<Counting<common::OwnedArena>>;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn fill(p: NonNull<u8>, from: usize, to: usize) {
    for i in from..to {
        unsafe { p.as_ptr().add(i).write(i as u8) };
    }
}

fn check(p: NonNull<u8>, len: usize) {
    for i in 0..len {
        assert_eq!(unsafe { p.as_ptr().add(i).read() }, i as u8, "byte {i}");
    }
}

/// A string builder's +50% steps, 16 B to 4 KiB, 14 reallocs: each move
/// gets room for one more step, so at most every other step moves (each
/// step moved before: +50% always leaves the class). Contents and
/// recorded sizes stay exact.
#[test]
fn a_string_builder_moves_at_every_other_step() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let mut size = 16;
    let mut p = heap.allocate(layout(size)).unwrap();
    fill(p, 0, size);
    let (mut steps, mut moves) = (0, 0);
    while size < 4096 {
        let new = (size * 3 / 2).min(4096);
        let q = unsafe { heap.reallocate(p, layout(new)) }.unwrap();
        check(q, size);
        assert_eq!(heap.usable_size(q), Ok(new));
        fill(q, size, new);
        moves += usize::from(q != p);
        steps += 1;
        (p, size) = (q, new);
    }
    assert_eq!(steps, 14);
    assert!(moves <= 7, "{moves} moves in {steps} steps of +50%");
    unsafe { heap.deallocate(p) }.unwrap();
    assert_eq!(heap.stats().live_blocks, 0);
}

/// The room a growing block gets lies past its recorded size: a write one
/// byte past that size breaks the canary, which the next realloc and the
/// free both catch.
#[test]
fn the_room_of_a_grown_block_is_guarded_by_its_canary() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let p = heap.allocate(layout(200)).unwrap();
    let q = unsafe { heap.reallocate(p, layout(300)) }.unwrap();
    assert_ne!(p, q, "200 -> 300 B moves");
    let r = unsafe { heap.reallocate(q, layout(420)) }.unwrap();
    assert_eq!(q, r, "the next +40% step stays in the room");
    unsafe { r.as_ptr().add(420).write(0) };
    assert_eq!(
        unsafe { heap.reallocate(r, layout(440)) },
        Err(ReallocError::Invalid(HeapError::Overflow))
    );
    assert_eq!(unsafe { heap.deallocate(r) }, Err(HeapError::Overflow));
}

/// A small region gives no slack (`room_to_grow`: under 512 KiB): there a
/// growing block gets the class its size asks for, and its next step
/// moves again. (TINY sizes: a small region's pool serves SMALL ones.)
#[test]
fn a_small_region_gives_no_room() {
    for (region, next_step_moves) in [(256 << 10, true), (4 << 20, false)] {
        let heap: ArenaHeap = Heap::new(Counting::new(arena(region)));
        let p = heap.allocate(layout(16)).unwrap();
        let q = unsafe { heap.reallocate(p, layout(24)) }.unwrap();
        let r = unsafe { heap.reallocate(q, layout(36)) }.unwrap();
        assert_eq!(q != r, next_step_moves, "a region of {region} bytes");
        unsafe { heap.deallocate(r) }.unwrap();
    }
}

/// The live blocks `visit` reports: (address, requested, usable).
#[derive(Default)]
struct Blocks(Vec<(usize, usize, usize)>);

impl ft_malloc::HeapVisitor for Blocks {
    fn block(&mut self, _: &ft_malloc::ZoneInfo, block: &ft_malloc::BlockInfo) {
        self.0.push((block.start, block.requested, block.usable));
    }
}

fn visited(heap: &ArenaHeap) -> Vec<(usize, usize, usize)> {
    let mut blocks = Blocks::default();
    heap.visit(&mut blocks);
    blocks.0
}

/// The plain heap's realloc that stays in place (`resize_checked`): up and
/// down within the block, and a shrink to a class at least half the block
/// (`stays_in_class`), keep the address and the contents; the recorded
/// size is what `usable_size`, `stats` and `visit` report after each step;
/// the canary follows the new end; a shrink below half the block moves.
#[test]
fn a_realloc_in_place_keeps_contents_and_introspection_exact() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let other = heap.allocate(layout(100)).unwrap();
    let p = heap.allocate(layout(16000)).unwrap();
    fill(p, 0, 16000);
    // 16000 B is in the 16 KiB class: 9000, 16384 and 8000 (class 8 KiB,
    // half the block) stay; each step's bytes are those of the smaller size.
    let mut len = 16000;
    for new in [9000, 16000, 16384, 8000] {
        let q = unsafe { heap.reallocate(p, layout(new)) }.unwrap();
        assert_eq!(q, p, "{len} -> {new} B stays in the block");
        check(q, len.min(new));
        fill(q, 0, new);
        len = new;
        assert_eq!(heap.usable_size(q), Ok(new));
        let stats = heap.stats();
        assert_eq!((stats.live_blocks, stats.live_bytes), (2, 100 + new));
        let blocks = visited(&heap);
        let mine = blocks.iter().find(|b| b.0 == p.as_ptr().addr());
        assert_eq!(mine.map(|b| b.1), Some(new), "visit after {new} B");
    }
    // One byte past the recorded size is the canary.
    let canary = unsafe { p.as_ptr().add(len).read() };
    unsafe { p.as_ptr().add(len).write(!canary) };
    assert_eq!(
        unsafe { heap.reallocate(p, layout(len + 1)) },
        Err(ReallocError::Invalid(HeapError::Overflow))
    );
    unsafe { p.as_ptr().add(len).write(canary) };
    // Below half the block (class 4 KiB): it moves, contents kept.
    let q = unsafe { heap.reallocate(p, layout(4000)) }.unwrap();
    assert_ne!(q, p, "8000 -> 4000 B leaves the 16 KiB block");
    check(q, 4000);
    assert_eq!(visited(&heap).len(), 2);
    unsafe { heap.deallocate(q) }.unwrap();
    unsafe { heap.deallocate(other) }.unwrap();
    assert_eq!(heap.stats().live_blocks, 0);
}

/// What the plain heap's realloc refuses, it refuses before it changes
/// anything, whichever way the block was freed (to the heap's own stack,
/// class up to 1 KiB, or to its zone) or damaged, and a pointer inside a
/// block or past the carved blocks is no block: every refusal is counted,
/// and the live blocks stay as they were.
#[test]
fn a_plain_heap_realloc_refuses_bad_pointers_and_changes_nothing() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let live = heap.allocate(layout(300)).unwrap();
    fill(live, 0, 300);
    let mut refused = 0;
    let mut refuse = |ptr: NonNull<u8>, new: usize, error: HeapError| {
        assert_eq!(
            unsafe { heap.reallocate(ptr, layout(new)) },
            Err(ReallocError::Invalid(error)),
            "{ptr:p} -> {new} B"
        );
        refused += 1;
        assert_eq!(heap.stats().errors, refused);
    };
    for size in [40, 300, 3000] {
        let freed = heap.allocate(layout(size)).unwrap();
        unsafe { heap.deallocate(freed) }.unwrap();
        // In place (a size its block holds) and by a move (twice the size).
        refuse(freed, size - 1, HeapError::DoubleFree);
        refuse(freed, size * 2, HeapError::DoubleFree);
    }
    // A freed block whose free mark a use after free overwrote: its live
    // bit still says it is free (its zone's list is left alone).
    let scribbled = heap.allocate(layout(3000)).unwrap();
    unsafe { heap.deallocate(scribbled) }.unwrap();
    let link = unsafe { scribbled.as_ptr().cast::<[usize; 2]>().read() };
    unsafe { scribbled.as_ptr().add(8).cast::<usize>().write(0x5555) };
    refuse(scribbled, 2000, HeapError::DoubleFree);
    unsafe { scribbled.as_ptr().cast::<[usize; 2]>().write(link) };
    let overflowed = heap.allocate(layout(40)).unwrap();
    unsafe { overflowed.as_ptr().add(40).write(0xee) };
    refuse(overflowed, 41, HeapError::Overflow);
    refuse(overflowed, 400, HeapError::Overflow);
    let inside = unsafe { live.add(16) };
    refuse(inside, 200, HeapError::InvalidPointer);
    refuse(inside, 600, HeapError::InvalidPointer);
    // The next block of the live one's zone, never carved.
    let uncarved = unsafe { live.add(heap.usable_size(live).unwrap().next_multiple_of(16)) };
    assert!(matches!(
        unsafe { heap.reallocate(uncarved, layout(8)) },
        Err(ReallocError::Invalid(_))
    ));
    check(live, 300);
    assert_eq!(heap.usable_size(live), Ok(300));
    let q = unsafe { heap.reallocate(live, layout(310)) }.unwrap();
    assert_eq!(q, live, "the live block still resizes in place");
    check(q, 300);
    unsafe { heap.deallocate(q) }.unwrap();
}

/// A realloc to a larger alignment than the block has moves it to a
/// block with that alignment, contents kept; one the block already meets
/// stays.
#[test]
fn an_over_aligned_realloc_moves_only_when_it_must() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let p = heap.allocate(layout(160)).unwrap();
    fill(p, 0, 160);
    let align = if p.as_ptr().addr().is_multiple_of(64) {
        128
    } else {
        64
    };
    let wide = Layout::from_size_align(150, align).unwrap();
    let q = unsafe { heap.reallocate(p, wide) }.unwrap();
    assert_ne!(q, p);
    assert!(q.as_ptr().addr().is_multiple_of(align));
    check(q, 150);
    let r = unsafe { heap.reallocate(q, Layout::from_size_align(140, align).unwrap()) }.unwrap();
    assert_eq!(r, q, "already aligned: stays");
    check(r, 140);
    unsafe { heap.deallocate(r) }.unwrap();
}
