//! The heap's own cache: a few free blocks per size class, kept by the heap
//! under the class lock it takes anyway, so that a plain `static Heap` (one
//! region, one CPU, no `FrontCache`) frees and reuses a block without the
//! zone's bookkeeping (issue 19).
//!
//! # Design
//!
//! Per class, a small LIFO stack of [`Entry`]s (a block and its size slot),
//! all in one *area* of [`AREA_BYTES`] that the heap maps from its provider
//! when a class first opens its stack (none in a span under
//! [`AREA_MIN_SPAN`], whose pages are worth more than the speed). Only
//! classes up to [`MAX_BLOCK`] bytes have a stack; each finds its own
//! through [`HeapCache`]'s `stacks` (one load, set when it opens). A
//! stack's length is kept in its class's state (`ClassState::stack_len`),
//! next to the lock: [`NO_STACK`] until the class opens its stack (its
//! first free that the stack does not take, or an allocation that carves),
//! so that the hot paths test one byte and never the area pointer;
//! [`NEVER_STACK`] once the class found that it has none (its frees stop
//! asking).
//!
//! - **Free** (`free.rs`): the block is validated exactly as the whole way
//!   does (releases, zone guard, block boundary, live bit, size slot, slack
//!   canary), each value read once, and claimed (the free mark's swap,
//!   which refuses a double free: no earlier read of the mark)
//!   ([`Heap::free_checked_fast`]). Then, if the stack has room, it is
//!   pushed: its zone is not touched, the block stays *lent*, as a
//!   `FrontCache` block is (live bit set, free mark set). If the stack is
//!   full or not open, the claimed block goes back to its zone at once
//!   (`free_claimed`), without a second round of checks; a class's first
//!   free opens its stack there and pushes the block instead. Any failed
//!   check leaves through one tail call under the same lock, which looks
//!   the zone up again and goes the whole way, which finds and reports the
//!   error: the fast path only says no, and keeps no lookup result in a
//!   register for it.
//! - **Allocate** (`alloc.rs`): a class whose stack holds a block pops the
//!   last one pushed (LIFO: a box freed and allocated again is the same
//!   cache lines) and hands it out as a front cache does (size slot, mark
//!   cleared, canary armed); otherwise the zones serve. A zone's block that
//!   is carved fresh for an empty (or unopened) stack comes with up to
//!   half a stack of the zone's next blocks, lent to the stack in one run
//!   (`carve.rs`): a kernel's tables filled at boot come from the stack.
//! - A block therefore moves zone -> stack by a free of a block the zone
//!   handed out or by carving ahead, stack -> program by an allocation,
//!   and stack -> zone by a drain ([`Heap::drain_heap_cache`]: `trim`,
//!   hence every OOM retry and `Drop`). A `FrontCache` never sees a
//!   stacked block: it is free (marked), so a cache's lock-free check
//!   refuses its free as a double free, as the zone path does.
//! - Misses are not batched the other way: a free past a full stack costs
//!   a zone push either way, and spilling half a stack moves more blocks
//!   than it saves trips (BENCHMARKS.md, branch `stack4096`).
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
//!   after the area is initialised) and read with Acquire by the class
//!   that opens its stack ([`Heap::open_stack`]), under its lock; once a
//!   class's `stack_len` is not [`NO_STACK`], its lock's holders read the
//!   pointer Relaxed (the lock orders them after that Acquire). The area
//!   goes back to the provider only in `Drop`.
//! - `show_alloc_mem`, `visit` and `stats` tell a stacked block from a held
//!   one by its size slot, which the free writes `CACHED` after its claim,
//!   and carving ahead before the block is pushed (`zone/sizes.rs`): they
//!   never read a block.
//! - A class's entry of `stacks` is written by `open_stack` under the
//!   class's lock, after the area's Acquire, and read under that lock only.

mod carve;
mod push;

pub(crate) use push::FastFree;

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
use crate::zone;

/// Bytes of the area: [`DEPTH`] entries per class that has a stack, in
/// whole pages (16 KiB on 64-bit targets, 8 KiB on 32-bit ones).
const AREA_BYTES: usize =
    (DEPTH * STACKED_CLASSES * size_of::<Entry>()).next_multiple_of(MIN_PAGE_SIZE);
/// A span smaller than this gets no area. In a small region every page
/// counts (`tests/small_heaps.rs`: the minimum-region load runs in 384
/// KiB), and blocks pinned in stacks keep zones from going back; here the
/// area is 3.1% of the span at most.
pub(crate) const AREA_MIN_SPAN: usize = 512 << 10;
/// Only classes of blocks up to this size have a stack: a kernel's
/// everyday objects. Bigger blocks go back to their zones at once, so the
/// stacks pin at most a few KiB per class (zones holding a stacked block
/// cannot empty until `trim`).
const MAX_BLOCK: usize = 1024;

/// A class's `stack_len` while it has no stack: the area is not made (or
/// could not be), or the class's blocks are too big. Above [`DEPTH`], so
/// that a push (`len < DEPTH`) and a pop (`len - 1 < DEPTH`, wrapping)
/// each test one byte against one constant.
pub(crate) const NO_STACK: u8 = u8::MAX;
/// A class's `stack_len` once its first free found that it has no stack
/// (its blocks are above [`MAX_BLOCK`]): its frees no longer try to open
/// one (a cold call each).
const NEVER_STACK: u8 = u8::MAX - 1;

/// Classes with a stack: the first ones, up to [`MAX_BLOCK`].
const STACKED_CLASSES: usize = {
    let mut n = 0;
    while n < NUM_CLASSES && CLASS_SIZES[n] as usize <= MAX_BLOCK {
        n += 1;
    }
    n
};

/// Blocks each class's stack holds at most, on every target (a power of
/// two, so that finding an entry is a shift and an add).
const DEPTH: usize = 32;
const _: () = assert!(DEPTH.is_power_of_two() && DEPTH < NEVER_STACK as usize);

/// The area pointer's value once making it failed or the span is too
/// small: no class opens a stack (until `trim`).
const NO_AREA: usize = 1;

/// The heap's handle on its area (its entries, [`DEPTH`] per class that
/// has a stack, nothing else): null until the first class to open its
/// stack makes it, then the area or [`NO_AREA`].
pub(crate) struct HeapCache {
    area: AtomicPtr<Entry>,
    /// Each class's stack in the area, once the class opened it (written by
    /// `open_stack` and read under the class's lock only): one load finds
    /// an entry, no area pointer and class offset to add on every push and
    /// pop.
    stacks: [AtomicPtr<Entry>; STACKED_CLASSES],
}

impl HeapCache {
    pub(crate) const fn new() -> Self {
        HeapCache {
            area: AtomicPtr::new(ptr::null_mut()),
            stacks: [const { AtomicPtr::new(ptr::null_mut()) }; STACKED_CLASSES],
        }
    }

    /// The area, if made.
    #[inline(always)]
    fn area(&self) -> Option<NonNull<Entry>> {
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

    /// Whether the area is neither made nor given up on.
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

    /// Entry `n` of class `i`'s stack.
    ///
    /// # Safety
    ///
    /// The caller holds class `i`'s lock and its `stack_len` is not
    /// [`NO_STACK`] (so the area is made and this thread is ordered after
    /// its making, see the module documentation); `n < DEPTH`.
    #[inline(always)]
    unsafe fn entry(&self, i: usize, n: usize) -> *mut Entry {
        if i >= STACKED_CLASSES {
            // SAFETY: per the contract, only those classes open a stack:
            // the index below needs no bounds check.
            unsafe { core::hint::unreachable_unchecked() }
        }
        // Relaxed: see the contract (the class's opener stored it under
        // the lock held now).
        let stack = self.stacks[i].load(Ordering::Relaxed);
        // SAFETY: per the contract the class's stack is open: `stack` is
        // its `DEPTH` entries in the area, and `n < DEPTH`.
        unsafe { stack.add(n) }
    }

    /// Whether the stack of the class locked through `locked` is open and
    /// has room for a block.
    #[inline(always)]
    pub(crate) fn has_room(&self, locked: &ClassState) -> bool {
        (locked.stack_len as usize) < DEPTH
    }

    /// Pops the block last pushed for `class`.
    ///
    /// The caller holds the lock of `class` (the `&mut ClassState` is the
    /// proof): each class's stack is only touched under its lock.
    #[inline(always)]
    pub(crate) fn pop(&self, locked: &mut ClassState, class: SizeClass) -> Option<Entry> {
        // `NO_STACK`, `NEVER_STACK` and 0 all wrap to at least `DEPTH`.
        let len = locked.stack_len.wrapping_sub(1);
        if len as usize >= DEPTH {
            return None;
        }
        locked.stack_len = len;
        // SAFETY: class lock held, its stack open, `len < DEPTH`; entries
        // below the old length were written by a push.
        Some(unsafe { self.entry(class.index(), len as usize).read() })
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

    /// Makes the area if the provider's span allows one; records
    /// [`NO_AREA`] if not. Cold: a class's first free calls it, or its
    /// first allocation that carves (`carve.rs`), never the heap's first
    /// allocation: the heap's first zone lands where a program's first
    /// blocks would.
    #[cold]
    fn make<P: PageProvider>(&self, provider: &P, span: Option<usize>, metadata: &AtomicUsize) {
        let no_area = ptr::without_provenance_mut(NO_AREA);
        let base = if span.is_some_and(|span| span < AREA_MIN_SPAN) {
            None
        } else {
            provider.map(AREA_BYTES, MIN_PAGE_SIZE)
        };
        let Some(base) = base else {
            let _ = self.area.compare_exchange(
                ptr::null_mut(),
                no_area,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return;
        };
        // Nothing to initialise: an entry is read only below its stack's
        // length, after a push wrote it.
        let area = base.as_ptr().cast::<Entry>();
        if self
            .area
            .compare_exchange(ptr::null_mut(), area, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            metadata.fetch_add(AREA_BYTES, Ordering::Relaxed);
        } else {
            // Another class made one first: ours was never seen.
            // SAFETY: mapped just now, `AREA_BYTES` long, unused.
            unsafe { provider.unmap(base, AREA_BYTES) };
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
        // SAFETY: made by `make`, `AREA_BYTES` long; unused per the contract.
        unsafe { provider.unmap(area.cast(), AREA_BYTES) };
        metadata.fetch_sub(AREA_BYTES, Ordering::Relaxed);
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
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
        // From the class (a width known from its index, a size from the
        // constant table), not its zone layout: no layout to load.
        let block_size = class.block_size();
        let block = entry.block;
        let mark = free_mark::value(block);
        // SAFETY: the block was lent to the stack and is handed out now:
        // its size slot and bytes are ours; `size` fits the class. The
        // canary goes after the mark is cleared (it may lie in its word).
        let intact = unsafe {
            zone::store_size(entry.size_slot, class.size_width(), size);
            let words = block.as_ptr().cast::<usize>();
            // Both read before either is judged: the mark must go.
            let (first, second) = (words.read(), free_mark::take(block));
            let intact = first == mark && second == mark;
            if size < block_size {
                canary::arm_past(block, size, mark);
            }
            intact
        };
        if !intact {
            // Out of line and last: the common path saves no register.
            return self.hand_out_reported(block, size, zeroed);
        }
        if zeroed {
            // SAFETY: the block is ours and at least `size` bytes long.
            unsafe { ptr::write_bytes(block.as_ptr(), 0, size) };
        }
        block
    }

    /// The end of [`hand_out_stacked`](Self::hand_out_stacked) for a block
    /// written after its free: reported, then zeroed if asked.
    #[cold]
    #[inline(never)]
    fn hand_out_reported(&self, block: NonNull<u8>, size: usize, zeroed: bool) -> NonNull<u8> {
        self.report_corruption(block);
        if zeroed {
            // SAFETY: the block is the caller's and at least `size` bytes long.
            unsafe { ptr::write_bytes(block.as_ptr(), 0, size) };
        }
        // Opaque: a result the optimiser knows to be the argument makes the
        // caller keep the argument in a saved register across the call,
        // instead of taking the result (a push and a pop on the common path).
        core::hint::black_box(block)
    }

    /// Opens `class`'s stack, making the area if it was never tried (see
    /// [`NO_AREA`]), if the class has one; returns whether it did. The
    /// caller holds `class`'s lock (`state`) and its stack is not open
    /// (`NO_STACK`). A class without a stack is marked [`NEVER_STACK`], so
    /// that its frees stop asking.
    #[cold]
    #[inline(never)]
    pub(crate) fn open_stack(&self, state: &mut ClassState, class: SizeClass) -> bool {
        if class.index() >= STACKED_CLASSES {
            state.stack_len = NEVER_STACK;
            return false;
        }
        if self.heap_cache.untried() {
            self.heap_cache.make(
                &self.provider,
                self.span_bytes(),
                &self.counters.metadata_bytes,
            );
        }
        // Acquire (in `area`): the area's making happens before every use
        // of it under this class's lock from now on.
        let Some(area) = self.heap_cache.area() else {
            return false;
        };
        // SAFETY: `class.index() < STACKED_CLASSES`: its `DEPTH` entries
        // lie inside the area's `AREA_BYTES`.
        let stack = unsafe { area.as_ptr().add(class.index() * DEPTH) };
        // Under the class lock, as every read of it.
        self.heap_cache.stacks[class.index()].store(stack, Ordering::Relaxed);
        state.stack_len = 0;
        true
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
