//! The heap: per-class state behind per-class locks, the LARGE state behind
//! its own lock, the page map, and the provider with its counters.
//!
//! The operations live in their own files: `alloc.rs`, `free.rs`,
//! `realloc.rs`, `large.rs`, `introspect.rs`.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use lock_api::{Mutex, MutexGuard, RawMutex};

use crate::cache::{Magazine, MagazinePool};
use crate::error::HeapError;
use crate::heap_cache::HeapCache;
use crate::large::LargeState;
use crate::page_map::{GRANULE_SHIFT, Owner, PageMap};
use crate::provider::PageProvider;
use crate::size_class::{NUM_CLASSES, SizeClass, ZoneGeometry};
use crate::zone::{self, ZoneHeader};

/// Empty zones a class keeps mapped for reuse; further empty zones go back to
/// the provider at once. One is enough to make a malloc/free loop free of
/// provider calls.
pub(crate) const EMPTY_ZONES_KEPT: u8 = 1;

/// A kept empty zone whose carved blocks covered at least this many bytes
/// is reset and its pages decommitted (`PageProvider::decommit`): the
/// footprint follows the live set even for the zone a class keeps.
pub(crate) const ZONE_RESET_MIN_BYTES: usize = 256 * 1024;

/// A provider's span is *tight* once the heap has mapped more than
/// `1 / TIGHT_SPAN_DIVISOR` of it. From then on memory is worth more than
/// speed: new zones take their fewest pages (a scarce layout, which fits
/// the holes a full zone would not), a cached LARGE run is cut to the
/// request, and a growing LARGE run is moved by the provider before a copy
/// is tried (see `Heap::span_is_tight`'s callers).
pub(crate) const TIGHT_SPAN_DIVISOR: usize = 2;

/// The allocator.
///
/// `P` supplies page runs; `R` is the lock: any [`lock_api::RawMutex`]
/// (`spin`'s by default). A kernel whose interrupt handlers allocate should
/// pass a lock that disables interrupts while held.
///
/// Every size class has its own lock, so threads working on different
/// classes never wait for each other; LARGE requests share one lock.
pub struct Heap<P: PageProvider, R: RawMutex = spin::Mutex<()>> {
    pub(crate) classes: [ClassSlot<R>; NUM_CLASSES],
    pub(crate) large: Mutex<R, LargeState>,
    /// Magazines for front caches (a leaf lock: taken under class locks).
    pub(crate) magazines: Mutex<R, MagazinePool>,
    /// The small-region pool (`coalesce/`): SMALL requests of a small span.
    pub(crate) pool: Mutex<R, crate::coalesce::PoolState>,
    /// The heap's own per-class stacks of free blocks (`heap_cache.rs`),
    /// each under its class lock.
    pub(crate) heap_cache: HeapCache,
    pub(crate) page_map: PageMap,
    pub(crate) counters: Counters,
    /// A `CorruptionHandler`, or null (see `set_corruption_handler`).
    corruption_handler: AtomicPtr<()>,
    pub(crate) oom: crate::oom::OomHook,
    pub(crate) provider: P,
}

/// What [`Heap::set_corruption_handler`] takes: the error found and the
/// address where it was found.
pub type CorruptionHandler = fn(HeapError, NonNull<u8>);

// SAFETY: all shared state is behind `R` locks or atomics; the raw pointers
// inside refer to provider memory that the heap owns, not to thread-local
// data. The provider is shared across threads, hence `P: Sync`.
unsafe impl<P: PageProvider + Sync, R: RawMutex + Send + Sync> Sync for Heap<P, R> {}
// SAFETY: as above; moving the heap moves ownership of all its runs.
unsafe impl<P: PageProvider + Send, R: RawMutex + Send> Send for Heap<P, R> {}

/// One class's lock and state, in 32 bytes: two classes share a cache line
/// (72 lines of their own would put 4.5 KiB in a `static` heap; see
/// `tests/small_heaps.rs`).
#[repr(align(32))]
pub(crate) struct ClassSlot<R: RawMutex>(pub(crate) Mutex<R, ClassState>);

/// What a class knows, under its lock.
pub(crate) struct ClassState {
    /// Zones with at least one free or uncarved block, most recently
    /// touched first; allocation takes from the head.
    pub(crate) with_room: *mut ZoneHeader,
    /// Zones of this class, full or not.
    pub(crate) zones: u32,
    /// Full magazines that front caches gave back: the depot (a list).
    pub(crate) depot: *mut Magazine,
    /// Magazines in the depot (at most `cache::bins::DEPOT_MAX_MAGAZINES`).
    pub(crate) depot_magazines: u8,
    /// The fewest magazines the depot held since the last trim
    /// (`cache/depot_trim.rs`): those below were taken by nobody.
    pub(crate) depot_low: u8,
    /// Zones with no live block (kept for reuse, at most [`EMPTY_ZONES_KEPT`]).
    pub(crate) empty_zones: u8,
    /// Blocks in this class's stack of the heap's own cache
    /// (`heap_cache.rs`), or [`NO_STACK`](crate::heap_cache::NO_STACK)
    /// while the class has none. Here, next to the lock, so that a free or
    /// an allocation reads it from the line the lock brought in.
    pub(crate) stack_len: u8,
}

const _: () = assert!(core::mem::size_of::<ClassState>() <= 24);

// SAFETY: the zone pointers are only followed under the class lock.
unsafe impl Send for ClassState {}

/// Provider traffic, for statistics.
pub(crate) struct Counters {
    pub(crate) map_calls: AtomicUsize,
    pub(crate) unmap_calls: AtomicUsize,
    pub(crate) resize_calls: AtomicUsize,
    /// Bytes of zones and LARGE runs currently mapped.
    pub(crate) mapped_bytes: AtomicUsize,
    /// Bytes of page-map nodes (kept until the heap is dropped).
    pub(crate) metadata_bytes: AtomicUsize,
    /// Refused pointers and detected corruption.
    pub(crate) errors: AtomicUsize,
}

impl ClassState {
    const fn new() -> Self {
        ClassState {
            with_room: ptr::null_mut(),
            zones: 0,
            empty_zones: 0,
            stack_len: crate::heap_cache::NO_STACK,
            depot: ptr::null_mut(),
            depot_magazines: 0,
            depot_low: 0,
        }
    }

    /// Puts `zone` at the head of the with-room list.
    ///
    /// # Safety
    ///
    /// `zone` is a live zone of this class, not on the list.
    pub(crate) unsafe fn link_front(&mut self, zone: NonNull<ZoneHeader>) {
        // SAFETY: lock held by the owner of `&mut self`; zones are live, and
        // each state reference is dropped before the next is made.
        unsafe {
            let z = zone::state_mut(zone);
            debug_assert!(!z.listed);
            z.prev = ptr::null_mut();
            z.next = self.with_room;
            z.listed = true;
            if let Some(head) = NonNull::new(self.with_room) {
                zone::state_mut(head).prev = zone.as_ptr();
            }
        }
        self.with_room = zone.as_ptr();
    }

    /// Takes `zone` off the with-room list.
    ///
    /// # Safety
    ///
    /// `zone` is a live zone of this class, on the list.
    pub(crate) unsafe fn unlink(&mut self, zone: NonNull<ZoneHeader>) {
        // SAFETY: lock held; listed zones and their neighbours are live, and
        // each state reference is dropped before the next is made.
        unsafe {
            let (prev, next) = {
                let z = zone::state_mut(zone);
                debug_assert!(z.listed);
                let links = (z.prev, z.next);
                z.prev = ptr::null_mut();
                z.next = ptr::null_mut();
                z.listed = false;
                links
            };
            match NonNull::new(prev) {
                Some(prev) => zone::state_mut(prev).next = next,
                None => self.with_room = next,
            }
            if let Some(next) = NonNull::new(next) {
                zone::state_mut(next).prev = prev;
            }
        }
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// A heap that will take its memory from `provider`. Maps nothing until
    /// the first allocation, so it can initialise a `static`.
    pub const fn new(provider: P) -> Self {
        Heap {
            classes: [const { ClassSlot(Mutex::const_new(R::INIT, ClassState::new())) };
                NUM_CLASSES],
            large: Mutex::const_new(R::INIT, LargeState::new()),
            magazines: Mutex::const_new(R::INIT, MagazinePool::new()),
            pool: Mutex::const_new(R::INIT, crate::coalesce::PoolState::new()),
            heap_cache: HeapCache::new(),
            page_map: PageMap::new(),
            counters: Counters {
                map_calls: AtomicUsize::new(0),
                unmap_calls: AtomicUsize::new(0),
                resize_calls: AtomicUsize::new(0),
                mapped_bytes: AtomicUsize::new(0),
                metadata_bytes: AtomicUsize::new(0),
                errors: AtomicUsize::new(0),
            },
            corruption_handler: AtomicPtr::new(ptr::null_mut()),
            oom: crate::oom::OomHook::new(),
            provider,
        }
    }

    /// The provider this heap takes its pages from.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    #[inline(always)]
    pub(crate) fn class(&self, class: SizeClass) -> MutexGuard<'_, R, ClassState> {
        let i = class.index();
        if i >= NUM_CLASSES {
            // SAFETY: every `SizeClass` holds an index below `NUM_CLASSES`
            // (its constructors check it): the index below needs no bounds
            // check. (An `if`, not `get_unchecked`: at opt-level 0 that is
            // two calls with checks of their own.)
            unsafe { core::hint::unreachable_unchecked() }
        }
        self.classes[i].0.lock()
    }

    /// Takes every lock of the heap, in a fixed order, and keeps them until
    /// [`unlock_all`](Self::unlock_all). Meant for `fork`: take them in the
    /// prepare handler so the child never inherits a lock held by a thread
    /// that does not exist there.
    pub fn lock_all(&self) {
        for slot in &self.classes {
            core::mem::forget(slot.0.lock());
        }
        core::mem::forget(self.large.lock());
        core::mem::forget(self.magazines.lock());
        core::mem::forget(self.pool.lock());
    }

    /// Releases the locks taken by [`lock_all`](Self::lock_all).
    ///
    /// # Safety
    ///
    /// Every lock must be held through `lock_all` by the calling thread (or,
    /// after `fork`, by the thread that called it in the parent).
    pub unsafe fn unlock_all(&self) {
        // SAFETY: the contract says each lock is held and unused elsewhere.
        unsafe {
            self.pool.force_unlock();
            self.magazines.force_unlock();
            self.large.force_unlock();
            for slot in self.classes.iter().rev() {
                slot.0.force_unlock();
            }
        }
    }

    /// Looks `addr` up in the page map, lock-free. Returns the owner and the
    /// release count read *before* the lookup (see `PageMap::releases`).
    #[inline]
    pub(crate) fn find(&self, addr: usize) -> (Option<Owner>, usize) {
        let releases = self.page_map.releases();
        (self.page_map.lookup(addr), releases)
    }

    /// [`find`](Self::find) for a pointer a caller gives back, and the
    /// pointer re-derived from the run the map names ([`own`]).
    #[inline]
    pub(crate) fn find_block(&self, ptr: NonNull<u8>) -> (Option<Owner>, usize, NonNull<u8>) {
        let (owner, seen) = self.find(ptr.as_ptr().addr());
        let ptr = match owner {
            Some(
                Owner::Zone { base, .. }
                | Owner::Large { base }
                | Owner::Pool { base }
                | Owner::Bare { base },
            ) => own(base, ptr),
            None => ptr,
        };
        (owner, seen, ptr)
    }
}

/// `ptr` with the provenance of `base`, the start of the run the page map
/// names for it: the same address, no instruction. The heap reaches a
/// block's metadata (slack canary, free mark, headers) and hands a block
/// back (a realloc in place) through its own pointer to the run, never
/// through the caller's, which may cover only the requested bytes (a
/// `Box`, a collection's node given to `dealloc`: under Miri it may touch
/// nothing else; `tests/held_blocks.rs`).
#[inline(always)]
pub(crate) fn own(base: NonNull<u8>, ptr: NonNull<u8>) -> NonNull<u8> {
    base.with_addr(ptr.addr())
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Records a refused pointer or detected corruption.
    #[cold]
    pub(crate) fn count_error<T>(&self, error: T) -> T {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        error
    }

    /// Sets the function the heap calls when it finds its own metadata
    /// corrupted while serving a request that still succeeds. Today that is
    /// a zone's free list overwritten after a free (a use-after-free write):
    /// the handler gets [`HeapError::Corrupted`] and the block whose link was
    /// bad. The heap has already made itself safe (the list is cut there,
    /// the blocks after it leak, no block is handed out twice); the handler
    /// decides whether to say so or to stop the program. It runs with no
    /// heap lock held, so it may allocate, print or abort.
    pub fn set_corruption_handler(&self, handler: CorruptionHandler) {
        self.corruption_handler
            .store(handler as *mut (), Ordering::Release);
    }

    /// Counts corruption found at `at` and tells the handler, if any. The
    /// caller holds no heap lock.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_corruption(&self, at: NonNull<u8>) {
        let error = self.count_error(HeapError::Corrupted);
        let handler = self.corruption_handler.load(Ordering::Acquire);
        if !handler.is_null() {
            // SAFETY: only `set_corruption_handler` stores here, and it
            // stores a `CorruptionHandler` (a fn pointer, the size of a
            // data pointer on every target Rust supports).
            let handler = unsafe { core::mem::transmute::<*mut (), CorruptionHandler>(handler) };
            handler(error, at);
        }
    }

    // ---- provider calls, counted ----

    pub(crate) fn page_size(&self) -> usize {
        self.provider.page_size()
    }

    /// Maps a run for a zone or LARGE block and registers it in the page map
    /// as `owner(base)` over `[base + reg_offset, + reg_len)`.
    pub(crate) fn map_run(
        &self,
        len: usize,
        align: usize,
        reg_offset: usize,
        reg_len: usize,
        owner: impl FnOnce(NonNull<u8>) -> Owner,
    ) -> Option<NonNull<u8>> {
        // The map's top first: in an arena it then sits below every run
        // instead of splitting the free pages.
        if !self
            .page_map
            .prepare(&self.provider, &self.counters.metadata_bytes)
        {
            return None;
        }
        let base = self.provider.map(len, align)?;
        self.counters.map_calls.fetch_add(1, Ordering::Relaxed);
        let start = base.as_ptr().addr() + reg_offset;
        if !self.page_map.register(
            &self.provider,
            start,
            reg_len,
            owner(base),
            &self.counters.metadata_bytes,
            None,
        ) {
            // SAFETY: the run was just mapped and nothing refers to it.
            unsafe { self.provider.unmap(base, len) };
            self.counters.unmap_calls.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counters.mapped_bytes.fetch_add(len, Ordering::Relaxed);
        Some(base)
    }

    /// Unregisters `owner` from `[base + reg_offset, + reg_len)`, then (and
    /// only then) gives the run back. The caller holds the owner's lock.
    ///
    /// # Safety
    ///
    /// `base`/`len` is a live run of this heap that nothing will use again.
    pub(crate) unsafe fn unmap_run(
        &self,
        base: NonNull<u8>,
        len: usize,
        reg_offset: usize,
        reg_len: usize,
        owner: Owner,
    ) {
        self.page_map
            .unregister(base.as_ptr().addr() + reg_offset, reg_len, owner);
        // SAFETY: per the contract.
        unsafe { self.provider.unmap(base, len) };
        self.counters.unmap_calls.fetch_add(1, Ordering::Relaxed);
        self.counters.mapped_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    /// Maps and initialises a zone for `class`: a full one if the
    /// provider's span allows it (`SizeClass::prefers_full_zone`), is not
    /// tight ([`TIGHT_SPAN_DIVISOR`]) and the provider gives it, else a
    /// scarce one; none where the class borrows
    /// its [`scarce_class`](SizeClass::scarce_class)'s zones instead. The
    /// caller holds the class lock.
    pub(crate) fn new_zone(&self, class: SizeClass) -> Option<NonNull<ZoneHeader>> {
        if class.prefers_full_zone(self.span_bytes()) {
            if !self.span_is_tight()
                && let Some(zone) = self.map_zone(class, class.geometry())
            {
                return Some(zone);
            }
        } else if class.scarce_class() != class {
            return None;
        }
        self.map_zone(class, class.scarce_geometry())
    }

    /// Whether the heap has mapped more than [`TIGHT_SPAN_DIVISOR`]'s share
    /// of the provider's span (never, without a span).
    pub(crate) fn span_is_tight(&self) -> bool {
        let Some(span) = self.span_bytes() else {
            return false;
        };
        self.counters.mapped_bytes.load(Ordering::Relaxed) > span / TIGHT_SPAN_DIVISOR
    }

    /// Bytes of the provider's span, if it has one.
    pub(crate) fn span_bytes(&self) -> Option<usize> {
        self.provider.span().map(|(start, end)| end - start)
    }

    fn map_zone(&self, class: SizeClass, g: &'static ZoneGeometry) -> Option<NonNull<ZoneHeader>> {
        let page = self.page_size();
        let run_len = g.zone_bytes.next_multiple_of(page);
        let base = self.map_run(run_len, page, 0, run_len, |base| Owner::Zone {
            base,
            class,
        })?;
        // SAFETY: a fresh run of `run_len >= zone_bytes` bytes, ours alone.
        Some(unsafe { zone::init(base, class, g, run_len, self.provider.zeroed_on_map()) })
    }

    /// Unlists and unmaps a zone. The caller holds the class lock.
    ///
    /// # Safety
    ///
    /// `zone` is a live zone of the locked class `state` that nothing will
    /// use again: empty, or the heap is being dropped.
    pub(crate) unsafe fn release_zone(&self, state: &mut ClassState, zone: NonNull<ZoneHeader>) {
        // SAFETY: live zone, lock held.
        let (listed, run_len) = unsafe { (zone::state(zone).listed, zone::state(zone).run_len()) };
        if listed {
            // SAFETY: listed zone of this class.
            unsafe { state.unlink(zone) };
        }
        state.zones -= 1;
        let owner = Owner::Zone {
            base: zone.cast(),
            // SAFETY: live zone.
            class: unsafe { zone::state(zone).class },
        };
        // SAFETY: per the contract, nothing refers into the zone.
        unsafe { self.unmap_run(zone.cast(), run_len, 0, run_len, owner) };
    }

    /// Gives every cached empty zone and cached LARGE run back to the
    /// provider, after sending the blocks of the heap's own stacks and of
    /// the depots back to their zones. Returns the bytes released.
    pub fn trim(&self) -> usize {
        let mut released = 0;
        for class in SizeClass::all() {
            let mut state = self.class(class);
            // Blocks waiting in the heap's stack and the depot go back
            // first: they may empty zones.
            self.drain_heap_cache(&mut state, class);
            self.drain_depot(&mut state, class);
            // Free blocks of live zones give their pages back too.
            self.purge_idle_zones(&state, 0);
            let mut cursor = state.with_room;
            while let Some(zone) = NonNull::new(cursor) {
                // SAFETY: listed zones are live; lock held.
                let (next, live, len) = unsafe {
                    (
                        zone::state(zone).next,
                        zone::state(zone).live,
                        zone::state(zone).run_len(),
                    )
                };
                if live == 0 {
                    state.empty_zones -= 1;
                    released += len;
                    // SAFETY: an empty zone of this class.
                    unsafe { self.release_zone(&mut state, zone) };
                } else {
                    // SAFETY: a live zone of this class, lock held.
                    released += unsafe { self.shrink_zone(&mut state, zone) };
                }
                cursor = next;
            }
        }
        let released = released + self.trim_large_cache() + self.trim_pool();
        if released > 0 {
            // Room again, perhaps for the heap's stacks.
            self.heap_cache.retry_later();
        }
        released
    }

    /// Gives the never-carved pages at the end of a zone back to the
    /// provider (if it can shrink runs in place). The zone then holds only
    /// the blocks it has carved: under memory pressure, pages nobody ever
    /// used are worth more to the rest of the heap than the promise of 100
    /// blocks. Returns the bytes released.
    ///
    /// # Safety
    ///
    /// `zone` is a live zone of the class locked through `state`.
    unsafe fn shrink_zone(&self, state: &mut ClassState, zone: NonNull<ZoneHeader>) -> usize {
        let page = self.page_size();
        // SAFETY: per the contract.
        let Some(new_len) = (unsafe { zone::cap_at_carved(zone, page) }) else {
            return 0;
        };
        // SAFETY: per the contract.
        let (old_len, class) = unsafe { (zone::state(zone).run_len(), zone::state(zone).class) };
        let owner = Owner::Zone {
            base: zone.cast(),
            class,
        };
        let tail = zone.as_ptr().addr() + new_len;
        // Unregister first: once the provider has the tail back it may hand
        // it to another run at once, whose entries we must never touch.
        self.page_map.unregister(tail, old_len - new_len, owner);
        // SAFETY: the tail past `new_len` holds no carved block.
        let shrunk = unsafe { self.provider.resize(zone.cast(), old_len, new_len, false) };
        // SAFETY: per the contract.
        unsafe { zone::set_run_len(zone, shrunk.map(|_| new_len)) };
        if shrunk.is_none() {
            // The tail is still ours (a refused resize changes nothing) and
            // its nodes exist: registering it again cannot fail.
            let again = self.page_map.register(
                &self.provider,
                tail,
                old_len - new_len,
                owner,
                &self.counters.metadata_bytes,
                None,
            );
            debug_assert!(again);
            return 0;
        }
        self.count_resize(old_len, new_len);
        // SAFETY: per the contract.
        if unsafe { zone::is_full(zone) } {
            // SAFETY: listed zone of this class.
            unsafe { state.unlink(zone) };
        }
        old_len - new_len
    }
}

impl<P: PageProvider, R: RawMutex> Drop for Heap<P, R> {
    /// Gives every run, live or not, and the page map back to the provider.
    /// Pointers into the heap dangle afterwards.
    fn drop(&mut self) {
        self.release_everything();
        let metadata = &self.counters.metadata_bytes;
        self.large
            .get_mut()
            .reserve
            .release(&self.provider, metadata);
        // SAFETY: `&mut self`: no cache can use this heap's magazines any more
        // (a cache outliving its heap holds dangling pointers, like a block).
        unsafe { self.magazines.get_mut().release(&self.provider, metadata) };
        // SAFETY: `&mut self`; `release_everything` trimmed (drained) it.
        unsafe { self.heap_cache.release(&self.provider, metadata) };
        // SAFETY: `&mut self`: no other thread can reach the map.
        unsafe { self.page_map.release_nodes(&self.provider) };
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Unmaps every zone and LARGE run (used by `Drop`).
    fn release_everything(&mut self) {
        self.trim();
        // One walk in address order. Releasing an owner clears its slots,
        // all at or after the one being visited, so the walk simply finds
        // them empty; nodes are not freed until `release_nodes`.
        let heap = &*self;
        heap.page_map.for_each(|granule, owner| match owner {
            Owner::Zone { base, class } => {
                // A zone is met at each of its granules; release it at the first.
                if base.as_ptr().addr() >> GRANULE_SHIFT != granule >> GRANULE_SHIFT {
                    return;
                }
                // SAFETY: registered zones are live; we own the heap, so
                // nothing refers into the zone any more.
                unsafe { heap.release_zone(&mut heap.class(class), base.cast()) };
            }
            // SAFETY: a registered LARGE run; we own the heap.
            Owner::Large { base } => unsafe { heap.release_large_at(base) },
            // Pool runs register every granule: release each at its first.
            Owner::Pool { base } | Owner::Bare { base } => {
                if base.as_ptr().addr() >> GRANULE_SHIFT == granule >> GRANULE_SHIFT {
                    // SAFETY: a registered pool run; we own the heap.
                    unsafe { heap.release_pool_owner(owner) };
                }
            }
        });
    }
}
