//! The page-map protocol under the races that broke it, made deterministic.
//!
//! Each test uses the `Reuse` provider: the most recently released address
//! is handed out first, and a second thread acts right after the provider
//! answers a resize, in the window where the resizing thread has not yet
//! fixed the page map. A late unregistration (the old bug) then erases the
//! entry of the run the other thread just placed at the same address, and
//! that thread's `free` is refused.
//!
//! Every test has a heap of its own in a `static`, because the hook (a plain
//! `fn`) must reach it.

#[path = "common/reuse.rs"]
mod reuse;

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use ft_malloc::Heap;
use reuse::{Resized, Reuse};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Blocks a hook's thread allocated, as addresses (one list per test: the
/// tests run in parallel).
type Placed = Mutex<Vec<Option<usize>>>;

fn placed(list: &Placed) -> Vec<Option<usize>> {
    std::mem::take(&mut *list.lock().unwrap())
}

/// Frees what the hook placed and every block in `ours`; all must be
/// accepted.
fn free_all<P: ft_malloc::PageProvider>(heap: &Heap<P>, placed: &[usize], ours: &[NonNull<u8>]) {
    for &addr in placed {
        let p = NonNull::new(addr as *mut u8).unwrap();
        assert_eq!(
            unsafe { heap.deallocate(p) },
            Ok(()),
            "the block placed during the resize at {addr:#x} was lost from the page map"
        );
    }
    for &p in ours {
        assert_eq!(unsafe { heap.deallocate(p) }, Ok(()));
    }
    assert_eq!(heap.stats().errors, 0);
}

// ---- defect 1: a LARGE realloc that moves ----

static MOVE_HEAP: Heap<Reuse> = Heap::new(Reuse::new());
static MOVE_PLACED: Placed = Mutex::new(Vec::new());

/// Another thread allocates a 128-byte block: its class has no zone yet, so
/// a zone is mapped, at the address the moving run just left. Block 0 of a
/// 128-byte zone lies in the zone's first page, the one holding the old
/// run's user pointer.
fn place_zone_in_moving_window(what: Resized) {
    if what == Resized::Grew {
        let p = MOVE_HEAP.allocate(layout(128)).map(|p| p.as_ptr().addr());
        MOVE_PLACED.lock().unwrap().push(p);
    }
}

#[test]
fn a_moved_large_run_never_erases_the_run_now_at_its_old_address() {
    let heap = &MOVE_HEAP;
    let p = heap.allocate(layout(200 << 10)).unwrap();
    let old = p.as_ptr().addr();
    unsafe { p.as_ptr().write_bytes(0xA5, 200 << 10) };
    heap.provider()
        .refuse_in_place_growth
        .store(true, Ordering::SeqCst);
    heap.provider().set_hook(place_zone_in_moving_window);
    let q = unsafe { heap.reallocate(p, layout(4 << 20)) }.unwrap();
    heap.provider().clear_hook();
    assert_ne!(q.as_ptr().addr(), old, "the run should have moved");
    let placed: Vec<usize> = placed(&MOVE_PLACED)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(placed.len(), 1);
    assert!(
        placed[0] & !0xfff == old & !0xfff,
        "the test needs the zone at the run's old address ({:#x} vs {old:#x})",
        placed[0]
    );
    assert!(
        unsafe { std::slice::from_raw_parts(q.as_ptr(), 200 << 10) }
            .iter()
            .all(|&b| b == 0xA5)
    );
    free_all(heap, &placed, &[q]);
}

// ---- a move that comes back at the same address, and one that fails ----

static SAME_HEAP: Heap<Reuse> = Heap::new(Reuse::new());

#[test]
fn a_large_run_that_grows_where_it_is_or_cannot_move_stays_registered() {
    let heap = &SAME_HEAP;
    // Room after each run, so a moving resize can stay where it is.
    heap.provider().hole_after.store(8 << 20, Ordering::SeqCst);
    heap.provider()
        .refuse_in_place_growth
        .store(true, Ordering::SeqCst);
    // The hole is free address space: another test of this binary, in a
    // thread of its own, may map into it between the map and the resize
    // (seen once in a full run). A growth in place that never happens
    // fails every attempt.
    let q = (0..8)
        .find_map(|_| {
            let p = heap.allocate(layout(200 << 10)).unwrap();
            let q = unsafe { heap.reallocate(p, layout(1 << 20)) }.unwrap();
            if q == p {
                return Some(q);
            }
            free_all(heap, &[], &[q]);
            None
        })
        .expect("mremap with MAYMOVE should have grown it in place");
    // A move the provider refuses: realloc copies instead, and both the old
    // run (until freed) and the new block stay known to the map.
    heap.provider().refuse_moves.store(true, Ordering::SeqCst);
    let r = unsafe { heap.reallocate(q, layout(2 << 20)) }.unwrap();
    assert_eq!(heap.usable_size(r).map(|n| n >= 2 << 20), Ok(true));
    free_all(heap, &[], &[r]);
}

// ---- defect 2: a zone shrunk by trim ----

static SHRINK_HEAP: Heap<Reuse> = Heap::new(Reuse::new());
static SHRINK_PLACED: Placed = Mutex::new(Vec::new());

/// Another thread allocates a 128-byte block while the 1 KiB zone's tail has
/// just been given back: the new 128-byte zone lands in that tail.
fn place_zone_in_shrink_window(what: Resized) {
    if what == Resized::Shrank {
        let p = SHRINK_HEAP.allocate(layout(128)).map(|p| p.as_ptr().addr());
        SHRINK_PLACED.lock().unwrap().push(p);
    }
}

#[test]
fn a_shrunk_zone_never_erases_the_run_now_in_its_old_tail() {
    let heap = &SHRINK_HEAP;
    let block = heap.allocate(layout(1024)).unwrap();
    let zone = heap.stats().mapped_bytes;
    heap.provider().set_hook(place_zone_in_shrink_window);
    let released = heap.trim();
    heap.provider().clear_hook();
    assert!(released > 0, "trim should shrink the zone ({zone} bytes)");
    let placed: Vec<usize> = placed(&SHRINK_PLACED)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(placed.len(), 1);
    assert!(
        placed[0] > block.as_ptr().addr() && placed[0] < block.as_ptr().addr() + zone,
        "the test needs the new zone in the old tail"
    );
    free_all(heap, &placed, &[block]);
}

// ---- defect 6: a move must not need an allocation ----

static NODES_HEAP: Heap<Reuse> = Heap::new(Reuse::new());
static NODES_PLACED: Placed = Mutex::new(Vec::new());

/// While the provider refuses page-map nodes, another thread maps a zone far
/// away (where the map has no nodes): it must not take the nodes the moving
/// LARGE run counts on.
fn compete_for_nodes(what: Resized) {
    if what == Resized::Grew {
        let p = NODES_HEAP.allocate(layout(64)).map(|p| p.as_ptr().addr());
        NODES_PLACED.lock().unwrap().push(p);
    }
}

#[test]
fn a_moved_large_run_is_registered_even_when_nodes_run_out() {
    let heap = &NODES_HEAP;
    let provider = heap.provider();
    let p = heap.allocate(layout(100 << 10)).unwrap();
    provider
        .refuse_in_place_growth
        .store(true, Ordering::SeqCst);
    // Moves and new runs go where the map has no nodes, and from the moment
    // the move starts every node is refused: the moved run can be
    // registered only with nodes reserved before, that nobody took.
    provider.far.store(true, Ordering::SeqCst);
    provider
        .refuse_nodes_from_move
        .store(true, Ordering::SeqCst);
    provider.set_hook(compete_for_nodes);
    let q = unsafe { heap.reallocate(p, layout(1 << 20)) };
    provider.clear_hook();
    provider
        .refuse_nodes_from_move
        .store(false, Ordering::SeqCst);
    provider.refuse_nodes.store(false, Ordering::SeqCst);
    provider.far.store(false, Ordering::SeqCst);
    provider.join_hooks();
    let q = q.expect("the move had its nodes reserved");
    // The competing zone may have found no node (an honest out-of-memory)
    // or been placed once nodes came back: either is fine. The moved run
    // must be known to the map.
    let placed: Vec<usize> = placed(&NODES_PLACED).into_iter().flatten().collect();
    assert_eq!(heap.usable_size(q).map(|n| n >= 1 << 20), Ok(true));
    free_all(heap, &placed, &[q]);
}
