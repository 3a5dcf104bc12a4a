//! The front caches' idle-class decay: which classes a cache gives back,
//! and when (see the module documentation of `cache` for the rules, and
//! INTERNALS.md for the measurements). Everything here runs on a cache's
//! slow paths, never on its fast paths.

use core::ptr;

use lock_api::RawMutex;

use super::bins;
use super::{FrontCache, IDLE_EVENTS};
use crate::heap::Heap;
use crate::provider::PageProvider;
use crate::size_class::{NUM_CLASSES, SizeClass};

/// What the idle-class decay knows, per class, in a cache.
pub(super) struct Decay {
    /// Slow-path events so far (wrapping): the cache's clock for idleness.
    clock: u16,
    /// Per class, the clock when it was last seen active.
    last_active: [u16; NUM_CLASSES],
    /// Per class, the blocks its magazines held at the last scan.
    seen_blocks: [u16; NUM_CLASSES],
    /// Per class, events without activity before it is idle, as a shift of
    /// `IDLE_EVENTS`: grows when a shed class comes back soon.
    patience: [u8; NUM_CLASSES],
    /// Per class, the clock when it was last shed.
    shed_at: [u16; NUM_CLASSES],
    /// Bit `i`: class `i` was shed and has not come back yet.
    shed: [u64; 2],
    /// Per class, the depot's stamp at this cache's last sweep visit.
    depot_seen: [u16; NUM_CLASSES],
    /// The class whose depot the next scan visits.
    sweep: u8,
    /// Bit `i`: class `i` may hold magazines (set where a slow path gets
    /// one from the heap), so the idle scan visits only those.
    held: [u64; 2],
}

impl Decay {
    pub(super) const fn new() -> Self {
        Decay {
            clock: 0,
            last_active: [0; NUM_CLASSES],
            seen_blocks: [0; NUM_CLASSES],
            patience: [0; NUM_CLASSES],
            shed_at: [0; NUM_CLASSES],
            shed: [0; 2],
            depot_seen: [0; NUM_CLASSES],
            sweep: 0,
            held: [0; 2],
        }
    }

    /// Class `i` may hold magazines from now on.
    pub(super) fn hold(&mut self, i: usize) {
        self.held[i / 64] |= 1 << (i % 64);
    }

    /// The classes that may hold magazines (a bit per class), forgotten:
    /// the cache is about to give them all back (flush).
    pub(super) fn take_held(&mut self) -> [u64; 2] {
        core::mem::take(&mut self.held)
    }

    /// Events without activity after which class `i` is idle.
    fn idle_after(&self, i: usize) -> u16 {
        IDLE_EVENTS << self.patience[i]
    }

    fn bit(set: &mut [u64; 2], i: usize) -> (&mut u64, u64) {
        (&mut set[i / 64], 1 << (i % 64))
    }

    /// Class `i` had a slow-path event after being shed: if that came
    /// sooner than twice the idleness that shed it, it was in use after
    /// all, so it must wait longer before the next shed.
    #[cold]
    #[inline(never)]
    fn came_back(&mut self, i: usize) {
        let (word, bit) = Self::bit(&mut self.shed, i);
        *word &= !bit;
        if self.clock.wrapping_sub(self.shed_at[i]) < 2 * self.idle_after(i) {
            self.patience[i] = (self.patience[i] + 1).min(bins::PATIENCE_MAX_SHIFT);
        }
    }
}

impl FrontCache {
    /// Counts a slow-path event of class `i`, and now and then gives back
    /// what the cache holds of classes it stopped using.
    #[inline(always)]
    pub(super) fn tick<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>, i: usize) {
        let d = &mut self.decay;
        d.clock = d.clock.wrapping_add(1);
        d.last_active[i] = d.clock;
        if d.shed[i / 64] & (1 << (i % 64)) != 0 {
            d.came_back(i);
        }
        if d.clock.is_multiple_of(bins::DECAY_PERIOD) {
            self.shed_idle_classes(heap);
        }
    }

    /// The decay's scan (see the module documentation): classes idle for
    /// their patience go back to their zones through [`Heap::shed_class`]
    /// (and their refills start small again); then one class's depot is
    /// visited.
    #[cold]
    #[inline(never)]
    fn shed_idle_classes<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>) {
        for word in 0..self.decay.held.len() {
            let mut held = self.decay.held[word];
            while held != 0 {
                let bit = held.trailing_zeros() as usize;
                held &= held - 1;
                let i = word * 64 + bit;
                let blocks = self.held_blocks(i) as u16;
                let d = &mut self.decay;
                if blocks != d.seen_blocks[i] {
                    // Used through the fast paths since the last scan.
                    d.seen_blocks[i] = blocks;
                    d.last_active[i] = d.clock;
                    continue;
                }
                if d.clock.wrapping_sub(d.last_active[i]) < d.idle_after(i) {
                    continue;
                }
                let magazines = [
                    self.unload(i),
                    core::mem::replace(&mut self.previous[i], ptr::null_mut()),
                ];
                let class = SizeClass::from_index(i).expect("a held class");
                heap.shed_class(class, magazines);
                self.refills[i] = 0;
                let d = &mut self.decay;
                d.seen_blocks[i] = 0;
                d.shed_at[i] = d.clock;
                d.shed[word] |= 1 << bit;
                d.held[word] &= !(1 << bit);
            }
        }
        self.sweep_one_depot(heap);
    }

    /// Visits the depot of the next class in turn, unless this cache holds
    /// that class (its own scan judges it).
    fn sweep_one_depot<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>) {
        let d = &mut self.decay;
        let i = usize::from(d.sweep);
        d.sweep = if i + 1 == NUM_CLASSES { 0 } else { d.sweep + 1 };
        if i + 1 == NUM_CLASSES {
            // A whole round: the LARGE cache's ageing tick too.
            heap.decay_large_cache();
        }
        let class = SizeClass::from_index(i).expect("a class index");
        if d.held[i / 64] & (1 << (i % 64)) != 0 {
            // In use here: only what its depot kept for nobody goes back.
            heap.trim_depot(class);
            return;
        }
        d.depot_seen[i] = heap.sweep_depot(class, d.depot_seen[i]);
    }
}
