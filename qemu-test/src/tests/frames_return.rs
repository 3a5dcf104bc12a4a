//! Frames come back: after freeing LARGE runs and emptying zones (and
//! `trim`, which hands cached empty zones and LARGE runs to the provider),
//! the test window's resident pages are where they were, and (when the test
//! runs alone: other CPUs take and return frames meanwhile) so is the
//! free-frame count.
//!
//! The page map's nodes are the one thing the heap keeps on purpose (a
//! lock-free reader may still walk them), so the workload runs once to
//! create them; from then on each round must return every frame it took.

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use super::{Context, ensure};
use crate::frames::FRAMES;
use crate::layout::PAGE_SIZE;

/// Blocks of each size per round: several zones' worth of TINY and SMALL
/// blocks and a few LARGE runs.
const ROUND: &[(usize, usize)] = &[
    (32, 3000),
    (2000, 300),
    (16_000, 40),
    (200_000, 6),
    (2 << 20, 2),
];

/// Allocates a round, touches every page, frees it all and trims. Returns
/// the free-frame count at its peak (lowest).
fn round(ctx: &Context) -> Result<usize, String> {
    let mut blocks: Vec<NonNull<u8>> = Vec::with_capacity(ROUND.iter().map(|&(_, n)| n).sum());
    for &(size, count) in ROUND {
        let layout = Layout::from_size_align(size, 16).map_err(|e| alloc::format!("{e}"))?;
        for _ in 0..count {
            let block = ctx
                .test_heap
                .allocate(layout)
                .ok_or_else(|| alloc::format!("allocate({size}) failed"))?;
            for offset in (0..size).step_by(PAGE_SIZE as usize).chain([size - 1]) {
                // SAFETY: inside the block just allocated.
                unsafe { block.as_ptr().add(offset).write_volatile(1) };
            }
            blocks.push(block);
        }
    }
    let lowest = FRAMES.free_frames();
    for block in blocks {
        // SAFETY: live blocks of the test heap, freed once.
        unsafe { ctx.test_heap.deallocate(block) }
            .map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    }
    ctx.test_heap.trim();
    Ok(lowest)
}

pub fn run(ctx: &Context) -> Result<String, String> {
    round(ctx)?;
    let (free_before, uncommitted_before) = (FRAMES.free_frames(), FRAMES.uncommitted_frames());
    let metadata_pages = ctx.test_window.reserved_pages();
    let resident_before = ctx.test_window.resident_pages();

    let mut lowest = usize::MAX;
    for _ in 0..3 {
        lowest = lowest.min(round(ctx)?);
        let resident = ctx.test_window.resident_pages();
        ensure!(
            resident == resident_before,
            "{resident} pages resident after a round, {resident_before} before"
        );
        if !ctx.alone() {
            continue;
        }
        let (free, uncommitted) = (FRAMES.free_frames(), FRAMES.uncommitted_frames());
        ensure!(
            free == free_before,
            "free frames {free} after a round, {free_before} before"
        );
        ensure!(
            uncommitted == uncommitted_before,
            "uncommitted frames {uncommitted} after a round, {uncommitted_before} before"
        );
    }
    let stats = ctx.test_heap.stats();
    ensure!(
        stats.live_blocks == 0 && stats.large_runs == 0,
        "heap not empty: {stats:?}"
    );
    ensure!(
        ctx.test_window.reserved_pages() == metadata_pages
            && metadata_pages * PAGE_SIZE as usize == stats.metadata_bytes,
        "after trim the window still holds {} reserved pages; the page map is {} bytes",
        ctx.test_window.reserved_pages(),
        stats.metadata_bytes
    );
    if !ctx.alone() {
        return Ok(alloc::format!(
            "{resident_before} pages resident before and after each of 3 rounds; only the page map ({} KiB) stays",
            stats.metadata_bytes / 1024
        ));
    }
    Ok(alloc::format!(
        "free frames {free_before} before, {lowest} at the peak (-{}), {free_before} after each of 3 rounds; only the page map ({} KiB) stays",
        free_before.saturating_sub(lowest),
        stats.metadata_bytes / 1024
    ))
}
