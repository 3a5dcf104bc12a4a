//! The depot's surplus: full magazines of a class in use that nobody took
//! during a whole sweep interval go back to the zones.
//!
//! # Why
//!
//! A depot exchanges whole magazines with the caches and holds up to
//! `DEPOT_MAX_BYTES` (4 MiB) of a small class, so that a batch of a
//! thousand 4 KiB blocks out and back costs no zone traffic. But a depot
//! only drains into its zones when it overflows or when its class goes
//! idle. A class that stays in use at a lower level than it once had (the
//! wave of a thousand buffers that grew through it, then moved on, while a
//! few keep coming) keeps its surplus in the depot for good, every page
//! resident, and its zones, each holding one of those blocks, can never be
//! released. realloc_strings' 1800 buffers reset at 4 KiB left 12.9 MB in
//! the depots of the 1-4 KiB classes at its peak (BENCHMARKS.md,
//! "realloc_strings' footprint").
//!
//! # Rule: the low-water mark
//!
//! Each class keeps `depot_low`, the fewest magazines its depot held since
//! the last trim (a cache taking a full magazine lowers it; `depot.rs`).
//! The front caches' decay visits one class's depot per scan, in turn
//! (`decay.rs`); for a class the visiting cache holds, [`Heap::trim_depot`]
//! drains that many magazines into the zones (the blocks below the mark
//! stayed in the depot for the whole interval: nobody needed them), then
//! resets the mark. A depot that empties in every interval (a batch loop
//! of any size) has a mark of 0 and gives nothing; a depot whose level
//! drifts gives back what it did not use, a whole interval after. Zones
//! the drain leaves empty go as after any free; when the whole depot was
//! surplus, the class is treated as idle (`release_idle_class`: its free
//! blocks give back their pages, its kept empty zones are decommitted).
//!
//! Only classes whose magazines hold at least `TRIM_MIN_MAGAZINE_BYTES`
//! (16 KiB: blocks of 576 B and up) are trimmed: a trim costs zone
//! operations per block and gives back bytes per magazine (`bins.rs`).
//!
//! Everything here runs under the class lock, taken with `try_lock` (a
//! busy lock means the class is in use: the next visit will do).

use core::ptr::NonNull;

use lock_api::RawMutex;

use super::bins::{BOUNDS, TRIM_MIN_MAGAZINE_BYTES};
use crate::heap::Heap;
use crate::provider::PageProvider;
use crate::size_class::SizeClass;

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// The sweep's visit of `class`'s depot for a cache that holds the
    /// class (see the module documentation).
    pub(crate) fn trim_depot(&self, class: SizeClass) {
        if usize::from(BOUNDS.magazine[class.index()]) * class.block_size()
            < TRIM_MIN_MAGAZINE_BYTES
        {
            return;
        }
        let Some(mut state) = self.classes[class.index()].0.try_lock() else {
            return;
        };
        let surplus = state.depot_low.min(state.depot_magazines);
        if surplus == state.depot_magazines && surplus > 0 {
            // Nobody took a magazine at all: the class is idle here.
            self.release_idle_class(&mut state, class);
        } else {
            for _ in 0..surplus {
                let Some(magazine) = NonNull::new(state.depot) else {
                    break;
                };
                // SAFETY: depot magazines are valid and owned by the depot.
                state.depot = unsafe { magazine.as_ref().next };
                state.depot_magazines -= 1;
                // SAFETY: taken off the depot; the class lock is held.
                unsafe { self.drain_into_zones(&mut state, class, magazine) };
                // SAFETY: empty now, unused.
                unsafe { self.magazines.lock().give(magazine) };
            }
        }
        state.depot_low = state.depot_magazines;
    }
}
