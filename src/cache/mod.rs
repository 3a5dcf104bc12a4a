//! The front cache: a few free blocks per size class, kept by one owner (a
//! thread in a hosted program, a CPU in a kernel) so that most allocations
//! and frees take no lock at all.
//!
//! # Design: magazines
//!
//! A [`FrontCache`] is Bonwick's magazine layer. Per class it holds two
//! *magazines* (fixed arrays of free blocks): `allocate` pops from the
//! loaded one, `deallocate` pushes onto it. When the loaded magazine is
//! empty (or full) and the previous one is not, they swap; when both are,
//! one is exchanged whole with the class's *depot* of full magazines under
//! one acquisition of the class lock: O(1), the blocks are not touched. Only
//! an empty depot sends a refill to the zones, and only a depot that holds
//! all it may sends blocks back to them. The zones stay shared by all
//! owners: caches and depots only borrow blocks from them. Every bound is in
//! `bins.rs`.
//!
//! **Homes keep owners off each other's cache lines** (`affinity.rs`). A
//! cache refills its TINY classes from a zone that names it as owner (its
//! *home*), and takes from a depot the magazines of its own blocks first
//! (others' only from a depot deep in them):
//! two threads that never share a block then never share a line of blocks
//! or of size slots either. Ownership is a preference only; the checks of
//! a free never read it.
//!
//! **Remote frees** need nothing special. A block freed by an owner other
//! than the one that allocated it goes into the freeing owner's magazine and
//! is reused there, or travels back in a whole magazine: no lock per block,
//! no message to the allocating owner. We chose this over mimalloc's
//! per-page thread-free lists and snmalloc's message queues because zones
//! here are not owned by a thread (there is nothing to send a block back
//! to), and over SLUB's per-CPU slabs because a slab per CPU per class would
//! multiply the footprint the seed's 100-block zones already have. The cost:
//! a producer/consumer pair moves every block through the class lock once
//! per batch, in both directions.
//!
//! **Idle classes go back, busy ones never do.** A cached block is lent, so
//! its zone never empties while the block waits in a cache. Each cache
//! counts its slow-path events (its clock: they come with the owner's
//! allocation traffic, and cost nothing on the fast paths) and, every
//! [`DECAY_PERIOD`] of them, scans the classes it holds:
//! - a class is *active* if it had a slow-path event since the last scan,
//!   or if the blocks its magazines hold changed in number (fast-path use,
//!   seen without a counter on the fast path);
//! - a class with no activity for its *patience* (at first [`IDLE_EVENTS`]
//!   events) is idle: its magazines' blocks go back to their zones, its
//!   depot is drained, and the zones that leaves empty give their pages
//!   back;
//! - a class that comes back soon after being shed was in use after all
//!   (a low-rate class in a steady loop): its patience doubles, up to
//!   [`IDLE_EVENTS_MAX`], so a steady load stops paying for the decay after
//!   a few rounds (no lock, no `madvise`);
//! - each scan also visits one class's depot, in turn: one that nobody
//!   exchanged a magazine with for a whole round of visits is drained (the
//!   magazines of threads that exited, of classes no cache holds), with
//!   `try_lock`, never waiting; the depot of a class the visiting cache
//!   holds gives back the magazines nobody took since the last visit (its
//!   low-water mark, `depot_trim.rs`).
//!
//! A program that stops calling the allocator altogether keeps what it
//! holds: there is no clock without calls (and no thread of our own).
//!
//! **Blocks stay out of the blocks.** A magazine is an array, not a list
//! threaded through free blocks, so a use-after-free write cannot poison
//! it. A cached block is *lent* by its zone (its live bit stays set)
//! and carries the free mark (`free_mark.rs`), which is how a double free is
//! caught without a lock, whichever owner's cache holds the block.
//!
//! **Checking a pointer without a lock.** `deallocate` looks the pointer up
//! in the page map, checks that it is a carved block boundary of its zone
//! (reading the zone's header: its guard word and carved count) and that it
//! does not carry the free mark. A valid block's zone cannot go away (it
//! has a lent block: this one), so those reads are safe. Anything the check
//! cannot vouch for (LARGE, a stale count, a bad header) takes the heap's
//! locked path, which reports it. The one hole, written down in INTERNALS.md:
//! an *invalid* pointer into a zone that another thread releases at that
//! very moment can make the header read fault.
//!
//! # Using it in a kernel
//!
//! One `FrontCache` per CPU, in the per-CPU area. Use it with interrupts
//! disabled on that CPU (an interrupt handler that allocates through the
//! same cache would find it half updated), always with the same heap, and
//! [`flush`](FrontCache::flush) it before the CPU goes offline. Frees of
//! blocks allocated on another CPU go into the local cache like any other.
//! An interrupt handler may also allocate from the `Heap` directly: the
//! heap's own locks stay the fallback.
//!
//! ```
//! use core::alloc::Layout;
//! use core::mem::MaybeUninit;
//! use ft_malloc::{ArenaProvider, FrontCache, Heap};
//!
//! static mut REGION: [MaybeUninit<u8>; 1 << 20] = [MaybeUninit::uninit(); 1 << 20];
//! // SAFETY: REGION is used by nothing else.
//! let heap: Heap<ArenaProvider> =
//!     Heap::new(unsafe { ArenaProvider::new((&raw mut REGION).cast(), 1 << 20) });
//! let mut cache = FrontCache::new();
//!
//! let layout = Layout::from_size_align(40, 8).unwrap();
//! let block = cache.allocate(&heap, layout).unwrap();
//! // SAFETY: `block` came from `heap` and is not used afterwards.
//! unsafe { cache.deallocate(&heap, block).unwrap() };
//! assert_eq!(heap.stats().live_blocks, 0);
//! assert!(heap.stats().cached_blocks > 0); // kept for the next allocation
//! cache.flush(&heap); // into the class's depot, for the next cache
//! heap.trim(); // the depots' blocks back to their zones
//! assert_eq!(heap.stats().cached_blocks, 0);
//! ```

mod affinity;
mod bins;
mod decay;
mod depot;
mod depot_trim;
mod free;
mod loaded;
mod magazine;
mod realloc;

use core::alloc::Layout;
use core::fmt;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::canary;
use crate::free_mark;
use crate::heap::Heap;
pub use crate::page_map::{MappedFlat, NO_MAPPED_FLAT};
use crate::provider::PageProvider;
use crate::size_class::{DEFAULT_ALIGN, NUM_CLASSES, SizeClass};
use crate::zone;

use affinity::Affinity;
pub use affinity::{CLAIM_SCAN, DEPOT_DEEP, DEPOT_SCAN, OWNED_MAX_BLOCK};
pub use bins::{
    CACHE_MAX_BYTES, DECAY_PERIOD, DEPOT_MAX_BYTES, DEPOT_MAX_BYTES_PAGED, DEPOT_MAX_MAGAZINES,
    IDLE_EVENTS, IDLE_EVENTS_MAX, MAGAZINE_MAX_BYTES,
};
use decay::Decay;
pub(crate) use depot::Checked;
pub(crate) use magazine::Magazine;
pub(crate) use magazine::MagazinePool;
pub use magazine::{MAGAZINE_BYTES, MAGAZINE_ENTRIES};
pub use realloc::{InPlace, Refusal, Vouched};

/// A cached block: its address and where its zone keeps its requested size
/// (so that handing it out records the size without finding the zone).
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) block: NonNull<u8>,
    pub(crate) size_slot: *mut u8,
}

/// A front cache: free blocks per size class for one owner. See the module
/// documentation for the design and for how a kernel uses one.
///
/// It is a small value (four pointers per class, the decay's counters and
/// the homes, 3.2 KiB on 64-bit targets): put it where the owner can reach it without a lock (a
/// thread-local, a per-CPU area). It must always be used with the same
/// [`Heap`]. It holds at most [`CACHE_MAX_BYTES`] of blocks;
/// [`flush`](Self::flush) gives them all back (at thread exit, before a CPU
/// goes offline).
pub struct FrontCache {
    /// Per class, the loaded magazine (the one allocations pop from and
    /// frees push to) as three pointers into its entries: the next free
    /// slot, the first entry and the end of the class's capacity. So a pop
    /// is a compare of `top` with `base`, a push one of `top` with `end`,
    /// with no length or capacity to load and scale. Without a loaded
    /// magazine all three are null (empty and full at once: both go to the
    /// slow path). The magazine's own `len` is stale while it is loaded; it
    /// is written back when the magazine is unloaded (`loaded.rs`).
    top: [*mut Entry; NUM_CLASSES],
    base: [*mut Entry; NUM_CLASSES],
    end: [*mut Entry; NUM_CLASSES],
    /// Per class, the magazine swapped in when the loaded one runs empty
    /// or full.
    previous: [*mut Magazine; NUM_CLASSES],
    /// Empty magazines kept for the next exchange (a list through their
    /// `next`, at most [`SPARES_MAX`](bins::SPARES_MAX)): an exchange with
    /// the depot then takes the class lock only, not the magazine pool's
    /// too. A loop that allocates a batch and frees it hands the depot as
    /// many full magazines one way as the other.
    spares: *mut Magazine,
    spare_count: u8,
    /// Per class, refills from the zones so far (capped): a class the owner
    /// barely uses borrows a couple of blocks, a busy one a full magazine
    /// (`bins::refill_blocks`).
    refills: [u8; NUM_CLASSES],
    /// The idle-class decay's state (see the module documentation).
    decay: Decay,
    /// The block this cache's last reallocation moved to (`realloc.rs`):
    /// compared with, never read through.
    last_grown: *mut u8,
    /// The cache's id and home zones (`affinity.rs`).
    affinity: Affinity,
    /// An [`inert`](Self::inert) cache: never used as one.
    inert: bool,
}

// SAFETY: the magazines and their blocks are lent to the cache by a heap
// that is `Sync`; moving the cache to another thread moves the loan.
unsafe impl Send for FrontCache {}

impl Default for FrontCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FrontCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontCache")
            .field("cached_blocks", &self.cached_blocks())
            .field("cached_bytes", &self.cached_bytes())
            .finish()
    }
}

impl FrontCache {
    /// An empty cache.
    pub const fn new() -> Self {
        FrontCache {
            top: [ptr::null_mut(); NUM_CLASSES],
            base: [ptr::null_mut(); NUM_CLASSES],
            end: [ptr::null_mut(); NUM_CLASSES],
            previous: [ptr::null_mut(); NUM_CLASSES],
            spares: ptr::null_mut(),
            spare_count: 0,
            refills: [0; NUM_CLASSES],
            decay: Decay::new(),
            affinity: Affinity::new(),
            last_grown: ptr::null_mut(),
            inert: false,
        }
    }

    /// A cache that holds nothing and takes nothing, for owners that have
    /// no cache yet (or any more) to point at: through
    /// [`allocate_cached_in`](Self::allocate_cached_in) and
    /// [`try_deallocate_raw_in`](Self::try_deallocate_raw_in) it declines
    /// every request, as an empty cache's fast paths do, so a caller's
    /// fast path needs no test for "no cache" (`libft_malloc.so`'s threads
    /// start with theirs pointing at one, shared, only ever read). Use it
    /// through those two only: any other method would treat it as a cache.
    pub const fn inert() -> Self {
        let mut cache = Self::new();
        cache.inert = true;
        cache
    }

    /// Makes the block the next [`allocate`](Self::allocate) of `class`
    /// hands out a random one (`random` picks it) of the blocks in the
    /// class's two magazines, not the last one freed: a hardened
    /// allocator's randomized choice among free slots, so that where a
    /// block lands cannot be predicted from the order of earlier frees and
    /// allocations. The pick is swapped to the top of the loaded magazine.
    pub fn shuffle(&mut self, class: SizeClass, random: usize) {
        let i = class.index();
        let loaded = self.loaded_len(i);
        if loaded == 0 {
            return;
        }
        // SAFETY: a non-null previous magazine is the cache's, valid.
        let previous = unsafe { self.previous[i].as_mut() };
        let in_previous = previous.as_ref().map_or(0, |m| m.len);
        let pick = random % (loaded + in_previous);
        let base = self.base[i];
        // SAFETY: the loaded magazine's first `loaded` entries are
        // initialised; the previous magazine is another one.
        unsafe {
            let top = base.add(loaded - 1);
            if pick < loaded {
                ptr::swap(base.add(pick), top);
            } else if let Some(previous) = previous {
                ptr::swap(top, previous.entries[pick - loaded].as_mut_ptr());
            }
        }
    }

    /// Allocates like [`Heap::allocate`], from this cache when it has a
    /// block of the class (no lock), or after an exchange with the class's
    /// depot. LARGE requests go to the heap.
    #[inline(always)]
    pub fn allocate<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        layout: Layout,
    ) -> Option<NonNull<u8>> {
        let Some(class) = SizeClass::for_layout(layout.size(), layout.align()) else {
            return heap.allocate(layout);
        };
        match self.pop(class) {
            Some(entry) => Some(Self::hand_out(entry, class, layout.size())),
            None => self.allocate_slow(heap, class, layout),
        }
    }

    /// [`allocate`](Self::allocate) for `size` bytes at the default
    /// alignment ([`DEFAULT_ALIGN`], C's `malloc`): the class comes straight
    /// from the size, and the layout is made only off the fast path. `None`
    /// also for a size no layout has (above `isize::MAX` once rounded).
    #[inline(always)]
    pub fn allocate_size<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        size: usize,
    ) -> Option<NonNull<u8>> {
        let Some(class) = SizeClass::for_size(size) else {
            return heap.allocate(Layout::from_size_align(size, DEFAULT_ALIGN).ok()?);
        };
        match self.pop(class) {
            Some(entry) => Some(Self::hand_out(entry, class, size)),
            None => {
                // A TINY or SMALL size is far below `isize::MAX`.
                let layout = Layout::from_size_align(size, DEFAULT_ALIGN).ok()?;
                self.allocate_slow(heap, class, layout)
            }
        }
    }

    /// The lock-free part of [`allocate_size`](Self::allocate_size): a
    /// block of the class of `size` (default alignment) from the loaded
    /// magazine, or `None` (a LARGE size, an empty magazine), when the
    /// caller goes on with `allocate_size`. It calls nothing, so a caller
    /// that tail-calls its slow path needs no stack frame on the fast one.
    #[inline(always)]
    pub fn allocate_cached(&mut self, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: a reference is a valid pointer to this owner's cache.
        unsafe { Self::allocate_cached_in(self, size) }
    }

    /// [`allocate_cached`](Self::allocate_cached) through a raw pointer,
    /// which may be to an [`inert`](Self::inert) cache shared by owners
    /// that have no cache yet: that one is only read, and declines.
    ///
    /// # Safety
    ///
    /// `this` is a valid cache: its owner's, or an inert one.
    #[inline(always)]
    pub unsafe fn allocate_cached_in(this: *mut Self, size: usize) -> Option<NonNull<u8>> {
        let class = SizeClass::for_size(size)?;
        // SAFETY: per the contract.
        let entry = unsafe { Self::pop_in(this, class) }?;
        Some(Self::hand_out(entry, class, size))
    }

    /// Like [`allocate`](Self::allocate), with the first `layout.size()`
    /// bytes zeroed.
    #[inline]
    pub fn allocate_zeroed<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        layout: Layout,
    ) -> Option<NonNull<u8>> {
        if SizeClass::for_layout(layout.size(), layout.align()).is_none() {
            return heap.allocate_zeroed(layout);
        }
        let block = self.allocate(heap, layout)?;
        // SAFETY: a fresh block of at least `layout.size()` bytes, ours.
        unsafe { ptr::write_bytes(block.as_ptr(), 0, layout.size()) };
        Some(block)
    }

    /// Gives every cached block back to the heap (to the depots, or to the
    /// zones beyond the depots' bounds).
    pub fn flush<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>) {
        // Only the classes the decay marks as holding may have magazines (a
        // class gets one only where a slow path marks it): a short-lived
        // thread's exit visits the few it used, not every class.
        let held = self.decay.take_held();
        for (word, mut bits) in held.into_iter().enumerate() {
            while bits != 0 {
                let i = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let class = SizeClass::from_index(i).expect("a held class");
                let previous = core::mem::replace(&mut self.previous[i], ptr::null_mut());
                for magazine in [self.unload(i), previous] {
                    if let Some(m) = NonNull::new(magazine) {
                        heap.retire_magazine(class, m);
                    }
                }
            }
        }
        debug_assert!(
            (0..NUM_CLASSES).all(|i| self.base[i].is_null() && self.previous[i].is_null()),
            "a class held magazines without its bit in the decay's set"
        );
        while let Some(spare) = self.take_spare() {
            heap.return_empty(spare);
        }
        self.affinity.release_all(heap);
    }

    /// Blocks the cache holds.
    pub fn cached_blocks(&self) -> usize {
        (0..NUM_CLASSES).map(|i| self.held_blocks(i)).sum()
    }

    /// Bytes of the blocks the cache holds (block sizes).
    pub fn cached_bytes(&self) -> usize {
        SizeClass::all()
            .map(|c| self.held_blocks(c.index()) * c.block_size())
            .sum()
    }

    /// Records the requested size, clears the free mark and arms the slack
    /// canary of a cached block.
    #[inline(always)]
    fn hand_out(entry: Entry, class: SizeClass, size: usize) -> NonNull<u8> {
        // From the class index alone (a constant table, the index's range),
        // not from its geometry: fewer loads on every `malloc`.
        // SAFETY: a class index is below `NUM_CLASSES`, the table's length.
        let block_size = class.block_size_unchecked();
        // SAFETY: the entry's size slot belongs to its block, which the
        // cache holds (marked free) and now hands out; `size` fits the
        // class. The canary, derived from the mark (no second read of the
        // key), goes after the mark is cleared (it may lie in its word). A
        // mark overwritten after free makes a wrong canary: the block is
        // refused when freed.
        unsafe {
            zone::store_size(entry.size_slot, class.size_width(), size);
            if size < block_size {
                let mark = free_mark::take(entry.block);
                canary::arm_past(entry.block, size, mark);
            } else {
                free_mark::clear(entry.block);
            }
        }
        entry.block
    }

    /// The loaded magazine is empty (or missing): swap in the previous one
    /// if it has blocks, or else exchange with the depot (which refills from
    /// the zones when it has nothing). If the heap has nothing, give back
    /// what this cache holds and try the heap once more (it trims first).
    #[cold]
    #[inline(never)]
    fn allocate_slow<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        layout: Layout,
    ) -> Option<NonNull<u8>> {
        debug_assert!(!self.inert, "an inert cache used as one");
        // A small region's pool serves SMALL requests (`coalesce/`): a
        // magazine of them would cost zones the region cannot afford.
        if heap.pool_serves(class) {
            return heap.allocate(layout);
        }
        let i = class.index();
        self.tick(heap, i);
        let loaded = self.unload(i);
        // SAFETY: non-null magazines are the cache's, valid.
        if unsafe { self.previous[i].as_ref() }.is_some_and(|m| m.len > 0) {
            let previous = core::mem::replace(&mut self.previous[i], loaded);
            self.load(i, previous);
        } else {
            // Both empty: the previous one becomes a spare (or fills from
            // the zones if the depot has nothing), the loaded (empty) one
            // becomes the previous, and a full one is loaded.
            let spare = NonNull::new(core::mem::replace(&mut self.previous[i], loaded));
            self.decay.hold(i);
            let want = bins::refill_blocks(self.refills[i]);
            self.refills[i] = self.refills[i].saturating_add(1);
            let (full, unused) = heap.full_magazine(class, spare, want, &mut self.affinity);
            if let Some(unused) = unused {
                self.keep_spare(heap, unused);
            }
            match full {
                Some(full) => self.load(i, full.as_ptr()),
                None => {
                    self.flush(heap);
                    return heap.allocate(layout);
                }
            }
        }
        let entry = self.pop(class)?;
        Some(Self::hand_out(entry, class, layout.size()))
    }
}
