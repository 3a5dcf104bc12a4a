//! The front caches' idle-class decay (`src/cache/mod.rs`): memory goes
//! back when a class is really idle, never over and over while a class is
//! in steady use. Over real `mmap`, counting the provider's calls.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use ft_malloc::{FrontCache, Heap};

use common::{DecommitCounted as Counted, decommit_counted_heap as heap, decommits};

/// A pseudo-random stream (LCG): the same load on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    /// 16 B .. 32 KiB, small sizes far more likely (inverse square).
    fn size(&mut self) -> usize {
        let u = (self.next() % (1 << 20)) as f64 / (1 << 20) as f64;
        let (lo, hi) = (1.0 / 16.0, 1.0 / 32768.0);
        (1.0 / (lo - u * (lo - hi))) as usize
    }
}

/// One owner replacing random blocks of a working set with blocks of random
/// sizes, `steps` times: every class stays in use, most at a low rate.
fn churn(
    heap: &Heap<Counted>,
    cache: &mut FrontCache,
    set: &mut [Option<NonNull<u8>>],
    rng: &mut Lcg,
    steps: usize,
) {
    for _ in 0..steps {
        let slot = rng.next() % set.len();
        if let Some(old) = set[slot].take() {
            unsafe { cache.deallocate(heap, old) }.unwrap();
        }
        let layout = Layout::from_size_align(rng.size(), 8).unwrap();
        let block = cache.allocate(heap, layout).unwrap();
        unsafe { block.as_ptr().write_bytes(1, layout.size()) };
        set[slot] = Some(block);
    }
}

/// glibc's bench-malloc-thread shape: a steady mix of classes, most used at
/// a low rate. Once warm, the decay must (nearly) leave them alone: the old
/// per-event decay judged low-rate classes idle every few hundred events
/// and decommitted the same pages again and again (thousands of
/// `madvise` per second).
#[test]
#[cfg_attr(miri, ignore = "a long real-mmap load")]
fn a_steady_mix_of_classes_is_not_decommitted_over_and_over() {
    let heap = heap();
    let mut cache = FrontCache::new();
    let mut set = vec![None; 1024];
    let mut rng = Lcg(7);
    churn(&heap, &mut cache, &mut set, &mut rng, 600_000);
    let warm = decommits(&heap);
    churn(&heap, &mut cache, &mut set, &mut rng, 300_000);
    let steady = decommits(&heap) - warm;
    println!("decommits: {warm} while warming up, {steady} in steady use");
    // The old decay: about 1000 here. What is left are classes used less
    // often than the longest patience, shed once each such interval.
    assert!(
        steady <= 20,
        "{steady} decommits in 300,000 steady steps (warm-up: {warm})"
    );
    for block in set.into_iter().flatten() {
        unsafe { cache.deallocate(&heap, block) }.unwrap();
    }
    cache.flush(&heap);
}

/// An owner that leaves (a thread that exits: its cache is flushed into the
/// depots) must not pin its blocks in the depots for ever: another owner's
/// activity, in another class, drains depots nobody uses any more, and the
/// zones that empties give their pages back.
#[test]
fn depots_nobody_uses_are_drained_by_other_owners_activity() {
    let heap = heap();
    let leaving_size = Layout::from_size_align(2000, 8).unwrap();
    {
        let mut leaving = FrontCache::new();
        let blocks: Vec<_> = (0..2000)
            .map(|_| leaving.allocate(&heap, leaving_size).unwrap())
            .collect();
        for b in blocks {
            unsafe { leaving.deallocate(&heap, b) }.unwrap();
        }
        leaving.flush(&heap);
    }
    let parked = heap.stats().cached_blocks;
    assert!(
        parked > 100,
        "the depot holds the flushed magazines: {parked}"
    );
    let mapped_while_parked = heap.stats().mapped_bytes;
    // Another owner works in one other class, through its slow paths.
    let mut staying = FrontCache::new();
    let busy = Layout::from_size_align(64, 8).unwrap();
    for _ in 0..2000 {
        let batch: Vec<_> = (0..200)
            .map(|_| staying.allocate(&heap, busy).unwrap())
            .collect();
        for b in batch {
            unsafe { staying.deallocate(&heap, b) }.unwrap();
        }
    }
    assert!(
        heap.stats().mapped_bytes < mapped_while_parked / 2,
        "the leaving owner's zones stay mapped: {} of {mapped_while_parked} bytes, {} blocks cached",
        heap.stats().mapped_bytes,
        heap.stats().cached_blocks
    );
    staying.flush(&heap);
}
