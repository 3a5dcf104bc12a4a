//! The LARGE cache: freed runs kept for reuse (see `large.rs` for the
//! policy), as a list threaded through the runs themselves.
//!
//! A cached run is unregistered and unused: its first bytes (where the
//! LARGE header was, [`LARGE_HEADER_SIZE`](super::LARGE_HEADER_SIZE) of
//! them) hold its list link, its length and its age, so the cache costs the
//! heap a few words however many runs it keeps (a static heap stays within
//! a page). Everything here runs under the LARGE lock.

use core::ptr::{self, NonNull};

use super::{LARGE_CACHE_FIT_SLACK, LARGE_HEADER_SIZE};

/// The first bytes of a cached run.
#[repr(C)]
struct CachedRun {
    next: *mut CachedRun,
    len: usize,
    /// In the cache at the last ageing tick: unmapped at the next one
    /// unless reused.
    aged: bool,
}

const _: () = assert!(core::mem::size_of::<CachedRun>() <= LARGE_HEADER_SIZE);

/// A run the cache chose for a request, still linked: [`RunCache::take`]
/// unlinks it.
pub(crate) struct Choice {
    /// The run before it in the list (null: it is the head).
    prev: *mut CachedRun,
    run: *mut CachedRun,
}

/// Freed runs, most recently cached first.
pub(crate) struct RunCache {
    head: *mut CachedRun,
    /// Runs in the list.
    pub(crate) runs: usize,
    /// Their bytes.
    pub(crate) bytes: usize,
}

impl RunCache {
    pub(crate) const fn new() -> Self {
        RunCache {
            head: ptr::null_mut(),
            runs: 0,
            bytes: 0,
        }
    }

    /// Keeps `start`/`len`, most recent first.
    ///
    /// # Safety
    ///
    /// The run is the heap's, mapped, unregistered and unused, `len` bytes
    /// long (at least a page), and not in the cache.
    pub(crate) unsafe fn push(&mut self, start: NonNull<u8>, len: usize) {
        let run = start.cast::<CachedRun>().as_ptr();
        // SAFETY: per the contract, the run's first bytes are ours to write
        // (page aligned, so aligned for the struct).
        unsafe {
            run.write(CachedRun {
                next: self.head,
                len,
                aged: false,
            })
        };
        self.head = run;
        self.runs += 1;
        self.bytes += len;
    }

    /// The run to serve a request for `len` bytes: the smallest run of at
    /// least `len` bytes if it is not wastefully larger, or else the
    /// largest smaller run (to be grown). A much larger run is left for a
    /// larger request.
    pub(crate) fn choose(&self, len: usize) -> Option<Choice> {
        let mut fits: Option<(usize, Choice)> = None;
        let mut smaller: Option<(usize, Choice)> = None;
        let (mut prev, mut run) = (ptr::null_mut(), self.head);
        while !run.is_null() {
            // SAFETY: the list's runs are cached (valid headers), under the
            // LARGE lock.
            let (l, next) = unsafe { ((*run).len, (*run).next) };
            let here = Choice { prev, run };
            if l >= len {
                if fits.as_ref().is_none_or(|(best, _)| l < *best) {
                    fits = Some((l, here));
                }
            } else if smaller.as_ref().is_none_or(|(best, _)| l > *best) {
                smaller = Some((l, here));
            }
            (prev, run) = (run, next);
        }
        match fits {
            Some((l, choice)) if l <= len.saturating_mul(LARGE_CACHE_FIT_SLACK) => Some(choice),
            _ => smaller.map(|(_, choice)| choice),
        }
    }

    /// Unlinks the chosen run: the caller's now.
    pub(crate) fn take(&mut self, choice: Choice) -> (NonNull<u8>, usize) {
        // SAFETY: `choose` (or a walk) found the run and its predecessor in
        // the list, unchanged since (the LARGE lock is held throughout).
        unsafe {
            let (next, len) = ((*choice.run).next, (*choice.run).len);
            if choice.prev.is_null() {
                self.head = next;
            } else {
                (*choice.prev).next = next;
            }
            self.runs -= 1;
            self.bytes -= len;
            (NonNull::new_unchecked(choice.run.cast()), len)
        }
    }

    /// The oldest run (the list's tail), if any, still linked.
    fn oldest(&self) -> Option<Choice> {
        let (mut prev, mut run) = (ptr::null_mut(), self.head);
        if run.is_null() {
            return None;
        }
        // SAFETY: as in `choose`.
        while let Some(next) = NonNull::new(unsafe { (*run).next }) {
            (prev, run) = (run, next.as_ptr());
        }
        Some(Choice { prev, run })
    }

    /// Unlinks the oldest run, if any.
    pub(crate) fn take_oldest(&mut self) -> Option<(NonNull<u8>, usize)> {
        let oldest = self.oldest()?;
        Some(self.take(oldest))
    }

    /// An ageing tick: moves to `doomed` every run that was already cached
    /// at the previous tick; marks the others.
    pub(crate) fn age(&mut self, doomed: &mut RunCache) {
        let (mut prev, mut run) = (ptr::null_mut(), self.head);
        while !run.is_null() {
            // SAFETY: as in `choose`; a run is read before it is moved.
            let (aged, next) = unsafe { ((*run).aged, (*run).next) };
            if aged {
                let (start, len) = self.take(Choice { prev, run });
                // SAFETY: just unlinked: cached, so unregistered and unused.
                unsafe { doomed.push(start, len) };
            } else {
                // SAFETY: as above.
                unsafe { (*run).aged = true };
                prev = run;
            }
            run = next;
        }
    }

    /// Unlinks every run, handing each to `unmap`.
    pub(crate) fn drain(&mut self, mut unmap: impl FnMut(NonNull<u8>, usize)) {
        while !self.head.is_null() {
            let (start, len) = self.take(Choice {
                prev: ptr::null_mut(),
                run: self.head,
            });
            unmap(start, len);
        }
    }
}
