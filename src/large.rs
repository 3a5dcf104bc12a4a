//! LARGE blocks: one page run each.
//!
//! ```text
//! run start                       user pointer = start + user_offset
//! | LargeHeader | pad to alignment | block ...                      | tail of last page |
//! ```
//!
//! Only the granule holding the user pointer is registered in the page map,
//! so any other address inside the run is refused by `free`.
//!
//! # The LARGE cache
//!
//! Freed runs are kept for reuse, because programs that free big buffers
//! allocate more of them soon, from any thread and of other sizes (an
//! `mmap`/`munmap` pair plus page faults costs far more than reuse). The
//! cache is shared by all threads, under the LARGE lock, and bounded:
//! - [`LARGE_CACHE_SLOTS`] runs (a burst of frees, a thread ending with
//!   its buffers, fits) and [`LARGE_CACHE_BYTES_MAX`] bytes;
//! - a request takes the smallest run that fits without wasting more than
//!   [`LARGE_CACHE_FIT_SLACK`] times its size, or else grows the largest
//!   smaller one (the provider's `resize`, in place or moved);
//! - runs age out when LARGE frees stop: at each round of a front cache's
//!   depot sweep that saw no LARGE free since the previous one
//!   (`decay_large_cache`: the heap's small-block traffic is the clock),
//!   every run that was already cached at the previous such tick and was
//!   not reused is unmapped (a run waits at least one tick, at most two).
//!   While LARGE frees go on, the bounds alone limit the cache: ageing runs
//!   there (all stale ones, or only the oldest, every 256 frees) unmapped
//!   the big runs a random mix of sizes waits for, and tripled the `mmap`
//!   calls and the lock waits of `hosted/bench/large_threads.c`.
//!
//! # The LARGE lock: who holds what
//!
//! The LARGE lock guards the cache list, the counts and the page map's
//! LARGE entries (registration and unregistration, so that under the lock
//! an entry naming a LARGE run proves the run live: its header readable).
//! It is never held across a system call or a first touch of a page:
//! - a run is *owned* by exactly one of: the page map (registered, live:
//!   its user holds the pointer), the cache list (unregistered), or one
//!   thread (unregistered and on no list: fresh from the provider, just
//!   unlinked from the cache, or on that thread's `doomed` list). Only the
//!   owning thread touches a run it owns, so it maps, grows, shrinks,
//!   writes the header of, or unmaps that run with no lock held;
//! - allocation: lock, unlink a cached run, unlock; grow or shrink it (or
//!   map a fresh one) and write its header; lock, register, count, unlock;
//! - free: lock, check the entry and the header, break the header,
//!   unregister, cache the run (evicting older runs to a `doomed` list
//!   threaded through them), unlock; then unmap the doomed runs;
//! - realloc (`realloc.rs`) keeps the lock across the provider's resize of
//!   a *live* run: its entry moves with it (unregister, resize, register);
//!   a run it grows over (the cached run right after the live one,
//!   `grow_over_cached`) is unlinked, unmapped and grown into under that
//!   same hold (the unlinked run is this thread's; a zone mapped by another
//!   thread in between may take its pages first, and the block is then
//!   copied, as it would have been without the neighbour).
//!
//! Lock order: the LARGE lock is taken with no other heap lock held (except
//! by `lock_all`, after the class locks) and nothing but the provider's own
//! lock (and the lock-free page map) is taken under it. A fork that lands
//! while a thread owns a run outside the lock leaks that run in the child
//! (the child has no such thread), as glibc leaks an in-flight mmapped
//! chunk; nothing there is locked.

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use lock_api::RawMutex;

use crate::error::HeapError;
use crate::free_mark;
use crate::heap::Heap;
use crate::page_map::{NodeReserve, Owner};
use crate::provider::PageProvider;

mod cache;

use cache::{Doomed, RunCache};

/// Bytes before the user pointer at the default alignment.
pub(crate) const LARGE_HEADER_SIZE: usize = 32;
/// Freed runs the cache keeps at most.
pub(crate) const LARGE_CACHE_SLOTS: usize = 64;
/// Runs above this size are never cached (glibc's largest mmap threshold,
/// `DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit), and the adaptive threshold
/// stops rising here.
pub(crate) const LARGE_CACHE_RUN_MAX: usize = 32 << 20;
/// The adaptive cache threshold's start: glibc's `M_MMAP_THRESHOLD`
/// default. A freed run longer than the threshold is unmapped, not cached,
/// and raises the threshold to its length (capped at
/// [`LARGE_CACHE_RUN_MAX`]), as glibc raises its mmap threshold when it
/// frees an mmapped chunk: the first big buffer freed faults on a later
/// access, like glibc's; a program that keeps freeing buffers of that size
/// gets them cached from the second on. 128 KiB rather than `SMALL_MAX`:
/// runs up to 128 KiB are what glibc keeps in its heap (readable after
/// free there too), and the runs between `SMALL_MAX` and 128 KiB stay
/// cheap to reuse.
pub(crate) const LARGE_CACHE_THRESHOLD_START: usize = 128 << 10;
/// A LARGE block that a realloc shrinks to at least this many bytes keeps
/// its run, cut by the provider to the pages it needs (no copy); a smaller
/// size moves to its class's block. The cut run wastes under a page, so
/// under a quarter of any size it keeps (a class's block wastes up to an
/// eighth, but in a zone of 100 such blocks). A ratio (at least half the
/// block, the zones' rule) kept fewer runs: the random actions at 30000
/// copied 48 instructions per operation more (1069 against 1022), for a
/// heap efficiency 0.4 points higher (60 rounds: 90.56% against 90.14%).
pub(crate) const LARGE_KEEP_MIN: usize = 16 << 10;
/// Total bytes the cache may hold (glibc keeps up to 64 MiB of freed top).
pub(crate) const LARGE_CACHE_BYTES_MAX: usize = 64 << 20;
/// A cached run serves a request needing `n` bytes as it is if it has at
/// most `LARGE_CACHE_FIT_SLACK * n` bytes (its resident pages are worth more
/// than the address space); a bigger one waits for a bigger request, and
/// the largest smaller one is grown instead.
pub(crate) const LARGE_CACHE_FIT_SLACK: usize = 4;

const GUARD_KEY: usize = 0x1a76_e5ee_d0c5_a11e_u64 as usize;

#[repr(C)]
struct LargeHeader {
    /// `start ^ run_len ^ user_offset ^ GUARD_KEY`: proves the header is intact.
    guard: usize,
    run_len: usize,
    requested: usize,
    user_offset: usize,
}

const _: () = assert!(core::mem::size_of::<LargeHeader>() <= LARGE_HEADER_SIZE);

impl LargeHeader {
    fn guard_for(start: NonNull<u8>, run_len: usize, user_offset: usize) -> usize {
        start.as_ptr().addr() ^ run_len ^ user_offset ^ GUARD_KEY
    }
}

/// A live LARGE block, as read from its (validated) header.
#[derive(Clone, Copy)]
pub(crate) struct LargeBlock {
    pub(crate) start: NonNull<u8>,
    pub(crate) run_len: usize,
    pub(crate) requested: usize,
    pub(crate) user_offset: usize,
}

impl LargeBlock {
    pub(crate) fn user(&self) -> NonNull<u8> {
        // SAFETY: the offset is inside the run.
        unsafe { self.start.add(self.user_offset) }
    }

    pub(crate) fn usable(&self) -> usize {
        self.run_len - self.user_offset
    }
}

/// LARGE bookkeeping, under the LARGE lock.
pub(crate) struct LargeState {
    pub(crate) runs: usize,
    /// Page-map nodes for re-registering a run the provider moved: filled
    /// before any move, so that registration cannot fail after it.
    pub(crate) reserve: NodeReserve,
    /// Freed runs kept for reuse.
    pub(crate) cache: RunCache,
    /// LARGE frees so far (wrapping).
    frees: u32,
    /// `frees` at the last look from the heap's activity: unchanged at the
    /// next look means LARGE traffic stopped.
    activity_frees: u32,
    /// Freed runs longer than this are unmapped, not cached (and raise it):
    /// see [`LARGE_CACHE_THRESHOLD_START`].
    cache_threshold: usize,
}

// SAFETY: cached runs are owned by the heap and only touched under its lock.
unsafe impl Send for LargeState {}

impl LargeState {
    pub(crate) const fn new() -> Self {
        LargeState {
            runs: 0,
            reserve: NodeReserve::new(),
            cache: RunCache::new(),
            frees: 0,
            activity_frees: 0,
            cache_threshold: LARGE_CACHE_THRESHOLD_START,
        }
    }
}

/// Where the user pointer goes in a run for alignment `align`.
fn user_offset_for(align: usize) -> usize {
    align.max(LARGE_HEADER_SIZE)
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Allocates a LARGE block of `size` bytes aligned to `align`.
    ///
    /// The LARGE lock is held twice, briefly: to unlink a cached run, and to
    /// register the run and count it. Mapping, growing or shrinking the run
    /// and writing its header (the first touch of a fresh run's first page)
    /// happen between, on a run nobody else can reach (see the protocol at
    /// the top of this file).
    #[inline(never)]
    pub(crate) fn alloc_large(
        &self,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Option<NonNull<u8>> {
        let page = self.page_size();
        let user_offset = user_offset_for(align);
        // At least one byte past the user pointer, so its granule is in the run.
        let needed = user_offset
            .checked_add(size.max(1))?
            .checked_next_multiple_of(page)?;
        if needed > isize::MAX as usize {
            return None;
        }
        let run_align = align.max(page);
        let cached = if run_align == page {
            self.take_cached(needed)
        } else {
            None
        };
        let (start, run_len, fresh) = match cached {
            Some((start, len)) => (start, len, false),
            None => (
                self.map_large_run(needed, run_align)?,
                needed,
                self.provider.zeroed_on_map(),
            ),
        };
        // The run is unregistered: only this thread can reach it.
        self.write_large_header(&LargeBlock {
            start,
            run_len,
            requested: size,
            user_offset,
        });
        let mut state = self.large.lock();
        let user = start.as_ptr().addr() + user_offset;
        if !self.page_map.register(
            &self.provider,
            user,
            1,
            Owner::Large { base: start },
            &self.counters.metadata_bytes,
            Some(&mut state.reserve),
        ) {
            drop(state);
            // Out of page-map nodes: memory is short, give the run back.
            // SAFETY: ours, unregistered, unused.
            unsafe { self.unmap_cached(start, run_len) };
            return None;
        }
        state.runs += 1;
        drop(state);
        // SAFETY: inside the run.
        let user = unsafe { start.add(user_offset) };
        if !fresh {
            // SAFETY: `size` bytes from `user` are inside the run, ours, and
            // so are its first two words (the run ends on a page boundary
            // past `user`, a multiple of 16).
            unsafe {
                free_mark::clear(user);
                if zeroed {
                    ptr::write_bytes(user.as_ptr(), 0, size);
                }
            }
        }
        Some(user)
    }

    /// Maps a fresh LARGE run of `len` bytes aligned to `align`, registered
    /// nowhere yet. No lock is held: the provider has its own.
    fn map_large_run(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        // The map's top first: in an arena it then sits below every run.
        if !self
            .page_map
            .prepare(&self.provider, &self.counters.metadata_bytes)
        {
            return None;
        }
        let start = self.provider.map(len, align)?;
        self.counters.map_calls.fetch_add(1, Ordering::Relaxed);
        self.counters.mapped_bytes.fetch_add(len, Ordering::Relaxed);
        Some(start)
    }

    /// A cached run for a request of `needed` bytes (`RunCache::choose`),
    /// unlinked under the LARGE lock and then, with the lock released, used
    /// as it is if big enough, or grown by the provider, which may move it:
    /// its pages come along without being copied or faulted in again. The
    /// run returned is the caller's, unregistered.
    fn take_cached(&self, needed: usize) -> Option<(NonNull<u8>, usize)> {
        let mut state = self.large.lock();
        let choice = state.cache.choose(needed)?;
        let (start, len) = state.cache.take(choice);
        drop(state);
        if needed < len && self.span_is_tight() {
            // Memory is short: the pages past `needed` serve other runs
            // better than this one's slack (a refused shrink keeps them).
            // SAFETY: the run is ours, unregistered and unused.
            if unsafe { self.provider.resize(start, len, needed, false) }.is_some() {
                self.count_resize(len, needed);
                return Some((start, needed));
            }
        }
        if needed <= len {
            return Some((start, len));
        }
        // A moved run is registered at its new place by the caller. A
        // bounded provider moves by copying, and a cached run holds nothing
        // worth copying.
        let may_move = self.provider.moves_without_copying();
        // SAFETY: the run is ours, unregistered, and unused.
        match unsafe { self.provider.resize(start, len, needed, may_move) } {
            Some(new_start) => {
                self.count_resize(len, needed);
                Some((new_start, needed))
            }
            None => {
                // Back to the cache, as it was (whatever it evicts is
                // unmapped after the lock).
                let mut doomed = Doomed::new();
                let mut state = self.large.lock();
                state.cache_run(start, len, &mut doomed);
                drop(state);
                self.unmap_doomed(doomed);
                None
            }
        }
    }

    /// Counts a provider resize of a run from `old` to `new` bytes.
    pub(crate) fn count_resize(&self, old: usize, new: usize) {
        self.counters.resize_calls.fetch_add(1, Ordering::Relaxed);
        if new > old {
            self.counters
                .mapped_bytes
                .fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.counters
                .mapped_bytes
                .fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    /// Reads and checks the header of the LARGE block the page map says
    /// starts its run at `start`, for the pointer `ptr`. The caller holds
    /// the LARGE lock.
    pub(crate) fn large_block(
        &self,
        start: NonNull<u8>,
        ptr: NonNull<u8>,
    ) -> Result<LargeBlock, HeapError> {
        // Under the LARGE lock the map cannot change for LARGE owners: if it
        // still says so, the run is live and its header readable.
        if self.page_map.lookup(ptr.as_ptr().addr()) != Some(Owner::Large { base: start }) {
            return Err(HeapError::InvalidPointer);
        }
        // SAFETY: a registered LARGE run starts with its header.
        let header = unsafe { start.cast::<LargeHeader>().read() };
        if header.guard != LargeHeader::guard_for(start, header.run_len, header.user_offset) {
            return Err(HeapError::Corrupted);
        }
        let block = LargeBlock {
            start,
            run_len: header.run_len,
            requested: header.requested,
            user_offset: header.user_offset,
        };
        if block.user() != ptr {
            return Err(HeapError::InvalidPointer);
        }
        Ok(block)
    }

    /// Writes the header of a LARGE block (new, or resized).
    pub(crate) fn write_large_header(&self, block: &LargeBlock) {
        // SAFETY: the run is live, at least `user_offset >= 32` bytes long,
        // and owned by the caller under the LARGE lock.
        unsafe {
            block.start.cast::<LargeHeader>().write(LargeHeader {
                guard: LargeHeader::guard_for(block.start, block.run_len, block.user_offset),
                run_len: block.run_len,
                requested: block.requested,
                user_offset: block.user_offset,
            });
        }
    }

    /// Frees the LARGE block at `ptr` whose run the page map says starts at
    /// `start`. The runs it gives back are unmapped after the LARGE lock is
    /// released.
    #[inline(never)]
    pub(crate) fn free_large(&self, start: NonNull<u8>, ptr: NonNull<u8>) -> Result<(), HeapError> {
        let mut doomed = Doomed::new();
        let mut state = self.large.lock();
        let block = self.large_block(start, ptr)?;
        // Break the header so a stale copy of this pointer can never pass.
        // SAFETY: the run is live and ours.
        unsafe { start.cast::<usize>().write(0) };
        self.page_map
            .unregister(ptr.as_ptr().addr(), 1, Owner::Large { base: start });
        state.runs -= 1;
        if block.run_len > state.cache_threshold {
            // glibc's adaptive mmap threshold: see its constant.
            state.cache_threshold = block.run_len.min(LARGE_CACHE_RUN_MAX);
            // SAFETY: the run was just freed and is unregistered.
            unsafe { doomed.push(start, block.run_len) };
        } else {
            state.cache_run(start, block.run_len, &mut doomed);
        }
        drop(state);
        self.unmap_doomed(doomed);
        Ok(())
    }

    /// Gives every cached LARGE run back to the provider (the LARGE part of
    /// [`trim`](Self::trim), without touching the zones). Returns the bytes
    /// released. A hardened host calls it after each LARGE free so that no
    /// freed run stays mapped.
    pub fn trim_large_cache(&self) -> usize {
        let mut doomed = Doomed::new();
        let mut released = 0;
        let mut state = self.large.lock();
        state.cache.drain(|start, len| {
            // SAFETY: just unlinked from the cache: unregistered and unused.
            unsafe { doomed.push(start, len) };
            released += len;
        });
        drop(state);
        self.unmap_doomed(doomed);
        released
    }

    /// A look at the LARGE cache from the heap's activity (a round of a
    /// front cache's depot sweep): if no LARGE block was freed since the
    /// previous look, LARGE traffic is idle and the cache ages one tick
    /// (runs cached at the previous tick and not reused since are
    /// unmapped); while LARGE frees go on, they age it themselves. Never
    /// waits for the LARGE lock: if it is busy, LARGE blocks are in use.
    pub(crate) fn decay_large_cache(&self) {
        let mut doomed = Doomed::new();
        if let Some(mut state) = self.large.try_lock() {
            if state.frees == state.activity_frees && state.cache.runs > 0 {
                state.cache.age(&mut doomed);
            }
            state.activity_frees = state.frees;
        }
        self.unmap_doomed(doomed);
    }

    /// Unmaps the runs taken out of the cache (or freed past the
    /// threshold) under the LARGE lock, now that it is released.
    fn unmap_doomed(&self, doomed: Doomed) {
        doomed.drain(|start, len| {
            // SAFETY: runs on a doomed list are unregistered, unlinked from
            // the cache and used by nobody: this thread's alone.
            unsafe { self.unmap_cached(start, len) }
        });
    }

    /// Unmaps a run that is not registered in the page map.
    ///
    /// # Safety
    ///
    /// `start`/`len` is a run of this heap that nothing uses.
    pub(crate) unsafe fn unmap_cached(&self, start: NonNull<u8>, len: usize) {
        // SAFETY: per the contract.
        unsafe { self.provider.unmap(start, len) };
        self.counters.unmap_calls.fetch_add(1, Ordering::Relaxed);
        self.counters.mapped_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    /// The user pointer recorded in the header of the registered LARGE run
    /// at `start`. The caller holds the LARGE lock; the result still has to
    /// pass [`large_block`](Self::large_block).
    pub(crate) fn large_user_of(&self, start: NonNull<u8>) -> NonNull<u8> {
        // SAFETY: registered LARGE runs begin with their header; the offset
        // is checked by `large_block` before anything is read through it.
        let offset = unsafe { start.cast::<LargeHeader>().read().user_offset };
        NonNull::new(start.as_ptr().wrapping_add(offset)).unwrap_or(start)
    }

    /// Releases the live LARGE run starting at `start` (heap teardown).
    ///
    /// # Safety
    ///
    /// The run is registered and nothing will use it again.
    pub(crate) unsafe fn release_large_at(&self, start: NonNull<u8>) {
        // SAFETY: registered LARGE runs begin with their header.
        let header = unsafe { start.cast::<LargeHeader>().read() };
        let mut state = self.large.lock();
        state.runs -= 1;
        let owner = Owner::Large { base: start };
        // SAFETY: per the contract; the LARGE lock is held.
        unsafe { self.unmap_run(start, header.run_len, header.user_offset, 1, owner) };
    }
}

impl LargeState {
    /// Keeps a freed (unregistered) run for reuse; the runs that do not fit
    /// (it, or older ones evicted to make room) go to `doomed`, to be
    /// unmapped once the LARGE lock is released.
    fn cache_run(&mut self, start: NonNull<u8>, len: usize, doomed: &mut Doomed) {
        if len > LARGE_CACHE_RUN_MAX || len > LARGE_CACHE_BYTES_MAX {
            // SAFETY: the run was just freed and is unregistered.
            unsafe { doomed.push(start, len) };
            return;
        }
        self.frees = self.frees.wrapping_add(1);
        // Make room: evict the oldest runs until both limits hold.
        while self.cache.bytes + len > LARGE_CACHE_BYTES_MAX || self.cache.runs >= LARGE_CACHE_SLOTS
        {
            let Some((old, old_len)) = self.cache.take_oldest() else {
                break;
            };
            // SAFETY: unlinked from the cache: unregistered and unused.
            unsafe { doomed.push(old, old_len) };
        }
        // SAFETY: the run was just freed (or taken back) and is unregistered.
        unsafe { self.cache.push(start, len) };
    }
}
