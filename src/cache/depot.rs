//! The heap's side of the front caches: the lock-free check of a block a
//! cache is about to keep, and each class's *depot* of full magazines,
//! under the class lock.
//!
//! A cache whose loaded magazine runs empty swaps it for a full one from
//! the depot; one whose magazines are both full hands one to the depot for
//! an empty one. Both are O(1): the blocks are not touched. Only when the
//! depot has no full magazine are blocks taken from the zones (a refill,
//! block by block), and only when it holds all it may are blocks given back
//! to them (a drain).

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use lock_api::RawMutex;

use super::Entry;
use super::affinity::Affinity;
use super::bins::BOUNDS;
use super::magazine::Magazine;
use crate::canary;
use crate::free_mark;
use crate::heap::{ClassState, Heap, own};
use crate::page_map::{MappedFlat, Owner, PageMap};
use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::size_class::SizeClass;
use crate::zone::{self, Popped, ZoneHeader};

/// The size-slot width of `class`: `WIDTH` if the caller tested it (1 or
/// 2), else the class's (`WIDTH` 0). See `Heap::check_in_zone`.
#[inline(always)]
pub(crate) const fn slot_width<const WIDTH: usize>(class: SizeClass) -> usize {
    debug_assert!(WIDTH == 0 || WIDTH == class.size_width());
    if WIDTH == 0 {
        class.size_width()
    } else {
        WIDTH
    }
}

/// What the lock-free check says about a pointer given to a cache.
pub(crate) enum Checked {
    /// A handed-out block of this class: keep it once claimed with the
    /// mark given (`free_mark::value` of the block; `free_mark::claim`).
    /// Last, its recorded size (read by the check: a realloc needs it, and
    /// reading it again costs a second test of the slot's width).
    Keep(SizeClass, Entry, usize, usize),
    /// A block that is free already.
    DoubleFree,
    /// A handed-out block whose slack canary was overwritten.
    Overflow,
    /// Not something the check can vouch for (LARGE, not a block boundary,
    /// beyond the carved blocks as far as the check can see, a bad header):
    /// the locked path decides, and reports.
    Locked,
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Checks, without a lock, that `ptr` is a TINY or SMALL block this heap
    /// handed out (see the front cache's module documentation).
    ///
    /// `MARK_FIRST`: refuse a block that carries the free mark before
    /// anything else. A free may skip it (`false`): the claim that follows
    /// the check refuses a marked block anyway (`free_mark.rs`), and a
    /// canary found broken is checked against the mark. A check that
    /// claims nothing (`small_usable_size`) must not.
    #[inline(always)]
    pub(crate) fn check_for_cache<const MARK_FIRST: bool>(&self, ptr: NonNull<u8>) -> Checked {
        self.check_raw_for_cache::<MARK_FIRST>(ptr.as_ptr())
    }

    /// [`check_for_cache`](Self::check_for_cache) of a pointer that may be
    /// null: null is no zone's, so the page map's lookup declines it
    /// (`Locked`) with no test of its own on the way of the others.
    #[inline(always)]
    pub(crate) fn check_raw_for_cache<const MARK_FIRST: bool>(&self, ptr: *mut u8) -> Checked {
        let slot = match self.page_map.mapped_slot(ptr.addr()) {
            Some(slot) => slot,
            None => match self.page_map.other_slot(ptr.addr()) {
                Some(slot) => slot,
                None => return Checked::Locked,
            },
        };
        self.check_in_slot::<MARK_FIRST>(ptr, slot)
    }

    /// The `free` path's [`check_raw_for_cache`](Self::check_raw_for_cache)
    /// when the provider's flat array holds `ptr` (`None` otherwise: the
    /// caller goes on out of line, so that this path joins nothing).
    #[inline(always)]
    pub(crate) fn check_mapped_for_cache(&self, ptr: *mut u8) -> Option<Checked> {
        let slot = self.page_map.mapped_slot(ptr.addr())?;
        Some(self.check_in_slot::<false>(ptr, slot))
    }

    /// The header of this heap's flat page map in a provider's run (a
    /// heap whose provider's span is larger than the page map's inline
    /// array, once it has registered a run), or
    /// [`NO_MAPPED_FLAT`](crate::page_map::NO_MAPPED_FLAT): it never changes
    /// once published, and lives as long as the heap. A caller may keep it
    /// (in a gate of its own, say) and hand it to
    /// [`FrontCache::try_deallocate_flat_in`](crate::FrontCache::try_deallocate_flat_in).
    #[inline]
    pub fn mapped_flat(&self) -> *const MappedFlat {
        self.page_map.mapped()
    }

    /// The rest of the check once the page map's `slot` for `ptr` is read.
    #[inline(always)]
    fn check_in_slot<const MARK_FIRST: bool>(&self, ptr: *mut u8, slot: *mut u8) -> Checked {
        let Some((base, class)) = PageMap::zone_of(slot) else {
            return Checked::Locked;
        };
        self.check_in_zone::<MARK_FIRST, 0>(ptr, base, class, free_mark::key())
    }

    /// The rest of the check once the page map named the zone at `base`,
    /// of `class`. `WIDTH`: the class's size-slot width, if the caller
    /// has tested it (1 or 2; 0 reads it from the class): a free that
    /// tests it once, before the check, has all that follows (the size
    /// slot's read, the "cached" store after the claim) in one copy per
    /// width, with no second test (`FrontCache::try_deallocate_flat_in`).
    /// `key` is the free mark's key (`free_mark::key`, or the caller's
    /// copy of it).
    #[inline(always)]
    pub(crate) fn check_in_zone<const MARK_FIRST: bool, const WIDTH: usize>(
        &self,
        ptr: *mut u8,
        base: NonNull<u8>,
        class: SizeClass,
        key: usize,
    ) -> Checked {
        let addr = ptr.addr();
        // SAFETY: a registered zone's granule: no zone lies at address 0.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // The block through the heap's own pointer to its zone (`heap::own`).
        let ptr = own(base, ptr);
        let zone = base.cast::<ZoneHeader>();
        // SAFETY: the zone is registered; if `ptr` is one of its handed-out
        // blocks the zone cannot be released meanwhile (the module docs say
        // what an invalid pointer risks here). The guard first: the header
        // it vouches for holds the zone's layout and carved count.
        if !unsafe { zone::guard_ok(zone) } {
            return Checked::Locked;
        }
        // SAFETY: as above; the guard vouched for the header.
        let check = unsafe { zone::boundary(zone) };
        // A carved block starts at `addr` exactly when this index is below
        // the carved count (a pointer before block 0 wraps to a huge offset).
        let index = check.exact_index(addr);
        // SAFETY: as above.
        if index >= unsafe { zone::carved_hint(zone) } as u64 {
            return Checked::Locked;
        }
        let index = index as usize;
        let mark = free_mark::value_with(ptr, key);
        // SAFETY: a carved block of a mapped zone.
        if MARK_FIRST && unsafe { free_mark::is_set_to(ptr, mark) } {
            return Checked::DoubleFree;
        }
        // The width comes from the class (the page map's), which is the
        // zone's: the page map registers a zone under its own class.
        let width = slot_width::<WIDTH>(class);
        let size_slot = check.size_slot(zone, width, index);
        // SAFETY: the slot of a handed-out block of this zone (its holder
        // is freeing it).
        let requested = unsafe { zone::load_own_size(size_slot, width) };
        // One compare with the block size, two branches.
        if check.above_block(requested) {
            // A span's head or follower (`span.rs`): the locked path frees
            // all its blocks, or refuses.
            return Checked::Locked;
        }
        // A block with slack has a canary just past the request.
        // SAFETY: as above, and `requested` is below the block size.
        if check.has_slack(requested) && !unsafe { canary::intact_past(ptr, requested, mark) } {
            // A racing free's mark may be what broke it (`free_mark.rs`).
            // SAFETY: as above.
            if unsafe { free_mark::is_set_to(ptr, mark) } {
                return Checked::DoubleFree;
            }
            return Checked::Overflow;
        }
        Checked::Keep(
            class,
            Entry {
                block: ptr,
                size_slot,
            },
            mark,
            requested,
        )
    }

    /// What [`Heap::usable_size`] answers for `ptr` (the requested size),
    /// when the front cache's lock-free check vouches for it as a live TINY
    /// or SMALL block with its slack canary intact; `None` for anything
    /// else (LARGE, freed, overflowed, invalid: `usable_size` decides). For
    /// callers that validate a block before freeing it (the hosted
    /// hardened mode), without the class lock `usable_size` takes.
    #[inline]
    pub fn small_usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        match self.check_for_cache::<true>(ptr) {
            // SAFETY: the slot of a handed-out block the caller holds.
            Checked::Keep(class, entry, _, _) => {
                Some(unsafe { zone::load_own_size(entry.size_slot, class.geometry().size_width) })
            }
            Checked::Locked | Checked::DoubleFree | Checked::Overflow => None,
        }
    }

    /// The block size of the TINY or SMALL zone the page map says holds
    /// `ptr`, `None` if none does (a LARGE block). The block itself is not
    /// checked: for a block the heap has just handed out (whose class may
    /// be bigger than the request's when zones are scarce, or smaller for a
    /// span of blocks, `span.rs`), or to tell a small block from a LARGE
    /// one cheaply.
    #[inline]
    pub fn zone_block_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        let (_, class) = self.page_map.lookup_zone(ptr.as_ptr().addr())?;
        Some(class.block_size())
    }

    /// An empty magazine for a cache, or `None` if there is no memory.
    pub(crate) fn empty_magazine(&self) -> Option<NonNull<Magazine>> {
        self.magazines
            .lock()
            .take(&self.provider, &self.counters.metadata_bytes)
    }

    /// An empty magazine a cache no longer needs, back to the pool.
    pub(crate) fn return_empty(&self, magazine: NonNull<Magazine>) {
        // SAFETY: the cache hands over an empty magazine it no longer
        // refers to.
        unsafe { self.magazines.lock().give(magazine) };
    }

    /// A full magazine of `class` for a cache whose magazines are empty:
    /// from the depot (one acquisition of the class lock; `spare` is then
    /// returned unused, for the cache to keep), or else `spare` (or a new
    /// magazine) filled from the zones with up to `want` blocks. The full
    /// magazine is `None` if not one block can be had (`spare` is then the
    /// heap's again). For a class with homes, the cache's own blocks come
    /// first, in the depot and in the zones (`affinity.rs`).
    pub(crate) fn full_magazine(
        &self,
        class: SizeClass,
        spare: Option<NonNull<Magazine>>,
        want: usize,
        affinity: &mut Affinity,
    ) -> (Option<NonNull<Magazine>>, Option<NonNull<Magazine>>) {
        if affinity.has_homes(self, class) {
            return self.full_magazine_at_home(class, spare, want, affinity);
        }
        let mut state = self.class(class);
        if let Some(full) = Self::pop_depot(&mut state) {
            return (Some(full), spare);
        }
        drop(state);
        let Some(magazine) = spare.or_else(|| self.empty_magazine()) else {
            return (None, None);
        };
        // SAFETY: an empty magazine, ours.
        let mag = unsafe { &mut *magazine.as_ptr() };
        let want = want.clamp(1, BOUNDS.magazine[class.index()] as usize);
        mag.len = self.lend_blocks(class, &mut mag.entries[..want]);
        if mag.len == 0 {
            self.return_empty(magazine);
            return (None, None);
        }
        (Some(magazine), None)
    }

    /// The depot's top magazine, taken off it. The caller holds the class
    /// lock (`state`).
    pub(super) fn pop_depot(state: &mut ClassState) -> Option<NonNull<Magazine>> {
        let full = NonNull::new(state.depot)?;
        // SAFETY: depot magazines are valid and owned by the depot.
        state.depot = unsafe { full.as_ref().next };
        state.depot_magazines -= 1;
        // The depot's low-water mark since the last trim (`depot_trim.rs`).
        state.depot_low = state.depot_low.min(state.depot_magazines);
        Some(full)
    }

    /// Takes a cache's full magazine of `class` into the depot (one
    /// acquisition of the class lock), or, if the depot holds all it may,
    /// drains it into the zones and returns it, empty, to the cache.
    pub(crate) fn deposit_full(
        &self,
        class: SizeClass,
        full: NonNull<Magazine>,
    ) -> Option<NonNull<Magazine>> {
        let mut state = self.class(class);
        if u16::from(state.depot_magazines) < BOUNDS.depot[class.index()] {
            // SAFETY: a full magazine the cache hands over.
            unsafe { (*full.as_ptr()).next = state.depot };
            state.depot = full.as_ptr();
            state.depot_magazines += 1;
            return None;
        }
        // SAFETY: a magazine the cache hands over; lock held.
        unsafe { self.drain_into_zones(&mut state, class, full) };
        Some(full)
    }

    /// A magazine of `class`'s depot drained into the zones, for a cache
    /// that needs an empty one when none can be mapped; `None` if the depot
    /// has none.
    pub(crate) fn drained_from_depot(&self, class: SizeClass) -> Option<NonNull<Magazine>> {
        let mut state = self.class(class);
        let magazine = NonNull::new(state.depot)?;
        // SAFETY: depot magazines are valid and owned by the depot.
        state.depot = unsafe { magazine.as_ref().next };
        state.depot_magazines -= 1;
        // SAFETY: taken off the depot; lock held.
        unsafe { self.drain_into_zones(&mut state, class, magazine) };
        Some(magazine)
    }

    /// Gives back a magazine a cache no longer uses (at flush): into the
    /// depot if it is at least half full and there is room (one with fewer
    /// would take a depot slot for a few blocks), else its blocks to the
    /// zones; the magazine itself to the pool. A depot's magazines are then
    /// not all full, which costs the next cache that loads one an early
    /// exchange, no more; draining a magazine a short-lived thread took
    /// from the depot and barely used sent its blocks through the zones
    /// twice, under the lock, at every thread's exit.
    pub(crate) fn retire_magazine(&self, class: SizeClass, magazine: NonNull<Magazine>) {
        // SAFETY: the cache hands the magazine over.
        let len = unsafe { magazine.as_ref().len };
        if len > 0 {
            let mut state = self.class(class);
            let half_full = 2 * len >= BOUNDS.magazine[class.index()] as usize;
            if half_full && u16::from(state.depot_magazines) < BOUNDS.depot[class.index()] {
                // SAFETY: as above.
                unsafe { (*magazine.as_ptr()).next = state.depot };
                state.depot = magazine.as_ptr();
                state.depot_magazines += 1;
                return;
            }
            // SAFETY: as above; lock held.
            unsafe { self.drain_into_zones(&mut state, class, magazine) };
        }
        // SAFETY: empty and unused.
        unsafe { self.magazines.lock().give(magazine) };
    }

    /// Takes back the magazines of a class a cache stopped using
    /// (`FrontCache`'s idle-class decay): their blocks go to the zones, not
    /// the depot, since nobody is asking for the class; the class's depot is
    /// drained too, for the same reason (if another owner still uses it, it
    /// refills from the zones once). Zones this empties are kept or given
    /// back as for any free, which is the point: pinned in a cache, their
    /// pages could never be released or decommitted.
    pub(crate) fn shed_class(&self, class: SizeClass, magazines: [*mut Magazine; 2]) {
        let mut state = self.class(class);
        for magazine in magazines.into_iter().filter_map(NonNull::new) {
            // SAFETY: the cache handed the magazine over; lock held.
            unsafe { self.drain_into_zones(&mut state, class, magazine) };
        }
        self.release_idle_class(&mut state, class);
        drop(state);
        for magazine in magazines.into_iter().filter_map(NonNull::new) {
            // SAFETY: empty now, and the cache no longer refers to it.
            unsafe { self.magazines.lock().give(magazine) };
        }
    }

    /// What a depot looks like, for [`sweep_depot`](Self::sweep_depot):
    /// its top magazine and count folded into 16 bits, never 0 (the stamp
    /// of "not seen"). Two looks that agree mean, but for a rare collision
    /// (which only drains early), that no cache exchanged a magazine with
    /// the depot in between.
    fn depot_stamp(state: &ClassState) -> u16 {
        let top = (state.depot.addr() / core::mem::size_of::<Magazine>()) as u64;
        ((top ^ (top >> 16) ^ (top >> 32)) as u16 ^ u16::from(state.depot_magazines).rotate_left(8))
            | 1
    }

    /// One step of a cache's depot sweep (`FrontCache`'s decay): if the
    /// depot of `class` looks as it did at this cache's previous visit
    /// (`seen`, a whole sweep ago), nobody has used it since: drain it into
    /// the zones and give back the pages of the zones that leaves empty, as
    /// for an idle class. This is what returns the memory of threads that
    /// exited (their caches went to the depots) and of classes no cache
    /// holds any more. Never waits: a busy class lock means the class is in
    /// use. Returns the stamp to pass at the next visit.
    pub(crate) fn sweep_depot(&self, class: SizeClass, seen: u16) -> u16 {
        let Some(mut state) = self.classes[class.index()].0.try_lock() else {
            return 0;
        };
        if state.depot.is_null() {
            return 0;
        }
        let stamp = Self::depot_stamp(&state);
        if stamp != seen {
            return stamp;
        }
        self.release_idle_class(&mut state, class);
        0
    }

    /// Gives back what an idle class keeps: its depot's blocks go to their
    /// zones, and the zones it keeps empty give their pages back whatever
    /// their size (nobody is looping on this class). The caller holds the
    /// class lock (`state`).
    pub(super) fn release_idle_class(&self, state: &mut ClassState, class: SizeClass) {
        self.drain_depot(state, class);
        // Free blocks of its zones give their pages back (`purge.rs`).
        self.purge_idle_zones(state, crate::purge::PURGE_IDLE_MIN_BYTES);
        let mut empty_left = state.empty_zones;
        let mut next = state.with_room;
        while let Some(zone) = NonNull::new(next).filter(|_| empty_left > 0) {
            // SAFETY: listed zones are live; the class lock is held.
            unsafe {
                next = zone::state(zone).next;
                if zone::state(zone).live == 0 {
                    empty_left -= 1;
                    self.reset_and_decommit(zone);
                }
            }
        }
    }

    /// Drains every magazine of `class`'s depot into the zones (for `trim`).
    /// The caller holds the class lock (`state`).
    pub(crate) fn drain_depot(&self, state: &mut ClassState, class: SizeClass) {
        while let Some(magazine) = NonNull::new(state.depot) {
            // SAFETY: depot magazines are valid and owned by the depot.
            state.depot = unsafe { magazine.as_ref().next };
            state.depot_magazines -= 1;
            // SAFETY: taken off the depot; lock held.
            unsafe { self.drain_into_zones(state, class, magazine) };
            // SAFETY: empty now, unused.
            unsafe { self.magazines.lock().give(magazine) };
        }
    }

    /// Lends up to `out.len()` blocks of `class` from the zones, under one
    /// acquisition of the class lock; returns how many. The blocks carry
    /// the free mark: they are free, held by a cache.
    pub(super) fn lend_blocks(&self, class: SizeClass, out: &mut [MaybeUninit<Entry>]) -> usize {
        let block_size = class.block_size();
        let width = class.size_width();
        let filled = self.take_batch(class, out.len(), |i, popped| {
            lend_one(out, i, popped, block_size, width)
        });
        // A magazine pops from its end: reversed, the blocks go out in the
        // order the zone gave them (ascending addresses for fresh carving).
        out[..filled].reverse();
        filled
    }

    /// Gives every block of `magazine` back to its zone; the magazine is
    /// left empty.
    ///
    /// # Safety
    ///
    /// The caller holds `class`'s lock (`state`) and the magazine, whose
    /// blocks are lent by zones of `class`.
    pub(super) unsafe fn drain_into_zones(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        magazine: NonNull<Magazine>,
    ) {
        // SAFETY: per the contract.
        let mag = unsafe { &mut *magazine.as_ptr() };
        for entry in mag.blocks() {
            let ptr = entry.block;
            let index = match self.page_map.lookup(ptr.as_ptr().addr()) {
                // The zone lent this block out, so it is alive; the block is
                // one of its carved blocks, live (lent) in its bitmap.
                Some(Owner::Zone { base, class: c }) if c == class => {
                    // SAFETY: a live zone of this class, lock held.
                    unsafe { zone::block_index(base.cast(), ptr) }
                        .ok()
                        .map(|i| (base.cast(), i))
                }
                _ => None,
            };
            match index {
                // SAFETY: a lent block of a live zone, lock held.
                Some((zone, index)) => unsafe { self.free_validated(state, zone, index, ptr) },
                // A cache only holds blocks it checked: this would be
                // corruption of the magazine itself. Leak the block rather
                // than guess, and count it.
                None => {
                    self.count_error(());
                }
            }
        }
        mag.len = 0;
    }
}

/// Makes a block taken from its zone for a refill the `i`-th entry of
/// `out`: marked free (a cache holds it). Returns whether the refill may
/// go on: carving writes the free mark into pages nobody used yet, so a
/// refill stops at the page the last carved block ends in and never faults
/// in memory the program may not need.
#[inline(always)]
pub(super) fn lend_one(
    out: &mut [MaybeUninit<Entry>],
    i: usize,
    popped: Popped,
    block_size: usize,
    width: usize,
) -> bool {
    // SAFETY: the block's zone, live, lock held.
    let size_slot = unsafe { zone::size_slot(popped.zone, popped.index) };
    // SAFETY: the block is the cache's from now on; free, so marked (in
    // itself, for frees; in its slot, for introspection).
    unsafe {
        free_mark::set(popped.ptr);
        zone::store_cached(size_slot, width);
    }
    out[i] = MaybeUninit::new(Entry {
        block: popped.ptr,
        size_slot,
    });
    let end = popped.ptr.as_ptr().addr() + block_size;
    !popped.carved || (end - 1) / MIN_PAGE_SIZE == (end + block_size - 1) / MIN_PAGE_SIZE
}
