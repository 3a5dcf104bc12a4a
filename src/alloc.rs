//! Allocation: the fast path takes a block from the class's first zone with
//! room; the slow paths map a new zone, or fall back to a LARGE run.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use lock_api::{MutexGuard, RawMutex};

use crate::canary;
use crate::free_mark;
use crate::heap::{ClassState, Heap};
use crate::provider::PageProvider;
use crate::size_class::{DEFAULT_ALIGN, SizeClass};
use crate::zone::{self, Popped, ZoneHeader};

/// In a span of at most [`TINY_SPAN`] bytes, a request whose coarse class
/// has no free block takes a free block of a class up to this many times
/// its size before a new zone is mapped for it, and at least up to
/// [`SCARCE_REACH_FLOOR`] bytes. Such a heap has fewer pages than coarse
/// classes: a page mapped for one class's few blocks is soon unmapped
/// again (100 KiB under churn: 26 provider calls in 20,000 steps with the
/// reach, 597 without).
const TINY_SPAN_REACH: usize = 2;
/// See [`TINY_SPAN_REACH`]: a 20-byte request takes a free 64- or 128-byte
/// block rather than a page for a class of 32-byte blocks that would
/// mostly stay empty.
const SCARCE_REACH_FLOOR: usize = 128;
/// See [`TINY_SPAN_REACH`]. In a larger span a request borrows no bigger
/// block until no zone can be mapped: joining smaller free blocks into a
/// span (`span.rs`) then wastes less than a block up to twice the
/// request's size did (`--min-region`: 372-380 KiB instead of 384-404).
const TINY_SPAN: usize = 128 << 10;

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Allocates a block for `layout`. Returns `None` when memory is
    /// exhausted; the heap stays usable.
    ///
    /// Any power-of-two alignment works; requests of size 0 get a real,
    /// unique block.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Option<NonNull<u8>> {
        self.allocate_inner(layout, false)
    }

    /// Like [`allocate`](Self::allocate), with the block's first
    /// `layout.size()` bytes zeroed (without writing pages the provider
    /// already zeroed).
    #[inline]
    pub fn allocate_zeroed(&self, layout: Layout) -> Option<NonNull<u8>> {
        self.allocate_inner(layout, true)
    }

    #[inline]
    fn allocate_inner(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
        self.allocate_with(layout, zeroed, true)
    }

    /// The allocation, calling the OOM handler on failure if `oom_hook`
    /// (false for the retry after the handler made room).
    #[inline(always)]
    pub(crate) fn allocate_with(
        &self,
        layout: Layout,
        zeroed: bool,
        oom_hook: bool,
    ) -> Option<NonNull<u8>> {
        if layout.align() > DEFAULT_ALIGN {
            return self.allocate_aligned(layout, zeroed, oom_hook);
        }
        match SizeClass::for_size(layout.size()) {
            Some(class) => self.alloc_small(class, layout, zeroed, oom_hook),
            None => self.alloc_large_or_retry(layout, zeroed, oom_hook),
        }
    }

    /// [`allocate_with`](Self::allocate_with) above the default alignment,
    /// out of line: the common path then carries none of the aligned class
    /// search (whose loop would make it save registers).
    #[inline(never)]
    fn allocate_aligned(
        &self,
        layout: Layout,
        zeroed: bool,
        oom_hook: bool,
    ) -> Option<NonNull<u8>> {
        match SizeClass::for_layout(layout.size(), layout.align()) {
            Some(class) => self.alloc_small(class, layout, zeroed, oom_hook),
            None => self.alloc_large_or_retry(layout, zeroed, oom_hook),
        }
    }

    /// Always inlined: with `IrqSpinLock` (a few instructions more per
    /// lock) the optimiser left it out of line, a call and the class's
    /// computation twice on every allocation (bench-kernel: 6 of the lock's
    /// 21 per operation).
    #[inline(always)]
    pub(crate) fn alloc_small(
        &self,
        class: SizeClass,
        layout: Layout,
        zeroed: bool,
        oom_hook: bool,
    ) -> Option<NonNull<u8>> {
        // The class lock is held until a block is taken. A class with no
        // listed zone (it needs a new one) takes the slow path, so the
        // common path carries no provider call.
        let mut state = self.class(class);
        // The heap's own stack first (`heap_cache.rs`), in a path kept small.
        if let Some(entry) = self.heap_cache.pop(&mut state, class) {
            drop(state);
            return Some(self.hand_out_stacked(entry, class, layout.size(), zeroed));
        }
        self.alloc_from_zones(state, class, layout, zeroed, oom_hook)
    }

    /// [`alloc_small`](Self::alloc_small) when the heap's stack is empty:
    /// from the zones, under the lock already held (`state`).
    #[inline(never)]
    fn alloc_from_zones(
        &self,
        mut state: MutexGuard<'_, R, ClassState>,
        class: SizeClass,
        layout: Layout,
        zeroed: bool,
        oom_hook: bool,
    ) -> Option<NonNull<u8>> {
        let popped = Self::take_listed(&mut state, layout.size());
        if let Some(popped) = &popped
            && popped.carved
        {
            // A fresh block: the next ones go to the stack, a pop each
            // for the allocations to come (`heap_cache/carve.rs`).
            // SAFETY: the zone carved it under the lock held; the stack
            // was found empty.
            unsafe { self.carve_ahead(&mut state, class, popped.zone, popped.ptr) };
        }
        drop(state);
        match popped {
            Some(popped) => Some(self.hand_out(popped, layout.size(), zeroed)),
            None => self.alloc_small_slow(class, layout, zeroed, oom_hook),
        }
    }

    /// A block of `class` recorded as holding `size` bytes: from a listed
    /// zone, or from a new one. The caller holds the class lock (`state`).
    #[inline(always)]
    pub(crate) fn take_block(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        size: usize,
    ) -> Option<Popped> {
        match Self::pop_listed(state) {
            Some((zone, popped)) => Some(Self::finish_pop(state, zone, popped, size)),
            None => self.alloc_from_new_zone(state, class, size),
        }
    }

    /// A block of a listed zone recorded as holding `size` bytes, if a zone
    /// has room. The caller holds the class lock (`state`).
    #[inline(always)]
    fn take_listed(state: &mut ClassState, size: usize) -> Option<Popped> {
        let (zone, popped) = Self::pop_listed(state)?;
        Some(Self::finish_pop(state, zone, popped, size))
    }

    /// The block's address, its first `size` bytes zeroed if asked (and not
    /// known to be zero already). Reports a free list found corrupt on the
    /// way. The caller holds no lock.
    #[inline(always)]
    fn hand_out(&self, popped: Popped, size: usize, zeroed: bool) -> NonNull<u8> {
        if popped.link_cut {
            self.report_corruption(popped.ptr);
        }
        // SAFETY: the block is ours to hand out, of its zone's block size,
        // and `size` fits it; the canary goes after the mark is cleared (it
        // may lie in the mark's word).
        unsafe {
            free_mark::clear(popped.ptr);
            canary::arm(popped.ptr, size, zone::layout_of(popped.zone).block_size);
        }
        if zeroed && !popped.zeroed {
            // SAFETY: the block is ours and at least `size` bytes long.
            unsafe { ptr::write_bytes(popped.ptr.as_ptr(), 0, size) };
        }
        popped.ptr
    }

    /// Pops a block from the first listed zone. Unlists the zone if that
    /// made it full.
    #[inline(always)]
    fn pop_listed(state: &mut ClassState) -> Option<(NonNull<ZoneHeader>, Popped)> {
        let zone = NonNull::new(state.with_room)?;
        // SAFETY: listed zones are live; the class lock is held (`&mut state`).
        unsafe {
            if zone::state(zone).live == 0 {
                state.empty_zones -= 1;
            }
            let popped = zone::pop(zone)?;
            Some((zone, popped))
        }
    }

    /// A block of `zone`, a listed zone of the class (the one a front
    /// cache's refill prefers: `cache/affinity.rs`), recorded as holding
    /// `size` bytes; unlists the zone if that made it full. The caller
    /// holds the class lock (`state`).
    ///
    /// # Safety
    ///
    /// `zone` is a live zone of `state`'s class, on its with-room list.
    #[inline]
    pub(crate) unsafe fn take_from(
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        size: usize,
    ) -> Option<Popped> {
        // SAFETY: per the contract; the class lock is held.
        let popped = unsafe {
            if zone::state(zone).live == 0 {
                state.empty_zones -= 1;
            }
            zone::pop(zone)?
        };
        Some(Self::finish_pop(state, zone, popped, size))
    }

    /// Bookkeeping after a pop: requested size, counters, full zones unlisted.
    #[inline(always)]
    fn finish_pop(
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        popped: Popped,
        size: usize,
    ) -> Popped {
        // SAFETY: live zone, lock held, index from `pop`, size fits the class.
        unsafe {
            zone::set_requested(zone, popped.index, size);
            if zone::is_full(zone) {
                state.unlink(zone);
            }
        }
        popped
    }

    /// No listed zone has room: map a new one.
    #[cold]
    #[inline(never)]
    fn alloc_from_new_zone(
        &self,
        state: &mut ClassState,
        class: SizeClass,
        size: usize,
    ) -> Option<Popped> {
        let zone = self.new_zone(class)?;
        state.zones += 1;
        // SAFETY: fresh zone of this class, not listed; lock held.
        unsafe {
            state.link_front(zone);
            let popped = zone::pop(zone)?;
            Some(Self::finish_pop(state, zone, popped, size))
        }
    }

    /// The provider refused a zone. Give back what the heap caches and try
    /// once more; failing that, take a free block of a larger class (a full
    /// small heap has room in other classes' zones), and failing that,
    /// serve the block from a run of its own.
    #[cold]
    #[inline(never)]
    fn alloc_small_slow(
        &self,
        class: SizeClass,
        layout: Layout,
        zeroed: bool,
        oom_hook: bool,
    ) -> Option<NonNull<u8>> {
        // A small region's pool (`coalesce/`) serves its SMALL requests,
        // and TINY ones it has a free block for.
        if let Some(served) = self.pool_route(class, layout, zeroed) {
            // A request the pool cannot place (a region too small for a
            // segment around it) may still fit a LARGE run's tighter header.
            return served
                .or_else(|| self.alloc_large(layout.size(), layout.align(), zeroed))
                .or_else(|| self.oom_retry(layout, zeroed, oom_hook));
        }
        // Where zones are scarce, a class between the coarse steps borrows
        // its step's zones (see `size_class`).
        let class = if class.prefers_full_zone(self.span_bytes()) {
            class
        } else {
            let coarse = class.scarce_class();
            let tiny_span = self.span_bytes().is_some_and(|span| span <= TINY_SPAN);
            let limit = if tiny_span {
                (layout.size() * TINY_SPAN_REACH).max(SCARCE_REACH_FLOOR)
            } else {
                0
            };
            if let Some(popped) = self.take_from_classes(coarse, layout, limit) {
                return Some(self.hand_out(popped, layout.size(), zeroed));
            }
            coarse
        };
        let popped = self.take_block(&mut self.class(class), class, layout.size());
        if let Some(popped) = popped {
            return Some(self.hand_out(popped, layout.size(), zeroed));
        }
        if self.trim() > 0 {
            let popped = self.take_block(&mut self.class(class), class, layout.size());
            if let Some(popped) = popped {
                return Some(self.hand_out(popped, layout.size(), zeroed));
            }
        }
        if let Some(span) = self.alloc_span(class, layout, zeroed) {
            return Some(span);
        }
        if let Some(popped) = self.take_from_larger_class(class, layout) {
            return Some(self.hand_out(popped, layout.size(), zeroed));
        }
        self.alloc_large(layout.size(), layout.align(), zeroed)
            .or_else(|| self.oom_retry(layout, zeroed, oom_hook))
    }

    /// A block of the smallest class above `class` that has one free in a
    /// zone it already has (no provider call). Its blocks are multiples of
    /// 16 bytes aligned to their lowest set bit, so the alignment holds if
    /// the block size is a multiple of it.
    fn take_from_larger_class(&self, class: SizeClass, layout: Layout) -> Option<Popped> {
        let next = SizeClass::from_index(class.index() + 1)?;
        self.take_from_classes(next, layout, usize::MAX)
    }

    /// A free block of `first` or a larger class whose block size is at
    /// most `limit` bytes (`first` is always tried), from a zone it
    /// already has.
    fn take_from_classes(&self, first: SizeClass, layout: Layout, limit: usize) -> Option<Popped> {
        let mut index = first.index();
        while let Some(larger) = SizeClass::from_index(index) {
            if larger.block_size() > limit && index > first.index() {
                break;
            }
            index += 1;
            if larger.block_size() % layout.align() != 0 {
                continue;
            }
            let mut state = self.class(larger);
            if let Some((zone, popped)) = Self::pop_listed(&mut state) {
                return Some(Self::finish_pop(&mut state, zone, popped, layout.size()));
            }
        }
        None
    }

    #[inline(never)]
    fn alloc_large_or_retry(
        &self,
        layout: Layout,
        zeroed: bool,
        oom_hook: bool,
    ) -> Option<NonNull<u8>> {
        self.alloc_large(layout.size(), layout.align(), zeroed)
            .or_else(|| self.alloc_large_after_trim(layout, zeroed))
            .or_else(|| self.oom_retry(layout, zeroed, oom_hook))
    }

    /// Everything failed: the OOM handler's turn (`oom.rs`), unless this is
    /// already the retry it asked for.
    #[cold]
    fn oom_retry(&self, layout: Layout, zeroed: bool, oom_hook: bool) -> Option<NonNull<u8>> {
        if oom_hook {
            self.out_of_memory(layout, zeroed)
        } else {
            None
        }
    }

    #[cold]
    fn alloc_large_after_trim(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
        // A request no trim can make room for fails now, caches intact.
        if !self.provider.may_map_later(layout.size()) || self.trim() == 0 {
            return None;
        }
        self.alloc_large(layout.size(), layout.align(), zeroed)
    }

    /// Takes up to `out.len()` blocks of `class` under one lock acquisition
    /// and writes them to `out`; returns how many. For a per-thread or
    /// per-CPU front cache: the blocks are recorded with the class's full
    /// block size as their requested size.
    pub fn refill(&self, class: SizeClass, out: &mut [*mut u8]) -> usize {
        self.take_batch(class, out.len(), |i, popped| {
            // SAFETY: the block is the caller's from now on.
            unsafe { free_mark::clear(popped.ptr) };
            out[i] = popped.ptr.as_ptr();
            true
        })
    }

    /// Takes up to `max` blocks of `class` under one acquisition of its
    /// lock, recorded with the class's block size, and hands the `i`-th to
    /// `keep(i, block)`, which returns whether to take another. A free list
    /// found corrupt on the way is reported once the lock is released.
    /// Returns how many blocks were taken. (The batch half of `refill` and
    /// of a front cache's refill.)
    pub(crate) fn take_batch(
        &self,
        class: SizeClass,
        max: usize,
        keep: impl FnMut(usize, Popped) -> bool,
    ) -> usize {
        let size = class.block_size();
        self.take_batch_with(
            class,
            max,
            |state| self.take_block(state, class, size),
            keep,
        )
    }

    /// [`take_batch`](Self::take_batch) with the blocks' source given:
    /// `next` takes one block under the class lock (`None`: no more). The
    /// one loop of every batch (`cache/affinity.rs` takes from a home).
    #[inline(always)]
    pub(crate) fn take_batch_with(
        &self,
        class: SizeClass,
        max: usize,
        mut next: impl FnMut(&mut ClassState) -> Option<Popped>,
        mut keep: impl FnMut(usize, Popped) -> bool,
    ) -> usize {
        let mut cut_at = None;
        let mut taken = 0;
        {
            let mut state = self.class(class);
            while taken < max {
                let Some(popped) = next(&mut state) else {
                    break;
                };
                if popped.link_cut {
                    cut_at = Some(popped.ptr);
                }
                taken += 1;
                if !keep(taken - 1, popped) {
                    break;
                }
            }
        }
        if let Some(at) = cut_at {
            self.report_corruption(at);
        }
        taken
    }
}
