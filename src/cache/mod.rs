//! The front cache: a few free blocks per size class, kept by one owner (a
//! thread in a hosted program, a CPU in a kernel) so that most allocations
//! and frees take no lock at all.
//!
//! # Design: magazines
//!
//! A [`FrontCache`] is Bonwick's magazine layer: per class, a small array of
//! free blocks (a *bin*). `allocate` pops from the bin, `deallocate` pushes
//! onto it; an empty bin is refilled and a full one half drained *in
//! batches* under one acquisition of the class lock. The zones stay shared
//! by all owners: the cache only borrows blocks from them.
//!
//! **Remote frees** need nothing special. A block freed by an owner other
//! than the one that allocated it goes into the freeing owner's bin and is
//! reused there, or drained back to its zone in a batch: no lock per block,
//! no message to the allocating owner. We chose this over mimalloc's
//! per-page thread-free lists and snmalloc's message queues because zones
//! here are not owned by a thread (there is nothing to send a block back
//! to), and over SLUB's per-CPU slabs because a slab per CPU per class would
//! multiply the footprint the seed's 100-block zones already have. The cost:
//! a producer/consumer pair moves every block through the class lock once
//! per batch, in both directions.
//!
//! **Blocks stay out of the blocks.** A bin is an array in the cache, not a
//! list threaded through free blocks, so a use-after-free write cannot
//! poison it. A cached block is *lent* by its zone (its live bit stays set)
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
//! cache.flush(&heap);
//! assert_eq!(heap.stats().cached_blocks, 0);
//! ```

mod bins;
mod depot;

use core::alloc::Layout;
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::error::HeapError;
use crate::free_mark;
use crate::heap::Heap;
use crate::provider::PageProvider;
use crate::size_class::{NUM_CLASSES, SizeClass};
use crate::zone;

use bins::LAYOUT;
pub use bins::{BIN_BYTES, BIN_MAX_SLOTS, BIN_MIN_SLOTS, CACHE_MAX_BYTES, CACHE_SLOTS};
pub(crate) use depot::Checked;

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
/// It is a plain value (under 16 KiB on 64-bit targets): put it where the
/// owner can reach it without a lock (a thread-local, a per-CPU area). It
/// must always be used with the same [`Heap`]. It holds at most
/// [`CACHE_MAX_BYTES`] of blocks; [`flush`](Self::flush) gives them all
/// back (at thread exit, before a CPU goes offline).
pub struct FrontCache {
    /// Blocks in each bin.
    len: [u16; NUM_CLASSES],
    /// Every bin's slots, one after the other (`bins::LAYOUT`).
    slots: [MaybeUninit<Entry>; CACHE_SLOTS],
}

const _: () = assert!(core::mem::size_of::<FrontCache>() <= 16 << 10);

// SAFETY: the entries are blocks lent to the cache by a heap that is `Sync`;
// moving the cache to another thread moves that loan with it.
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
            len: [0; NUM_CLASSES],
            slots: [MaybeUninit::uninit(); CACHE_SLOTS],
        }
    }

    /// Allocates like [`Heap::allocate`], from this cache when it has a
    /// block of the class (no lock), or after refilling the bin in a batch.
    /// LARGE requests go to the heap.
    #[inline]
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
    /// into this cache without a lock (half the bin goes back to the zones
    /// first if it is full). A double free is refused without a lock, even
    /// when another owner's cache holds the block; anything else the
    /// lock-free check cannot vouch for goes through the heap, which refuses
    /// what it did not hand out.
    ///
    /// # Safety
    ///
    /// If `ptr` is a live block of `heap`, nothing may use it afterwards.
    #[inline]
    pub unsafe fn deallocate<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
    ) -> Result<(), HeapError> {
        match heap.check_for_cache(ptr) {
            Checked::Keep(class, entry) => {
                if !self.push(class, entry) {
                    self.push_slow(heap, class, entry);
                }
                // SAFETY: a valid block the caller gave up.
                unsafe { free_mark::set(ptr) };
                Ok(())
            }
            // SAFETY: per the contract.
            Checked::Locked => unsafe { heap.deallocate(ptr) },
            Checked::DoubleFree => Err(heap.count_error(HeapError::DoubleFree)),
        }
    }

    /// Gives every cached block back to the heap.
    pub fn flush<P: PageProvider, R: RawMutex>(&mut self, heap: &Heap<P, R>) {
        for class in SizeClass::all() {
            let len = self.len[class.index()] as usize;
            if len > 0 {
                self.drain(heap, class, len);
            }
        }
    }

    /// Blocks the cache holds.
    pub fn cached_blocks(&self) -> usize {
        self.len.iter().map(|&n| n as usize).sum()
    }

    /// Bytes of the blocks the cache holds (block sizes).
    pub fn cached_bytes(&self) -> usize {
        SizeClass::all()
            .map(|c| self.len[c.index()] as usize * c.block_size())
            .sum()
    }

    /// The slots of `class`'s bin, as a raw range of the slot array.
    #[inline(always)]
    fn bin(class: SizeClass) -> (usize, usize) {
        (
            LAYOUT.start[class.index()] as usize,
            LAYOUT.slots[class.index()] as usize,
        )
    }

    #[inline(always)]
    fn pop(&mut self, class: SizeClass) -> Option<Entry> {
        let len = self.len[class.index()] as usize;
        if len == 0 {
            return None;
        }
        self.len[class.index()] = len as u16 - 1;
        let (start, _) = Self::bin(class);
        // SAFETY: slots below `len` were written by `push` or a refill.
        Some(unsafe { self.slots[start + len - 1].assume_init() })
    }

    /// Pushes unless the bin is full.
    #[inline(always)]
    fn push(&mut self, class: SizeClass, entry: Entry) -> bool {
        let len = self.len[class.index()] as usize;
        let (start, slots) = Self::bin(class);
        if len == slots {
            return false;
        }
        self.slots[start + len] = MaybeUninit::new(entry);
        self.len[class.index()] = len as u16 + 1;
        true
    }

    /// Records the requested size and clears the free mark of a cached block.
    #[inline(always)]
    fn hand_out(entry: Entry, class: SizeClass, size: usize) -> NonNull<u8> {
        // SAFETY: the entry's size slot belongs to its block, which the
        // cache holds and now hands out.
        unsafe {
            zone::store_size(entry.size_slot, class.geometry().size_width, size);
            free_mark::clear(entry.block);
        }
        entry.block
    }

    /// The bin is empty: refill it in one batch and hand out one block. If
    /// the heap has nothing, give back what this cache holds and try the
    /// heap once more (it trims before it fails).
    #[cold]
    #[inline(never)]
    fn allocate_slow<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        layout: Layout,
    ) -> Option<NonNull<u8>> {
        let (start, slots) = Self::bin(class);
        let bin = &mut self.slots[start..start + bins::batch(slots)];
        let filled = heap.refill_bin(class, bin);
        if filled > 0 {
            self.len[class.index()] = filled as u16;
            let entry = self.pop(class)?;
            return Some(Self::hand_out(entry, class, layout.size()));
        }
        self.flush(heap);
        heap.allocate(layout)
    }

    /// The bin is full: give its older half back, then keep `entry`.
    #[cold]
    #[inline(never)]
    fn push_slow<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        entry: Entry,
    ) {
        let (_, slots) = Self::bin(class);
        self.drain(heap, class, bins::batch(slots));
        let kept = self.push(class, entry);
        debug_assert!(kept);
    }

    /// Gives the `n` oldest blocks of `class`'s bin back to the heap.
    fn drain<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        n: usize,
    ) {
        let (start, _) = Self::bin(class);
        let len = self.len[class.index()] as usize;
        let n = n.min(len);
        // SAFETY: slots below `len` are initialised, and `MaybeUninit<Entry>`
        // has the layout of `Entry`.
        let oldest =
            unsafe { core::slice::from_raw_parts(self.slots[start..].as_ptr().cast::<Entry>(), n) };
        heap.take_back(class, oldest);
        self.slots.copy_within(start + n..start + len, start);
        self.len[class.index()] = (len - n) as u16;
    }
}
