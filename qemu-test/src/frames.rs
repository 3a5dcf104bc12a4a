//! The physical frame allocator: which 4 KiB pieces of RAM are free.
//!
//! Built from the boot memory map: usable RAM inside the identity map, above
//! the first MiB, minus the kernel image (which holds the boot page tables
//! and the boot stack) and the boot data. Free frames are set bits in an
//! atomic bitmap, so the page-fault handler can take one without a lock.
//!
//! # Commitment: why a demand-paged heap can still say "out of memory"
//!
//! The heap's provider reserves virtual runs and maps nothing; frames are
//! taken later, in the fault handler, where failing is not an option (there
//! is no one to return `None` to). So the provider *commits* frames when it
//! hands out a run — every page of the run plus every page table the run
//! could need — and fails the `map` call if the commitment cannot be met,
//! like Linux with `vm.overcommit_memory = 2`. The fault handler then takes
//! frames that were promised, which always exist: a run's pages and tables
//! never outnumber its commitment, and commitments never exceed free frames.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, FrameDeallocator, PhysFrame, Size4KiB};

use crate::bitmap::AtomicBits;
use crate::layout::{IDENTITY_MAP_END, LOW_MEMORY_END, PAGE_SIZE};
use crate::memory_map::{BootInfo, RegionKind};

/// One bit per frame of the identity-mapped range.
const FRAME_WORDS: usize = (IDENTITY_MAP_END / PAGE_SIZE / 64) as usize;

/// The pool of free physical frames.
pub struct FramePool {
    /// Bit `i` set: frame `i` (physical address `i * 4096`) is free.
    free_map: [AtomicU64; FRAME_WORDS],
    /// Number of set bits in `free_map`.
    free: AtomicUsize,
    /// Free frames not promised to anyone (`<= free`).
    uncommitted: AtomicUsize,
    /// Word where the next search starts: frames are handed out lowest first.
    hint: AtomicUsize,
    /// Frames the pool started with.
    total: AtomicUsize,
}

/// The kernel's only frame allocator.
pub static FRAMES: FramePool = FramePool {
    free_map: [const { AtomicU64::new(0) }; FRAME_WORDS],
    free: AtomicUsize::new(0),
    uncommitted: AtomicUsize::new(0),
    hint: AtomicUsize::new(0),
    total: AtomicUsize::new(0),
};

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl FramePool {
    /// Marks the usable frames free. Called once, after the boot information
    /// was copied and before any frame is taken. Returns the frame count.
    pub fn init(&self, boot: &BootInfo, kernel_image: Range<u64>) -> usize {
        let mut added = 0;
        for region in boot.regions().filter(|r| r.kind == RegionKind::Usable) {
            let start = region
                .range
                .start
                .max(LOW_MEMORY_END)
                .next_multiple_of(PAGE_SIZE);
            let end = region.range.end.min(IDENTITY_MAP_END) / PAGE_SIZE * PAGE_SIZE;
            for frame in (start..end.max(start)).step_by(PAGE_SIZE as usize) {
                let frame_range = frame..frame + PAGE_SIZE;
                let in_use = overlaps(&frame_range, &kernel_image)
                    || boot
                        .boot_data
                        .iter()
                        .any(|data| overlaps(&frame_range, data));
                if !in_use && !self.free_map.set((frame / PAGE_SIZE) as usize) {
                    added += 1;
                }
            }
        }
        self.free.fetch_add(added, Ordering::AcqRel);
        self.uncommitted.fetch_add(added, Ordering::AcqRel);
        self.total.fetch_add(added, Ordering::AcqRel);
        added
    }

    /// Frames the pool started with.
    pub fn total_frames(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Frames currently free (committed or not).
    pub fn free_frames(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }

    /// Free frames nobody has been promised: what the next `map` can commit.
    pub fn uncommitted_frames(&self) -> usize {
        self.uncommitted.load(Ordering::Acquire)
    }

    /// Promises `n` frames to the caller, or returns false (and promises
    /// nothing) if fewer than `n` are free and unpromised.
    pub fn try_commit(&self, n: usize) -> bool {
        self.uncommitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    /// Withdraws a promise of `n` frames (the frames themselves, if any were
    /// taken, come back through [`give_back`](Self::give_back)).
    pub fn release(&self, n: usize) {
        self.uncommitted.fetch_add(n, Ordering::AcqRel);
    }

    /// Takes a frame the caller committed earlier. `None` only if
    /// commitments were broken (a bug): every commitment is backed by a free
    /// frame.
    pub fn take_committed(&self) -> Option<PhysFrame> {
        let hint = self.hint.load(Ordering::Acquire);
        let index = self.free_map.take_first_set(hint)?;
        self.hint.store(index / 64, Ordering::Release);
        self.free.fetch_sub(1, Ordering::AcqRel);
        Some(PhysFrame::containing_address(PhysAddr::new(
            index as u64 * PAGE_SIZE,
        )))
    }

    /// Returns a frame to the pool. Its commitment, if any, is released
    /// separately by whoever made it.
    ///
    /// # Panics
    ///
    /// If the frame is already free: a double free of a frame is a kernel bug.
    pub fn give_back(&self, frame: PhysFrame) {
        let index = (frame.start_address().as_u64() / PAGE_SIZE) as usize;
        assert!(
            !self.free_map.set(index),
            "frame {:#x} freed twice",
            frame.start_address()
        );
        self.free.fetch_add(1, Ordering::AcqRel);
        self.hint.fetch_min(index / 64, Ordering::AcqRel);
    }

    /// Whether frame `frame` is free (for tests).
    pub fn is_free(&self, frame: PhysFrame) -> bool {
        self.free_map
            .is_set((frame.start_address().as_u64() / PAGE_SIZE) as usize)
    }

    /// Recounts the free bits (for tests: must equal [`free_frames`](Self::free_frames)).
    pub fn count_free_bits(&self) -> usize {
        self.free_map.count_set()
    }
}

/// Frames for pages and page tables the caller has committed, in the form
/// the `x86_64` crate's mapper asks for.
pub struct CommittedFrames;

// SAFETY: every frame returned is free, unused and owned by the caller from
// then on (it was cleared from the free map atomically).
unsafe impl FrameAllocator<Size4KiB> for CommittedFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        FRAMES.take_committed()
    }
}

impl FrameDeallocator<Size4KiB> for CommittedFrames {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame) {
        FRAMES.give_back(frame);
    }
}
