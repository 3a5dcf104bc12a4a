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
//!   [`DEPOT_SCAN`] magazines of the depot, one whose top block lies in its
//!   home (its own blocks, deposited by itself or by a thread that freed
//!   them: a producer gets its consumer's magazines; the home's address
//!   range is kept in the cache, so this costs no page-map lookup) or in a
//!   zone that no cache owns (the blocks of a thread that exited).
//!   If there is none, it refills from its home rather than take another
//!   cache's blocks, which would share that cache's lines from then on (a
//!   take of the depot's top, as before, made `private_churn` fast or slow
//!   from run to run: 0.07 or 0.30 s); unless the depot holds at least
//!   [`DEPOT_DEEP`] magazines, all others': then it takes the top one.
//!   Those are a surplus (their owners are not taking them back as fast as
//!   they come), and a refill from the home would only add to it: every
//!   owner then carves new blocks while the others' wait, up to the
//!   depot's bound: with homes for every class up to 1 KiB and no such
//!   rule, `producer_consumer` (4 pairs) peaked at 12.1 MiB against 4.5
//!   (BENCHMARKS.md, `homes2`).
//!   Only when its home gives no block (no memory) does it take another
//!   cache's magazine otherwise. The depot's bounds and its sweep limit
//!   what the others' magazines keep, as before.
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
//! A zone's owner is written only under its class lock (a claim, a give-up)
//! and read under it (the depot scan, through the page map from a block
//! the zone lent, so the zone is live, or through the header that the
//! block's size slot lies in, where every slot of the class lies in the
//! zone's first page; the claim scan, over listed zones).
//! The home pointer and its range are the cache's own and are never
//! followed unchecked: under the class lock the home is looked up in the
//! page map (a zone of this class at that address, live while the lock is
//! held, since zones are released under it) and its owner compared with
//! the cache's id; the range is only compared with block addresses. No new
//! lock and no new lock order: everything happens under the one class lock
//! the refill took anyway (a new home is mapped under it, as any new zone).
//!
//! # Footprint
//!
//! Each cache may keep one partly used zone per owned class, as mimalloc's
//! thread-local pages do; zones are carved lazily, so that costs the pages
//! a thread's blocks use, plus the header page. Only the TINY classes are
//! owned ([`OWNED_MAX_BLOCK`]): they carry nearly all the traffic, and
//! their blocks share lines. Homes for every class up to 1 KiB were
//! measured (BENCHMARKS.md, `homes2`): with the [`DEPOT_DEEP`] rule they
//! cost little memory (`producer_consumer`, 4 pairs: 4.9 MiB against 4.5;
//! 12.1 without the rule), but gained no time (`cxx_objects`' slow runs,
//! 3 of 15, came as often with them as without) and cost a 512-byte
//! malloc+free pair 0.6 instructions (a check of the depot's top
//! magazine per exchange). A home that is a run of a shared zone would not
//! have saved memory either: the cost is each owner's own circulation of
//! blocks, not the zone's size (homes in the smallest zones of their
//! class, 1-2 pages, peaked at 6.2 MiB against 5.9 for full zones). And
//! only where the provider's span allows full zones and is not tight (at
//! least 32 full zones: 2 MiB for the TINY classes): a smaller heap keeps
//! one shared zone per class, as before.
//!
//! A cache that never flushes (dropped as is, or a thread that vanished in
//! a `fork` child, whose cache is abandoned with its blocks) keeps its
//! homes owned: other caches do not refill from them while they can map a
//! zone of their own (at most one per such cache and class), and take
//! their free blocks once no zone can be mapped (the shared path), as the
//! locked paths do all along.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};

use lock_api::RawMutex;

use super::Entry;
use super::bins::BOUNDS;
use super::depot::lend_one;
use super::magazine::Magazine;
use crate::heap::{ClassState, Heap};
use crate::page_map::Owner;
use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::size_class::{CLASS_SIZES, GEOMETRY, SCARCE_GEOMETRY, SizeClass, TINY_MAX};
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
/// Depot magazines a cache looks at for one of its own blocks (each look
/// reads a zone header, under the class lock: through the top block's
/// size slot, or for the 16-byte class past its home's range, the page
/// map).
pub const DEPOT_SCAN: usize = 8;
/// A depot of at least this many magazines, none of them the cache's
/// among the first [`DEPOT_SCAN`], gives the cache its top one rather than
/// let it refill from its home (see the module documentation): 2, so
/// that one magazine of another cache, the common case of two threads in
/// step, still waits for its owner.
pub const DEPOT_DEEP: usize = 2;

/// Ids handed to caches; 0 means none (so the counter starts at 1). Ids
/// are compared within one heap's zones only; a wrap after 2^32 caches
/// could make two caches prefer the same zone, which costs speed only.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A cache's id and homes (see the module documentation).
pub(crate) struct Affinity {
    id: u32,
    /// Per owned class: whether it has homes in this cache's heap (bit
    /// set), once decided (`decided`): the provider's span, asked once.
    with_homes: u64,
    decided: u64,
    homes: [*mut ZoneHeader; OWNED_CLASSES],
    /// Where each home ends: a depot magazine whose top block lies in
    /// `[home, end)` holds this cache's blocks (compared only; a stale
    /// range costs a wrong preference, no more).
    ends: [usize; OWNED_CLASSES],
}

const _: () = assert!(OWNED_CLASSES <= 64);

/// Owned classes whose size slots all lie in their zone's first page, in
/// both layouts (bit `i` for class `i`): the header of a lent block's
/// zone is then its slot's page (`owner_of`).
const SLOTS_IN_HEAD_PAGE: u64 = {
    let mut bits = 0;
    let mut i = 0;
    while i < OWNED_CLASSES {
        let (full, scarce) = (&GEOMETRY[i], &SCARCE_GEOMETRY[i]);
        if full.sizes_offset + full.capacity * full.size_width <= MIN_PAGE_SIZE
            && scarce.sizes_offset + scarce.capacity * scarce.size_width <= MIN_PAGE_SIZE
        {
            bits |= 1 << i;
        }
        i += 1;
    }
    bits
};

impl Affinity {
    pub(crate) const fn new() -> Self {
        Affinity {
            id: 0,
            with_homes: 0,
            decided: 0,
            homes: [ptr::null_mut(); OWNED_CLASSES],
            ends: [0; OWNED_CLASSES],
        }
    }

    /// Whether refills of `class` go through homes: an owned class, in a
    /// heap that gives every class full zones of its own (a small heap
    /// keeps one shared zone per class).
    #[inline]
    pub(crate) fn has_homes<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
    ) -> bool {
        let i = class.index();
        if i >= OWNED_CLASSES {
            return false;
        }
        let bit = 1 << i;
        if self.decided & bit == 0 {
            self.decided |= bit;
            if class.prefers_full_zone(heap.span_bytes()) && !heap.span_is_tight() {
                self.with_homes |= bit;
            }
        }
        self.with_homes & bit != 0
    }

    /// Makes `zone` the home of class `i`.
    fn set_home(&mut self, i: usize, zone: NonNull<ZoneHeader>) {
        self.homes[i] = zone.as_ptr();
        // SAFETY: a live zone (the caller holds its class lock).
        self.ends[i] = zone.as_ptr().addr() + unsafe { zone::layout_of(zone) }.zone_bytes;
    }

    /// Whether `block` lies in the home of class `i`.
    #[inline]
    fn at_home(&self, i: usize, block: NonNull<u8>) -> bool {
        let addr = block.as_ptr().addr();
        addr >= self.homes[i].addr() && addr < self.ends[i]
    }

    /// The cache's id, taken at first use.
    fn id(&mut self) -> u32 {
        if self.id == 0 {
            self.id = NEXT_ID.fetch_add(1, Ordering::Relaxed).max(1);
        }
        self.id
    }

    /// Gives up every home (flush), taking each class lock in turn.
    #[cold]
    #[inline(never)]
    pub(crate) fn release_all<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>) {
        for i in 0..OWNED_CLASSES {
            let home = core::mem::replace(&mut self.homes[i], ptr::null_mut());
            self.ends[i] = 0;
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

    /// The cache's home for `class`, with room: the current one if it is
    /// still this cache's and not full, or else a new one it claims: the
    /// first of the class's zones with room that no cache owns (of the
    /// first [`CLAIM_SCAN`] listed), or a new zone. `None` if no zone can
    /// be mapped. A full home is given up (its blocks come back to it, and
    /// to whoever claims it next). The caller holds the class lock
    /// (`state`).
    fn home_with_room(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        affinity: &mut Affinity,
    ) -> Option<NonNull<ZoneHeader>> {
        let i = class.index();
        let id = affinity.id();
        if let Some(zone) = self.owned_home(state, class, affinity.homes[i], id) {
            // SAFETY: a live zone of the class, lock held.
            if unsafe { zone::state(zone).listed } {
                return Some(zone);
            }
            // SAFETY: as above.
            unsafe { zone::set_owner(zone, 0) };
        }
        affinity.homes[i] = ptr::null_mut();
        affinity.ends[i] = 0;
        let mut cursor = state.with_room;
        let mut claimed = None;
        for _ in 0..CLAIM_SCAN {
            let Some(zone) = NonNull::new(cursor) else {
                break;
            };
            // SAFETY: listed zones are live; the class lock is held.
            cursor = unsafe { zone::state(zone).next };
            // SAFETY: as above.
            if unsafe { zone::owner(zone) } == 0 {
                claimed = Some(zone);
                break;
            }
        }
        let zone = match claimed {
            Some(zone) => zone,
            None => {
                let zone = self.new_zone(class)?;
                state.zones += 1;
                // SAFETY: a fresh zone of this class, not listed; lock held.
                unsafe { state.link_front(zone) };
                // Listed and empty: counted as such (`take_from` uncounts
                // it with its first block, under this same lock).
                state.empty_zones += 1;
                zone
            }
        };
        // SAFETY: a live zone of the class, lock held.
        unsafe { zone::set_owner(zone, id) };
        affinity.set_home(i, zone);
        Some(zone)
    }

    /// [`full_magazine`](Heap::full_magazine) for a class with homes, out
    /// of line (the other classes' refills stay as they were): of the
    /// depot's magazines, one of the cache's own blocks; else a refill from
    /// its home; and only if that gives no block, another cache's magazine.
    #[inline(always)]
    pub(crate) fn full_magazine_at_home(
        &self,
        class: SizeClass,
        spare: Option<NonNull<Magazine>>,
        want: usize,
        affinity: &mut Affinity,
    ) -> (Option<NonNull<Magazine>>, Option<NonNull<Magazine>>) {
        // Another cache's blocks would share its lines: they wait for
        // their owner, and this cache refills from its home.
        {
            let mut state = self.class(class);
            // The top first, inline: a cache taking back what it gave.
            if let Some(top) = NonNull::new(state.depot)
                && self.holds_own(top, class.index(), affinity)
            {
                return (Self::pop_depot(&mut state), spare);
            }
            if let Some(own) = self.take_own_magazine(&mut state, class, affinity) {
                return (Some(own), spare);
            }
            // Deeper than the scan: a surplus of other caches' blocks,
            // which this cache's refill would only add to.
            if usize::from(state.depot_magazines) >= DEPOT_DEEP {
                return (Self::pop_depot(&mut state), spare);
            }
        }
        let others = || Self::pop_depot(&mut self.class(class));
        let Some(magazine) = spare.or_else(|| self.empty_magazine()) else {
            return (others(), None);
        };
        // SAFETY: an empty magazine, ours.
        let mag = unsafe { &mut *magazine.as_ptr() };
        let want = want.clamp(1, BOUNDS.magazine[class.index()] as usize);
        mag.len = self.lend_blocks_at_home(class, affinity, &mut mag.entries[..want]);
        if mag.len == 0 {
            self.return_empty(magazine);
            return (others(), None);
        }
        (Some(magazine), None)
    }

    /// Lends up to `out.len()` blocks of `class` from the cache's home, as
    /// `lend_blocks` does from any zone (which it falls back to if the
    /// home gives none: no zone could be mapped). Returns how many.
    fn lend_blocks_at_home(
        &self,
        class: SizeClass,
        affinity: &mut Affinity,
        out: &mut [MaybeUninit<Entry>],
    ) -> usize {
        let block_size = class.block_size();
        let width = class.size_width();
        let mut filled = self.take_batch_at_home(class, affinity, out.len(), |i, popped| {
            lend_one(out, i, popped, block_size, width)
        });
        if filled == 0 {
            // Not `lend_blocks`: a second caller would take it out of line
            // from the other classes' refills.
            filled = self.take_batch(class, out.len(), |i, popped| {
                lend_one(out, i, popped, block_size, width)
            });
        }
        // As in `lend_blocks`: the blocks go out in the zone's order.
        out[..filled].reverse();
        filled
    }

    /// Up to `max` blocks of `class` from the cache's home (or homes, if
    /// one fills), under one acquisition of the class lock; `keep` as for
    /// `take_batch`. Returns how many.
    fn take_batch_at_home(
        &self,
        class: SizeClass,
        affinity: &mut Affinity,
        max: usize,
        keep: impl FnMut(usize, Popped) -> bool,
    ) -> usize {
        let size = class.block_size();
        let mut home = None;
        let next = |state: &mut ClassState| {
            // The home is looked up once per refill, and again only when
            // it fills.
            // SAFETY: a home is a live zone of the class; lock held.
            let zone = match home.filter(|&z| unsafe { zone::state(z).listed }) {
                Some(zone) => zone,
                None => self.home_with_room(state, class, affinity)?,
            };
            home = Some(zone);
            // SAFETY: a listed zone of the class; lock held.
            unsafe { Self::take_from(state, zone, size) }
        };
        self.take_batch_with(class, max, next, keep)
    }

    /// The owner of the zone of `entry`'s block, a block lent by a zone of
    /// class `i`, whose lock the caller holds (so the zone is live);
    /// `u32::MAX` if the page map does not know it (it would be
    /// corruption). Where every size slot of the class lies in its zone's
    /// first page, the header is the slot's page (zones start on a page):
    /// no page-map lookup. The entry is the depot's, outside any block.
    #[inline]
    fn owner_of(&self, i: usize, entry: &Entry) -> u32 {
        if SLOTS_IN_HEAD_PAGE & (1 << i) != 0 {
            let header = entry
                .size_slot
                .map_addr(|a| a & !(MIN_PAGE_SIZE - 1))
                .cast::<ZoneHeader>();
            // SAFETY: the slot lies in the first page of its zone (checked
            // for both layouts of the class, `SLOTS_IN_HEAD_PAGE`; a depot
            // holds blocks of its own class's zones only), which starts at
            // a page boundary and is live: it lent the block.
            return unsafe { zone::owner(NonNull::new_unchecked(header)) };
        }
        match self.page_map.lookup(entry.block.as_ptr().addr()) {
            // SAFETY: the zone lent the block: live.
            Some(Owner::Zone { base, .. }) => unsafe { zone::owner(base.cast()) },
            _ => u32::MAX,
        }
    }

    /// Whether the depot's `magazine` of class `i` holds blocks of a zone
    /// `affinity` owns, or that no cache owns (judged by its top block).
    /// The caller holds the class lock.
    #[inline(always)]
    fn holds_own(&self, magazine: NonNull<Magazine>, i: usize, affinity: &Affinity) -> bool {
        // SAFETY: depot magazines are valid and full, under the class lock.
        let Some(top) = unsafe { magazine.as_ref() }.blocks().last() else {
            return false;
        };
        if SLOTS_IN_HEAD_PAGE & (1 << i) != 0 {
            // The slot finds the header: its owner at once (a cache that
            // has had a home has its id; 0 is no cache's).
            let owner = self.owner_of(i, top);
            owner == affinity.id || owner == 0
        } else {
            // The home's range first, the page map only past it.
            affinity.at_home(i, top.block) || self.owner_of(i, top) == 0
        }
    }

    /// Unlinks and returns, of the first [`DEPOT_SCAN`] magazines of the
    /// depot, one whose top block lies in a zone `affinity` owns, or that
    /// no cache owns; `None` if there is none. The caller holds the class
    /// lock (`state`).
    #[cold]
    #[inline(never)]
    fn take_own_magazine(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        affinity: &Affinity,
    ) -> Option<NonNull<Magazine>> {
        let i = class.index();
        let mut link: *mut *mut Magazine = &mut state.depot;
        for _ in 0..DEPOT_SCAN {
            // SAFETY: `link` is the depot's head or a depot magazine's
            // `next`, both valid under the class lock.
            let magazine = NonNull::new(unsafe { *link })?;
            // The look first, through a shared reference of its own.
            let own = self.holds_own(magazine, i, affinity);
            // SAFETY: depot magazines are valid, full, owned by the depot.
            let m = unsafe { &mut *magazine.as_ptr() };
            if own {
                // SAFETY: as above.
                unsafe { *link = m.next };
                state.depot_magazines -= 1;
                // As `pop_depot`: the low-water mark (`depot_trim.rs`).
                state.depot_low = state.depot_low.min(state.depot_magazines);
                return Some(magazine);
            }
            link = &raw mut m.next;
        }
        None
    }
}
