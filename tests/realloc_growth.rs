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
