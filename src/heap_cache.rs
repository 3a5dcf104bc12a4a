//! The heap's own cache: a few free blocks per size class, kept by the heap
//! under the class lock it takes anyway, so that a plain `static Heap` (one
//! region, one CPU, no `FrontCache`) frees and reuses a block without the
//! zone's bookkeeping (issue 19).
//!
//! # Design
//!
//! Per class, a small LIFO stack of [`Entry`]s (a block and its size slot),
//! all in one *area* of [`AREA_BYTES`] that the heap maps from its provider
//! at its first free of a small block (none in a span under
//! [`AREA_MIN_SPAN`], whose pages are worth more than the speed). Only
//! classes up to [`MAX_BLOCK`] bytes have a stack.
//!
//! - **Free** (`free.rs`): the block is validated exactly as before (page
//!   map, zone guard, block boundary, live bit, free mark, slack canary),
//!   then, if its class's stack has room, marked free and pushed. Its zone
//!   is not touched: the block stays *lent*, as a `FrontCache` block is
//!   (live bit set, free mark set).
//! - **Allocate** (`alloc.rs`): a class whose stack holds a block pops the
//!   last one pushed (LIFO: a box freed and allocated again is the same
//!   cache lines) and hands it out as a front cache does (size slot, mark
//!   cleared, canary armed); otherwise the zones serve.
//! - A block therefore moves zone -> stack only by a free of a block the
//!   zone handed out, stack -> program by an allocation, and stack -> zone
//!   by a drain ([`Heap::drain_heap_cache`]: `trim`, hence every OOM
//!   retry and `Drop`). A `FrontCache` never sees a stacked block: it is
//!   free (marked), so a cache's lock-free check refuses its free as a
//!   double free, as the zone path does.
//!
//! # Why it is safe
//!
//! - Stacks live outside the blocks (a use-after-free write cannot poison
//!   them) and outside the page map (a pointer into the area is refused as
//!   foreign).
//! - Class `i`'s stack is read and written only under class `i`'s lock: it
//!   is shared across threads exactly as the zones of that class are, and
//!   needs no protocol of its own. `lock_all` (fork) covers it with the
//!   class locks.
//! - The area pointer is set once (compare-and-swap from null, Release,
//!   after the area is initialised) and read with Acquire; the area goes
//!   back to the provider only in `Drop`.
//! - `show_alloc_mem`, `visit` and `stats` need nothing: a stacked block is
//!   lent and marked, which is how they already tell cached blocks apart.

use core::mem::size_of;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use lock_api::RawMutex;

use crate::cache::Entry;
use crate::canary;
use crate::free_mark;
use crate::heap::{ClassState, Heap};
use crate::page_map::Owner;
use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::size_class::{CLASS_SIZES, NUM_CLASSES, SizeClass};
use crate::zone::{self, ZoneHeader};

/// Bytes of the area: 15 blocks per class that has a stack.
const AREA_BYTES: usize = 2 * MIN_PAGE_SIZE;
/// A span smaller than this gets no area. In a small region every page
/// counts (`tests/small_heaps.rs`: the minimum-region load runs in 384
/// KiB), and blocks pinned in stacks keep zones from going back; here the
/// area is 1.6% of the span at most.
pub(crate) const AREA_MIN_SPAN: usize = 512 << 10;
/// Only classes of blocks up to this size have a stack: a kernel's
/// everyday objects. Bigger blocks go back to their zones at once, so the
/// stacks pin at most a few KiB per class (zones holding a stacked block
/// cannot empty until `trim`).
const MAX_BLOCK: usize = 1024;

/// The area's header; the entries follow it, [`DEPTH`] per class that
/// has a stack.
#[repr(C, align(16))]
struct Area {
    /// Bytes of the area (what goes back to the provider).
    bytes: usize,
    /// Blocks in each class's stack.
    lens: [u8; NUM_CLASSES],
    /// The most each class's stack may hold ([`DEPTH`], or 0).
    caps: [u8; NUM_CLASSES],
}

/// Where the entries start: right after the header.
const ENTRIES_OFFSET: usize = size_of::<Area>();
const _: () = assert!(ENTRIES_OFFSET.is_multiple_of(align_of::<Entry>()));

/// Classes with a stack: the first ones, up to [`MAX_BLOCK`].
const STACKED_CLASSES: usize = {
    let mut n = 0;
    while n < NUM_CLASSES && CLASS_SIZES[n] as usize <= MAX_BLOCK {
        n += 1;
    }
    n
};

/// Blocks each class's stack holds at most: what the area has room for
/// (a constant, so that finding an entry is a shift and an add).
const DEPTH: usize = {
    let depth = (AREA_BYTES - ENTRIES_OFFSET) / size_of::<Entry>() / STACKED_CLASSES;
    if depth > u8::MAX as usize {
        u8::MAX as usize
    } else {
        depth
    }
};

/// Blocks of class `index` a stack may hold: [`DEPTH`], or none above
/// [`MAX_BLOCK`].
const fn cap_of(index: usize) -> usize {
    if index < STACKED_CLASSES { DEPTH } else { 0 }
}

/// The area pointer's value once making it failed or the span is too
/// small: the hot paths then do not try again (until `trim`).
const NO_AREA: usize = 1;

/// The heap's handle on its area: null until the first free of a TINY or
/// SMALL block makes it, then the area or [`NO_AREA`].
pub(crate) struct HeapCache {
    area: AtomicPtr<Area>,
}

impl HeapCache {
    pub(crate) const fn new() -> Self {
        HeapCache {
            area: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The area, if made.
    #[inline(always)]
    fn area(&self) -> Option<NonNull<Area>> {
        // Plain `if`s, no combinators, here and on every path through
        // this file that a free or an allocation takes: a kernel's debug
        // build (opt-level 0) calls each combinator as a function.
        let area = self.area.load(Ordering::Acquire);
        if area.addr() > NO_AREA {
            // SAFETY: above `NO_AREA`, not null.
            Some(unsafe { NonNull::new_unchecked(area) })
        } else {
            None
        }
    }

    /// Whether the area is neither made nor given up on: a free makes it.
    #[inline(always)]
    fn untried(&self) -> bool {
        self.area.load(Ordering::Relaxed).is_null()
    }

    /// Tries again after `trim` gave memory back, if making it failed.
    pub(crate) fn retry_later(&self) {
        let _ = self.area.compare_exchange(
            ptr::without_provenance_mut(NO_AREA),
            ptr::null_mut(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Pops the block last pushed for `class`.
    ///
    /// The caller holds the lock of `class` (the `&mut ClassState` is the
    /// proof): each class's stack is only touched under its lock.
    #[inline(always)]
    pub(crate) fn pop(&self, _locked: &mut ClassState, class: SizeClass) -> Option<Entry> {
        // Not `?`: at opt-level 0 that is a call to `Try::branch`.
        #[allow(clippy::question_mark)]
        let Some(area) = self.area() else {
            return None;
        };
        let area = area.as_ptr();
        let i = class.index();
        // SAFETY: a made area is valid until `Drop`; `i < NUM_CLASSES`
        // (and `lens[i]` is 0 unless `i < STACKED_CLASSES`);
        // class `i`'s part is ours under its lock; entries below `lens[i]`
        // were written by `push`, inside class `i`'s `DEPTH` entries.
        unsafe {
            let len_at = len_of(area, i);
            let len = *len_at;
            if len == 0 {
                return None;
            }
            let len = len - 1;
            *len_at = len;
            Some(entry_at(area, i, len as usize).read())
        }
    }

    /// Pushes `entry` (a validated free block of `class`, about to be
    /// marked free by the caller) unless the stack is full. The caller
    /// holds the lock of `class`; `area` is the made area.
    #[inline(always)]
    fn push(
        &self,
        _locked: &mut ClassState,
        area: NonNull<Area>,
        class: SizeClass,
        entry: Entry,
    ) -> bool {
        let area = area.as_ptr();
        let i = class.index();
        // SAFETY: as in `pop`; `len < caps[i] <= DEPTH`.
        unsafe {
            let len_at = len_of(area, i);
            let len = *len_at;
            if len == *cap_of_area(area, i) {
                return false;
            }
            entry_at(area, i, len as usize).write(entry);
            *len_at = len + 1;
        }
        true
    }

    /// Takes every block of `class`'s stack, last pushed first. The caller
    /// holds the lock of `class`.
    pub(crate) fn take_all(
        &self,
        locked: &mut ClassState,
        class: SizeClass,
        mut f: impl FnMut(&mut ClassState, Entry),
    ) {
        while let Some(entry) = self.pop(locked, class) {
            f(locked, entry);
        }
    }

    /// Makes the area if there is none and the provider's span allows one;
    /// records [`NO_AREA`] if not. Cold: the first free of a small block
    /// calls it (not an allocation: the heap's first runs land where a
    /// program's first blocks would).
    #[cold]
    pub(crate) fn make<P: PageProvider>(
        &self,
        provider: &P,
        span: Option<usize>,
        metadata: &AtomicUsize,
    ) {
        let no_area = ptr::without_provenance_mut(NO_AREA);
        if span.is_some_and(|span| span < AREA_MIN_SPAN) {
            let _ = self.area.compare_exchange(
                ptr::null_mut(),
                no_area,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return;
        }
        let bytes = AREA_BYTES;
        let Some(base) = provider.map(bytes, MIN_PAGE_SIZE) else {
            let _ = self.area.compare_exchange(
                ptr::null_mut(),
                no_area,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return;
        };
        let mut caps = [0; NUM_CLASSES];
        for (i, cap) in caps.iter_mut().enumerate() {
            *cap = cap_of(i) as u8;
        }
        let area = base.as_ptr().cast::<Area>();
        // SAFETY: a fresh run of `bytes >= size_of::<Area>()` bytes, ours,
        // page aligned.
        unsafe {
            area.write(Area {
                bytes,
                lens: [0; NUM_CLASSES],
                caps,
            })
        };
        if self
            .area
            .compare_exchange(ptr::null_mut(), area, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            metadata.fetch_add(bytes, Ordering::Relaxed);
        } else {
            // Another class made one first: ours was never seen.
            // SAFETY: mapped just now, `bytes` long, unused.
            unsafe { provider.unmap(base, bytes) };
        }
    }

    /// Gives the area back. Every stack must be empty (`trim` drained them).
    ///
    /// # Safety
    ///
    /// Nothing uses the heap any more (`Drop`).
    pub(crate) unsafe fn release<P: PageProvider>(&mut self, provider: &P, metadata: &AtomicUsize) {
        let area = core::mem::replace(self.area.get_mut(), ptr::null_mut());
        if area.addr() <= NO_AREA {
            return;
        }
        let area = NonNull::new(area).expect("above NO_AREA");
        // SAFETY: made by `make`, `bytes` long; unused per the contract.
        unsafe {
            let bytes = (*area.as_ptr()).bytes;
            debug_assert!((*area.as_ptr()).lens.iter().all(|&n| n == 0));
            provider.unmap(area.cast(), bytes);
            metadata.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

/// Where class `i`'s stack length is (raw: no slice call at opt-level 0).
///
/// # Safety
///
/// `area` is a made area, `i < NUM_CLASSES`.
#[inline(always)]
unsafe fn len_of(area: *mut Area, i: usize) -> *mut u8 {
    // SAFETY: per the contract, inside the header's `lens`.
    unsafe { ptr::addr_of_mut!((*area).lens).cast::<u8>().add(i) }
}

/// Where class `i`'s stack capacity is.
///
/// # Safety
///
/// As for [`len_of`].
#[inline(always)]
unsafe fn cap_of_area(area: *mut Area, i: usize) -> *mut u8 {
    // SAFETY: per the contract, inside the header's `caps`.
    unsafe { ptr::addr_of_mut!((*area).caps).cast::<u8>().add(i) }
}

/// Entry `n` of class `i`.
///
/// # Safety
///
/// `area` is a made area, `i < STACKED_CLASSES`, `n < DEPTH`.
#[inline(always)]
unsafe fn entry_at(area: *mut Area, i: usize, n: usize) -> *mut Entry {
    // SAFETY: per the contract, inside the area's `bytes`.
    unsafe {
        area.cast::<u8>()
            .add(ENTRIES_OFFSET)
            .cast::<Entry>()
            .add(i * DEPTH + n)
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Keeps the block at `ptr` in `class`'s stack if it is a handed-out
    /// block (not a span) of `zone` with its canary intact and the stack
    /// has room; returns whether it did. Every check of `validate_small`
    /// and `check_canary` is made, each read once; on any doubt it returns
    /// `false` and the caller's full path decides and reports.
    ///
    /// # Safety
    ///
    /// The page map named `zone` (of `class`) for `ptr` when the release
    /// count was `seen`; the caller holds `class`'s lock (`state`).
    #[inline(always)]
    pub(crate) unsafe fn free_to_heap_cache(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
    ) -> bool {
        // Nothing unregistered since the lookup: the zone is alive (its
        // class lock is held, so it stays so). Otherwise the full path
        // looks again.
        // SAFETY (all the block below): a live zone, its lock held; the
        // bitmap, size slot and block reads are guarded by `index < carved`.
        unsafe {
            // Classes without a stack go the full way at once.
            if class.index() >= STACKED_CLASSES {
                return false;
            }
            let area = match self.heap_cache.area() {
                Some(area) => area,
                None => match self.make_heap_cache() {
                    Some(area) => area,
                    None => return false,
                },
            };
            if self.page_map.releases() != seen || !zone::guard_ok(zone) {
                return false;
            }
            let g = zone::layout_of(zone);
            let (addr, start) = (ptr.as_ptr().addr(), zone.as_ptr().addr() + g.blocks_offset);
            if addr < start {
                return false;
            }
            let offset = addr - start;
            let index = zone::div_block(offset, g);
            if index >= zone::carved_hint(zone)
                || index * g.block_size != offset
                || !zone::is_live(zone, index)
            {
                return false;
            }
            let mark = free_mark::value(ptr);
            if free_mark::is_set_to(ptr, mark) {
                return false;
            }
            let size_slot = zone::size_slot_in(zone, g, index);
            let requested = zone::load_own_size(size_slot, g.size_width);
            if requested > g.block_size || !canary::intact_for(ptr, requested, g.block_size, mark) {
                return false;
            }
            let entry = Entry {
                block: ptr,
                size_slot,
            };
            if !self.heap_cache.push(state, area, class, entry) {
                return false;
            }
            // The class lock does not keep a front cache's lock-free free of
            // the same block out: the claim decides (`free_mark.rs`). The
            // loser takes its entry back (nothing else pushed meanwhile: the
            // lock is held) and the full way reports the double free.
            if !free_mark::claim(ptr, mark) {
                let _ = self.heap_cache.pop(state, class);
                return false;
            }
            // The mark in the first word too: a block written after its free
            // (a use-after-free) is reported when it is handed out again.
            ptr.as_ptr().cast::<usize>().write(mark);
        }
        true
    }

    /// Hands out a block popped from the heap's stack: records its size,
    /// clears its mark, arms its slack canary, zeroes it if asked. A block
    /// whose first two words no longer hold its mark was written after it
    /// was freed: reported (the block itself is sound, the stack lies
    /// outside the blocks). The caller holds no lock.
    #[inline(always)]
    pub(crate) fn hand_out_stacked(
        &self,
        entry: Entry,
        class: SizeClass,
        size: usize,
        zeroed: bool,
    ) -> NonNull<u8> {
        let g = class.geometry();
        let block = entry.block;
        let mark = free_mark::value(block);
        // SAFETY: the block was lent to the stack and is handed out now:
        // its size slot and bytes are ours; `size` fits the class. The
        // canary goes after the mark is cleared (it may lie in its word).
        let intact = unsafe {
            zone::store_size(entry.size_slot, g.size_width, size);
            let words = block.as_ptr().cast::<usize>();
            // Both read before either is judged: the mark must go.
            let (first, second) = (words.read(), free_mark::take(block));
            let intact = first == mark && second == mark;
            if size < g.block_size {
                canary::arm_past(block, size, mark);
            }
            intact
        };
        if !intact {
            self.report_corruption(block);
        }
        if zeroed {
            // SAFETY: the block is ours and at least `size` bytes long.
            unsafe { ptr::write_bytes(block.as_ptr(), 0, size) };
        }
        block
    }

    /// Makes the area at the first free, if it was never tried (see
    /// [`NO_AREA`]), and returns it.
    #[cold]
    #[inline(never)]
    fn make_heap_cache(&self) -> Option<NonNull<Area>> {
        if !self.heap_cache.untried() {
            return None;
        }
        self.heap_cache.make(
            &self.provider,
            self.span_bytes(),
            &self.counters.metadata_bytes,
        );
        self.heap_cache.area()
    }

    /// Sends every block of `class`'s stack back to its zone (a lent block
    /// returning: it was validated when it was pushed). The caller holds
    /// the class lock (`state`).
    pub(crate) fn drain_heap_cache(&self, state: &mut ClassState, class: SizeClass) {
        self.heap_cache.take_all(state, class, |state, entry| {
            let Some(Owner::Zone { base, .. }) = self.page_map.lookup(entry.block.as_ptr().addr())
            else {
                unreachable!("a stacked block's zone is registered: the block is lent");
            };
            let zone = base.cast();
            // SAFETY: the zone is live (it lends this block), its class lock
            // is held; the block is a lent block boundary of it, marked
            // free, which `push` marks again.
            unsafe {
                let index = zone::block_index(zone, entry.block)
                    .expect("a stacked block is a lent block of its zone");
                free_mark::clear(entry.block);
                self.free_validated(state, zone, index, entry.block);
            }
        });
    }
}
