//! A kernel's `PageProvider`, as a skeleton: virtual runs from a heap window,
//! a frame from the frame allocator for every page, mapped with the
//! `x86_64` crate's [`Mapper`]. In a kernel, `M` is `OffsetPageTable` (or
//! `RecursivePageTable`) and `A` the kernel's frame allocator.
//!
//! So that it runs on the host (`cargo run --example kernel_provider`), the
//! "page table" here is a simulated one and the heap window a static array:
//! the mapping is recorded, the bytes live in the array. A complete kernel
//! provider, with frames mapped on first touch by the page-fault handler, is
//! `qemu-test/src/heap_provider.rs`.

use core::ptr::NonNull;
use std::collections::HashMap;

use ft_malloc::{Heap, MIN_PAGE_SIZE, PageProvider};
use spin::Mutex;
use x86_64::structures::paging::mapper::{
    FlagUpdateError, MapToError, MapperFlush, MapperFlushAll, TranslateError, UnmapError,
};
use x86_64::structures::paging::{
    FrameAllocator, FrameDeallocator, Mapper, Page, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const PAGE: usize = MIN_PAGE_SIZE;

/// The provider: a window of virtual addresses reserved for the heap, the
/// page table and the frame allocator, behind one lock (the heap calls the
/// provider from several size classes at once).
struct KernelPages<M, A> {
    window_start: usize,
    inner: Mutex<Inner<M, A>>,
}

struct Inner<M, A> {
    mapper: M,
    frames: A,
    /// One bit per page of the window: reserved by a run.
    reserved: Vec<u64>,
}

impl<M, A> KernelPages<M, A> {
    /// `window_pages` pages from `window_start` are the heap's virtual space.
    fn new(window_start: usize, window_pages: usize, mapper: M, frames: A) -> Self {
        KernelPages {
            window_start,
            inner: Mutex::new(Inner {
                mapper,
                frames,
                reserved: vec![0; window_pages.div_ceil(64)],
            }),
        }
    }

    fn page(&self, index: usize) -> Page<Size4KiB> {
        Page::containing_address(VirtAddr::new((self.window_start + index * PAGE) as u64))
    }
}

impl<M, A> Inner<M, A> {
    fn is_reserved(&self, page: usize) -> bool {
        self.reserved[page / 64] & (1 << (page % 64)) != 0
    }

    fn set_reserved(&mut self, pages: core::ops::Range<usize>, on: bool) {
        for page in pages {
            let (word, bit) = (page / 64, 1u64 << (page % 64));
            if on {
                self.reserved[word] |= bit;
            } else {
                self.reserved[word] &= !bit;
            }
        }
    }

    /// First fit: `n` free pages starting at a multiple of `align_pages`.
    fn reserve(&mut self, n: usize, align_pages: usize) -> Option<usize> {
        let total = self.reserved.len() * 64;
        let mut start = 0;
        while start + n <= total {
            match (start..start + n).find(|&p| self.is_reserved(p)) {
                None => {
                    self.set_reserved(start..start + n, true);
                    return Some(start);
                }
                Some(used) => start = (used + 1).next_multiple_of(align_pages),
            }
        }
        None
    }
}

impl<M, A> Inner<M, A>
where
    M: Mapper<Size4KiB>,
    A: FrameAllocator<Size4KiB> + FrameDeallocator<Size4KiB>,
{
    /// Unmaps `pages` and gives their frames back.
    fn unmap_pages(&mut self, provider_pages: impl Iterator<Item = Page<Size4KiB>>) {
        for page in provider_pages {
            let (frame, flush) = self.mapper.unmap(page).expect("a page of a live run");
            flush_tlb(flush);
            // SAFETY: the frame was ours (mapped by `map`) and nothing maps
            // it any more.
            unsafe { self.frames.deallocate_frame(frame) };
        }
    }
}

/// A kernel must drop the stale translation from the TLB; the host
/// simulation has no TLB (and `invlpg` is privileged).
fn flush_tlb(flush: MapperFlush<Size4KiB>) {
    #[cfg(target_os = "none")]
    flush.flush();
    #[cfg(not(target_os = "none"))]
    flush.ignore();
}

// SAFETY: runs are page-aligned ranges of the window, reserved in the bitmap
// until `unmap` (so disjoint), every page mapped writable to a frame of its
// own before the run is returned, and zeroed through the new mapping.
unsafe impl<M, A> PageProvider for KernelPages<M, A>
where
    M: Mapper<Size4KiB>,
    A: FrameAllocator<Size4KiB> + FrameDeallocator<Size4KiB>,
{
    fn page_size(&self) -> usize {
        PAGE
    }

    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let mut inner = self.inner.lock();
        let n = len / PAGE;
        let first = inner.reserve(n, align.max(PAGE) / PAGE)?;
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        for i in 0..n {
            let page = self.page(first + i);
            let Inner { mapper, frames, .. } = &mut *inner;
            let mapped = frames.allocate_frame().and_then(|frame| {
                // SAFETY: `page` is a reserved page of the heap window that
                // nothing maps; `frame` is fresh from the allocator.
                unsafe { mapper.map_to(page, frame, flags, frames) }.ok()
            });
            match mapped {
                // A new translation (not-present before): nothing to flush.
                Some(flush) => flush.ignore(),
                None => {
                    // Out of frames: undo this run and report failure.
                    inner.unmap_pages((0..i).map(|j| self.page(first + j)));
                    inner.set_reserved(first..first + n, false);
                    return None;
                }
            }
        }
        let run = (self.window_start + first * PAGE) as *mut u8;
        // SAFETY: the run is mapped writable and ours.
        unsafe { run.write_bytes(0, len) };
        NonNull::new(run)
    }

    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        let mut inner = self.inner.lock();
        let first = (run.as_ptr().addr() - self.window_start) / PAGE;
        let n = len / PAGE;
        inner.unmap_pages((first..first + n).map(|i| self.page(i)));
        inner.set_reserved(first..first + n, false);
    }

    fn zeroed_on_map(&self) -> bool {
        true // `map` zeroes every page it maps
    }
}

// ---- the host simulation: what the kernel already has ----

/// Frames of a pretend physical memory, from 16 MiB up.
struct Frames {
    next: u64,
    end: u64,
    free: Vec<PhysFrame>,
}

// SAFETY: hands out each frame once until it is deallocated.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        if let Some(frame) = self.free.pop() {
            return Some(frame);
        }
        (self.next < self.end).then(|| {
            self.next += PAGE as u64;
            PhysFrame::containing_address(PhysAddr::new(self.next - PAGE as u64))
        })
    }
}

impl FrameDeallocator<Size4KiB> for Frames {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame) {
        self.free.push(frame);
    }
}

/// A page table that only records translations (the bytes of a "mapped"
/// page live in the window array itself).
#[derive(Default)]
struct SimulatedTable(HashMap<Page, PhysFrame>);

impl Mapper<Size4KiB> for SimulatedTable {
    unsafe fn map_to_with_table_flags<A>(
        &mut self,
        page: Page,
        frame: PhysFrame,
        _flags: PageTableFlags,
        _parent_table_flags: PageTableFlags,
        _frame_allocator: &mut A,
    ) -> Result<MapperFlush<Size4KiB>, MapToError<Size4KiB>>
    where
        A: FrameAllocator<Size4KiB> + ?Sized,
    {
        match self.0.insert(page, frame) {
            None => Ok(MapperFlush::new(page)),
            Some(old) => Err(MapToError::PageAlreadyMapped(old)),
        }
    }

    fn unmap(&mut self, page: Page) -> Result<(PhysFrame, MapperFlush<Size4KiB>), UnmapError> {
        let frame = self.0.remove(&page).ok_or(UnmapError::PageNotMapped)?;
        Ok((frame, MapperFlush::new(page)))
    }

    unsafe fn update_flags(
        &mut self,
        page: Page,
        _flags: PageTableFlags,
    ) -> Result<MapperFlush<Size4KiB>, FlagUpdateError> {
        match self.0.contains_key(&page) {
            true => Ok(MapperFlush::new(page)),
            false => Err(FlagUpdateError::PageNotMapped),
        }
    }

    unsafe fn set_flags_p4_entry(
        &mut self,
        _: Page,
        _: PageTableFlags,
    ) -> Result<MapperFlushAll, FlagUpdateError> {
        Ok(MapperFlushAll::new())
    }

    unsafe fn set_flags_p3_entry(
        &mut self,
        _: Page,
        _: PageTableFlags,
    ) -> Result<MapperFlushAll, FlagUpdateError> {
        Ok(MapperFlushAll::new())
    }

    unsafe fn set_flags_p2_entry(
        &mut self,
        _: Page,
        _: PageTableFlags,
    ) -> Result<MapperFlushAll, FlagUpdateError> {
        Ok(MapperFlushAll::new())
    }

    fn translate_page(&self, page: Page) -> Result<PhysFrame, TranslateError> {
        self.0
            .get(&page)
            .copied()
            .ok_or(TranslateError::PageNotMapped)
    }
}

/// The heap window: 8 MiB of virtual space (here, of `.bss`), page aligned.
#[repr(C, align(4096))]
struct Window([u8; WINDOW_BYTES]);
const WINDOW_BYTES: usize = 8 << 20;
static mut WINDOW: Window = Window([0; WINDOW_BYTES]);

fn main() {
    let frames = Frames {
        next: 16 << 20,
        end: (16 << 20) + (WINDOW_BYTES as u64 / 2), // fewer frames than pages
        free: Vec::new(),
    };
    let window = (&raw mut WINDOW).addr();
    let provider = KernelPages::new(
        window,
        WINDOW_BYTES / PAGE,
        SimulatedTable::default(),
        frames,
    );
    let heap: Heap<_> = Heap::new(provider);

    let layout = core::alloc::Layout::from_size_align(200_000, 16).unwrap();
    let mut blocks = Vec::new();
    while let Some(block) = heap.allocate(layout) {
        blocks.push(block);
    }
    let frames_used = |heap: &Heap<KernelPages<SimulatedTable, Frames>>| {
        heap.provider().inner.lock().mapper.0.len()
    };
    println!(
        "{} LARGE blocks of 200 KB before the frames ran out; {} pages mapped",
        blocks.len(),
        frames_used(&heap)
    );
    assert!(blocks.len() >= 15, "about 4 MiB of frames");
    for block in blocks {
        // SAFETY: blocks of this heap, not used afterwards.
        unsafe { heap.deallocate(block).unwrap() };
    }
    heap.trim();
    println!(
        "after freeing and trim: {} pages mapped (the page map's nodes)",
        frames_used(&heap)
    );
    assert_eq!(heap.stats().mapped_bytes, 0);
}
