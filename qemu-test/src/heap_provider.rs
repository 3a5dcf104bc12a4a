//! The page provider that makes ft_malloc a kernel heap.
//!
//! `map` hands out a *virtual* run from a demand-paged [`Window`] and commits
//! the frames it may need; it maps nothing. The heap's first touch of each
//! page faults, and the fault handler ([`demand_paging::resolve`]) backs it
//! with a zeroed frame. `unmap` gives the run back: its pages are unmapped,
//! their TLB entries flushed, their frames and emptied page tables returned,
//! and the commitment released.
//!
//! The provider's lock only orders its own updates of the window's bitmap
//! (two size classes of the heap, or two CPUs, may map at once). The fault
//! handler never takes it: it reads the bitmap atomically. No code holding
//! it touches heap memory, so a fault can never arrive while it is held;
//! it keeps interrupts off, so an allocating interrupt handler cannot
//! arrive either. Lock order: the heap's locks, this one, the page tables'.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use ft_malloc::{IrqSpinLock, PageProvider};
use lock_api::Mutex;
use x86_64::VirtAddr;
use x86_64::structures::paging::Page;

use crate::bitmap::AtomicBits;
use crate::demand_paging::{Window, commitment};
use crate::frames::FRAMES;
use crate::layout::PAGE_SIZE;
use crate::{paging, tsc};

/// A [`PageProvider`] over one demand-paged window.
pub struct DemandPagedProvider {
    window: &'static Window,
    /// Interrupts off while held: an interrupt handler that allocates may
    /// need this provider while the code it interrupted holds the lock.
    lock: Mutex<IrqSpinLock, ()>,
    /// The last runs handed out, for the trace.
    recent: RecentRuns,
    /// Calls to map, unmap and resize, and the TSC ticks spent in them (for
    /// the benchmark).
    calls: AtomicU64,
    ticks: AtomicU64,
}

/// Adds the ticks between its creation and its drop to a provider's count.
struct CallTimer<'a> {
    provider: &'a DemandPagedProvider,
    start: u64,
}

impl Drop for CallTimer<'_> {
    fn drop(&mut self) {
        self.provider.calls.fetch_add(1, Ordering::AcqRel);
        self.provider
            .ticks
            .fetch_add(tsc::ticks() - self.start, Ordering::AcqRel);
    }
}

/// Runs kept in [`RecentRuns`].
const RECENT_RUNS: usize = 4;

/// The last few runs `map` handed out (start, length), newest last.
struct RecentRuns {
    count: AtomicU64,
    runs: [[AtomicU64; 2]; RECENT_RUNS],
}

impl RecentRuns {
    fn push(&self, start: u64, len: u64) {
        let n = self.count.load(Ordering::Acquire);
        let slot = &self.runs[(n % RECENT_RUNS as u64) as usize];
        slot[0].store(start, Ordering::Release);
        slot[1].store(len, Ordering::Release);
        self.count.store(n + 1, Ordering::Release);
    }
}

impl DemandPagedProvider {
    /// A provider handing out runs of `window`.
    pub const fn new(window: &'static Window) -> Self {
        DemandPagedProvider {
            window,
            lock: Mutex::new(()),
            recent: RecentRuns {
                count: AtomicU64::new(0),
                runs: [const { [AtomicU64::new(0), AtomicU64::new(0)] }; RECENT_RUNS],
            },
            calls: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    /// Calls to map, unmap and resize so far, and the TSC ticks they took.
    pub fn call_ticks(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Acquire),
            self.ticks.load(Ordering::Acquire),
        )
    }

    fn time_call(&self) -> CallTimer<'_> {
        CallTimer {
            provider: self,
            start: tsc::ticks(),
        }
    }

    /// How many runs `map` has handed out.
    pub fn runs_mapped(&self) -> u64 {
        self.recent.count.load(Ordering::Acquire)
    }

    /// Run number `n` (counting from 0) as (start, length), if still recent.
    pub fn mapped_run(&self, n: u64) -> Option<(u64, u64)> {
        let count = self.runs_mapped();
        if n >= count || count - n > RECENT_RUNS as u64 {
            return None;
        }
        let slot = &self.recent.runs[(n % RECENT_RUNS as u64) as usize];
        Some((
            slot[0].load(Ordering::Acquire),
            slot[1].load(Ordering::Acquire),
        ))
    }

    /// The pages `first..first + pages` of the window as a page range.
    fn pages(&self, first: usize, pages: usize) -> x86_64::structures::paging::page::PageRange {
        let start = Page::containing_address(VirtAddr::new(self.window.page_address(first)));
        Page::range(start, start + pages as u64)
    }

    /// Drops the mappings of pages `first..first + pages` (a run's tail or a
    /// whole run): frames and empty page tables go back to the pool. Caller
    /// holds the lock.
    ///
    /// # Safety
    ///
    /// Nothing may access those pages' old contents afterwards.
    unsafe fn drop_pages(&self, first: usize, pages: usize) {
        // SAFETY: the pages are in our window; the caller gives up their
        // contents; this code touches no heap memory.
        let unmapped = unsafe { paging::unmap_range(self.pages(first, pages)) };
        self.window.note_unmapped(unmapped);
    }
}

// SAFETY: runs are page aligned (and aligned to `align` within the 1 GiB
// aligned window), never overlap (the reservation bitmap), are readable and
// writable through the page-fault handler, and read as zero when first
// touched (the handler zeroes each frame); `resize` keeps the first
// min(old, new) bytes (in place, or by moving the mappings with their frames).
// `decommit` drops the frames but keeps the pages reserved: the next touch
// faults a fresh zeroed frame in.
unsafe impl PageProvider for DemandPagedProvider {
    fn page_size(&self) -> usize {
        PAGE_SIZE as usize
    }

    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let pages = len / PAGE_SIZE as usize;
        let align_pages = (align / PAGE_SIZE as usize).max(1);
        let _timer = self.time_call();
        let _guard = self.lock.lock();
        let first = self.window.reserved.find_clear_run(pages, align_pages)?;
        let start = self.window.page_address(first);
        // Out of frames: the heap gets `None` and reports the failure.
        if !FRAMES.try_commit(commitment(start, pages)) {
            return None;
        }
        self.window.reserved.set_range(first, pages);
        self.recent.push(start, len as u64);
        NonNull::new(start as *mut u8)
    }

    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        let start = run.as_ptr() as u64;
        let pages = len / PAGE_SIZE as usize;
        let first = self.window.page_index(start);
        let _timer = self.time_call();
        let _guard = self.lock.lock();
        // From here on, touching the run is a fatal fault.
        self.window.reserved.clear_range(first, pages);
        // SAFETY: the heap gives the run up (trait contract).
        unsafe { self.drop_pages(first, pages) };
        FRAMES.release(commitment(start, pages));
    }

    fn zeroed_on_map(&self) -> bool {
        true
    }

    /// The core says these pages hold nothing (an emptied zone it keeps, or
    /// the pages of free blocks in a zone: `purge.rs`):
    /// their frames go back to the pool now. The run stays reserved and its
    /// frames stay promised, so touching the pages again simply faults fresh
    /// zeroed frames in, as on first touch.
    unsafe fn decommit(&self, start: NonNull<u8>, len: usize) {
        let first = self.window.page_index(start.as_ptr() as u64);
        let pages = len / PAGE_SIZE as usize;
        let _timer = self.time_call();
        let _guard = self.lock.lock();
        // SAFETY: the pages are inside a live run of ours and the heap gives
        // up their contents (trait contract).
        unsafe { self.drop_pages(first, pages) };
    }

    /// Shrinks in place by dropping the tail; grows in place when the pages
    /// after the run are free; otherwise, if allowed, moves the run by moving
    /// its page-table entries (the frames stay, nothing is copied). Each
    /// path commits frames first, so it fails cleanly when memory is short.
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let start = run.as_ptr() as u64;
        let (old_pages, new_pages) = (old_len / PAGE_SIZE as usize, new_len / PAGE_SIZE as usize);
        let first = self.window.page_index(start);
        let _timer = self.time_call();
        let _guard = self.lock.lock();
        let bitmap = self.window.reserved;

        if new_pages <= old_pages {
            bitmap.clear_range(first + new_pages, old_pages - new_pages);
            // SAFETY: the tail is no longer part of the run (trait contract).
            unsafe { self.drop_pages(first + new_pages, old_pages - new_pages) };
            FRAMES.release(commitment(start, old_pages) - commitment(start, new_pages));
            return Some(run);
        }

        let end = first + new_pages;
        if end <= bitmap.bit_len() && bitmap.first_set_in(first + old_pages, end).is_none() {
            if !FRAMES.try_commit(commitment(start, new_pages) - commitment(start, old_pages)) {
                return None;
            }
            bitmap.set_range(first + old_pages, new_pages - old_pages);
            return Some(run);
        }

        if !may_move {
            return None;
        }
        let new_first = bitmap.find_clear_run(new_pages, 1)?;
        let new_start = self.window.page_address(new_first);
        if !FRAMES.try_commit(commitment(new_start, new_pages)) {
            return None;
        }
        bitmap.set_range(new_first, new_pages);
        let (from, to) = (self.pages(first, old_pages), self.pages(new_first, 1));
        // SAFETY: the new run was reserved just now and is unmapped; the old
        // run's frames move with their contents, and the heap no longer
        // uses its addresses; the new run's commitment covers the tables.
        // No heap memory is touched.
        if let Err(error) = unsafe { paging::move_range(from, to.start) } {
            // Cannot happen with the commitment made above.
            panic!("moving the mappings of {from:?} failed: {error:?}");
        }
        bitmap.clear_range(first, old_pages);
        FRAMES.release(commitment(start, old_pages));
        NonNull::new(new_start as *mut u8)
    }
}
