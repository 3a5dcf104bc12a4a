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
//!   `try_lock`, never waiting.
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

mod bins;
mod decay;
mod depot;
mod magazine;
mod realloc;

use core::alloc::Layout;
use core::fmt;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::canary;
use crate::error::HeapError;
use crate::free_mark;
use crate::heap::Heap;
use crate::provider::PageProvider;
use crate::size_class::{NUM_CLASSES, SizeClass};
use crate::zone;

use bins::BOUNDS;
pub use bins::{
    CACHE_MAX_BYTES, DECAY_PERIOD, DEPOT_MAX_BYTES, DEPOT_MAX_BYTES_PAGED, DEPOT_MAX_MAGAZINES,
    IDLE_EVENTS, IDLE_EVENTS_MAX, MAGAZINE_MAX_BYTES,
};
use decay::Decay;
pub(crate) use depot::Checked;
pub(crate) use magazine::Magazine;
pub(crate) use magazine::MagazinePool;
pub use magazine::{MAGAZINE_BYTES, MAGAZINE_ENTRIES};

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
/// It is a small value (two pointers per class and the decay's counters,
/// 1.9 KiB on 64-bit targets): put it where the owner can reach it without a lock (a
/// thread-local, a per-CPU area). It must always be used with the same
/// [`Heap`]. It holds at most [`CACHE_MAX_BYTES`] of blocks;
/// [`flush`](Self::flush) gives them all back (at thread exit, before a CPU
/// goes offline).
pub struct FrontCache {
    /// Per class, the magazine allocations pop from and frees push to.
    loaded: [*mut Magazine; NUM_CLASSES],
    /// Per class, the magazine swapped in when the loaded one runs empty
    /// or full.
    previous: [*mut Magazine; NUM_CLASSES],
    /// Per class, refills from the zones so far (capped): a class the owner
    /// barely uses borrows a couple of blocks, a busy one a full magazine
    /// (`bins::refill_blocks`).
    refills: [u8; NUM_CLASSES],
    /// The idle-class decay's state (see the module documentation).
    decay: Decay,
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
            loaded: [ptr::null_mut(); NUM_CLASSES],
            previous: [ptr::null_mut(); NUM_CLASSES],
            refills: [0; NUM_CLASSES],
            decay: Decay::new(),
        }
    }

    /// Makes the block the next [`allocate`](Self::allocate) of `class`
    /// hands out a random one (`random` picks it) of the blocks in the
    /// class's two magazines, not the last one freed: a hardened
    /// allocator's randomized choice among free slots, so that where a
    /// block lands cannot be predicted from the order of earlier frees and
    /// allocations. The pick is swapped to the top of the loaded magazine.
    pub fn shuffle(&mut self, class: SizeClass, random: usize) {
        let i = class.index();
        // SAFETY: a class index is below `NUM_CLASSES`; non-null magazines
        // are the cache's, valid, and the loaded and previous ones are two
        // different magazines.
        let (loaded, previous) = unsafe { (self.loaded[i].as_mut(), self.previous[i].as_mut()) };
        let Some(loaded) = loaded.filter(|m| m.len > 0) else {
            return;
        };
        let in_previous = previous.as_ref().map_or(0, |m| m.len);
        let pick = random % (loaded.len + in_previous);
        let top = loaded.len - 1;
        if pick < loaded.len {
            loaded.entries.swap(pick, top);
        } else if let Some(previous) = previous {
            core::mem::swap(
                &mut loaded.entries[top],
                &mut previous.entries[pick - loaded.len],
            );
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

    /// Frees like [`Heap::deallocate`]: a valid TINY or SMALL block goes
    /// into this cache without a lock. A double free is refused without a
    /// lock, even when another owner's cache (or a depot) holds the block,
    /// or another thread frees it at the same instant (`free_mark.rs`);
    /// anything else the lock-free check cannot vouch for goes through the
    /// heap, which refuses what it did not hand out.
    ///
    /// # Safety
    ///
    /// If `ptr` is a live block of `heap`, nothing may use it afterwards.
    #[inline(always)]
    pub unsafe fn deallocate<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
    ) -> Result<(), HeapError> {
        match heap.check_for_cache::<false>(ptr) {
            Checked::Keep(class, entry, mark) => {
                // SAFETY: a checked block of a zone that lends it (so the
                // zone stays); its mark. Of two frees racing for it, one
                // takes it (`free_mark.rs`).
                if !unsafe { free_mark::claim(ptr, mark) } {
                    return Err(heap.count_error(HeapError::DoubleFree));
                }
                if !self.push(class, entry) {
                    self.push_slow(heap, class, entry);
                }
                Ok(())
            }
            // SAFETY: per the contract.
            Checked::Locked => unsafe { heap.deallocate(ptr) },
            Checked::DoubleFree => Err(heap.count_error(HeapError::DoubleFree)),
            Checked::Overflow => Err(heap.count_error(HeapError::Overflow)),
        }
    }

    /// Gives every cached block back to the heap (to the depots, or to the
    /// zones beyond the depots' bounds).
    pub fn flush<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>) {
        self.decay.hold_none();
        for class in SizeClass::all() {
            let i = class.index();
            for magazine in [&mut self.loaded[i], &mut self.previous[i]] {
                if let Some(m) = NonNull::new(core::mem::replace(magazine, ptr::null_mut())) {
                    heap.retire_magazine(class, m);
                }
            }
        }
    }

    /// Blocks the cache holds.
    pub fn cached_blocks(&self) -> usize {
        self.loaded
            .iter()
            .chain(&self.previous)
            // SAFETY: non-null magazines are the cache's, valid.
            .map(|&m| unsafe { m.as_ref() }.map_or(0, |m| m.len))
            .sum()
    }

    /// Bytes of the blocks the cache holds (block sizes).
    pub fn cached_bytes(&self) -> usize {
        SizeClass::all()
            .map(|c| {
                let i = c.index();
                // SAFETY: as in `cached_blocks`.
                let len = |m: *mut Magazine| unsafe { m.as_ref() }.map_or(0, |m| m.len);
                (len(self.loaded[i]) + len(self.previous[i])) * c.block_size()
            })
            .sum()
    }

    /// The loaded magazine of `class`, if any.
    #[inline(always)]
    fn loaded(&mut self, class: SizeClass) -> Option<&mut Magazine> {
        // SAFETY: a class index is below `NUM_CLASSES`, the array's length;
        // a non-null loaded magazine is the cache's, valid.
        unsafe { self.loaded.get_unchecked(class.index()).as_mut() }
    }

    #[inline(always)]
    fn pop(&mut self, class: SizeClass) -> Option<Entry> {
        let magazine = self.loaded(class)?;
        let len = magazine.len.checked_sub(1)?;
        magazine.len = len;
        // SAFETY: `len < MAGAZINE_ENTRIES`, and entries below the old `len`
        // are initialised.
        Some(unsafe { magazine.entries.get_unchecked(len).assume_init() })
    }

    /// Pushes unless the loaded magazine is full (or missing).
    #[inline(always)]
    fn push(&mut self, class: SizeClass, entry: Entry) -> bool {
        // SAFETY: a class index is below `NUM_CLASSES`, the table's length.
        let cap = unsafe { *BOUNDS.magazine.get_unchecked(class.index()) } as usize;
        let Some(magazine) = self.loaded(class) else {
            return false;
        };
        let len = magazine.len;
        if len == cap {
            return false;
        }
        // SAFETY: `len < cap <= MAGAZINE_ENTRIES`.
        unsafe { magazine.entries.get_unchecked_mut(len).write(entry) };
        magazine.len = len + 1;
        true
    }

    /// Records the requested size, clears the free mark and arms the slack
    /// canary of a cached block.
    #[inline(always)]
    fn hand_out(entry: Entry, class: SizeClass, size: usize) -> NonNull<u8> {
        let g = class.geometry();
        // SAFETY: the entry's size slot belongs to its block, which the
        // cache holds (marked free) and now hands out; `size` fits the
        // class. The canary, derived from the mark (no second read of the
        // key), goes after the mark is cleared (it may lie in its word). A
        // mark overwritten after free makes a wrong canary: the block is
        // refused when freed.
        unsafe {
            zone::store_size(entry.size_slot, g.size_width, size);
            if size < g.block_size {
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
        // A small region's pool serves SMALL requests (`coalesce/`): a
        // magazine of them would cost zones the region cannot afford.
        if heap.pool_serves(class) {
            return heap.allocate(layout);
        }
        let i = class.index();
        self.tick(heap, i);
        // SAFETY: non-null magazines are the cache's, valid.
        if unsafe { self.previous[i].as_ref() }.is_some_and(|m| m.len > 0) {
            core::mem::swap(&mut self.loaded[i], &mut self.previous[i]);
        } else {
            // Both empty: the previous one goes back, the loaded (empty)
            // one becomes the previous, and a full one is loaded.
            let spare = NonNull::new(core::mem::replace(&mut self.previous[i], self.loaded[i]));
            self.loaded[i] = ptr::null_mut();
            self.decay.hold(i);
            let want = bins::refill_blocks(self.refills[i]);
            self.refills[i] = self.refills[i].saturating_add(1);
            match heap.full_magazine(class, spare, want) {
                Some(full) => self.loaded[i] = full.as_ptr(),
                None => {
                    self.flush(heap);
                    return heap.allocate(layout);
                }
            }
        }
        let entry = self.pop(class)?;
        Some(Self::hand_out(entry, class, layout.size()))
    }

    /// The loaded magazine is full (or missing): swap in the previous one if
    /// it is empty, or else hand the previous (full) one to the depot for an
    /// empty one; then keep `entry`.
    #[cold]
    #[inline(never)]
    fn push_slow<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        entry: Entry,
    ) {
        let i = class.index();
        self.tick(heap, i);
        // SAFETY: non-null magazines are the cache's, valid.
        let previous = unsafe { self.previous[i].as_ref() };
        if previous.is_some_and(|m| m.len == 0) {
            core::mem::swap(&mut self.loaded[i], &mut self.previous[i]);
        } else {
            self.decay.hold(i);
            let empty = match NonNull::new(self.previous[i]) {
                Some(full) => heap.take_full(class, full),
                None => heap.empty_magazine(),
            };
            self.previous[i] = self.loaded[i];
            self.loaded[i] = empty.map_or(ptr::null_mut(), NonNull::as_ptr);
        }
        if !self.push(class, entry) {
            // No magazine could be had (no memory): the block goes back to
            // its zone. It was checked and claimed: the locked path claims
            // it again, so undo the mark first. (A double free racing in
            // between takes it instead: then the zone path refuses it, and
            // the block has one holder still.)
            // SAFETY: the block is the caller's freed block.
            unsafe { free_mark::clear(entry.block) };
            // SAFETY: as for `deallocate`.
            let _ = unsafe { heap.deallocate(entry.block) };
        }
    }
}
