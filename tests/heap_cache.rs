//! The heap's own stacks of free blocks (`src/heap_cache.rs`): a plain
//! `Heap`, with no front cache, keeps a block freed by the program and
//! hands it out again, last freed first, while every check of a free still
//! holds and introspection stays exact.

#[path = "common/census.rs"]
mod census;
mod common;

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use census::Census;
use common::{Counting, arena};
use ft_malloc::{Heap, HeapError};

type ArenaHeap = Heap<Counting<common::OwnedArena>>;

/// Over 512 KiB: the heap makes its stacks (`AREA_MIN_SPAN`).
fn heap() -> ArenaHeap {
    Heap::new(Counting::new(arena(4 << 20)))
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Sends the blocks a fresh zone's allocations lent to the stacks
/// (`heap_cache/carve.rs`) back to their zones, so that a test counts the
/// blocks its own frees stack.
fn drain_carved(heap: &ArenaHeap) {
    heap.trim();
    assert_eq!(heap.stats().cached_blocks, 0);
}

#[test]
fn a_freed_box_comes_back_first_last_freed_first() {
    let heap = heap();
    let keep = heap.allocate(layout(8)).unwrap();
    let a = heap.allocate(layout(8)).unwrap();
    let b = heap.allocate(layout(8)).unwrap();
    drain_carved(&heap);
    unsafe { heap.deallocate(a) }.unwrap();
    unsafe { heap.deallocate(b) }.unwrap();
    assert_eq!(heap.stats().cached_blocks, 2, "both kept in the stack");
    assert_eq!(heap.allocate(layout(8)), Some(b));
    assert_eq!(heap.allocate(layout(8)), Some(a));
    for p in [keep, a, b] {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(heap.stats().errors, 0);
}

#[test]
fn a_double_free_of_a_stacked_block_is_caught() {
    let heap = heap();
    let _keep = heap.allocate(layout(40)).unwrap();
    let p = heap.allocate(layout(40)).unwrap();
    drain_carved(&heap);
    unsafe { heap.deallocate(p) }.unwrap();
    assert_eq!(heap.stats().cached_blocks, 1);
    assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::DoubleFree));
    assert_eq!(
        unsafe { heap.reallocate(p, layout(80)) }.map_err(|_| ()),
        Err(())
    );
    assert_eq!(heap.usable_size(p), Err(HeapError::DoubleFree));
    // The block is in the stack once: handed out once, then a fresh one.
    let a = heap.allocate(layout(40)).unwrap();
    let b = heap.allocate(layout(40)).unwrap();
    assert_eq!(a, p);
    assert_ne!(a, b);
    // The free and the realloc count (`usable_size` only answers).
    assert_eq!(heap.stats().errors, 2);
}

#[test]
fn interior_and_foreign_pointers_are_refused_and_not_stacked() {
    let heap = heap();
    let p = heap.allocate(layout(64)).unwrap();
    let interior = unsafe { NonNull::new_unchecked(p.as_ptr().add(16)) };
    assert_eq!(
        unsafe { heap.deallocate(interior) },
        Err(HeapError::InvalidPointer)
    );
    let mut local = 0u64;
    let foreign = NonNull::from(&mut local).cast::<u8>();
    assert_eq!(
        unsafe { heap.deallocate(foreign) },
        Err(HeapError::InvalidPointer)
    );
    assert_eq!(heap.stats().cached_blocks, 0, "nothing was stacked");
    // A block never carved (past the zone's bump pointer) is refused too.
    let never = unsafe { NonNull::new_unchecked(p.as_ptr().add(64 * 50)) };
    assert_eq!(
        unsafe { heap.deallocate(never) },
        Err(HeapError::InvalidPointer)
    );
    unsafe { heap.deallocate(p) }.unwrap();
    assert_eq!(heap.stats().errors, 3);
}

#[test]
fn an_overflowed_block_is_refused_not_stacked() {
    let heap = heap();
    let p = heap.allocate(layout(20)).unwrap();
    unsafe { p.as_ptr().add(20).write(0) };
    assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::Overflow));
    assert_eq!(heap.stats().cached_blocks, 0);
    assert_eq!(heap.stats().live_blocks, 1, "kept out of reuse");
}

#[test]
fn visit_and_stats_are_exact_with_blocks_in_the_stacks() {
    let heap = heap();
    let sizes = [8, 24, 100, 500, 1000, 2000];
    let blocks: Vec<_> = sizes
        .iter()
        .flat_map(|&s| (0..3).map(move |_| (s, 0)))
        .map(|(s, _)| (heap.allocate(layout(s)).unwrap(), s))
        .collect();
    drain_carved(&heap);
    // Free every other block: those up to 1 KiB go to the stacks.
    let mut live = Vec::new();
    let mut kept = Vec::new();
    for (i, &(p, s)) in blocks.iter().enumerate() {
        if i % 2 == 0 {
            unsafe { heap.deallocate(p) }.unwrap();
        } else {
            live.push((p.as_ptr().addr(), s));
            kept.push(p);
        }
    }
    let mut census = Census::default();
    heap.visit(&mut census);
    census.live.sort();
    live.sort();
    assert_eq!(census.live, live, "visit reports exactly the live blocks");
    let stats = heap.stats();
    assert_eq!(stats.live_blocks, live.len());
    assert_eq!(
        stats.live_bytes,
        live.iter().map(|&(_, s)| s).sum::<usize>()
    );
    // 9 freed: one of 2000 bytes went to its zone, the 8 others are
    // stacked (cached: lent by their zones, marked free).
    assert_eq!(stats.cached_blocks, census.cached);
    assert_eq!(stats.cached_blocks, 8);
    // `trim` sends the stacked blocks back to their zones.
    heap.trim();
    assert_eq!(heap.stats().cached_blocks, 0);
    assert_eq!(heap.stats().live_blocks, live.len());
    for p in kept {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    heap.trim();
    assert_eq!(heap.stats().small_zones + heap.stats().tiny_zones, 0);
    assert_eq!(heap.stats().errors, 0);
}

static CORRUPTION_AT: AtomicUsize = AtomicUsize::new(0);

fn note_corruption(error: HeapError, at: NonNull<u8>) {
    assert_eq!(error, HeapError::Corrupted);
    CORRUPTION_AT.store(at.as_ptr().addr(), Ordering::SeqCst);
}

/// A stacked block written after its free (its first words) is reported
/// when it is handed out again, and is sound afterwards: its free is
/// accepted, its canary right.
#[test]
fn a_write_after_free_to_a_stacked_block_is_reported() {
    let heap = heap();
    heap.set_corruption_handler(note_corruption);
    let _keep = heap.allocate(layout(48)).unwrap();
    let p = heap.allocate(layout(48)).unwrap();
    unsafe { heap.deallocate(p) }.unwrap();
    unsafe { p.as_ptr().cast::<usize>().add(1).write(0) };
    let q = heap.allocate(layout(40)).unwrap();
    assert_eq!(q, p);
    assert_eq!(CORRUPTION_AT.load(Ordering::SeqCst), p.as_ptr().addr());
    assert_eq!(heap.usable_size(q), Ok(40));
    unsafe { heap.deallocate(q) }.unwrap();
    assert_eq!(heap.stats().errors, 1);
}

/// Dropping a heap with blocks in its stacks gives everything back, the
/// stacks' area included.
#[test]
fn a_heap_dropped_with_stacked_blocks_returns_every_page() {
    let provider = Counting::new(arena(4 << 20));
    {
        let heap: Heap<&Counting<common::OwnedArena>> = Heap::new(&provider);
        let blocks: Vec<_> = (0..50)
            .map(|i| heap.allocate(layout(16 + i * 16)).unwrap())
            .collect();
        for p in blocks {
            unsafe { heap.deallocate(p) }.unwrap();
        }
        assert!(heap.stats().cached_blocks > 0);
        assert!(provider.held() > 0);
    }
    assert_eq!(provider.held(), 0);
}

/// A vector doubling through the classes gets room for its next doubling
/// when it moves: every other realloc stays in place, the contents kept,
/// `usable_size` exact (the recorded size, not the block's).
#[test]
fn a_doubling_vector_moves_at_every_other_step() {
    let heap = heap();
    let mut size = 16;
    let mut p = heap.allocate(layout(size)).unwrap();
    unsafe { p.as_ptr().write_bytes(0x5a, size) };
    let mut moves = 0;
    while size < 16 << 10 {
        let q = unsafe { heap.reallocate(p, layout(size * 2)) }.unwrap();
        assert!((0..size).all(|i| unsafe { q.as_ptr().add(i).read() } == 0x5a));
        moves += (q != p) as usize;
        size *= 2;
        p = q;
        unsafe { p.as_ptr().write_bytes(0x5a, size) };
        assert_eq!(heap.usable_size(p), Ok(size));
    }
    assert_eq!(moves, 5, "10 doublings, 5 of them in place");
    unsafe { heap.deallocate(p) }.unwrap();
    // A block given room has its canary right after its recorded size: a
    // write past it is caught, as in any block.
    let p = heap.allocate(layout(16)).unwrap();
    let q = unsafe { heap.reallocate(p, layout(32)) }.unwrap();
    assert_eq!(heap.usable_size(q), Ok(32));
    unsafe { q.as_ptr().add(32).write(0) };
    assert_eq!(
        unsafe { heap.reallocate(q, layout(64)) },
        Err(ft_malloc::ReallocError::Invalid(HeapError::Overflow))
    );
    assert_eq!(unsafe { heap.deallocate(q) }, Err(HeapError::Overflow));
}

/// A stack holds 32 blocks; the frees past them go to their zones, under
/// the same lock. A second free of either kind of block is caught, the
/// stacked ones are handed out again last freed first, and the zones' ones
/// after them.
#[test]
fn a_full_stack_sends_frees_to_the_zone_and_double_frees_are_caught_in_both() {
    let heap = heap();
    let blocks: Vec<_> = (0..40)
        .map(|_| heap.allocate(layout(24)).unwrap())
        .collect();
    drain_carved(&heap);
    for &p in &blocks {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(heap.stats().cached_blocks, 32, "the stack is full at 32");
    assert_eq!(heap.stats().live_blocks, 0);
    for &p in &blocks {
        assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::DoubleFree));
    }
    assert_eq!(heap.stats().errors, 40);
    // Stacked blocks come back first, the last freed first.
    for &p in blocks[..32].iter().rev() {
        assert_eq!(heap.allocate(layout(24)), Some(p));
    }
    let rest: Vec<_> = (0..8).map(|_| heap.allocate(layout(24)).unwrap()).collect();
    let mut expected = blocks[32..].to_vec();
    let mut got = rest.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "then the zone's free blocks");
    for p in blocks {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(heap.stats().errors, 40);
}

/// A class above 1 KiB has no stack: its blocks go back to their zone at
/// every free (the first one marks the class so, the later ones do not
/// ask again), a second free is still caught, and a block freed is handed
/// out again from the zone, live and exact in `stats`.
#[test]
fn blocks_above_the_stacked_classes_go_back_to_their_zones() {
    let heap = heap();
    // A small block first, so that the area exists and stacks are open.
    let small = heap.allocate(layout(16)).unwrap();
    unsafe { heap.deallocate(small) }.unwrap();
    assert_eq!(heap.stats().cached_blocks, 1);
    let big: Vec<_> = (0..3)
        .map(|_| heap.allocate(layout(2000)).unwrap())
        .collect();
    for &p in &big {
        unsafe { heap.deallocate(p) }.unwrap();
        assert_eq!(heap.stats().cached_blocks, 1, "not stacked");
        assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::DoubleFree));
    }
    assert_eq!(heap.stats().live_blocks, 0);
    assert_eq!(heap.stats().errors, 3);
    let again = heap.allocate(layout(2000)).unwrap();
    assert!(big.contains(&again), "from the zone's free blocks");
    assert_eq!(heap.stats().live_blocks, 1);
    unsafe { heap.deallocate(again) }.unwrap();
}

/// The block a realloc moves away from goes to the stack with the checks
/// that realloc made once (`Heap::free_moved`): it counts as cached, not
/// live; a second free or realloc of it is caught; it comes back first;
/// and a write to it after the move is reported when it is handed out.
#[test]
fn a_block_a_realloc_moved_away_from_is_stacked_and_still_guarded() {
    let heap = heap();
    let p = heap.allocate(layout(24)).unwrap();
    unsafe { p.as_ptr().write_bytes(0x33, 24) };
    let q = unsafe { heap.reallocate(p, layout(200)) }.unwrap();
    assert_ne!(p, q, "24 -> 200 bytes moves");
    assert!((0..24).all(|i| unsafe { q.as_ptr().add(i).read() } == 0x33));
    let stats = heap.stats();
    assert_eq!((stats.cached_blocks, stats.live_blocks), (1, 1));
    let mut census = Census::default();
    heap.visit(&mut census);
    assert_eq!(census.live, vec![(q.as_ptr() as usize, 200)]);
    assert_eq!(census.cached, 1);
    assert_eq!(unsafe { heap.deallocate(p) }, Err(HeapError::DoubleFree));
    assert_eq!(
        unsafe { heap.reallocate(p, layout(300)) },
        Err(ft_malloc::ReallocError::Invalid(HeapError::DoubleFree))
    );
    assert_eq!(heap.stats().errors, 2);
    assert_eq!(heap.allocate(layout(24)), Some(p), "last freed, first out");
    unsafe { heap.deallocate(p) }.unwrap();
    // Written after the move: reported when handed out again.
    unsafe { p.as_ptr().cast::<u64>().write(0) };
    assert_eq!(heap.allocate(layout(24)), Some(p));
    assert_eq!(heap.stats().errors, 3);
    for b in [p, q] {
        unsafe { heap.deallocate(b) }.unwrap();
    }
}

/// Blocks a stack holds (`heap_cache.rs`: `DEPTH`).
const DEPTH: usize = 32;

/// Fills the stack of the class of `size` and returns its blocks (all
/// stacked), with one more block live.
fn fill_stack(heap: &ArenaHeap, size: usize) -> (Vec<NonNull<u8>>, NonNull<u8>) {
    let blocks: Vec<_> = (0..=DEPTH)
        .map(|_| heap.allocate(layout(size)).unwrap())
        .collect();
    drain_carved(heap);
    for &p in &blocks[..DEPTH] {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(heap.stats().cached_blocks, DEPTH, "the stack is full");
    (blocks[..DEPTH].to_vec(), blocks[DEPTH])
}

/// With its stack full, a free is checked on the fast path and its block
/// goes straight to the zone (`free_claimed`): every check still refuses
/// what it must, with nothing changed, and the counts stay exact.
#[test]
fn a_free_past_a_full_stack_is_checked_as_any_other() {
    let heap = heap();
    let (stacked, last) = fill_stack(&heap, 40);
    // An interior pointer, a pointer past the carved blocks, an overflow.
    let interior = unsafe { NonNull::new_unchecked(last.as_ptr().add(8)) };
    assert_eq!(
        unsafe { heap.deallocate(interior) },
        Err(HeapError::InvalidPointer)
    );
    let never = unsafe { NonNull::new_unchecked(last.as_ptr().add(48 * 100)) };
    assert_eq!(
        unsafe { heap.deallocate(never) },
        Err(HeapError::InvalidPointer)
    );
    let canary = unsafe { last.as_ptr().add(40).read() };
    unsafe { last.as_ptr().add(40).write(!canary) };
    assert_eq!(unsafe { heap.deallocate(last) }, Err(HeapError::Overflow));
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.cached_blocks), (1, DEPTH));
    assert_eq!(stats.errors, 3);
    // Repaired, it is freed to its zone: not cached, not live.
    unsafe { last.as_ptr().add(40).write(canary) };
    unsafe { heap.deallocate(last) }.unwrap();
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.cached_blocks), (0, DEPTH));
    let mut census = Census::default();
    heap.visit(&mut census);
    assert!(census.live.is_empty());
    assert_eq!(census.cached, DEPTH);
    // A second free of it, or of a stacked block, is a double free.
    assert_eq!(unsafe { heap.deallocate(last) }, Err(HeapError::DoubleFree));
    assert_eq!(
        unsafe { heap.deallocate(stacked[3]) },
        Err(HeapError::DoubleFree)
    );
    assert_eq!(heap.stats().errors, 5);
    // The stack's blocks first, last freed first, then the zone's.
    for &p in stacked.iter().rev() {
        assert_eq!(heap.allocate(layout(40)), Some(p));
    }
    assert_eq!(heap.allocate(layout(40)), Some(last));
}

/// Each class's stack is its own (`HeapCache::stacks`): blocks of several
/// classes freed in turn come back to their own class, each last freed
/// first, and a drain (`trim`) returns them all to their zones.
#[test]
fn each_class_has_its_own_stack_and_trim_drains_them_all() {
    let heap = heap();
    let sizes = [16, 24, 100, 256, 1000];
    let blocks: Vec<Vec<_>> = sizes
        .iter()
        .map(|&s| (0..5).map(|_| heap.allocate(layout(s)).unwrap()).collect())
        .collect();
    drain_carved(&heap);
    for i in 0..5 {
        for class in &blocks {
            unsafe { heap.deallocate(class[i]) }.unwrap();
        }
    }
    assert_eq!(heap.stats().cached_blocks, 25);
    for (class, &s) in blocks.iter().zip(&sizes).rev() {
        for &p in class.iter().rev().take(2) {
            assert_eq!(heap.allocate(layout(s)), Some(p));
        }
    }
    assert_eq!(heap.stats().cached_blocks, 15);
    assert_eq!(heap.stats().live_blocks, 10);
    heap.trim();
    assert_eq!(heap.stats().cached_blocks, 0);
    assert_eq!(heap.stats().live_blocks, 10);
    // Drained blocks are free in their zones: a second free is caught.
    assert_eq!(
        unsafe { heap.deallocate(blocks[0][0]) },
        Err(HeapError::DoubleFree)
    );
    for (class, _) in blocks.iter().zip(&sizes) {
        for &p in class.iter().rev().take(2) {
            unsafe { heap.deallocate(p) }.unwrap();
        }
    }
    heap.trim();
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.cached_blocks), (0, 0));
    assert_eq!(stats.small_zones + stats.tiny_zones, 0);
    assert_eq!(stats.errors, 1);
}

/// An allocation that carves a fresh block lends the zone's next blocks in
/// the same page (at most half a stack) to its empty stack: they are cached
/// (free, not live), handed out next in address order, refused if freed
/// before they are handed out, and drained by `trim`.
#[test]
fn a_carving_allocation_lends_the_next_blocks_to_the_stack() {
    let heap = heap();
    // The zone's first block comes with the zone (`alloc_small_slow`);
    // the second is the first a listed zone carves.
    let zero = heap.allocate(layout(24)).unwrap();
    assert_eq!(heap.stats().cached_blocks, 0);
    let first = heap.allocate(layout(24)).unwrap();
    let lent = heap.stats().cached_blocks;
    assert!((1..=DEPTH / 2).contains(&lent), "{lent} blocks lent");
    assert_eq!(heap.stats().live_blocks, 2);
    let mut census = Census::default();
    heap.visit(&mut census);
    census.live.sort();
    assert_eq!(
        census.live,
        vec![(zero.as_ptr().addr(), 24), (first.as_ptr().addr(), 24)]
    );
    assert_eq!(census.cached, lent);
    // A lent block was never handed out: freeing it is a double free.
    let next = unsafe { NonNull::new_unchecked(first.as_ptr().add(32)) };
    assert_eq!(unsafe { heap.deallocate(next) }, Err(HeapError::DoubleFree));
    // Handed out in address order, each with its own size and canary.
    let taken: Vec<_> = (0..lent)
        .map(|i| heap.allocate(layout(17 + i)).unwrap())
        .collect();
    for (i, p) in taken.iter().enumerate() {
        assert_eq!(p.as_ptr().addr(), first.as_ptr().addr() + 32 * (i + 1));
        assert_eq!(heap.usable_size(*p), Ok(17 + i));
    }
    assert_eq!(heap.stats().cached_blocks, 0);
    for p in taken {
        unsafe { heap.deallocate(p) }.unwrap();
    }
    heap.trim();
    let stats = heap.stats();
    assert_eq!((stats.live_blocks, stats.cached_blocks), (2, 0));
    unsafe { heap.deallocate(first) }.unwrap();
    unsafe { heap.deallocate(zero) }.unwrap();
    assert_eq!(heap.stats().errors, 1);
    // Classes without a stack lend nothing.
    let before = heap.stats().cached_blocks;
    let big: Vec<_> = (0..3)
        .map(|_| heap.allocate(layout(2000)).unwrap())
        .collect();
    assert_eq!(heap.stats().cached_blocks, before);
    for p in big {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}

/// A heap too small for the stacks' area (`AREA_MIN_SPAN`) lends nothing
/// ahead: every page of a small region counts.
#[test]
fn a_small_heap_lends_nothing_ahead() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(256 << 10)));
    let p = heap.allocate(layout(24)).unwrap();
    assert_eq!(heap.stats().cached_blocks, 0);
    assert_eq!(heap.stats().metadata_bytes, 0);
    unsafe { heap.deallocate(p) }.unwrap();
}
