//! The pool's own checks, small enough for Miri
//! (`cargo +nightly miri test -p ft_malloc --lib coalesce`).

extern crate std;

use core::alloc::Layout;
use core::ptr::NonNull;
use std::vec::Vec;

use crate::arena::ArenaProvider;
use crate::coalesce::bins::bin_of;
use crate::coalesce::block::{HEADER, MIN_BLOCK};
use crate::coalesce::placement;
use crate::error::HeapError;
use crate::heap::Heap;
use crate::page_map::Owner;

const PAGE: usize = 4096;

/// A heap over `pages` pages of a buffer that outlives it.
fn heap(buf: &mut Vec<u8>) -> Heap<ArenaProvider> {
    // SAFETY: the buffer outlives the heap in each test (dropped after it).
    Heap::new(unsafe { ArenaProvider::new(buf.as_mut_ptr(), buf.len()) })
}

fn buffer(pages: usize) -> Vec<u8> {
    std::vec![0u8; (pages + 1) * PAGE]
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

fn owner(heap: &Heap<ArenaProvider>, p: NonNull<u8>) -> Option<Owner> {
    heap.page_map.lookup(p.as_ptr().addr())
}

#[test]
fn an_aligned_block_leaves_its_gap_free() {
    assert_eq!(placement(0, 4096, 64, 16), Some(0));
    // Header at 48: the user pointer 64 is 64-aligned.
    assert_eq!(placement(0, 4096, 64, 64), Some(48));
    // A gap under MIN_BLOCK is pushed to the next aligned place.
    assert_eq!(placement(32, 4096, 64, 64), Some(80));
    assert_eq!(placement(0, 100, 64, 64), None);
    assert!(bin_of(MIN_BLOCK) == 0);
}

#[test]
fn freed_neighbours_join_both_ways() {
    let mut buf = buffer(8);
    let heap = heap(&mut buf);
    let [a, b, c, d] = [300, 500, 700, 200].map(|s| heap.allocate(layout(s, 16)).unwrap());
    assert!(matches!(owner(&heap, a), Some(Owner::Pool { .. })));
    // Consecutive in one segment.
    assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), 304 + HEADER);
    unsafe {
        heap.deallocate(a).unwrap();
        heap.deallocate(c).unwrap();
        // `b` joins `a` (before) and `c` (after): one free block of all three.
        heap.deallocate(b).unwrap();
    }
    // A request as large as the three together lands where `a` was.
    let big = heap
        .allocate(layout(300 + 500 + 700 + 2 * HEADER, 16))
        .unwrap();
    assert_eq!(big, a);
    unsafe {
        heap.deallocate(big).unwrap();
        heap.deallocate(d).unwrap();
    }
    assert_eq!(heap.stats().live_blocks, 0);
    // The emptied segment is kept, then trimmed.
    assert!(heap.trim() > 0);
    assert_eq!(heap.stats().mapped_bytes, 0);
}

#[test]
fn pointers_are_checked_before_any_header_is_believed() {
    let mut buf = buffer(8);
    let heap = heap(&mut buf);
    let a = heap.allocate(layout(400, 16)).unwrap();
    let b = heap.allocate(layout(400, 16)).unwrap();
    unsafe {
        // A copy of `a`'s header inside `b`, at a 16-aligned address: the
        // bitmap, not the header, decides.
        let forged = b.add(32);
        core::ptr::copy_nonoverlapping(a.sub(HEADER).as_ptr(), forged.sub(HEADER).as_ptr(), 16);
        assert_eq!(heap.deallocate(forged), Err(HeapError::InvalidPointer));
        assert_eq!(heap.deallocate(a.add(8)), Err(HeapError::InvalidPointer));
        heap.deallocate(a).unwrap();
        assert_eq!(heap.deallocate(a), Err(HeapError::DoubleFree));
        // `b`'s header overwritten (an underflow): refused, heap unchanged.
        let h = b.sub(HEADER).as_ptr();
        let saved = h.read();
        h.write(saved ^ 0x40);
        assert_eq!(heap.deallocate(b), Err(HeapError::Corrupted));
        h.write(saved);
        heap.deallocate(b).unwrap();
    }
    assert_eq!(heap.stats().live_blocks, 0);
}

#[test]
fn realloc_stays_in_place_when_it_fits_and_moves_otherwise() {
    let mut buf = buffer(8);
    let heap = heap(&mut buf);
    let p = heap.allocate(layout(1000, 16)).unwrap();
    unsafe { p.as_ptr().write_bytes(9, 1000) };
    let q = unsafe { heap.reallocate(p, layout(900, 16)) }.unwrap();
    assert_eq!(q, p);
    assert_eq!(heap.usable_size(q), Ok(900));
    let r = unsafe { heap.reallocate(q, layout(3000, 16)) }.unwrap();
    assert!((0..900).all(|i| unsafe { r.as_ptr().add(i).read() } == 9));
    unsafe { heap.deallocate(r).unwrap() };
    assert_eq!(heap.stats().live_blocks, 0);
}

#[test]
fn whole_pages_at_page_alignment_take_bare_runs() {
    let mut buf = buffer(4);
    let heap = heap(&mut buf);
    let pages: Vec<_> = (0..4)
        .map(|_| heap.allocate(layout(PAGE, PAGE)).unwrap())
        .collect();
    assert!(heap.allocate(layout(PAGE, PAGE)).is_none());
    assert!(matches!(owner(&heap, pages[0]), Some(Owner::Bare { .. })));
    assert_eq!(heap.usable_size(pages[1]), Ok(PAGE));
    unsafe {
        assert_eq!(
            heap.deallocate(pages[2].add(16)),
            Err(HeapError::InvalidPointer)
        );
        for &p in &pages {
            heap.deallocate(p).unwrap();
        }
        assert_eq!(heap.deallocate(pages[0]), Err(HeapError::InvalidPointer));
    }
    assert_eq!(heap.stats().mapped_bytes, 0);
}

#[test]
fn a_bare_run_before_any_segment_leaves_the_links_right() {
    let mut buf = buffer(8);
    let heap = heap(&mut buf);
    let page = heap.allocate(layout(PAGE, PAGE)).unwrap();
    // Free blocks are linked by offsets from the origin the first segment
    // sets, even after a bare run came first.
    let blocks: Vec<_> = (0..6)
        .map(|i| heap.allocate(layout(200 + 100 * i, 16)).unwrap())
        .collect();
    for &p in blocks.iter().step_by(2) {
        unsafe { heap.deallocate(p).unwrap() };
    }
    let again = heap.allocate(layout(150, 16)).unwrap();
    unsafe {
        heap.deallocate(again).unwrap();
        for &p in blocks.iter().skip(1).step_by(2) {
            heap.deallocate(p).unwrap();
        }
        heap.deallocate(page).unwrap();
    }
    assert_eq!(heap.stats().live_blocks, 0);
}
