//! The provider on buffers of the test process.

use super::*;
extern crate std;
use std::vec;

fn arena(pages: usize) -> (std::vec::Vec<u8>, ArenaProvider) {
    let mut buf = vec![0u8; pages * PAGE + PAGE];
    // SAFETY: the buffer outlives the provider in each test (returned
    // together, dropped after).
    let p = unsafe { ArenaProvider::new(buf.as_mut_ptr(), buf.len()) };
    (buf, p)
}

#[test]
fn maps_disjoint_aligned_runs_and_reuses_freed_pages() {
    let (_buf, a) = arena(64);
    let cap = a.capacity_bytes();
    assert!(cap >= 63 * PAGE);
    let r1 = a.map(3 * PAGE, PAGE).unwrap();
    let r2 = a.map(PAGE, 8 * PAGE).unwrap();
    assert_eq!(r2.as_ptr().addr() % (8 * PAGE), 0);
    assert!(
        r1.as_ptr().addr() + 3 * PAGE <= r2.as_ptr().addr()
            || r2.as_ptr().addr() + PAGE <= r1.as_ptr().addr()
    );
    assert_eq!(a.used_bytes(), 4 * PAGE);
    unsafe { a.unmap(r1, 3 * PAGE) };
    let r3 = a.map(2 * PAGE, PAGE).unwrap();
    assert_eq!(r3, r1, "first fit reuses the lowest hole");
    unsafe {
        a.unmap(r3, 2 * PAGE);
        a.unmap(r2, PAGE);
    }
    assert_eq!(a.used_bytes(), 0);
    assert!(a.map(cap + PAGE, PAGE).is_none());
    let all = a.map(cap, PAGE).unwrap();
    assert!(a.map(PAGE, PAGE).is_none());
    unsafe { a.unmap(all, cap) };
}

#[test]
fn resizes_in_place_unless_allowed_to_move() {
    let (_buf, a) = arena(32);
    let r = a.map(2 * PAGE, PAGE).unwrap();
    let blocker = a.map(PAGE, PAGE).unwrap();
    unsafe {
        assert_eq!(a.resize(r, 2 * PAGE, PAGE, true), Some(r));
        assert_eq!(a.resize(r, PAGE, 2 * PAGE, false), Some(r));
        assert_eq!(
            a.resize(r, 2 * PAGE, 3 * PAGE, false),
            None,
            "blocked by the next run"
        );
        a.unmap(blocker, PAGE);
        assert_eq!(a.resize(r, 2 * PAGE, 5 * PAGE, false), Some(r));
        a.unmap(r, 5 * PAGE);
    }
    assert_eq!(a.used_bytes(), 0);
}

/// A run that may move grows into the free pages before it and after
/// it together, its contents copied; with nothing free around it, it
/// moves to a hole elsewhere; with no hole anywhere, it stays.
#[test]
fn a_moving_resize_joins_the_free_pages_around_the_run() {
    let (_buf, a) = arena(16);
    let cap = a.capacity_bytes();
    let before = a.map(2 * PAGE, PAGE).unwrap();
    let r = a.map(2 * PAGE, PAGE).unwrap();
    let after = a.map(PAGE, PAGE).unwrap();
    let rest = a.map(cap - 5 * PAGE, PAGE).unwrap();
    unsafe {
        for i in 0..2 * PAGE {
            r.as_ptr().add(i).write(i as u8 ^ 0x5a);
        }
        a.unmap(before, 2 * PAGE);
        a.unmap(after, PAGE);
        // 2 pages before + 2 of its own + 1 after: 5 fit, 6 do not.
        assert_eq!(a.resize(r, 2 * PAGE, 6 * PAGE, true), None);
        assert_eq!(a.used_bytes(), cap - 3 * PAGE);
        let moved = a.resize(r, 2 * PAGE, 5 * PAGE, true).unwrap();
        assert_eq!(moved, before, "the lowest fit, overlapping the old run");
        for i in 0..2 * PAGE {
            assert_eq!(moved.as_ptr().add(i).read(), i as u8 ^ 0x5a);
        }
        assert_eq!(a.used_bytes(), cap);
        a.unmap(moved, 5 * PAGE);
        a.unmap(rest, cap - 5 * PAGE);
    }
    assert_eq!(a.used_bytes(), 0);
}

/// Once half of the pages are handed out, a run goes to the
/// smallest hole that fits, not the lowest: the bigger hole stays whole.
#[test]
fn a_full_region_maps_into_the_smallest_hole() {
    let (_buf, a) = arena(16);
    let cap = a.capacity_bytes();
    let wide = a.map(3 * PAGE, PAGE).unwrap();
    let _fence = a.map(PAGE, PAGE).unwrap();
    let narrow = a.map(PAGE, PAGE).unwrap();
    let _rest = a.map(cap - 5 * PAGE, PAGE).unwrap();
    unsafe {
        a.unmap(wide, 3 * PAGE);
        a.unmap(narrow, PAGE);
    }
    // 4 of 16 or 17 pages free: at least half used.
    assert_eq!(a.map(PAGE, PAGE), Some(narrow));
    assert_eq!(a.map(3 * PAGE, PAGE), Some(wide));
}

#[test]
fn too_small_region_maps_nothing() {
    let mut buf = [0u8; 100];
    let a = unsafe { ArenaProvider::new(buf.as_mut_ptr(), buf.len()) };
    assert!(a.map(PAGE, PAGE).is_none());
    assert_eq!(a.capacity_bytes(), 0);
}

/// A buffer of `pages` whole pages plus one, for a region given later.
fn buffer(pages: usize) -> std::vec::Vec<u8> {
    vec![0u8; pages * PAGE + PAGE]
}

#[test]
fn an_empty_provider_maps_nothing_until_regions_come() {
    let a = ArenaProvider::empty();
    assert!(a.map(PAGE, PAGE).is_none());
    assert_eq!((a.capacity_bytes(), a.regions(), a.span()), (0, 0, None));
    let (mut small, mut big) = (buffer(4), buffer(300));
    // SAFETY: the buffers outlive `a` and nothing else uses them.
    unsafe {
        a.add_region(small.as_mut_ptr(), small.len()).unwrap();
        a.add_region(big.as_mut_ptr(), big.len()).unwrap();
    }
    // 4 pages, then 300 less the big region's bitmap page.
    assert_eq!(a.capacity_bytes(), (4 + 299) * PAGE);
    let r1 = a.map(4 * PAGE, PAGE).unwrap();
    let r2 = a.map(2 * PAGE, PAGE).unwrap();
    let in_big = |p: NonNull<u8>| {
        (big.as_ptr().addr()..big.as_ptr().addr() + big.len()).contains(&p.as_ptr().addr())
    };
    assert!(!in_big(r1) && in_big(r2), "the first region fills first");
    // SAFETY: live runs of `a`, each given back once.
    unsafe {
        let r2 = a.resize(r2, 2 * PAGE, 8 * PAGE, true).unwrap();
        a.unmap(r1, 4 * PAGE);
        a.unmap(r2, 8 * PAGE);
    }
    assert_eq!(a.used_bytes(), 0);
}

/// The protocol under a data-race checker (Miri runs this too): one thread
/// adds regions while another maps and unmaps.
#[test]
fn regions_added_while_another_thread_maps() {
    let a = ArenaProvider::empty();
    let mut bufs: std::vec::Vec<_> = (0..MAX_REGIONS).map(|_| buffer(2)).collect();
    std::thread::scope(|s| {
        let a = &a;
        let mapper = s.spawn(move || {
            let mut mapped = 0;
            for _ in 0..200 {
                if let Some(run) = a.map(PAGE, PAGE) {
                    // SAFETY: a fresh run of `a`, written then given back.
                    unsafe {
                        run.as_ptr().write(7);
                        a.unmap(run, PAGE);
                    }
                    mapped += 1;
                }
                std::thread::yield_now();
            }
            mapped
        });
        for b in bufs.iter_mut() {
            // SAFETY: each buffer outlives `a`, is given once, and is used
            // by nothing else.
            unsafe { a.add_region(b.as_mut_ptr(), b.len()) }.unwrap();
            std::thread::yield_now();
        }
        mapper.join().unwrap();
    });
    assert_eq!(a.regions(), MAX_REGIONS);
    assert_eq!(a.used_bytes(), 0);
    let mut extra = buffer(1);
    // SAFETY: as above; refused, so not used.
    assert_eq!(
        unsafe { a.add_region(extra.as_mut_ptr(), extra.len()) },
        Err(RegionError::Full)
    );
}
