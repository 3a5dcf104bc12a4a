//! LARGE blocks raced across threads (the protocol at the top of
//! `src/large.rs`: runs are mapped, grown, stamped and unmapped outside the
//! LARGE lock, by the one thread that owns them). Over real `mmap`, real
//! threads.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Barrier;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use ft_malloc::Heap;

const THREADS: usize = 4;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

fn next(x: &mut u64) -> usize {
    *x = x
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*x >> 33) as usize
}

/// 20 KiB..1 MiB: cached runs, runs past the adaptive threshold, grown and
/// cut ones.
fn large_size(x: &mut u64) -> usize {
    (20 << 10) + next(x) % (1 << 20)
}

/// A block's stamp: its size and a serial, at both ends. A run handed out
/// twice, or freed while live, shows up as another block's stamp.
unsafe fn stamp(p: NonNull<u8>, size: usize, serial: usize) {
    unsafe {
        p.cast::<[usize; 2]>().write_unaligned([size, serial]);
        p.add(size - 8).cast::<usize>().write_unaligned(serial);
    }
}

unsafe fn check(p: NonNull<u8>) -> usize {
    unsafe {
        let [size, serial] = p.cast::<[usize; 2]>().read_unaligned();
        assert!(
            (20 << 10..=(3 << 20)).contains(&size),
            "stamp gone at {p:p}"
        );
        assert_eq!(p.add(size - 8).cast::<usize>().read_unaligned(), serial);
        size
    }
}

/// Threads swap LARGE blocks through shared slots: each frees (or grows or
/// shrinks, then frees) blocks another thread allocated, while the others
/// allocate, so runs go from thread to thread through the cache. Every block
/// keeps its stamps until freed, the counts end at zero, and a free of a
/// block just freed is refused.
#[test]
fn large_blocks_swapped_between_threads_stay_disjoint() {
    let heap: Heap<common::Mmap> = Heap::new(common::Mmap);
    let slots: Vec<AtomicPtr<u8>> = (0..24)
        .map(|_| AtomicPtr::new(std::ptr::null_mut()))
        .collect();
    let serials = AtomicUsize::new(1);
    let refused = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (heap, slots, serials) = (&heap, &slots, &serials);
            s.spawn(move || {
                let mut x = t as u64 + 1;
                for _ in 0..1500 {
                    let size = large_size(&mut x);
                    let p = heap.allocate(layout(size)).unwrap();
                    unsafe { stamp(p, size, serials.fetch_add(1, Ordering::Relaxed)) };
                    let slot = &slots[next(&mut x) % slots.len()];
                    let Some(old) = NonNull::new(slot.swap(p.as_ptr(), Ordering::AcqRel)) else {
                        continue;
                    };
                    // `old` is this thread's alone now.
                    let old_size = unsafe { check(old) };
                    let old = if next(&mut x).is_multiple_of(3) {
                        let new_size = large_size(&mut x);
                        let moved = unsafe { heap.reallocate(old, layout(new_size)) }.unwrap();
                        // The block's first bytes came along.
                        let [kept_size, serial] =
                            unsafe { moved.cast::<[usize; 2]>().read_unaligned() };
                        assert_eq!(kept_size, old_size);
                        unsafe { stamp(moved, new_size, serial) };
                        unsafe { check(moved) };
                        moved
                    } else {
                        old
                    };
                    unsafe { heap.deallocate(old) }.unwrap();
                    // No second free here: another thread may own the
                    // address again already, which no heap can tell from a
                    // live block. It is tried below, once the others stop.
                }
            });
        }
    });
    for slot in &slots {
        if let Some(p) = NonNull::new(slot.load(Ordering::Relaxed)) {
            unsafe { check(p) };
            unsafe { heap.deallocate(p) }.unwrap();
            assert!(unsafe { heap.deallocate(p) }.is_err(), "double free passed");
            refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    let stats = heap.stats();
    assert_eq!(stats.large_runs, 0);
    assert_eq!(stats.live_blocks, 0);
    // What is still mapped is the cache (and zones for the map's metadata).
    assert!(stats.large_cached_bytes <= 64 << 20);
    assert!(refused.load(Ordering::Relaxed) > 0);
}

/// Stale frees race allocations of the same size: one thread frees each of
/// its blocks twice, the second free racing another thread that takes the
/// freed run from the cache (between its unlink and its registration the run
/// is unregistered: the stale free must be refused, never cache the run a
/// second time). However the races fall, each allocation is freed exactly
/// once in total, and no run is handed out twice.
#[test]
fn a_stale_large_free_racing_reuse_frees_each_block_once() {
    const ROUNDS: usize = 3000;
    const SIZE: usize = 64 << 10;
    let heap: Heap<common::Mmap> = Heap::new(common::Mmap);
    let allocated = AtomicUsize::new(0);
    let freed = AtomicUsize::new(0);
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for _ in 0..ROUNDS {
                let p = heap.allocate(layout(SIZE)).unwrap();
                allocated.fetch_add(1, Ordering::Relaxed);
                for _ in 0..2 {
                    if unsafe { heap.deallocate(p) }.is_ok() {
                        freed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        s.spawn(|| {
            start.wait();
            for _ in 0..ROUNDS {
                let q = heap.allocate(layout(SIZE)).unwrap();
                allocated.fetch_add(1, Ordering::Relaxed);
                std::hint::spin_loop();
                if unsafe { heap.deallocate(q) }.is_ok() {
                    freed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    });
    assert_eq!(
        freed.load(Ordering::Relaxed),
        allocated.load(Ordering::Relaxed)
    );
    let stats = heap.stats();
    assert_eq!(stats.large_runs, 0);
    // A run cached twice would be counted twice: the cache holds at most
    // the runs the two threads had live at once.
    assert!(
        stats.large_cached_bytes <= 2 * (SIZE + (4 << 10)),
        "{} bytes cached",
        stats.large_cached_bytes
    );
    // And it hands out distinct runs.
    let a = heap.allocate(layout(SIZE)).unwrap();
    let b = heap.allocate(layout(SIZE)).unwrap();
    let c = heap.allocate(layout(SIZE)).unwrap();
    assert!(a != b && b != c && a != c);
    for p in [a, b, c] {
        unsafe { heap.deallocate(p) }.unwrap();
    }
}
