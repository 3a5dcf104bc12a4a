//! Zone affinity: each front cache refills its small classes from a zone of
//! its own, so that two threads that never share a block never share a
//! cache line either.
//!
//! # Why
//!
//! A free reads the block's size slot (one or two bytes in the zone's
//! header area, 32 to 64 to a cache line) and claims the block's free mark
//! (an atomic exchange on its second word); a `malloc` writes both. Blocks
//! of up to 48 bytes share their cache lines with their neighbours. When the
//! zones' blocks go to whichever cache asks next, neighbouring blocks and
//! slots belong to different threads, and every free of one thread waits
//! for the line the other just wrote: `private_churn.c` (two threads, no
//! block shared) ran five times slower per step on two cores than on one
//! (BENCHMARKS.md, issue 21).
//!
//! # The rule
//!
//! - Each cache has an id (from a global counter, at its first refill) and,
//!   per *owned* class (blocks up to [`OWNED_MAX_BLOCK`] bytes), a *home*:
//!   one zone whose header names the cache as its owner (`zone/owner.rs`).
//! - A refill from the zones takes blocks from the home while it has room.
//!   When it has none, the home is released (owner 0) and the cache claims
//!   another: the first of the class's zones with room that no cache owns
//!   (among the first [`CLAIM_SCAN`] listed), or else a new zone. Blocks go
//!   back to their own zone when drained, so a home's free blocks come back
//!   to its owner.
//! - A cache that needs a full magazine takes, of the first
//!   [`DEPOT_SCAN`] magazines of the depot, one whose top block's zone it
//!   owns (its own blocks, deposited by itself or by a thread that freed
//!   them: a producer gets its consumer's magazines) or that no cache owns.
//!   If there is none, it refills from its home rather than take another
//!   cache's blocks, which would share that cache's lines from then on (a
//!   take of the depot's top, as before, made `private_churn` fast or slow
//!   from run to run: 0.07 or 0.30 s). Only when its home gives no block
//!   (no memory) does it take another cache's magazine. The others'
//!   magazines wait for their owners; the depot's bounds and its sweep
//!   limit what they keep, as before.
//! - A cache gives up its homes when it flushes (at thread exit), not when
//!   the decay sheds a class: the shed class may still have live blocks of
//!   this cache in the home, which another cache's blocks would then
//!   interleave with.
//!
//! Ownership is a preference, never a right: the heap's own paths, the
//! other classes and every free ignore it, and a wrong or stale owner costs
//! speed only. So nothing about validation, double frees or
//! `show_alloc_mem` changes.
//!
//! # Concurrency
//!
//! A zone's owner is written only under its class lock (claim, release); a
//! depot scan, also under the class lock, reads it. The home pointer is the
//! cache's own and is never followed unchecked: under the class lock it is
//! looked up in the page map (a zone of this class at that address, live
//! while the lock is held, since zones are released under it) and its
//! owner compared with the cache's id.
//!
//! # Footprint
//!
//! Each cache may keep one partly used zone per owned class, as mimalloc's
//! thread-local pages do; zones are carved lazily, so that costs the pages
//! a thread's blocks use, plus the header page. Only the TINY classes are
//! owned (where blocks share lines, and where nearly every small-block
//! program's traffic is), and only where the provider's span allows full
//! zones: a small heap (a kernel arena) keeps one shared zone per class.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};

use lock_api::RawMutex;

use super::Entry;
use super::magazine::Magazine;
use crate::heap::{ClassState, Heap};
use crate::page_map::Owner;
use crate::provider::PageProvider;
use crate::size_class::{CLASS_SIZES, SizeClass, TINY_MAX};
use crate::zone::{self, Popped, ZoneHeader};

/// Classes whose blocks are at most this many bytes have homes.
pub const OWNED_MAX_BLOCK: usize = TINY_MAX;
/// How many classes that is (they are the first ones).
pub(crate) const OWNED_CLASSES: usize = {
    let mut n = 0;
    while n < CLASS_SIZES.len() && CLASS_SIZES[n] as usize <= OWNED_MAX_BLOCK {
        n += 1;
    }
    n
};
/// Listed zones a claim looks at for one that no cache owns, before it
/// maps a new zone.
pub const CLAIM_SCAN: usize = 8;
/// Depot magazines a cache looks at for one of its own blocks.
pub const DEPOT_SCAN: usize = 8;

/// Ids handed to caches; 0 means none (so the counter starts at 1). Ids
/// are compared within one heap's zones only; a wrap after 2^32 caches
/// could make two caches prefer the same zone, which costs speed only.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A cache's id and homes (see the module documentation).
pub(crate) struct Affinity {
    id: u32,
    homes: [*mut ZoneHeader; OWNED_CLASSES],
}

impl Affinity {
    pub(crate) const fn new() -> Self {
        Affinity {
            id: 0,
            homes: [ptr::null_mut(); OWNED_CLASSES],
        }
    }

    /// The cache's id, taken at first use.
    fn id(&mut self) -> u32 {
        if self.id == 0 {
            self.id = NEXT_ID.fetch_add(1, Ordering::Relaxed).max(1);
        }
        self.id
    }

    /// Gives up every home (flush), taking each class lock in turn.
    pub(crate) fn release_all<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>) {
        for i in 0..OWNED_CLASSES {
            let home = core::mem::replace(&mut self.homes[i], ptr::null_mut());
            if home.is_null() {
                continue;
            }
            let class = SizeClass::from_index(i).expect("an owned class");
            let mut state = heap.class(class);
            if let Some(zone) = heap.owned_home(&mut state, class, home, self.id) {
                // SAFETY: a live zone of the class, its lock held.
                unsafe { zone::set_owner(zone, 0) };
            }
        }
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Whether refills of `class` go through homes: an owned class, in a
    /// heap that gives every class full zones of its own.
    #[inline]
    pub(crate) fn has_homes(&self, class: SizeClass) -> bool {
        class.index() < OWNED_CLASSES
            && class.prefers_full_zone(self.span_bytes())
            && !self.span_is_tight()
    }

    /// `home`, if it is a live zone of `class` that `id` owns. The caller
    /// holds the class lock (`_state`), so the zone cannot go meanwhile.
    fn owned_home(
        &self,
        _state: &mut ClassState,
        class: SizeClass,
        home: *mut ZoneHeader,
        id: u32,
    ) -> Option<NonNull<ZoneHeader>> {
        let home = NonNull::new(home)?;
        match self.page_map.lookup(home.as_ptr().addr()) {
            Some(Owner::Zone { base, class: c }) if c == class && base == home.cast() => {
                // SAFETY: a registered zone, live under the class lock.
                (unsafe { zone::owner(home) } == id).then_some(home)
            }
            _ => None,
        }
    }

    /// Takes a block of `class` for a cache's refill from its home, or, if
    /// the home has no room, from a new home it claims (see the module
    /// documentation). `None` when no zone can be had: the caller falls
    /// back to the shared path.
    fn take_at_home(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        affinity: &mut Affinity,
    ) -> Option<Popped> {
        let i = class.index();
        let id = affinity.id();
        let size = class.block_size();
        let home = self.owned_home(state, class, affinity.homes[i], id);
        if let Some(zone) = home {
            // SAFETY: a live zone of the class, lock held.
            if unsafe { zone::state(zone).listed } {
                // SAFETY: listed, so on the with-room list.
                return unsafe { Self::take_from(state, zone, size) };
            }
            // Full: give it up (its blocks come back to whoever claims it).
            // SAFETY: as above.
            unsafe { zone::set_owner(zone, 0) };
        }
        affinity.homes[i] = ptr::null_mut();
        let mut cursor = state.with_room;
        for _ in 0..CLAIM_SCAN {
            let Some(zone) = NonNull::new(cursor) else {
                break;
            };
            // SAFETY: listed zones are live; the class lock is held.
            unsafe {
                cursor = zone::state(zone).next;
                if zone::owner(zone) == 0 {
                    zone::set_owner(zone, id);
                    affinity.homes[i] = zone.as_ptr();
                    return Self::take_from(state, zone, size);
                }
            }
        }
        let popped = self.alloc_from_new_zone(state, class, size)?;
        // SAFETY: the fresh zone the block came from, lock held.
        unsafe { zone::set_owner(popped.zone, id) };
        affinity.homes[i] = popped.zone.as_ptr();
        Some(popped)
    }

    /// Lends up to `out.len()` blocks of `class` from the cache's home
    /// zones, under one acquisition of the class lock; `keep` as for
    /// `take_batch`. Returns how many.
    pub(crate) fn take_batch_at_home(
        &self,
        class: SizeClass,
        affinity: &mut Affinity,
        out: &mut [MaybeUninit<Entry>],
        mut keep: impl FnMut(&mut [MaybeUninit<Entry>], usize, Popped) -> bool,
    ) -> usize {
        let mut cut_at = None;
        let mut taken = 0;
        {
            let mut state = self.class(class);
            while taken < out.len() {
                let Some(popped) = self.take_at_home(&mut state, class, affinity) else {
                    break;
                };
                if popped.link_cut {
                    cut_at = Some(popped.ptr);
                }
                taken += 1;
                if !keep(out, taken - 1, popped) {
                    break;
                }
            }
        }
        if let Some(at) = cut_at {
            self.report_corruption(at);
        }
        taken
    }

    /// Unlinks and returns, of the first [`DEPOT_SCAN`] magazines of the
    /// depot, one whose top block lies in a zone `affinity` owns, or that
    /// no cache owns; `None` if there is none. The caller holds the class
    /// lock (`state`).
    pub(crate) fn take_own_magazine(
        &self,
        state: &mut ClassState,
        affinity: &Affinity,
    ) -> Option<NonNull<Magazine>> {
        if affinity.id == 0 {
            return None;
        }
        let mut link: *mut *mut Magazine = &mut state.depot;
        for _ in 0..DEPOT_SCAN {
            // SAFETY: `link` is the depot's head or a depot magazine's
            // `next`, both valid under the class lock.
            let magazine = NonNull::new(unsafe { *link })?;
            // SAFETY: depot magazines are valid, full, owned by the depot.
            let m = unsafe { &mut *magazine.as_ptr() };
            let top = m.blocks().last()?.block;
            if let Some(Owner::Zone { base, .. }) = self.page_map.lookup(top.as_ptr().addr()) {
                // SAFETY: the zone lent this block to the depot: live.
                let owner = unsafe { zone::owner(base.cast()) };
                if owner == affinity.id || owner == 0 {
                    // SAFETY: as above.
                    unsafe { *link = m.next };
                    state.depot_magazines -= 1;
                    return Some(magazine);
                }
            }
            link = &raw mut m.next;
        }
        None
    }
}
