//! A heap set up the way a kernel sets it up (issue 20): it starts empty
//! (in a `static`), allocation before any region returns null, regions come
//! later, several of them, while other threads allocate. The regions are
//! real memory of this process, from `mmap`.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use ft_malloc::{ArenaProvider, FrontCache, Heap, MAX_REGIONS, PageProvider, RegionError};

/// `len` bytes of fresh anonymous memory, never unmapped: the regions of
/// these tests live as long as the process, as a kernel's do.
fn mmap(len: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; no existing memory touched.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap of {len} bytes failed");
    p.cast()
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

/// Fills a block with `tag`, so two blocks handed out over each other show.
fn fill(p: NonNull<u8>, size: usize, tag: u8) {
    // SAFETY: a live block of at least `size` bytes.
    unsafe { p.as_ptr().write_bytes(tag, size) };
}

fn check(p: NonNull<u8>, size: usize, tag: u8) {
    // SAFETY: as in `fill`.
    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
    assert!(bytes.iter().all(|&b| b == tag), "block {p:p} overwritten");
}

/// The set-up of a kernel: a `static` heap over an empty provider (built
/// by `const fn`s), its region found and added at run time.
#[test]
fn a_static_empty_heap_returns_null_until_its_region_comes() {
    static HEAP: Heap<ArenaProvider> = Heap::new(ArenaProvider::empty());
    // Before any region: null from every entry point, no fault.
    assert!(HEAP.allocate(layout(16)).is_none());
    assert!(HEAP.allocate(layout(4000)).is_none());
    assert!(HEAP.allocate(layout(1 << 20)).is_none());
    // SAFETY: a valid layout; null is the expected answer.
    assert!(unsafe { GlobalAlloc::alloc(&HEAP, layout(64)) }.is_null());
    // SAFETY: as above.
    assert!(unsafe { GlobalAlloc::alloc_zeroed(&HEAP, layout(64)) }.is_null());
    // Through a front cache (a kernel's per-CPU path) too.
    let mut cache = FrontCache::new();
    assert!(cache.allocate(&HEAP, layout(32)).is_none());
    assert_eq!(HEAP.stats().live_blocks, 0);

    // The tree map takes its first nodes (96 KiB on 64-bit) from the
    // region: give it room for them and the blocks.
    let len = 4 << 20;
    // SAFETY: a fresh mapping, given to this heap alone.
    unsafe { HEAP.provider().add_region(mmap(len), len) }.unwrap();
    let blocks: Vec<_> = (0..100)
        .map(|i| {
            let p = HEAP.allocate(layout(48)).expect("a region is there now");
            fill(p, 48, i);
            p
        })
        .collect();
    for (i, &p) in blocks.iter().enumerate() {
        check(p, 48, i as u8);
        // SAFETY: from HEAP, freed once.
        unsafe { HEAP.deallocate(p) }.unwrap();
    }
    let p = cache
        .allocate(&HEAP, layout(32))
        .expect("the cache gets blocks now");
    // SAFETY: from HEAP through the cache, freed once.
    unsafe { cache.deallocate(&HEAP, p) }.unwrap();
    cache.flush(&HEAP);
    assert_eq!(HEAP.stats().live_blocks, 0);
}

/// blog_os's set-up: a window of 100 KiB at a fixed address, empty at
/// first, then mapped and handed over whole. The heap sizes itself to the
/// window (flat page map inside the `Heap`, small-heap zones).
#[test]
fn a_100_kib_window_is_empty_then_serves_blog_os_heap_tests() {
    const HEAP_SIZE: usize = 100 << 10;
    let region = mmap(HEAP_SIZE);
    let heap = Heap::<ArenaProvider>::new(ArenaProvider::empty_in(region.addr(), HEAP_SIZE));
    assert_eq!(
        heap.provider().span(),
        Some((region.addr(), region.addr() + HEAP_SIZE))
    );
    assert!(heap.allocate(layout(8)).is_none());
    assert_eq!(heap.provider().capacity_bytes(), 0);

    // SAFETY: a fresh mapping, given to this heap alone.
    unsafe { heap.provider().add_region(region, HEAP_SIZE) }.unwrap();
    assert_eq!(heap.provider().capacity_bytes(), HEAP_SIZE, "no page lost");

    // blog_os's heap_allocation tests: many boxes (each freed before the
    // next), a long-lived box across them, a large vector.
    let long_lived = heap.allocate(layout(8)).unwrap();
    fill(long_lived, 8, 0xa5);
    for i in 0..HEAP_SIZE {
        let p = heap
            .allocate(layout(8))
            .expect("many_boxes: a box at every step");
        fill(p, 8, i as u8);
        // SAFETY: from `heap`, freed once.
        unsafe { heap.deallocate(p) }.unwrap();
    }
    check(long_lived, 8, 0xa5);
    let n = 1000usize;
    let v = heap.allocate(layout(n * 8)).unwrap().cast::<u64>();
    for i in 0..n {
        // SAFETY: inside the vector's n words.
        unsafe { v.as_ptr().add(i).write(i as u64) };
    }
    // SAFETY: as above.
    let sum: u64 = (0..n).map(|i| unsafe { v.as_ptr().add(i).read() }).sum();
    assert_eq!(sum, (n as u64 - 1) * n as u64 / 2);
    // SAFETY: from `heap`, freed once.
    unsafe {
        heap.deallocate(v.cast()).unwrap();
        heap.deallocate(long_lived).unwrap();
    }
    assert_eq!(heap.stats().live_blocks, 0);
}

/// Several regions far apart (separate mappings, anywhere in the address
/// space): every one is used once the others are full, and the blocks of
/// each are found again by `free` (the tree page map covers them all).
#[test]
fn several_regions_far_apart_are_all_used() {
    let heap = Heap::<ArenaProvider>::new(ArenaProvider::empty());
    let len = 1 << 20;
    let regions: Vec<*mut u8> = (0..4).map(|_| mmap(len)).collect();
    for &r in &regions {
        // SAFETY: fresh mappings, given to this heap alone.
        unsafe { heap.provider().add_region(r, len) }.unwrap();
    }
    assert_eq!(heap.provider().regions(), 4);
    // LARGE blocks of 128 KiB fill the regions one after the other.
    let mut blocks = Vec::new();
    while let Some(p) = heap.allocate(layout(128 << 10)) {
        fill(p, 128 << 10, blocks.len() as u8);
        blocks.push(p);
    }
    for &r in &regions {
        let inside = blocks
            .iter()
            .filter(|p| (r.addr()..r.addr() + len).contains(&p.as_ptr().addr()))
            .count();
        assert!(inside >= 4, "region {r:p} holds only {inside} blocks");
    }
    for (i, &p) in blocks.iter().enumerate() {
        check(p, 128 << 10, i as u8);
        // SAFETY: from `heap`, freed once.
        unsafe { heap.deallocate(p) }.unwrap();
    }
    assert_eq!(heap.stats().live_blocks, 0);
}

/// A region outside the window, one without a whole page, and one more
/// than the provider has slots for are refused, and the heap carries on.
#[test]
fn regions_that_do_not_fit_are_refused() {
    let window = mmap(MAX_REGIONS * 8192 + 8192);
    let arena = ArenaProvider::empty_in(window.addr(), MAX_REGIONS * 8192);
    // SAFETY (every call): parts of a fresh mapping, disjoint, given to
    // `arena` alone (a refused one stays unused).
    unsafe {
        let outside = window.add(MAX_REGIONS * 8192);
        assert_eq!(
            arena.add_region(outside, 8192),
            Err(RegionError::OutsideSpan)
        );
        assert_eq!(
            arena.add_region(window.add(1), 4096),
            Err(RegionError::TooSmall)
        );
        for i in 0..MAX_REGIONS {
            arena.add_region(window.add(i * 8192), 8192).unwrap();
        }
        let extra = ArenaProvider::empty();
        assert_eq!(extra.add_region(outside, 8192), Ok(()));
        assert_eq!(arena.add_region(window, 4096), Err(RegionError::Full));
    }
    assert_eq!(arena.regions(), MAX_REGIONS);
    assert_eq!(arena.capacity_bytes(), MAX_REGIONS * 8192);
}

/// Regions added while other threads allocate (as another CPU may hand the
/// heap memory while this one allocates): the allocating threads see null
/// until the first region is ready, never a fault; every block stays
/// intact and no two overlap.
/// A block, its size and its tag, handed from a worker back to the test.
struct Block(NonNull<u8>, usize, u8);
// SAFETY: a block of a `Sync` heap may be freed by any thread.
unsafe impl Send for Block {}

#[test]
fn regions_added_while_threads_allocate() {
    const THREADS: usize = 3;
    const REGION: usize = 256 << 10;
    let heap = Heap::<ArenaProvider>::new(ArenaProvider::empty());
    let done = AtomicBool::new(false);
    let nulls = AtomicUsize::new(0);
    let regions: Vec<usize> = (0..MAX_REGIONS - 1).map(|_| mmap(REGION).addr()).collect();
    let mut first = mmap(1 << 20);
    thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (heap, done, nulls) = (&heap, &done, &nulls);
                s.spawn(move || {
                    let mut held: Vec<Block> = Vec::new();
                    let mut i = 0usize;
                    while !done.load(Ordering::Acquire) || i < 2000 {
                        let size = 16 + (i * 37 + t * 101) % 3000;
                        let tag = (i as u8) ^ (t as u8).wrapping_mul(85);
                        match heap.allocate(layout(size)) {
                            Some(p) => {
                                fill(p, size, tag);
                                held.push(Block(p, size, tag));
                            }
                            None => {
                                nulls.fetch_add(1, Ordering::Relaxed);
                                thread::yield_now();
                            }
                        }
                        // Keep about 200 blocks each: free the oldest.
                        if held.len() > 200 {
                            let Block(p, size, tag) = held.swap_remove(i % held.len());
                            check(p, size, tag);
                            // SAFETY: from `heap`, freed once.
                            unsafe { heap.deallocate(p) }.unwrap();
                        }
                        i += 1;
                    }
                    held
                })
            })
            .collect();
        // The tree's nodes and the first zones need the big first region.
        thread::sleep(std::time::Duration::from_millis(5));
        // SAFETY: fresh mappings, given to this heap alone.
        unsafe { heap.provider().add_region(first, 1 << 20) }.unwrap();
        first = ptr::null_mut();
        for &r in &regions {
            thread::sleep(std::time::Duration::from_millis(2));
            // SAFETY: as above.
            unsafe { heap.provider().add_region(r as *mut u8, REGION) }.unwrap();
        }
        done.store(true, Ordering::Release);
        let mut all: Vec<Block> = Vec::new();
        for w in workers {
            all.extend(w.join().unwrap());
        }
        all.sort_by_key(|b| b.0.as_ptr().addr());
        for pair in all.windows(2) {
            assert!(
                pair[0].0.as_ptr().addr() + pair[0].1 <= pair[1].0.as_ptr().addr(),
                "blocks overlap"
            );
        }
        for &Block(p, size, tag) in &all {
            check(p, size, tag);
            // SAFETY: from `heap`, freed once.
            unsafe { heap.deallocate(p) }.unwrap();
        }
    });
    assert!(first.is_null());
    assert_eq!(heap.provider().regions(), MAX_REGIONS);
    assert_eq!(heap.stats().live_blocks, 0);
    println!(
        "{} nulls before the first region",
        nulls.load(Ordering::Relaxed)
    );
}

/// A region over 1 MiB keeps its bitmap in its own first page; runs of
/// each region are resized and given back in that region, whichever
/// region was added first.
#[test]
fn big_and_small_regions_keep_their_runs_apart() {
    let arena = ArenaProvider::empty();
    let (small, big) = (mmap(64 << 10), mmap(2 << 20));
    // SAFETY: fresh mappings, given to `arena` alone.
    unsafe {
        arena.add_region(small, 64 << 10).unwrap();
        arena.add_region(big, 2 << 20).unwrap();
    }
    assert_eq!(arena.capacity_bytes(), (64 << 10) + (2 << 20) - 4096);
    // The small region fills first, then runs go to the big one.
    let a = arena.map(64 << 10, 4096).unwrap();
    assert_eq!(a.as_ptr(), small);
    let b = arena.map(8192, 4096).unwrap();
    assert_eq!(
        b.as_ptr().addr(),
        big.addr() + 4096,
        "after the bitmap page"
    );
    // SAFETY: `b` is a live run of 2 pages, written then resized.
    unsafe {
        b.as_ptr().write_bytes(0x5a, 8192);
        let grown = arena.resize(b, 8192, 1 << 20, true).unwrap();
        assert_eq!(grown, b, "grown in place into the big region's free pages");
        assert!(
            std::slice::from_raw_parts(grown.as_ptr(), 8192)
                .iter()
                .all(|&x| x == 0x5a)
        );
        assert_eq!(arena.used_bytes(), (64 << 10) + (1 << 20));
        arena.unmap(a, 64 << 10);
        arena.unmap(grown, 1 << 20);
    }
    assert_eq!(arena.used_bytes(), 0);
    assert_eq!(
        arena.map(64 << 10, 4096).unwrap().as_ptr(),
        small,
        "freed pages reused"
    );
}
