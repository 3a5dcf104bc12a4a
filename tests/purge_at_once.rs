//! Blocks of several pages give their pages back as soon as they are freed
//! into their zone (`src/purge.rs`, "at once"), over real `mmap`: the
//! freed block keeps only its head page resident, serves again, still
//! catches a double free, and a class in steady use stops being purged
//! after its first mistaken purge.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use ft_malloc::{FrontCache, HeapError};

use common::{decommit_counted_heap as heap, decommits};

/// 20 KiB blocks: five pages each (class 20480), of which a free block
/// keeps the first.
const BLOCK: usize = 20 * 1024;
const PAGE: usize = 4096;

fn layout() -> Layout {
    Layout::from_size_align(BLOCK, 16).unwrap()
}

/// Resident pages of the block at `p` (`mincore`).
fn resident_pages(p: NonNull<u8>) -> usize {
    let start = p.as_ptr().addr() & !(PAGE - 1);
    let end = (p.as_ptr().addr() + BLOCK).next_multiple_of(PAGE);
    let mut vec = vec![0u8; (end - start) / PAGE];
    let rc = unsafe { libc::mincore(start as *mut _, end - start, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    vec.iter().filter(|v| **v & 1 != 0).count()
}

#[test]
#[cfg_attr(miri, ignore)] // real mmap and mincore
fn a_freed_block_of_several_pages_gives_them_back_at_once() {
    let heap = heap();
    let blocks: Vec<_> = (0..100)
        .map(|i| {
            let p = heap.allocate(layout()).unwrap();
            unsafe { p.as_ptr().write_bytes(i as u8, BLOCK) };
            p
        })
        .collect();
    // Ten blocks freed, one by one, with 90 still live around them: each
    // gives its pages back when it is freed (one call each), keeping the
    // page that holds its link and free mark (and at most the next one,
    // which it shares with its neighbour).
    for (n, &b) in blocks[10..20].iter().enumerate() {
        assert!(resident_pages(b) >= 5);
        unsafe { heap.deallocate(b) }.unwrap();
        assert!(
            resident_pages(b) <= 2,
            "{} pages of a freed 20 KiB block resident",
            resident_pages(b)
        );
        assert_eq!(decommits(&heap), n + 1, "one decommit per freed block");
    }
    // Their free marks survived: a double free is caught, locked and
    // lock-free alike.
    assert_eq!(
        unsafe { heap.deallocate(blocks[12]) },
        Err(HeapError::DoubleFree)
    );
    let mut cache = FrontCache::new();
    assert_eq!(
        unsafe { cache.deallocate(&heap, blocks[13]) },
        Err(HeapError::DoubleFree)
    );
    // They serve again and hold what they are given; the neighbours are
    // untouched.
    let again: Vec<_> = (0..10)
        .map(|i| {
            let p = heap.allocate(layout()).unwrap();
            assert!((10..20).any(|j| blocks[j] == p), "a purged block reused");
            unsafe { p.as_ptr().write_bytes(0xc0 + i as u8, BLOCK) };
            p
        })
        .collect();
    for (i, p) in again.iter().enumerate() {
        assert!((0..BLOCK).all(|j| unsafe { p.as_ptr().add(j).read() } == 0xc0 + i as u8));
        unsafe { heap.deallocate(*p) }.unwrap();
    }
    for (i, &b) in blocks
        .iter()
        .enumerate()
        .filter(|(i, _)| !(10..20).contains(i))
    {
        assert!((0..BLOCK).all(|j| unsafe { b.as_ptr().add(j).read() } == i as u8));
        unsafe { heap.deallocate(b) }.unwrap();
    }
    cache.flush(&heap);
}

/// A class in steady use on the zone path (no cache): a few blocks freed
/// and allocated again, over and over, next to 90 live ones. The first
/// purged block taken again shows the zone is in use: from then on it waits
/// for the interval of the other rule, which a steady swing of at most
/// four blocks never reaches. So a few decommits at first, then none.
#[test]
#[cfg_attr(miri, ignore)] // real mmap
fn a_steady_class_of_several_page_blocks_does_not_thrash() {
    let heap = heap();
    let mut live: Vec<_> = (0..90).map(|_| heap.allocate(layout()).unwrap()).collect();
    let mut seed = 1u64;
    let mut warm = 0;
    for round in 0..20_000 {
        if round == 100 {
            warm = decommits(&heap);
        }
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let n = 1 + (seed >> 40) as usize % 4;
        let at = (seed >> 20) as usize % (live.len() - n);
        for b in live.drain(at..at + n).collect::<Vec<_>>() {
            unsafe { heap.deallocate(b) }.unwrap();
        }
        for _ in 0..n {
            let b = heap.allocate(layout()).unwrap();
            unsafe { b.as_ptr().write_bytes(1, BLOCK) };
            live.push(b);
        }
    }
    let steady = decommits(&heap) - warm;
    assert!(warm <= 4, "{warm} decommits in the first 100 rounds");
    assert_eq!(steady, 0, "{steady} decommits in 19,900 steady rounds");
    for b in live {
        unsafe { heap.deallocate(b) }.unwrap();
    }
}
