//! `blog-heap` on the command line: a heap set up the way a blog_os-style
//! kernel sets up its own (blog_os's "Heap Allocation" post): a `static`
//! heap that starts empty, then a 100 KiB region at a fixed virtual address,
//! mapped to frames eagerly and handed over, then blog_os's heap tests
//! (`tests/heap_allocation.rs`: simple allocation, a large vector, many
//! boxes, many boxes with a long-lived one). Before the region is handed
//! over, an allocation must return null, not fault.
//!
//! The kernel's `#[global_allocator]` stays the demand-paged [`crate::HEAP`],
//! so the boxes and vectors name their heap: `allocator_api2`'s `Box::new_in`
//! and `Vec::new_in` with `&BLOG_HEAP`, the same calls `Box::new` and
//! `Vec::new` make on a global allocator.

use core::alloc::{GlobalAlloc, Layout};

use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use ft_malloc::{ArenaProvider, Heap, IrqSpinLock};
use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, PageTableFlags};

use crate::frames::FRAMES;
use crate::layout::{BLOG_HEAP_SIZE, BLOG_HEAP_START};
use crate::{paging, println};

/// The heap, as blog_os declares its `ALLOCATOR`: empty, in a `static`, its
/// window known at compile time so the heap sizes itself to 100 KiB.
static BLOG_HEAP: Heap<ArenaProvider, IrqSpinLock> = Heap::new(ArenaProvider::empty_in(
    BLOG_HEAP_START as usize,
    BLOG_HEAP_SIZE as usize,
));

/// Page tables a 100 KiB window can need (PDPT, PD, PT: it lies in one
/// page table's 2 MiB).
const TABLES: usize = 3;

pub fn run() -> bool {
    println!(
        "blog-heap: static empty heap, window {:#x}..{:#x} ({} KiB)",
        BLOG_HEAP_START,
        BLOG_HEAP_START + BLOG_HEAP_SIZE,
        BLOG_HEAP_SIZE >> 10
    );
    let mut ok = check("allocation_before_the_region_is_null", before_the_region());
    if let Err(why) = init_heap() {
        println!("blog-heap: init_heap failed: {why}");
        return false;
    }
    println!(
        "blog-heap: init_heap mapped {} pages and handed them over ({} KiB usable)",
        BLOG_HEAP_SIZE / 4096,
        BLOG_HEAP.provider().capacity_bytes() >> 10
    );
    ok &= check("simple_allocation", simple_allocation());
    ok &= check("large_vec", large_vec());
    ok &= check("many_boxes", many_boxes());
    ok &= check("many_boxes_long_lived", many_boxes_long_lived());
    ok &= check("all_freed", all_freed());
    println!("blog-heap: {}", if ok { "all passed" } else { "FAILED" });
    ok
}

fn check(name: &str, result: Result<(), &'static str>) -> bool {
    match result {
        Ok(()) => {
            println!("blog-heap: {name} ... ok");
            true
        }
        Err(why) => {
            println!("blog-heap: {name} ... FAILED: {why}");
            false
        }
    }
}

/// Nothing is mapped at the window yet: any touch would fault. The heap
/// must answer null without touching it.
fn before_the_region() -> Result<(), &'static str> {
    if paging::translate(VirtAddr::new(BLOG_HEAP_START)).is_some() {
        return Err("the window is mapped already");
    }
    for size in [8, 100, 4096, 64 << 10] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: a valid, non-zero layout; the result is only compared.
        if !unsafe { GlobalAlloc::alloc(&BLOG_HEAP, layout) }.is_null() {
            return Err("an allocation before the region did not return null");
        }
    }
    if Box::try_new_in(41u64, &BLOG_HEAP).is_ok() {
        return Err("Box::try_new_in before the region succeeded");
    }
    Ok(())
}

/// blog_os's `init_heap`: map every page of the window to a fresh frame,
/// then give the heap the region.
fn init_heap() -> Result<(), &'static str> {
    let pages = (BLOG_HEAP_SIZE / 4096) as usize;
    if !FRAMES.try_commit(pages + TABLES) {
        return Err("not enough frames");
    }
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for i in 0..pages as u64 {
        let page = Page::containing_address(VirtAddr::new(BLOG_HEAP_START + i * 4096));
        let frame = FRAMES.take_committed().ok_or("a committed frame missing")?;
        // SAFETY: the page lies in the blog-heap window, which nothing else
        // maps; the frame was just taken for it; the commitment covers the
        // page tables.
        unsafe { paging::map(page, frame, flags) }.map_err(|_| "mapping a page failed")?;
    }
    // SAFETY: the window is now mapped, and used by nothing but BLOG_HEAP
    // for the rest of the kernel's life.
    unsafe {
        BLOG_HEAP
            .provider()
            .add_region(BLOG_HEAP_START as *mut u8, BLOG_HEAP_SIZE as usize)
    }
    .map_err(|_| "add_region refused the window")
}

fn simple_allocation() -> Result<(), &'static str> {
    let heap_value_1 = Box::new_in(41, &BLOG_HEAP);
    let heap_value_2 = Box::new_in(13, &BLOG_HEAP);
    if *heap_value_1 != 41 || *heap_value_2 != 13 {
        return Err("a box lost its value");
    }
    Ok(())
}

fn large_vec() -> Result<(), &'static str> {
    let n = 1000u64;
    let mut vec = Vec::new_in(&BLOG_HEAP);
    for i in 0..n {
        vec.push(i);
    }
    if vec.iter().sum::<u64>() != (n - 1) * n / 2 {
        return Err("the vector's sum is wrong");
    }
    Ok(())
}

/// As many boxes as the heap has bytes, each dropped before the next: the
/// heap must reuse freed memory.
fn many_boxes() -> Result<(), &'static str> {
    for i in 0..BLOG_HEAP_SIZE as usize {
        let x = Box::new_in(i, &BLOG_HEAP);
        if *x != i {
            return Err("a box lost its value");
        }
    }
    Ok(())
}

/// The same with one box alive throughout: a heap that only reuses the
/// last freed block would run out.
fn many_boxes_long_lived() -> Result<(), &'static str> {
    let long_lived = Box::new_in(1, &BLOG_HEAP);
    for i in 0..BLOG_HEAP_SIZE as usize {
        let x = Box::new_in(i, &BLOG_HEAP);
        if *x != i {
            return Err("a box lost its value");
        }
    }
    if *long_lived != 1 {
        return Err("the long-lived box was overwritten");
    }
    Ok(())
}

fn all_freed() -> Result<(), &'static str> {
    if BLOG_HEAP.stats().live_blocks != 0 {
        return Err("blocks left live after the tests");
    }
    Ok(())
}
