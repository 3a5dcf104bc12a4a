//! realloc keeps contents: a block grown and shrunk across every kind keeps
//! the bytes it had, whether it stays in place or moves; and a LARGE block
//! that cannot grow in place is moved by the provider by moving its page
//! mappings, so its data moves without a copy and without a fault.

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use super::Context;
use super::{check, ensure, fill};
use crate::demand_paging::backing_frame;

const PAGE: usize = crate::layout::PAGE_SIZE as usize;
/// Most 64 KiB blocks placed to find one right after the LARGE block.
const MAX_WALLS: usize = 256;

/// The sizes one block goes through: TINY, SMALL, LARGE and back.
const SIZES: &[usize] = &[
    24,
    100,
    129,
    1000,
    20_000,
    32_768,
    40_000,
    1 << 20,
    3 << 20,
    1 << 20,
    200_000,
    5000,
    64,
    10,
];

fn layout(size: usize) -> Result<Layout, String> {
    Layout::from_size_align(size, 16).map_err(|e| alloc::format!("{e}"))
}

pub fn run(ctx: &Context) -> Result<String, String> {
    let mut size = SIZES[0];
    let mut block = ctx.heap.allocate(layout(size)?).ok_or("allocate failed")?;
    // SAFETY: a fresh block of `size` bytes.
    unsafe { fill(block.as_ptr(), size, 7) };
    let mut moves = 0;
    for &new_size in &SIZES[1..] {
        // SAFETY: `block` is live; on success the old pointer is dead.
        let moved = unsafe { ctx.heap.reallocate(block, layout(new_size)?) }
            .map_err(|_| alloc::format!("realloc {size} -> {new_size} failed"))?;
        // SAFETY: the block now has `new_size` bytes; the first
        // min(size, new_size) kept the pattern.
        unsafe { check(moved.as_ptr(), size.min(new_size), 7) }
            .map_err(|e| alloc::format!("{size} -> {new_size}: {e}"))?;
        // SAFETY: as above; the pattern now covers the whole block.
        unsafe { fill(moved.as_ptr(), new_size, 7) };
        moves += usize::from(moved != block);
        (block, size) = (moved, new_size);
    }
    // SAFETY: live block, freed once.
    unsafe { ctx.heap.deallocate(block) }.map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    ensure!(
        moves >= 3,
        "only {moves} of {} reallocations moved the block",
        SIZES.len() - 1
    );

    // A LARGE block hemmed in by another one: growing it must move it. The
    // provider moves the page-table entries; the frames (and the data) stay.
    let a_size = 256 * 1024;
    let mut walls: Vec<NonNull<u8>> = Vec::with_capacity(MAX_WALLS);
    // Freed LARGE runs wait in the heap's cache and would serve the walls
    // from anywhere: start from fresh runs, placed first fit.
    ctx.heap.trim();
    let mut a = ctx
        .heap
        .allocate(layout(a_size)?)
        .ok_or("allocate failed")?;
    // The run ends at the page boundary after the block. Placed first fit,
    // `a` took the first hole it fits in, so a block of the same size goes
    // right after it if the rest of that hole holds one, or else further
    // on: then that one is the new `a` and the old one stays as a wall.
    // (How fragmented the window is depends on the earlier tests, and on
    // whether their freed runs were cached or unmapped.)
    let mut a_run_end = (a.as_ptr() as usize + a_size).next_multiple_of(PAGE);
    while walls.len() < MAX_WALLS
        && walls
            .last()
            .is_none_or(|w| w.as_ptr() as usize & !(PAGE - 1) != a_run_end)
    {
        let next = ctx
            .heap
            .allocate(layout(a_size)?)
            .ok_or("allocate failed")?;
        if next.as_ptr() as usize & !(PAGE - 1) != a_run_end {
            walls.push(a);
            a = next;
            a_run_end = (a.as_ptr() as usize + a_size).next_multiple_of(PAGE);
        } else {
            walls.push(next);
        }
    }
    // SAFETY: a fresh block.
    unsafe { fill(a.as_ptr(), a_size, 11) };
    ensure!(
        walls
            .last()
            .is_some_and(|w| w.as_ptr() as usize & !(PAGE - 1) == a_run_end),
        "could not place a block after the LARGE one"
    );
    let pages = a_size.div_ceil(PAGE) + 1;
    let page_of =
        |block: NonNull<u8>, i: usize| ((block.as_ptr() as usize & !(PAGE - 1)) + i * PAGE) as u64;
    let frames_before: Vec<_> = (0..pages).map(|i| backing_frame(page_of(a, i))).collect();
    let (faults_before, resizes_before) = (ctx.heap_window.faults(), ctx.heap.stats().resize_calls);
    // SAFETY: `a` is live.
    let grown = unsafe { ctx.heap.reallocate(a, layout(a_size * 4)?) }
        .map_err(|_| String::from("LARGE grow failed"))?;
    let (move_faults, resizes) = (
        ctx.heap_window.faults() - faults_before,
        ctx.heap.stats().resize_calls - resizes_before,
    );
    let frames_after: Vec<_> = (0..pages)
        .map(|i| backing_frame(page_of(grown, i)))
        .collect();
    // SAFETY: the grown block holds the first a_size bytes of `a`.
    unsafe { check(grown.as_ptr(), a_size, 11) }?;
    let remapped = grown != a && resizes == 1;
    let same_frames = frames_before == frames_after && frames_before.iter().all(Option::is_some);
    // SAFETY: live blocks, freed once.
    unsafe {
        ctx.heap
            .deallocate(grown)
            .map_err(|e| alloc::format!("free: {}", e.as_str()))?;
        for wall in walls {
            ctx.heap
                .deallocate(wall)
                .map_err(|e| alloc::format!("free: {}", e.as_str()))?;
        }
    }
    ensure!(
        remapped,
        "the hemmed-in LARGE block was not moved by the provider (moved: {}, resize calls: {resizes})",
        grown != a
    );
    ensure!(
        same_frames,
        "the moved block is not backed by the frames that held it: its data was copied"
    );
    Ok(alloc::format!(
        "{} reallocations through TINY/SMALL/LARGE, {moves} moved, contents intact; a hemmed-in 256 KiB block moved to {grown:p} by page remapping: same {pages} frames, no copy, {move_faults} faults",
        SIZES.len() - 1
    ))
}
