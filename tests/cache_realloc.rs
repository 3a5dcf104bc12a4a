//! `FrontCache::reallocate` (`src/cache/realloc.rs`): small blocks resized
//! without a lock, in place or moved through the cache, with the same
//! contents, sizes and refusals as `Heap::reallocate`. Over the arena
//! provider, small enough for Miri.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{Counting, arena};
use ft_malloc::{FrontCache, Heap, HeapError, ReallocError};

type ArenaHeap = Heap<Counting<common::OwnedArena>>;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn fill(p: NonNull<u8>, len: usize) {
    for i in 0..len {
        unsafe { p.as_ptr().add(i).write(i as u8) };
    }
}

fn check(p: NonNull<u8>, len: usize) {
    for i in 0..len {
        assert_eq!(unsafe { p.as_ptr().add(i).read() }, i as u8, "byte {i}");
    }
}

/// A string builder's growth, 16 B to 40 KiB (LARGE at the end) in +50%
/// steps, then shrinking: contents kept, the recorded size is the last one
/// asked for, and every block goes back.
#[test]
fn a_growing_block_keeps_its_bytes_and_its_size() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let mut cache = FrontCache::new();
    let mut size = 16;
    let mut p = cache.allocate(&heap, layout(size)).unwrap();
    fill(p, size);
    while size < 40 << 10 {
        let new = size * 3 / 2;
        p = unsafe { cache.reallocate(&heap, p, layout(new)) }.unwrap();
        check(p, size);
        // A small block reports its requested size, a LARGE one its room.
        let usable = heap.usable_size(p).unwrap();
        assert!(
            usable == new || (new > 32 << 10 && usable > new),
            "{usable} for {new}"
        );
        fill(p, new);
        size = new;
    }
    for new in [5000, 300, 17, 1] {
        p = unsafe { cache.reallocate(&heap, p, layout(new)) }.unwrap();
        check(p, new);
        assert_eq!(heap.usable_size(p), Ok(new));
        size = new;
    }
    let _ = size;
    unsafe { cache.deallocate(&heap, p) }.unwrap();
    cache.flush(&heap);
    assert_eq!(heap.stats().live_blocks, 0);
}

/// Within its class a block stays where it is, and its slack canary moves
/// to the new end: a write past the new size is caught at free.
#[test]
fn in_place_resizes_move_the_canary() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(1 << 20)));
    let mut cache = FrontCache::new();
    let p = cache.allocate(&heap, layout(90)).unwrap();
    let q = unsafe { cache.reallocate(&heap, p, layout(100)) }.unwrap();
    assert_eq!(p, q, "90 -> 100 B stays in its class");
    assert_eq!(heap.usable_size(q), Ok(100));
    unsafe { q.as_ptr().add(100).write(0xee) };
    assert_eq!(
        unsafe { cache.deallocate(&heap, q) },
        Err(HeapError::Overflow)
    );
}

/// What the heap refuses, the cache refuses, and the block is untouched:
/// a freed block, an overflowed one, a pointer inside a block.
#[test]
fn bad_pointers_are_refused_and_left_alone() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(1 << 20)));
    let mut cache = FrontCache::new();
    let freed = cache.allocate(&heap, layout(40)).unwrap();
    unsafe { cache.deallocate(&heap, freed) }.unwrap();
    assert_eq!(
        unsafe { cache.reallocate(&heap, freed, layout(400)) },
        Err(ReallocError::Invalid(HeapError::DoubleFree))
    );
    let overflowed = cache.allocate(&heap, layout(40)).unwrap();
    unsafe { overflowed.as_ptr().add(40).write(0xee) };
    assert_eq!(
        unsafe { cache.reallocate(&heap, overflowed, layout(400)) },
        Err(ReallocError::Invalid(HeapError::Overflow))
    );
    let live = cache.allocate(&heap, layout(64)).unwrap();
    fill(live, 64);
    let inside = unsafe { live.add(8) };
    assert!(matches!(
        unsafe { cache.reallocate(&heap, inside, layout(400)) },
        Err(ReallocError::Invalid(_))
    ));
    check(live, 64);
    unsafe { cache.deallocate(&heap, live) }.unwrap();
}

/// A block grown by half again moves to a class with room for the next
/// such step, which then stays in place: a string builder's +50% steps
/// move every other time, not every time. Small appends get no slack.
/// (A heap big enough that zones are not scarce: a scarce heap maps
/// classes to other zones.)
#[test]
fn geometric_growth_moves_every_other_step() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(16 << 20)));
    let mut cache = FrontCache::new();
    let mut size = 100;
    let mut p = cache.allocate(&heap, layout(size)).unwrap();
    let mut moves = 0;
    for _ in 0..8 {
        let new = size * 3 / 2;
        let q = unsafe { cache.reallocate(&heap, p, layout(new)) }.unwrap();
        moves += usize::from(q != p);
        (p, size) = (q, new);
    }
    assert!(moves <= 4, "{moves} moves in 8 steps of +50%");
    // An append of a few bytes past the block: the class of the new size.
    let block = heap.zone_block_size(p).unwrap();
    let q = unsafe { cache.reallocate(&heap, p, layout(block + 8)) }.unwrap();
    assert!(heap.zone_block_size(q).unwrap() < (block + 8) * 5 / 4);
    unsafe { cache.deallocate(&heap, q) }.unwrap();
}

/// A string builder, 16 B to 4 KiB in +50% steps: the first move gives
/// room for one more step, and a block this cache moved last (a known
/// grower) gets room for two while that is at most 1 KiB, so of the 14
/// steps at most 6 move (7 with one step's room each time). Contents and
/// sizes stay exact.
#[test]
fn a_known_grower_gets_room_for_two_steps() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(16 << 20)));
    let mut cache = FrontCache::new();
    let (p, steps, moved_at) = build_string(&heap, &mut cache, |_, _| {});
    let moves = moved_at.len();
    assert_eq!(steps, 14);
    assert!(moves <= 6, "{moves} moves in {steps} steps of +50%");
    unsafe { cache.deallocate(&heap, p) }.unwrap();
}

/// A string builder's +50% steps from 16 B to 4 KiB through `cache`: each
/// step's bytes and recorded size checked, `at_step` shown each new block
/// and size. Returns the last block, the steps, and the sizes at which the
/// block moved.
fn build_string(
    heap: &ArenaHeap,
    cache: &mut FrontCache,
    mut at_step: impl FnMut(NonNull<u8>, usize),
) -> (NonNull<u8>, usize, Vec<usize>) {
    let mut size = 16;
    let mut p = cache.allocate(heap, layout(size)).unwrap();
    fill(p, size);
    let (mut steps, mut moved_at) = (0, Vec::new());
    while size < 4096 {
        let new = (size * 3 / 2).min(4096);
        let q = unsafe { cache.reallocate(heap, p, layout(new)) }.unwrap();
        check(q, size);
        assert_eq!(heap.usable_size(q), Ok(new));
        fill(q, new);
        if q != p {
            moved_at.push(new);
        }
        at_step(q, new);
        steps += 1;
        (p, size) = (q, new);
    }
    (p, steps, moved_at)
}

/// A move gives the old block back without checking it again (the call's
/// check vouched for it), but it is freed all the same: freeing or
/// resizing it afterwards is a double free, and the heap stays whole.
#[test]
fn the_block_a_move_left_is_freed() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let mut cache = FrontCache::new();
    let p = cache.allocate(&heap, layout(100)).unwrap();
    let q = unsafe { cache.reallocate(&heap, p, layout(150)) }.unwrap();
    assert_ne!(p, q, "100 -> 150 B moves");
    assert_eq!(
        unsafe { cache.deallocate(&heap, p) },
        Err(HeapError::DoubleFree)
    );
    assert_eq!(
        unsafe { cache.reallocate(&heap, p, layout(200)) },
        Err(ReallocError::Invalid(HeapError::DoubleFree))
    );
    assert_eq!(heap.stats().live_blocks, 1);
    unsafe { cache.deallocate(&heap, q) }.unwrap();
    cache.flush(&heap);
    assert_eq!(heap.stats().live_blocks, 0);
}

/// A block moved into a roomy class, and grown in place there, keeps its
/// slack canary at its requested end: a write one byte past it is caught
/// when it is freed, and when it is resized.
#[test]
fn a_grown_block_still_has_its_canary_checked() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(16 << 20)));
    let mut cache = FrontCache::new();
    let mut size = 100;
    let mut p = cache.allocate(&heap, layout(size)).unwrap();
    // Two moves (the second as a known grower), then a step in place.
    for _ in 0..3 {
        size = size * 3 / 2;
        p = unsafe { cache.reallocate(&heap, p, layout(size)) }.unwrap();
    }
    assert!(heap.zone_block_size(p).unwrap() > size, "room left to grow");
    unsafe { p.as_ptr().add(size).write(0) };
    assert_eq!(
        unsafe { cache.reallocate(&heap, p, layout(size + 1)) },
        Err(ReallocError::Invalid(HeapError::Overflow))
    );
    assert_eq!(
        unsafe { cache.deallocate(&heap, p) },
        Err(HeapError::Overflow)
    );
}

/// The split a C `realloc` uses (`FrontCache::resize_in_place`, then
/// `reallocate_vouched`): the common step is done in place, a growth past
/// the block is vouched for and moved with its bytes, a freed or
/// overflowed block is refused (counted once, when the refusal is), and
/// what the lock-free check cannot vouch for (LARGE, inside a block) is
/// declined, each untouched.
#[test]
fn the_step_in_place_and_what_it_hands_back() {
    use ft_malloc::cache::InPlace;
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let mut cache = FrontCache::new();
    let p = cache.allocate(&heap, layout(100)).unwrap();
    fill(p, 100);
    // 100 B sits in a 112 B block: growing to 110 stays within it.
    assert!(matches!(
        unsafe { FrontCache::resize_in_place(&heap, p, layout(110)) },
        InPlace::Done
    ));
    assert_eq!(heap.usable_size(p), Ok(110));
    check(p, 100);
    // Its canary is checked (and left as it is when refused).
    let o = cache.allocate(&heap, layout(100)).unwrap();
    unsafe { o.as_ptr().add(100).write(0xee) };
    let InPlace::Refused(refusal) = (unsafe { FrontCache::resize_in_place(&heap, o, layout(111)) })
    else {
        panic!("an overflowed block is refused");
    };
    assert_eq!(refusal.count(&heap), HeapError::Overflow);
    assert_eq!(heap.usable_size(o), Ok(100), "nothing changed");
    let InPlace::Vouched(vouched) = (unsafe { FrontCache::resize_in_place(&heap, p, layout(400)) })
    else {
        panic!("a growth past the block is vouched for");
    };
    assert_eq!(heap.usable_size(p), Ok(110), "nothing changed yet");
    let q = unsafe { cache.reallocate_vouched(&heap, p, vouched, layout(400)) }.unwrap();
    assert_ne!(p, q);
    check(q, 100);
    assert_eq!(heap.usable_size(q), Ok(400));
    // The old block went back: a realloc of it is refused, and counted
    // once, by `Refusal::count`.
    let errors = heap.stats().errors;
    let InPlace::Refused(refusal) = (unsafe { FrontCache::resize_in_place(&heap, p, layout(50)) })
    else {
        panic!("a freed block is refused");
    };
    assert_eq!(heap.stats().errors, errors);
    assert_eq!(refusal.count(&heap), HeapError::DoubleFree);
    assert_eq!(heap.stats().errors, errors + 1);
    // LARGE, and a pointer inside a block: the locked path decides.
    let large = cache.allocate(&heap, layout(64 << 10)).unwrap();
    assert!(matches!(
        unsafe { FrontCache::resize_in_place(&heap, large, layout(60 << 10)) },
        InPlace::Declined
    ));
    assert!(matches!(
        unsafe { FrontCache::resize_in_place(&heap, q.add(16), layout(20)) },
        InPlace::Declined
    ));
    check(q, 100);
    unsafe { cache.deallocate(&heap, large) }.unwrap();
    unsafe { cache.deallocate(&heap, q) }.unwrap();
}

/// A block grows where it is whenever its block holds the new size, even
/// while that fills no more than half of it (an aligned request's block,
/// or the room a growing block was given): only a shrink moves to a
/// smaller class. Before, growth from 10 to 16 bytes in a 64 B block moved
/// to a 16 B block, as a shrink would have. The same in the heap's locked
/// path.
#[test]
fn a_block_grows_within_itself_however_little_it_fills() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(4 << 20)));
    let mut cache = FrontCache::new();
    let aligned = Layout::from_size_align(10, 64).unwrap();
    let p = cache.allocate(&heap, aligned).unwrap();
    assert_eq!(heap.zone_block_size(p), Some(64));
    fill(p, 10);
    let q = unsafe { cache.reallocate(&heap, p, layout(16)) }.unwrap();
    assert_eq!(q, p, "grown within its block");
    check(q, 10);
    assert_eq!(heap.usable_size(q), Ok(16));
    let r = unsafe { heap.reallocate(q, layout(30)) }.unwrap();
    assert_eq!(r, q, "grown within its block, locked path");
    assert_eq!(heap.usable_size(r), Ok(30));
    // A shrink below half of it still moves to a smaller class.
    let s = unsafe { cache.reallocate(&heap, r, layout(8)) }.unwrap();
    assert_ne!(s, r, "a shrink moves");
    check(s, 8);
    unsafe { cache.deallocate(&heap, s) }.unwrap();
    assert_eq!(heap.stats().live_blocks, 0);
}

/// A grower gets room for its next step, no floor: a string grown once from
/// 16 B to 24 B holds a 48-byte block (a 128 B floor would save the round
/// one move and cost such kept strings 2.2x their memory: INTERNALS.md,
/// "Growing reallocs"); the string builder's 14 steps to 4 KiB move 6
/// times. Contents and sizes stay exact.
#[test]
fn a_string_builder_moves_six_times_and_a_once_grown_string_keeps_little_slack() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(16 << 20)));
    let mut cache = FrontCache::new();
    let (p, _, moved_at) = build_string(&heap, &mut cache, |q, new| {
        if new == 24 {
            // Room for one more +50% step (36 B), not for the largest
            // TINY block: a string grown once and kept stays small.
            assert_eq!(heap.zone_block_size(q), Some(48));
        }
    });
    assert_eq!(moved_at, [24, 54, 181, 609, 1369, 3079]);
    unsafe { cache.deallocate(&heap, p) }.unwrap();
    assert_eq!(heap.stats().live_blocks, 0);
}
