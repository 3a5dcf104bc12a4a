//! Running out of frames: allocation through the core's API returns `None`
//! and the kernel carries on.
//!
//! 1. A request larger than all free memory fails at once, changing nothing.
//! 2. LARGE blocks of 1 MiB, each page touched (so frames really are taken),
//!    until the heap says no; then TINY blocks until it says no again. The
//!    kernel heap (the `#[global_allocator]`) is refused a big block too.
//!    No page fault ever failed: every page was committed before it was
//!    handed out, so a touch always finds a frame.
//! 3. Everything is freed and trimmed: the frames come back (all but the
//!    page map's nodes, kept by design), and both heaps allocate again.
//!
//! While memory is exhausted the test allocates nothing from the kernel
//! heap: the blocks are chained through their own first word.

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::{self, NonNull};

use super::{TEST_HEAP, ensure};
use crate::HEAP;
use crate::demand_paging::TEST_HEAP as TEST_WINDOW;
use crate::frames::FRAMES;
use crate::layout::PAGE_SIZE;

const LARGE_BLOCK: usize = 1 << 20;
const TINY_BLOCK: usize = 16;
/// Bigger than anything the kernel heap served before, so it has no cached
/// run to fall back on.
const KERNEL_HEAP_PROBE: usize = 64 << 20;

/// Allocates `size`-byte blocks from the test heap until it refuses,
/// touching every page, each block pointing at the previous one. Returns
/// the last block and the count.
fn exhaust(size: usize) -> (*mut u8, usize) {
    let layout = Layout::from_size_align(size, 16).expect("valid layout");
    let (mut head, mut count) = (ptr::null_mut::<u8>(), 0);
    while let Some(block) = TEST_HEAP.allocate(layout) {
        let block = block.as_ptr();
        for offset in (0..size).step_by(PAGE_SIZE as usize) {
            // SAFETY: inside the block just allocated.
            unsafe { block.add(offset).write_volatile(0xee) };
        }
        // SAFETY: the block holds at least a pointer, 16-byte aligned.
        unsafe { block.cast::<*mut u8>().write(head) };
        head = block;
        count += 1;
    }
    (head, count)
}

/// Frees a chain built by `exhaust`.
fn free_chain(mut head: *mut u8) -> Result<(), String> {
    while let Some(block) = NonNull::new(head) {
        // SAFETY: a live block of the chain; read before it is freed.
        head = unsafe { block.cast::<*mut u8>().read() };
        // SAFETY: a live block of the test heap, freed once.
        unsafe { TEST_HEAP.deallocate(block) }
            .map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    }
    Ok(())
}

pub fn run() -> Result<String, String> {
    TEST_HEAP.trim();
    let free_before = FRAMES.free_frames();
    let metadata_before = TEST_HEAP.stats().metadata_bytes;

    let too_big = (FRAMES.uncommitted_frames() + 1) * PAGE_SIZE as usize;
    let layout = Layout::from_size_align(too_big, 16).map_err(|e| alloc::format!("{e}"))?;
    ensure!(
        TEST_HEAP.allocate(layout).is_none(),
        "a {too_big}-byte block was granted with fewer frames free"
    );
    ensure!(
        FRAMES.free_frames() == free_before,
        "a refused allocation changed the free frames"
    );

    let (large_chain, large_blocks) = exhaust(LARGE_BLOCK);
    let (tiny_chain, tiny_blocks) = exhaust(TINY_BLOCK);
    let (free_at_oom, uncommitted_at_oom) = (FRAMES.free_frames(), FRAMES.uncommitted_frames());
    let kernel_heap_refused = HEAP
        .allocate(Layout::from_size_align(KERNEL_HEAP_PROBE, 16).expect("layout"))
        .is_none();
    let resident_at_oom = TEST_WINDOW.resident_pages();

    free_chain(tiny_chain)?;
    free_chain(large_chain)?;
    TEST_HEAP.trim();

    ensure!(
        large_blocks > 0 && tiny_blocks > 0,
        "nothing was allocated ({large_blocks} LARGE, {tiny_blocks} TINY)"
    );
    ensure!(
        kernel_heap_refused,
        "the kernel heap granted {KERNEL_HEAP_PROBE} bytes with memory exhausted"
    );
    ensure!(
        large_blocks * LARGE_BLOCK / PAGE_SIZE as usize > free_before / 2,
        "only {large_blocks} MiB allocated with {free_before} frames free"
    );

    // Only the page map stays (it grew: the chains reached new addresses).
    let stats = TEST_HEAP.stats();
    let metadata_pages = (stats.metadata_bytes - metadata_before) / PAGE_SIZE as usize;
    ensure!(
        stats.live_blocks == 0 && stats.large_runs == 0,
        "test heap not empty: {stats:?}"
    );
    ensure!(
        TEST_WINDOW.reserved_pages() * PAGE_SIZE as usize == stats.metadata_bytes,
        "after free+trim the test window holds {} reserved pages; the page map is {} bytes",
        TEST_WINDOW.reserved_pages(),
        stats.metadata_bytes
    );
    // The kernel heap may have handed back cached memory when it was refused,
    // so more frames can be free than before, never fewer than the page map's growth.
    let free_after = FRAMES.free_frames();
    ensure!(
        free_after + metadata_pages >= free_before,
        "free frames: {free_before} before, {free_after} after (page map grew by {metadata_pages} pages)"
    );

    // The kernel carries on: both heaps serve again.
    let again = TEST_HEAP.allocate(Layout::from_size_align(LARGE_BLOCK, 16).expect("layout"));
    let again = again.ok_or("the test heap still refuses after everything was freed")?;
    // SAFETY: live block, freed once.
    unsafe { TEST_HEAP.deallocate(again) }.map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    TEST_HEAP.trim();
    let v: Vec<u64> = (0..100_000).collect();
    ensure!(
        v.iter().sum::<u64>() == 4_999_950_000,
        "kernel heap Vec wrong after OOM"
    );

    Ok(alloc::format!(
        "{large_blocks} x 1 MiB + {tiny_blocks} x 16 B granted ({resident_at_oom} pages resident), then None; \
         at that point {free_at_oom} frames free, {uncommitted_at_oom} unpromised; kernel heap refused {} MiB cleanly; \
         after free+trim {free_after} of {free_before} frames free (page map +{metadata_pages} pages); both heaps allocate again",
        KERNEL_HEAP_PROBE >> 20
    ))
}
