//! TINY, SMALL and LARGE blocks from the kernel heap (alone) or this CPU's
//! own heap (all CPUs at once), through the core's
//! API: each block is aligned, as big as asked, classed as the size says,
//! disjoint from the others, keeps its own byte pattern while its neighbours
//! are written, and frees exactly once (a second free is refused).

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use ft_malloc::{BlockInfo, HeapError, HeapVisitor, Kind, ZoneInfo};

use super::{Context, KernelHeap, check, ensure, fill};

/// Sizes tried, with how many blocks of each: both ends of every kind.
const SIZES: &[(usize, usize)] = &[
    // TINY: up to 128 bytes.
    (1, 64),
    (8, 64),
    (24, 64),
    (100, 64),
    (128, 64),
    // SMALL: up to 32 KiB.
    (129, 32),
    (1000, 32),
    (4096, 16),
    (20_000, 8),
    (32_768, 8),
    // LARGE: a run each.
    (32_769, 4),
    (100_000, 4),
    (1 << 20, 2),
    (3 << 20, 1),
];

/// The kind ft_malloc gives a request of `size` bytes (default alignment).
fn kind_of(size: usize) -> Kind {
    match size {
        0..=128 => Kind::Tiny,
        129..=32_768 => Kind::Small,
        _ => Kind::Large,
    }
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Tiny => 0,
        Kind::Small => 1,
        Kind::Large => 2,
    }
}

/// Counts live blocks per kind (does not allocate: a visitor must not).
#[derive(Default)]
struct KindCounter([usize; 3]);

impl HeapVisitor for KindCounter {
    fn block(&mut self, zone: &ZoneInfo, _block: &BlockInfo) {
        self.0[kind_index(zone.kind)] += 1;
    }
}

fn live_blocks_per_kind(heap: &KernelHeap) -> [usize; 3] {
    let mut counter = KindCounter::default();
    heap.visit(&mut counter);
    counter.0
}

pub fn run(ctx: &Context) -> Result<String, String> {
    let total: usize = SIZES.iter().map(|&(_, n)| n).sum();
    // Bookkeeping first, so it is part of the baseline.
    let mut blocks: Vec<(NonNull<u8>, usize, usize)> = Vec::with_capacity(total);
    let before = live_blocks_per_kind(ctx.heap);
    let mut expected = before;

    for &(size, count) in SIZES {
        for _ in 0..count {
            let layout = Layout::from_size_align(size, 16).map_err(|e| alloc::format!("{e}"))?;
            let block = ctx
                .heap
                .allocate(layout)
                .ok_or_else(|| alloc::format!("allocate({size}) failed"))?;
            ensure!(
                (block.as_ptr() as usize).is_multiple_of(16),
                "block {block:p} of {size} bytes is not 16-byte aligned"
            );
            let usable = ctx
                .heap
                .usable_size(block)
                .map_err(|e| alloc::format!("usable_size: {}", e.as_str()))?;
            ensure!(
                usable >= size,
                "block of {size} bytes has only {usable} usable"
            );
            let seed = blocks.len();
            // SAFETY: a fresh block of `size` bytes.
            unsafe { fill(block.as_ptr(), size, seed) };
            blocks.push((block, size, seed));
            expected[kind_index(kind_of(size))] += 1;
        }
    }

    let now = live_blocks_per_kind(ctx.heap);
    ensure!(
        now == expected,
        "live blocks per kind (TINY, SMALL, LARGE) {now:?}, expected {expected:?}"
    );

    let mut ranges: Vec<(usize, usize)> = blocks
        .iter()
        .map(|&(p, size, _)| (p.as_ptr() as usize, size))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        ensure!(
            pair[0].0 + pair[0].1 <= pair[1].0,
            "blocks at {:#x} and {:#x} overlap",
            pair[0].0,
            pair[1].0
        );
    }
    drop(ranges);
    for &(block, size, seed) in &blocks {
        // SAFETY: a live block of `size` bytes.
        unsafe { check(block.as_ptr(), size, seed) }?;
    }

    // Free every other block, check the survivors, free the rest.
    for pass in 0..2 {
        for &(block, size, seed) in blocks.iter().skip(pass).step_by(2) {
            // SAFETY: a live block of this heap, freed once.
            unsafe { ctx.heap.deallocate(block) }
                .map_err(|e| alloc::format!("free of {size} bytes: {}", e.as_str()))?;
            let _ = seed;
        }
        if pass == 0 {
            for &(block, size, seed) in blocks.iter().skip(1).step_by(2) {
                // SAFETY: still live.
                unsafe { check(block.as_ptr(), size, seed) }?;
            }
        }
    }
    // A double free is caught, not obeyed (a LARGE run may be unmapped by
    // now, so only the TINY one is tried: the check must not touch it).
    let (first, _, _) = blocks[0];
    // SAFETY: `first` was freed above; the heap must refuse it.
    let again = unsafe { ctx.heap.deallocate(first) };
    ensure!(
        matches!(
            again,
            Err(HeapError::DoubleFree | HeapError::InvalidPointer)
        ),
        "second free of {first:p} returned {again:?}"
    );
    let after = live_blocks_per_kind(ctx.heap);
    ensure!(
        after == before,
        "live blocks per kind after freeing: {after:?}, before: {before:?}"
    );
    Ok(alloc::format!(
        "{total} blocks: {} TINY, {} SMALL, {} LARGE; patterns intact, double free refused",
        expected[0] - before[0],
        expected[1] - before[1],
        expected[2] - before[2]
    ))
}
