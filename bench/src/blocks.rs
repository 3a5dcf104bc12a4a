//! The set of live blocks a workload holds, and the correctness guard.
//!
//! Every allocator is driven through `GlobalAlloc`, the interface a kernel
//! uses, by the same code. The guard costs a few loads and stores per
//! operation, identical for everyone, and catches an allocator that hands out
//! bogus memory instead of letting it look fast:
//! - every returned pointer is checked against the requested alignment;
//! - a tag byte is written at the first and the last byte of every block and
//!   checked again before the block is freed or reallocated (two live blocks
//!   that overlap at either end clobber each other's tag);
//! - after a reallocation the first byte (and the old last byte, when the
//!   block grew) must still hold the tag: contents survive.
//!
//! A failed check aborts the run with the allocator's name and the block.
//!
//! The calls into the allocator go through the three `#[inline(never)]`
//! functions below, so `valgrind --tool=callgrind --toggle-collect=` can count
//! exactly the allocator's instructions (see `callgrind.sh`).

use std::alloc::{GlobalAlloc, Layout};

use crate::spec::LIVE_CAPACITY;

/// One live block: where it is, the layout it was asked with, its tag.
#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    layout: Layout,
    tag: u8,
}

/// The live blocks of one workload on one allocator.
pub struct LiveBlocks<'a, A: GlobalAlloc> {
    allocator: &'a A,
    name: &'static str,
    blocks: Vec<Block>,
    next_tag: u8,
    /// Allocation requests the allocator refused.
    pub alloc_failures: usize,
    /// Reallocation requests the allocator refused (the block stays as it was).
    pub realloc_failures: usize,
}

impl<'a, A: GlobalAlloc> LiveBlocks<'a, A> {
    /// An empty set over `allocator`, which `name` identifies in error messages.
    pub fn new(allocator: &'a A, name: &'static str) -> Self {
        LiveBlocks {
            allocator,
            name,
            blocks: Vec::with_capacity(LIVE_CAPACITY),
            next_tag: 1,
            alloc_failures: 0,
            realloc_failures: 0,
        }
    }

    /// Number of live blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Sum of the requested sizes of the live blocks.
    pub fn requested_bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.layout.size()).sum()
    }

    /// Allocates a block; returns whether the allocator succeeded.
    pub fn alloc(&mut self, size: usize, align: usize) -> bool {
        let layout = Layout::from_size_align(size, align).expect("drawn layouts are valid");
        // SAFETY: sizes are drawn from ranges that start at 1 or more.
        let ptr = unsafe { call_alloc(self.allocator, layout) };
        if ptr.is_null() {
            self.alloc_failures += 1;
            return false;
        }
        self.check_alignment(ptr, layout, "alloc");
        let tag = self.take_tag();
        // SAFETY: the allocator just handed out `size >= 1` bytes at `ptr`.
        unsafe { write_tag(ptr, size, tag) };
        self.blocks.push(Block { ptr, layout, tag });
        true
    }

    /// Frees the block at `index` (it must be `< len()`), moving the last block
    /// into its place.
    pub fn free(&mut self, index: usize) {
        let block = self.blocks.swap_remove(index);
        self.check_tags(&block, "free");
        // SAFETY: `block` came from this allocator with this layout and is no
        // longer tracked, so it is freed exactly once.
        unsafe { call_dealloc(self.allocator, block.ptr, block.layout) };
    }

    /// Reallocates the block at `index` (it must be `< len()`) to `new_size`;
    /// returns whether the allocator succeeded.
    pub fn realloc(&mut self, index: usize, new_size: usize) -> bool {
        let block = self.blocks[index];
        self.check_tags(&block, "realloc");
        // SAFETY: `block` is live, from this allocator, with this layout;
        // `new_size >= 1` and far below `isize::MAX`.
        let ptr = unsafe { call_realloc(self.allocator, block.ptr, block.layout, new_size) };
        if ptr.is_null() {
            self.realloc_failures += 1;
            return false;
        }
        let layout = Layout::from_size_align(new_size, block.layout.align())
            .expect("a valid layout with a smaller or drawn size");
        self.check_alignment(ptr, layout, "realloc");
        let old_size = block.layout.size();
        // SAFETY: the new block has `new_size` bytes; the first and, when the
        // block grew, the old last byte are inside it.
        let kept = unsafe {
            ptr.read() == block.tag
                && (new_size < old_size || ptr.add(old_size - 1).read() == block.tag)
        };
        if !kept {
            self.fail("realloc lost the block's contents", &block, ptr);
        }
        // SAFETY: as above, `new_size >= 1` bytes at `ptr`.
        unsafe { write_tag(ptr, new_size, block.tag) };
        self.blocks[index] = Block {
            ptr,
            layout,
            tag: block.tag,
        };
        true
    }

    /// Frees every live block (checking each one).
    pub fn free_all(&mut self) {
        while let Some(last) = self.len().checked_sub(1) {
            self.free(last);
        }
    }

    fn take_tag(&mut self) -> u8 {
        let tag = self.next_tag;
        // 1..=255: a zeroed or foreign byte is never mistaken for a tag of 0.
        self.next_tag = if tag == u8::MAX { 1 } else { tag + 1 };
        tag
    }

    fn check_alignment(&self, ptr: *mut u8, layout: Layout, op: &str) {
        if !ptr.addr().is_multiple_of(layout.align()) {
            panic!(
                "{}: {op} returned {ptr:p}, misaligned for {layout:?}",
                self.name
            );
        }
    }

    fn check_tags(&self, block: &Block, op: &str) {
        // SAFETY: the block is live with `size >= 1` bytes; we wrote both bytes.
        let (first, last) = unsafe {
            (
                block.ptr.read(),
                block.ptr.add(block.layout.size() - 1).read(),
            )
        };
        if first != block.tag || last != block.tag {
            self.fail(
                &format!("block clobbered before {op} (first {first}, last {last})"),
                block,
                block.ptr,
            );
        }
    }

    fn fail(&self, what: &str, block: &Block, ptr: *mut u8) -> ! {
        panic!(
            "{}: {what}: block {:p} {:?} tag {} (now at {ptr:p})",
            self.name, block.ptr, block.layout, block.tag
        );
    }
}

/// # Safety
/// `size >= 1` bytes at `ptr` are writable.
unsafe fn write_tag(ptr: *mut u8, size: usize, tag: u8) {
    // SAFETY: both offsets are below `size`, guaranteed by the caller.
    unsafe {
        ptr.write(tag);
        ptr.add(size - 1).write(tag);
    }
}

/// The one place that asks an allocator for memory.
///
/// # Safety
/// `GlobalAlloc::alloc`'s contract: `layout.size() > 0`.
#[inline(never)]
pub(crate) unsafe fn call_alloc<A: GlobalAlloc>(allocator: &A, layout: Layout) -> *mut u8 {
    // SAFETY: forwarded to the caller.
    unsafe { allocator.alloc(layout) }
}

/// The one place that gives memory back.
///
/// # Safety
/// `GlobalAlloc::dealloc`'s contract: `ptr` is live, from `allocator`, with `layout`.
#[inline(never)]
pub(crate) unsafe fn call_dealloc<A: GlobalAlloc>(allocator: &A, ptr: *mut u8, layout: Layout) {
    // SAFETY: forwarded to the caller.
    unsafe { allocator.dealloc(ptr, layout) }
}

/// The one place that resizes a block.
///
/// # Safety
/// `GlobalAlloc::realloc`'s contract.
#[inline(never)]
pub(crate) unsafe fn call_realloc<A: GlobalAlloc>(
    allocator: &A,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
) -> *mut u8 {
    // SAFETY: forwarded to the caller.
    unsafe { allocator.realloc(ptr, layout, new_size) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::cell::Cell;

    #[test]
    fn a_correct_allocator_passes_every_check() {
        let mut blocks = LiveBlocks::new(&System, "system");
        for size in 1..300 {
            assert!(blocks.alloc(size, 8 << (size % 5)));
        }
        for index in 0..299 {
            assert!(blocks.realloc(index, 1 + index * 7 % 1000));
        }
        assert!(blocks.requested_bytes() > 0);
        blocks.free_all();
        assert_eq!(blocks.len(), 0);
        assert_eq!((blocks.alloc_failures, blocks.realloc_failures), (0, 0));
    }

    /// Hands out one and the same 4 KiB block to everybody: overlapping blocks.
    struct SameBlock(Cell<*mut u8>);
    // SAFETY: never used by more than one thread (a test's own value); it is
    // broken on purpose, which is what the guard must catch.
    unsafe impl Sync for SameBlock {}
    // SAFETY: see above: deliberately wrong, only for the test.
    unsafe impl GlobalAlloc for SameBlock {
        unsafe fn alloc(&self, _: Layout) -> *mut u8 {
            if self.0.get().is_null() {
                // SAFETY: a valid non-zero layout.
                self.0
                    .set(unsafe { System.alloc(Layout::from_size_align(4096, 4096).unwrap()) });
            }
            self.0.get()
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[test]
    #[should_panic(expected = "clobbered")]
    fn overlapping_blocks_are_caught() {
        let same = SameBlock(Cell::new(std::ptr::null_mut()));
        let mut blocks = LiveBlocks::new(&same, "same-block");
        blocks.alloc(100, 8);
        blocks.alloc(50, 8);
        blocks.free(0);
    }

    /// Returns blocks one byte past what the system gave: misaligned.
    struct OffByOne;
    // SAFETY: deliberately wrong, only for the test.
    unsafe impl GlobalAlloc for OffByOne {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let padded = Layout::from_size_align(layout.size() + 1, layout.align()).unwrap();
            // SAFETY: a valid non-zero layout; one byte in stays inside it.
            unsafe { System.alloc(padded).add(1) }
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_blocks_are_caught() {
        LiveBlocks::new(&OffByOne, "off-by-one").alloc(64, 16);
    }

    /// Reallocates without copying the contents.
    struct ForgetfulRealloc;
    // SAFETY: deliberately wrong, only for the test.
    unsafe impl GlobalAlloc for ForgetfulRealloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded; the old block is freed and not copied (the bug).
            unsafe {
                System.dealloc(ptr, layout);
                self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()))
            }
        }
    }

    #[test]
    #[should_panic(expected = "lost the block's contents")]
    fn a_realloc_that_loses_data_is_caught() {
        let mut blocks = LiveBlocks::new(&ForgetfulRealloc, "forgetful");
        blocks.alloc(64, 8);
        blocks.realloc(0, 4000);
    }

    /// Refuses everything.
    struct Refuses;
    // SAFETY: returning null is always allowed.
    unsafe impl GlobalAlloc for Refuses {
        unsafe fn alloc(&self, _: Layout) -> *mut u8 {
            std::ptr::null_mut()
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[test]
    fn refusals_are_counted_not_tracked() {
        let mut blocks = LiveBlocks::new(&Refuses, "refuses");
        assert!(!blocks.alloc(10, 8));
        assert_eq!((blocks.len(), blocks.alloc_failures), (0, 1));
    }
}
