//! The LARGE cache: freed runs kept for reuse (see `large.rs` for the
//! policy), as lists threaded through the runs themselves.
//!
//! A cached run is unregistered and unused: its first bytes hold its links,
//! its length and its age, so the cache costs the heap a few words however
//! many runs it keeps (a static heap stays within a page). Each run is on
//! two doubly linked lists:
//! - its *size bin*'s (one per power of two of the length, most recently
//!   cached first): a request looks only at its own bin and the nearest
//!   non-empty bins around it (a bitmap finds them), never at every run.
//!   Each run looked at is a page of its own, a cache and TLB miss under
//!   the LARGE lock: walking all 64 cached runs per allocation was half of
//!   `hosted/bench/large_threads.c`'s time under the lock;
//! - the *age* list (most recent first): eviction takes its tail at once,
//!   and an ageing tick walks it.
//!
//! Everything here runs under the LARGE lock, except a [`Doomed`] list,
//! which is private to one thread.

use core::ptr::{self, NonNull};

use super::LARGE_CACHE_FIT_SLACK;
use crate::provider::MIN_PAGE_SIZE;

/// The first bytes of a cached run.
#[repr(C)]
struct CachedRun {
    /// Neighbours in the size bin (null: none).
    bin_prev: *mut CachedRun,
    bin_next: *mut CachedRun,
    /// Neighbours in the age list: `newer` towards the most recent.
    newer: *mut CachedRun,
    older: *mut CachedRun,
    len: usize,
    /// In the cache at the last ageing tick: unmapped at the next one
    /// unless reused.
    aged: bool,
}

// One cache line, inside the smallest page a run can have.
const _: () = assert!(core::mem::size_of::<CachedRun>() <= 64);
const _: () = assert!(core::mem::size_of::<CachedRun>() <= MIN_PAGE_SIZE);

/// Size bins: bin `i` holds runs of `2^(i + BIN_SHIFT)` bytes up to twice
/// that; the first and last bins also hold anything below and above.
const BINS: usize = 14;
const BIN_SHIFT: u32 = 12;
const _: () = assert!(1 << (BIN_SHIFT as usize + BINS - 1) >= super::LARGE_CACHE_RUN_MAX);

fn bin_of(len: usize) -> usize {
    let log = usize::BITS - 1 - (len | 1).leading_zeros();
    (log.saturating_sub(BIN_SHIFT) as usize).min(BINS - 1)
}

/// A run the cache chose for a request, still linked: [`RunCache::take`]
/// unlinks it.
pub(crate) struct Choice {
    run: *mut CachedRun,
}

/// Freed runs, by size bin and by age.
pub(crate) struct RunCache {
    bins: [*mut CachedRun; BINS],
    /// Bit `i` set: bin `i` is not empty.
    occupied: u16,
    newest: *mut CachedRun,
    oldest: *mut CachedRun,
    /// Runs in the cache.
    pub(crate) runs: usize,
    /// Their bytes.
    pub(crate) bytes: usize,
}

const _: () = assert!(BINS <= 16);

impl RunCache {
    pub(crate) const fn new() -> Self {
        RunCache {
            bins: [ptr::null_mut(); BINS],
            occupied: 0,
            newest: ptr::null_mut(),
            oldest: ptr::null_mut(),
            runs: 0,
            bytes: 0,
        }
    }

    /// Keeps `start`/`len`, as the most recent run of its bin and of all.
    ///
    /// # Safety
    ///
    /// The run is the heap's, mapped, unregistered and unused, `len` bytes
    /// long (at least a page), and not in any cache.
    pub(crate) unsafe fn push(&mut self, start: NonNull<u8>, len: usize) {
        let run = start.cast::<CachedRun>().as_ptr();
        let bin = bin_of(len);
        let next = self.bins[bin];
        // SAFETY: per the contract, the run's first bytes are ours to write
        // (page aligned, so aligned for the struct); the heads are cached
        // runs, under the lock.
        unsafe {
            run.write(CachedRun {
                bin_prev: ptr::null_mut(),
                bin_next: next,
                newer: ptr::null_mut(),
                older: self.newest,
                len,
                aged: false,
            });
            if let Some(next) = next.as_mut() {
                next.bin_prev = run;
            }
            match self.newest.as_mut() {
                Some(newest) => newest.newer = run,
                None => self.oldest = run,
            }
        }
        self.bins[bin] = run;
        self.occupied |= 1 << bin;
        self.newest = run;
        self.runs += 1;
        self.bytes += len;
    }

    /// The smallest run of at least `len` bytes in bin `bin` (`at_least`),
    /// or its largest run below `len` (otherwise); ties go to the most
    /// recent. A run of exactly `len` bytes ends the walk: none fits better,
    /// and it is the most recent of its length (a bin's runs of a random
    /// mix of sizes repeat their page counts, so the walk mostly stops
    /// early: `RunCache::choose` cost 367 instructions per LARGE allocation
    /// of the random actions at 30000 walking whole bins).
    fn best_in(&self, bin: usize, len: usize, at_least: bool) -> Option<(usize, *mut CachedRun)> {
        // `found` is the best length so far, with a sentinel that any run
        // beats (no `Option` to test in the loop; a run has at least a page).
        let (mut found, mut best) = (if at_least { usize::MAX } else { 0 }, ptr::null_mut());
        let mut run = self.bins[bin];
        while !run.is_null() {
            // SAFETY: the bin's runs are cached, under the LARGE lock.
            let (l, next) = unsafe { ((*run).len, (*run).bin_next) };
            if at_least {
                if l >= len && l < found {
                    (found, best) = (l, run);
                    if l == len {
                        break;
                    }
                }
            } else if l < len && l > found {
                (found, best) = (l, run);
            }
            run = next;
        }
        (!best.is_null()).then_some((found, best))
    }

    /// The run to serve a request for `len` bytes: the smallest run of at
    /// least `len` bytes if it is not wastefully larger, or else the
    /// largest smaller run (to be grown). A much larger run is left for a
    /// larger request. Looks at `len`'s bin and the nearest occupied bins
    /// above and below it only: bins are ordered by length.
    pub(crate) fn choose(&self, len: usize) -> Option<Choice> {
        let bin = bin_of(len);
        let above = u32::from(self.occupied) & !((2u32 << bin) - 1);
        let fits = self.best_in(bin, len, true).or_else(|| {
            // Every run of a higher bin is longer than `len`.
            let next = above.trailing_zeros() as usize;
            (next < BINS).then(|| self.best_in(next, 0, true)).flatten()
        });
        if let Some((l, run)) = fits
            && l <= len.saturating_mul(LARGE_CACHE_FIT_SLACK)
        {
            return Some(Choice { run });
        }
        let below = u32::from(self.occupied) & ((1u32 << bin) - 1);
        self.best_in(bin, len, false)
            .or_else(|| {
                // Every run of a lower bin is shorter than `len`.
                let prev = below.checked_ilog2()? as usize;
                self.best_in(prev, usize::MAX, false)
            })
            .map(|(_, run)| Choice { run })
    }

    /// Unlinks the chosen run: the caller's now.
    pub(crate) fn take(&mut self, choice: Choice) -> (NonNull<u8>, usize) {
        let run = choice.run;
        // SAFETY: `choose` (or a walk) found the run in the cache, unchanged
        // since (the LARGE lock is held throughout); its neighbours are
        // cached runs too.
        unsafe {
            let r = &*run;
            let bin = bin_of(r.len);
            match r.bin_prev.as_mut() {
                Some(prev) => prev.bin_next = r.bin_next,
                None => {
                    self.bins[bin] = r.bin_next;
                    if r.bin_next.is_null() {
                        self.occupied &= !(1 << bin);
                    }
                }
            }
            if let Some(next) = r.bin_next.as_mut() {
                next.bin_prev = r.bin_prev;
            }
            match r.newer.as_mut() {
                Some(newer) => newer.older = r.older,
                None => self.newest = r.older,
            }
            match r.older.as_mut() {
                Some(older) => older.newer = r.newer,
                None => self.oldest = r.newer,
            }
            self.runs -= 1;
            self.bytes -= r.len;
            (NonNull::new_unchecked(run.cast()), r.len)
        }
    }

    /// Unlinks the run that starts at `start` if one does and has at least
    /// `min_len` bytes (a live run's neighbour, for it to grow into). Walks
    /// the age list: at most [`LARGE_CACHE_SLOTS`](super::LARGE_CACHE_SLOTS)
    /// runs, a few instructions each, against the copy of a whole LARGE
    /// block that it saves.
    pub(crate) fn take_at(&mut self, start: usize, min_len: usize) -> Option<(NonNull<u8>, usize)> {
        let mut run = self.newest;
        while !run.is_null() {
            // SAFETY: cached runs, under the LARGE lock.
            let (len, older) = unsafe { ((*run).len, (*run).older) };
            if run.addr() == start {
                return (len >= min_len).then(|| self.take(Choice { run }));
            }
            run = older;
        }
        None
    }

    /// Unlinks the oldest run, if any.
    pub(crate) fn take_oldest(&mut self) -> Option<(NonNull<u8>, usize)> {
        let run = self.oldest;
        (!run.is_null()).then(|| self.take(Choice { run }))
    }

    /// An ageing tick: moves to `doomed` every run that was already cached
    /// at the previous tick; marks the others.
    pub(crate) fn age(&mut self, doomed: &mut Doomed) {
        let mut run = self.newest;
        while !run.is_null() {
            // SAFETY: cached runs, under the lock; a run is read before it
            // is moved.
            let (aged, older) = unsafe { ((*run).aged, (*run).older) };
            if aged {
                let (start, len) = self.take(Choice { run });
                // SAFETY: just unlinked: cached, so unregistered and unused.
                unsafe { doomed.push(start, len) };
            } else {
                // SAFETY: as above.
                unsafe { (*run).aged = true };
            }
            run = older;
        }
    }

    /// Unlinks every run, oldest first, handing each to `unmap`.
    pub(crate) fn drain(&mut self, mut unmap: impl FnMut(NonNull<u8>, usize)) {
        while let Some((start, len)) = self.take_oldest() {
            unmap(start, len);
        }
    }
}

/// The first bytes of a run on a [`Doomed`] list.
#[repr(C)]
struct DoomedRun {
    next: *mut DoomedRun,
    len: usize,
}

/// Runs taken out of the cache (evicted, aged, trimmed) or freed past the
/// threshold under the LARGE lock, to be unmapped by the same thread once
/// the lock is released: a list threaded through them, one word on the
/// stack.
pub(crate) struct Doomed {
    head: *mut DoomedRun,
}

impl Doomed {
    pub(crate) const fn new() -> Self {
        Doomed {
            head: ptr::null_mut(),
        }
    }

    /// Adds `start`/`len`.
    ///
    /// # Safety
    ///
    /// The run is the heap's, mapped, unregistered, in no cache and used by
    /// nobody: the caller's alone.
    pub(crate) unsafe fn push(&mut self, start: NonNull<u8>, len: usize) {
        let run = start.cast::<DoomedRun>().as_ptr();
        // SAFETY: per the contract; page aligned, so aligned for the struct.
        unsafe {
            run.write(DoomedRun {
                next: self.head,
                len,
            })
        };
        self.head = run;
    }

    /// Hands every run to `unmap`.
    pub(crate) fn drain(self, mut unmap: impl FnMut(NonNull<u8>, usize)) {
        let mut run = self.head;
        while let Some(r) = NonNull::new(run) {
            // SAFETY: pushed runs are mapped and ours; read before unmapping.
            let DoomedRun { next, len } = unsafe { r.as_ptr().read() };
            unmap(r.cast(), len);
            run = next;
        }
    }
}
