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
//!
//! On several CPUs this runs on CPU 0 while every other CPU runs
//! [`pressure`]: allocating and freeing on its own test heap all along.
//! Once CPU 0 holds every frame, it waits until each other CPU has been
//! refused an allocation (cleanly: `None`, no failed fault) before it
//! frees; then the others must be served again.

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::{self, NonNull};

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Context, KernelHeap, ensure};
use crate::HEAP;
use crate::frames::FRAMES;
use crate::layout::PAGE_SIZE;
use crate::smp::jobs::WATCHDOG_TICKS;
use crate::tsc;

const LARGE_BLOCK: usize = 1 << 20;
const TINY_BLOCK: usize = 16;
/// Bigger than anything the kernel heap served before, so it has no cached
/// run to fall back on.
const KERNEL_HEAP_PROBE: usize = 64 << 20;

/// Set by CPU 0 once it holds every frame it could get.
static EXHAUSTED: AtomicBool = AtomicBool::new(false);
/// Set by CPU 0 when it is done (whatever the verdict).
static DONE: AtomicBool = AtomicBool::new(false);
/// Other CPUs refused an allocation while CPU 0 held every frame.
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Blocks the other CPUs allocate under pressure: LARGE, each a run of
/// its own, so every new one needs fresh frames.
const PRESSURE_BLOCK: usize = 64 * 1024;
/// Blocks each of them holds at most.
const PRESSURE_SLOTS: usize = 64;
/// Blocks each keeps while memory is plentiful (it frees the oldest).
const PRESSURE_KEEP: usize = 16;

/// Tells the CPUs under [`pressure`] that the out-of-memory test is over.
pub fn finish() {
    DONE.store(true, Ordering::Release);
}

/// Allocates `size`-byte blocks from the test heap until it refuses,
/// touching every page, each block pointing at the previous one. Returns
/// the last block and the count.
fn exhaust(heap: &KernelHeap, size: usize) -> (*mut u8, usize) {
    let layout = Layout::from_size_align(size, 16).expect("valid layout");
    let (mut head, mut count) = (ptr::null_mut::<u8>(), 0);
    while let Some(block) = heap.allocate(layout) {
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
fn free_chain(heap: &KernelHeap, mut head: *mut u8) -> Result<(), String> {
    while let Some(block) = NonNull::new(head) {
        // SAFETY: a live block of the chain; read before it is freed.
        head = unsafe { block.cast::<*mut u8>().read() };
        // SAFETY: a live block of the test heap, freed once.
        unsafe { heap.deallocate(block) }.map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    }
    Ok(())
}

pub fn run(ctx: &Context) -> Result<String, String> {
    ctx.test_heap.trim();
    let free_before = FRAMES.free_frames();
    let metadata_before = ctx.test_heap.stats().metadata_bytes;

    // Alone, one frame more than is free; with other CPUs freeing
    // meanwhile, more than all memory.
    let frames_asked = if ctx.alone() {
        FRAMES.uncommitted_frames() + 1
    } else {
        FRAMES.total_frames() + 1
    };
    let too_big = frames_asked * PAGE_SIZE as usize;
    let layout = Layout::from_size_align(too_big, 16).map_err(|e| alloc::format!("{e}"))?;
    ensure!(
        ctx.test_heap.allocate(layout).is_none(),
        "a {too_big}-byte block was granted with fewer frames free"
    );
    ensure!(
        !ctx.alone() || FRAMES.free_frames() == free_before,
        "a refused allocation changed the free frames"
    );

    let (large_chain, large_blocks) = exhaust(ctx.test_heap, LARGE_BLOCK);
    let (tiny_chain, tiny_blocks) = exhaust(ctx.test_heap, TINY_BLOCK);
    let (free_at_oom, uncommitted_at_oom) = (FRAMES.free_frames(), FRAMES.uncommitted_frames());
    // Before the kernel heap is probed: refused, it hands cached memory back.
    let others = ctx.cpus - 1;
    if others > 0 {
        EXHAUSTED.store(true, Ordering::Release);
        let start = tsc::ticks();
        while REFUSED.load(Ordering::Acquire) < others
            && tsc::ticks().wrapping_sub(start) < WATCHDOG_TICKS / 4
        {
            core::hint::spin_loop();
        }
    }
    let refused_elsewhere = REFUSED.load(Ordering::Acquire);
    let kernel_heap_refused = HEAP
        .allocate(Layout::from_size_align(KERNEL_HEAP_PROBE, 16).expect("layout"))
        .is_none();
    let resident_at_oom = ctx.test_window.resident_pages();

    free_chain(ctx.test_heap, tiny_chain)?;
    free_chain(ctx.test_heap, large_chain)?;
    ctx.test_heap.trim();

    // With other CPUs allocating, they may hold the last frames a new TINY
    // zone would need: then TINY is refused at once, which is still clean.
    ensure!(
        large_blocks > 0 && (tiny_blocks > 0 || !ctx.alone()),
        "nothing was allocated ({large_blocks} LARGE, {tiny_blocks} TINY)"
    );
    ensure!(
        refused_elsewhere >= others,
        "only {refused_elsewhere} of the {others} other CPUs were refused memory while this one held it all"
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
    let stats = ctx.test_heap.stats();
    let metadata_pages = (stats.metadata_bytes - metadata_before) / PAGE_SIZE as usize;
    ensure!(
        stats.live_blocks == 0 && stats.large_runs == 0,
        "test heap not empty: {stats:?}"
    );
    ensure!(
        ctx.test_window.reserved_pages() * PAGE_SIZE as usize == stats.metadata_bytes,
        "after free+trim the test window holds {} reserved pages; the page map is {} bytes",
        ctx.test_window.reserved_pages(),
        stats.metadata_bytes
    );
    // The kernel heap may have handed back cached memory when it was refused,
    // so more frames can be free than before, never fewer than the page map's growth.
    let free_after = FRAMES.free_frames();
    // Other CPUs may hold frames at this moment.
    ensure!(
        !ctx.alone() || free_after + metadata_pages >= free_before,
        "free frames: {free_before} before, {free_after} after (page map grew by {metadata_pages} pages)"
    );

    // The kernel carries on: both heaps serve again.
    let again = ctx
        .test_heap
        .allocate(Layout::from_size_align(LARGE_BLOCK, 16).expect("layout"));
    let again = again.ok_or("the test heap still refuses after everything was freed")?;
    // SAFETY: live block, freed once.
    unsafe { ctx.test_heap.deallocate(again) }
        .map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    ctx.test_heap.trim();
    let v: Vec<u64> = (0..100_000).collect();
    ensure!(
        v.iter().sum::<u64>() == 4_999_950_000,
        "kernel heap Vec wrong after OOM"
    );

    Ok(alloc::format!(
        "{large_blocks} x 1 MiB + {tiny_blocks} x 16 B granted ({resident_at_oom} pages resident), then None; \
         at that point {free_at_oom} frames free, {uncommitted_at_oom} unpromised; kernel heap refused {} MiB cleanly; \
         after free+trim {free_after} of {free_before} frames free (page map +{metadata_pages} pages); both heaps allocate again{}",
        KERNEL_HEAP_PROBE >> 20,
        if others > 0 {
            alloc::format!("; the {others} other CPUs, allocating meanwhile, were refused cleanly")
        } else {
            String::new()
        }
    ))
}

/// On every CPU but CPU 0 while it runs out of frames: allocate and free
/// LARGE blocks on this CPU's test heap, checking each block's pattern,
/// until CPU 0 is done. Once CPU 0 holds every frame, stop freeing until
/// the heap refuses (counted in [`REFUSED`]). Allocates nothing from the
/// kernel heap until the end.
pub fn pressure(ctx: &Context) -> Result<String, String> {
    let layout = Layout::from_size_align(PRESSURE_BLOCK, 16).expect("valid layout");
    let mut held: [Option<NonNull<u8>>; PRESSURE_SLOTS] = [None; PRESSURE_SLOTS];
    let (mut live, mut oldest) = (0, 0);
    let (mut granted, mut refusals, mut refused_at_oom) = (0usize, 0usize, false);
    let mut error = None;
    let free = |block: NonNull<u8>, error: &mut Option<String>| {
        // SAFETY: a live block of ours, written when allocated.
        let first = unsafe { block.as_ptr().read_volatile() };
        if first != 0xc5 && error.is_none() {
            *error = Some(alloc::format!(
                "block {block:p} lost its pattern ({first:#x})"
            ));
        }
        // SAFETY: a live block of the test heap, freed once.
        if unsafe { ctx.test_heap.deallocate(block) }.is_err() && error.is_none() {
            *error = Some(alloc::format!("free of {block:p} refused"));
        }
    };
    // No timeout of its own: if CPU 0 hangs, the runner's watchdog ends the
    // run (CPU 0 is the one waiting for the others).
    while !DONE.load(Ordering::Acquire) {
        let exhausted = EXHAUSTED.load(Ordering::Acquire);
        if !exhausted || refused_at_oom {
            // Memory to share (or the refusal seen): keep PRESSURE_KEEP
            // blocks, freeing the oldest before each new one.
            if live >= PRESSURE_KEEP {
                if let Some(block) = held[oldest].take() {
                    free(block, &mut error);
                    live -= 1;
                }
                oldest = (oldest + 1) % PRESSURE_SLOTS;
                continue;
            }
        } else if live == PRESSURE_SLOTS {
            // CPU 0 holds every frame and this CPU frees nothing, so the
            // heap must refuse before the slots run out; if it did not,
            // wait for the verdict.
            core::hint::spin_loop();
            continue;
        }
        match ctx.test_heap.allocate(layout) {
            Some(block) => {
                // SAFETY: a fresh block of PRESSURE_BLOCK bytes: first and
                // last page touched (faulted in).
                unsafe {
                    block.as_ptr().write_volatile(0xc5);
                    block.as_ptr().add(PRESSURE_BLOCK - 1).write_volatile(0xc5);
                }
                let slot = (oldest + live) % PRESSURE_SLOTS;
                held[slot] = Some(block);
                live += 1;
                granted += 1;
            }
            None => {
                refusals += 1;
                if exhausted && !refused_at_oom {
                    refused_at_oom = true;
                    REFUSED.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }
    for block in held.iter_mut().filter_map(Option::take) {
        free(block, &mut error);
    }
    ctx.test_heap.trim();
    if let Some(error) = error {
        return Err(error);
    }
    ensure!(
        refused_at_oom,
        "never refused while CPU 0 held every frame ({granted} granted)"
    );
    let again = ctx
        .test_heap
        .allocate(layout)
        .ok_or("the test heap still refuses after CPU 0 freed everything")?;
    // SAFETY: live block, freed once.
    unsafe { ctx.test_heap.deallocate(again) }
        .map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    ctx.test_heap.trim();
    Ok(alloc::format!(
        "{granted} x 64 KiB granted, {refusals} refused cleanly (None) while CPU 0 was out of frames, patterns intact; served again after"
    ))
}
