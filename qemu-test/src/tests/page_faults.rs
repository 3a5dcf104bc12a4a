//! Page faults happen once per distinct heap page, on first touch, and only
//! then: the count is exact, not approximate.
//!
//! On a fresh heap (the test heap, whose window nothing else touches):
//! allocate TINY, SMALL and LARGE blocks, then touch every page of every
//! block, in an order that revisits pages. Before each access the test asks
//! the page tables whether the page is mapped; the access must then raise
//! exactly one fault if it was not and none if it was. At the end the
//! window's fault count must equal the pages its page tables map (the heap's
//! own first touches — zone and run headers, page-map nodes — included), and
//! a second pass over every page must fault zero times.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use x86_64::VirtAddr;

use super::{Context, ensure};
use crate::demand_paging::{Window, backing_frame};
use crate::layout::PAGE_SIZE;
use crate::paging;

/// Requests: (size, count), spanning the three kinds.
const REQUESTS: &[(usize, usize)] = &[
    (16, 700),
    (128, 200),
    (600, 60),
    (5000, 20),
    (30_000, 6),
    (70_000, 3),
    (1 << 20, 2),
];

/// Writes one byte at `addr` and returns the faults it caused.
fn touch(window: &Window, addr: usize) -> u64 {
    let before = window.faults();
    // SAFETY: `addr` lies inside a live block of the test heap.
    unsafe { (addr as *mut u8).write_volatile(0x5a) };
    window.faults() - before
}

pub fn run(ctx: &Context) -> Result<String, String> {
    let window_start = VirtAddr::new(ctx.test_window.layout.start);
    ensure!(
        ctx.test_window.faults() == 0 && paging::census(window_start).pages == 0,
        "the test heap is not fresh"
    );

    let mut blocks: Vec<(NonNull<u8>, usize)> = Vec::new();
    for &(size, count) in REQUESTS {
        let layout = Layout::from_size_align(size, 16).map_err(|e| alloc::format!("{e}"))?;
        for _ in 0..count {
            blocks.push((
                ctx.test_heap
                    .allocate(layout)
                    .ok_or_else(|| alloc::format!("allocate({size}) failed"))?,
                size,
            ));
        }
    }
    let faults_in_allocate = ctx.test_window.faults();
    let mapped_by_heap = paging::census(window_start).pages;
    ensure!(
        faults_in_allocate == mapped_by_heap as u64,
        "{faults_in_allocate} faults while allocating, but {mapped_by_heap} pages mapped"
    );

    // Every page of every block: first bytes of blocks in allocation order,
    // then each block's pages from its last byte backwards.
    let mut addresses: Vec<usize> = blocks.iter().map(|&(p, _)| p.as_ptr() as usize).collect();
    for &(p, size) in &blocks {
        let start = p.as_ptr() as usize;
        let last = start + size - 1;
        addresses.push(last);
        let mut page = last & !(PAGE_SIZE as usize - 1);
        while page > start {
            addresses.push(page);
            page -= PAGE_SIZE as usize;
        }
    }

    let mut first_touched_by_test = BTreeSet::new();
    for &addr in &addresses {
        let was_mapped = backing_frame(addr as u64).is_some();
        let faults = touch(ctx.test_window, addr);
        ensure!(
            faults == u64::from(!was_mapped),
            "touching {addr:#x} (mapped before: {was_mapped}) raised {faults} faults"
        );
        if !was_mapped {
            first_touched_by_test.insert(addr / PAGE_SIZE as usize);
        }
    }

    let faults = ctx.test_window.faults();
    let census = paging::census(window_start);
    ensure!(
        faults == census.pages as u64,
        "{faults} faults, but the page tables map {} distinct pages",
        census.pages
    );
    ensure!(
        faults == faults_in_allocate + first_touched_by_test.len() as u64,
        "{faults} faults != {faults_in_allocate} in allocate + {} first touched by the test",
        first_touched_by_test.len()
    );

    let before_second_pass = ctx.test_window.faults();
    for &addr in &addresses {
        touch(ctx.test_window, addr);
    }
    let second_pass = ctx.test_window.faults() - before_second_pass;
    ensure!(
        second_pass == 0,
        "the second pass over touched pages raised {second_pass} faults"
    );

    for &(block, _) in &blocks {
        // SAFETY: live blocks of the test heap, freed once.
        unsafe { ctx.test_heap.deallocate(block) }
            .map_err(|e| alloc::format!("free: {}", e.as_str()))?;
    }
    ctx.test_heap.trim();
    Ok(alloc::format!(
        "{faults} faults = {faults} distinct pages first touched ({faults_in_allocate} by the heap's own metadata, {} by {} accesses of the test); second pass over all {} addresses: 0 faults",
        first_touched_by_test.len(),
        addresses.len(),
        addresses.len()
    ))
}
