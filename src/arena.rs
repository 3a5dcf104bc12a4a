//! A [`PageProvider`] over caller-given regions of memory (documented on
//! [`ArenaProvider`], where `cargo doc` shows it); one region's bitmap and
//! search live in `arena/pages.rs`.
//!
//! # Protocol: regions added while the heap runs
//!
//! A kernel hands its heap regions at any time, from any CPU, possibly while
//! other CPUs allocate and with interrupts on. So adding a region never
//! waits for anything:
//!
//! - **Slots.** The provider holds [`MAX_REGIONS`] slots and one atomic
//!   word, `slots`: the count of claimed slots above [`CLAIMED_SHIFT`], one
//!   *ready* bit per slot below. `add_region` sets up the region's bitmap
//!   privately, claims the next slot by raising the count (a slot is
//!   claimed once, never given back), writes the bitmap there, and only
//!   then sets the slot's ready bit (Release).
//! - **Readers.** Every other operation (`map`, `unmap`, `resize`, the
//!   byte counts) takes the provider's one lock and uses the slots whose
//!   ready bit it reads as set (Acquire): it sees the bitmap that
//!   `add_region` wrote. Once ready, a slot's bitmap is only touched under
//!   the lock; before, only by the `add_region` that claimed it.
//! - **Lock order.** The heap calls the provider under its own locks; the
//!   provider's lock is innermost and nothing is called while it is held.
//!   `add_region` takes no lock, so a CPU may call it with interrupts on
//!   even if an interrupt handler allocates: it cannot deadlock with itself.
//! - **Liveness.** A region, once added, stays until the provider is
//!   dropped; a `map` that started before the region was ready may miss it
//!   and fail (the heap reports an allocation failure), the next one finds
//!   it.
//!
//! The region given to [`ArenaProvider::new`] takes slot 0 at construction
//! and is set up under the lock by the first operation that needs it (a
//! `const` constructor cannot write to it).

use core::cell::UnsafeCell;
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::provider::PageProvider;

mod pages;
use pages::{PAGE, Pages, extent};

/// The most regions one [`ArenaProvider`] takes (the region given to
/// [`ArenaProvider::new`] counts as one).
/// (Four keep a `static Heap<ArenaProvider>` within a page.)
pub const MAX_REGIONS: usize = 4;
/// `slots` holds the claimed count from this bit up, ready bits below.
const CLAIMED_SHIFT: u32 = 8;
const _: () = assert!(MAX_REGIONS <= CLAIMED_SHIFT as usize);

/// Page runs carved from caller-given regions: for kernels (before or after
/// paging is up), embedded targets without an MMU, tests and benchmarks.
///
/// Each region is cut into 4 KiB pages; a bitmap (one bit per page: 32
/// bytes per MiB) says which are handed out, kept inside the provider for a
/// region of up to 1 MiB and in the region's own first pages beyond. `map`
/// is first fit from the lowest page that may be free, which keeps runs
/// packed at the bottom of a region, and best fit once half of the region's
/// pages are handed out; regions are tried in the order they were added.
/// `resize` grows a run in place when the pages after it are free, always
/// shrinks in place, and, when it may move, takes the place `map` would
/// choose in the same region counting the run's own pages as free (so the
/// free pages before and after it join) and copies the contents there.
/// Freshly mapped pages are not zeroed (`zeroed_on_map` is false): a region
/// may hold anything. A region that is not page aligned loses its first
/// partial page.
///
/// # Three ways to start
///
/// | constructor | regions | [`span`](PageProvider::span) (fixed for life) | the heap's page map |
/// |---|---|---|---|
/// | [`new(start, len)`](Self::new) | that one, set up on first use | the region | flat, inside the `Heap` up to 352 KiB; else 1/512 of the region, taken from it |
/// | [`empty_in(start, len)`](Self::empty_in) | added later, inside the window | the window | the same, over the window |
/// | [`empty()`](Self::empty) | added later, anywhere | none | the radix tree: 3 nodes of 32 KiB (64-bit targets) to start, one more per 16 MiB area used |
///
/// The span is what the heap sizes itself by (its page map and its
/// zones, and the small-heap rules of `SizeClass::prefers_full_zone`), so it
/// must be known before any region is: a kernel that maps its heap at a
/// fixed virtual window (blog_os's `HEAP_START`) names that window with
/// `empty_in`. Keep the window close to the memory it will get: a flat map
/// costs one pointer per page of the window, and a heap in a window much
/// larger than its regions sizes its zones for room it does not have.
/// `empty()` suits regions scattered over the physical memory map, a
/// megabyte and up each: the tree's first 96 KiB come from the first region.
///
/// # Before any region
///
/// Every `map` fails, so the heap's allocations return null (`None` from
/// [`Heap::allocate`](crate::Heap::allocate)); nothing faults. Once
/// [`add_region`](Self::add_region) returns, the next allocation can use
/// the region, even if other threads or CPUs are allocating meanwhile
/// (`src/arena.rs` has the protocol).
///
/// ```
/// use core::alloc::Layout;
/// use core::mem::MaybeUninit;
/// use ft_malloc::{ArenaProvider, Heap};
///
/// const WINDOW: usize = 256 << 10;
/// #[repr(align(4096))]
/// struct Window([MaybeUninit<u8>; WINDOW]);
/// static mut MEMORY: Window = Window([MaybeUninit::uninit(); WINDOW]);
///
/// // In a kernel the window is a constant (blog_os: HEAP_START, HEAP_SIZE);
/// // here the memory behind it is a static, so its address is only known
/// // at run time.
/// let start = (&raw mut MEMORY).cast::<u8>();
/// let heap: Heap<ArenaProvider> = Heap::new(ArenaProvider::empty_in(start.addr(), WINDOW));
/// let layout = Layout::new::<u64>();
/// assert!(heap.allocate(layout).is_none(), "no region yet: null, not a fault");
///
/// // Two regions, added at any time (here: the two halves of the window).
/// // SAFETY: MEMORY is used by nothing but this heap.
/// unsafe {
///     heap.provider().add_region(start, WINDOW / 2).unwrap();
///     heap.provider().add_region(start.add(WINDOW / 2), WINDOW / 2).unwrap();
/// }
/// let block = heap.allocate(layout).unwrap();
/// // SAFETY: `block` came from `heap` and is not used afterwards.
/// unsafe { heap.deallocate(block).unwrap() };
/// assert_eq!(heap.provider().capacity_bytes(), WINDOW);
/// ```
///
/// A region given at construction:
///
/// ```
/// use core::mem::MaybeUninit;
/// use ft_malloc::ArenaProvider;
///
/// static mut REGION: [MaybeUninit<u8>; 256 << 10] = [MaybeUninit::uninit(); 256 << 10];
/// // SAFETY: REGION is used by nothing else.
/// let arena = unsafe { ArenaProvider::new((&raw mut REGION).cast(), 256 << 10) };
/// // Less, the region being byte aligned, a partial page.
/// assert!(arena.capacity_bytes() >= 252 << 10);
/// ```
pub struct ArenaProvider {
    span: Span,
    /// Serialises every use of a ready slot's bitmap. Holds whether the
    /// region given to [`new`](Self::new) is still to be set up (in slot 0).
    lock: spin::Mutex<bool>,
    /// Claimed count and ready bits (see the module's protocol).
    slots: AtomicUsize,
    /// Each region's bitmap, written once by whoever claimed the slot.
    pages: [UnsafeCell<MaybeUninit<Pages>>; MAX_REGIONS],
}

/// Where every run will lie (see [`ArenaProvider`]'s table).
#[derive(Clone, Copy, Debug)]
enum Span {
    /// The region given to `new`.
    FirstRegion { start: *mut u8, len: usize },
    /// `[start, end)`, from `empty_in`.
    Window { start: usize, end: usize },
    /// Anywhere: `empty()`.
    Anywhere,
}

/// Why [`ArenaProvider::add_region`] refused a region. The region is not
/// used: it is the caller's again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegionError {
    /// The region does not lie inside the provider's span (the window of
    /// [`ArenaProvider::empty_in`], or the region of
    /// [`ArenaProvider::new`]).
    OutsideSpan,
    /// The region holds no whole page (beyond its bitmap's).
    TooSmall,
    /// The provider already has [`MAX_REGIONS`] regions.
    Full,
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegionError::OutsideSpan => "region outside the provider's span",
            RegionError::TooSmall => "region holds no whole page",
            RegionError::Full => "the provider has no slot for another region",
        })
    }
}

impl core::error::Error for RegionError {}

// SAFETY: the regions are owned by the provider (per the constructors' and
// `add_region`'s contracts) and every bitmap is behind the lock or private
// to the `add_region` that sets it up (see the module's protocol).
unsafe impl Send for ArenaProvider {}
// SAFETY: as above.
unsafe impl Sync for ArenaProvider {}

/// The span, the region count and, without waiting for the lock, how much
/// is handed out.
impl fmt::Debug for ArenaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ArenaProvider");
        d.field("span", &self.span())
            .field("regions", &self.ready_slots().count());
        // `try_lock`: a Debug print must not wait (or deadlock) on a heap
        // that is in the middle of mapping.
        if let Some(guard) = self.lock.try_lock() {
            let used: usize = self
                .ready_slots()
                .map(|p| {
                    // SAFETY: ready, and the lock is held (`guard`).
                    unsafe { &*p }.used_and_capacity().0
                })
                .sum();
            drop(guard);
            d.field("used_bytes", &used);
        }
        d.finish_non_exhaustive()
    }
}

impl ArenaProvider {
    /// A provider over `[start, start + len)`, whose span is that region.
    /// Nothing is written until the first `map`.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes, unused by anything
    /// else for as long as the provider (and any heap over it) lives.
    pub const unsafe fn new(start: *mut u8, len: usize) -> Self {
        ArenaProvider {
            span: Span::FirstRegion { start, len },
            lock: spin::Mutex::new(true),
            slots: AtomicUsize::new(1 << CLAIMED_SHIFT),
            pages: [const { UnsafeCell::new(MaybeUninit::uninit()) }; MAX_REGIONS],
        }
    }

    /// A provider with no region yet, whose regions will all lie in the
    /// address window `[start, start + len)`: the heap sizes itself to the
    /// window (see the table above). Until a region is added, every `map`
    /// fails.
    pub const fn empty_in(start: usize, len: usize) -> Self {
        let mut arena = Self::empty();
        arena.span = Span::Window {
            start,
            end: start.saturating_add(len),
        };
        arena
    }

    /// A provider with no region yet, whose regions may lie anywhere (the
    /// heap then uses its radix-tree page map: see the table above). Until a
    /// region is added, every `map` fails.
    pub const fn empty() -> Self {
        ArenaProvider {
            span: Span::Anywhere,
            lock: spin::Mutex::new(false),
            slots: AtomicUsize::new(0),
            pages: [const { UnsafeCell::new(MaybeUninit::uninit()) }; MAX_REGIONS],
        }
    }

    /// Gives the provider the region `[start, start + len)`, usable by the
    /// next `map`. May be called at any time, from any thread or CPU, while
    /// the heap over the provider is in use; it takes no lock and never
    /// waits. A region of more than 1 MiB loses its first page(s) to its
    /// bitmap (written here); a smaller one loses nothing but a partial
    /// first page if it is not page aligned.
    ///
    /// # Errors
    ///
    /// [`RegionError`]: the region is outside the span, too small, or the
    /// provider is full. The provider did not take the region.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes (mapped, in a kernel),
    /// must not overlap any other region of this provider, and must be used
    /// by nothing else for as long as the provider (and any heap over it)
    /// lives, unless this returns an error.
    pub unsafe fn add_region(&self, start: *mut u8, len: usize) -> Result<(), RegionError> {
        let (base, count) = extent(start, len).ok_or(RegionError::TooSmall)?;
        if count == 0 {
            return Err(RegionError::TooSmall);
        }
        if let Some((lo, hi)) = self.span() {
            let end = base.addr().checked_add(count * PAGE);
            if base.addr() < lo || end.is_none_or(|end| end > hi) {
                return Err(RegionError::OutsideSpan);
            }
        }
        let claimed = |word: usize| word >> CLAIMED_SHIFT;
        if claimed(self.slots.load(Ordering::Relaxed)) >= MAX_REGIONS {
            return Err(RegionError::Full);
        }
        // SAFETY: the caller gives us the region (the contract).
        let pages = unsafe { Pages::init(start, len) }.ok_or(RegionError::TooSmall)?;
        let word = self
            .slots
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                (claimed(w) < MAX_REGIONS).then_some(w + (1 << CLAIMED_SHIFT))
            })
            .map_err(|_| RegionError::Full)?;
        // SAFETY: the slot was claimed just now, by this call alone, and is
        // not ready: nobody else reads or writes its bitmap.
        unsafe { self.publish(claimed(word), pages) };
        Ok(())
    }

    /// Bytes currently handed out, over every region (bitmap pages
    /// excluded).
    pub fn used_bytes(&self) -> usize {
        self.sum(|p| p.used_and_capacity().0)
    }

    /// Bytes that can be handed out in total, over every region added so
    /// far.
    pub fn capacity_bytes(&self) -> usize {
        self.sum(|p| p.used_and_capacity().1)
    }

    /// Regions added so far (the one given to [`new`](Self::new) included,
    /// once set up).
    pub fn regions(&self) -> usize {
        let _set_up = self.locked();
        self.ready_slots().count()
    }

    fn sum(&self, f: impl Fn(&Pages) -> usize) -> usize {
        let _guard = self.locked();
        // SAFETY: ready slots, under the lock.
        self.ready_slots().map(|p| f(unsafe { &*p })).sum()
    }

    /// Writes slot `index`'s bitmap, then sets its ready bit.
    ///
    /// # Safety
    ///
    /// The caller claimed the slot and it is not ready yet.
    unsafe fn publish(&self, index: usize, pages: Pages) {
        // SAFETY: per the contract, nobody else reads or writes the slot.
        unsafe { (*self.pages[index].get()).write(pages) };
        self.slots.fetch_or(1 << index, Ordering::Release);
    }

    /// The bitmaps of the ready slots. Dereferencing one requires the lock.
    fn ready_slots(&self) -> impl Iterator<Item = *mut Pages> + '_ {
        let ready = self.slots.load(Ordering::Acquire);
        (0..MAX_REGIONS)
            .filter(move |i| ready & (1 << i) != 0)
            .map(|i| self.pages[i].get().cast::<Pages>())
    }

    /// Takes the lock, setting up `new`'s region first if it is still
    /// waiting.
    fn locked(&self) -> spin::MutexGuard<'_, bool> {
        let mut pending = self.lock.lock();
        if *pending {
            *pending = false;
            if let Span::FirstRegion { start, len } = self.span
                // SAFETY: `new`'s contract gives us the region.
                && let Some(pages) = unsafe { Pages::init(start, len) }
            {
                // SAFETY: slot 0 was claimed by `new` for this region, and
                // only here, under the lock, is it published.
                unsafe { self.publish(0, pages) };
            }
        }
        pending
    }

    /// The first `Some` that `f` returns over the ready regions, in the
    /// order they were added, under the lock.
    fn find_region<T>(&self, mut f: impl FnMut(&mut Pages) -> Option<T>) -> Option<T> {
        let _guard = self.locked();
        // SAFETY: each is ready, and only touched under the lock we hold.
        self.ready_slots().find_map(|p| f(unsafe { &mut *p }))
    }
}

// SAFETY: runs are disjoint page ranges of the caller-given regions, aligned
// as asked (the search only accepts aligned starts), inside the span (a
// region outside it is refused), and stay handed out until `unmap`.
// `resize` keeps contents: in place, or (only if allowed to move) copied to
// the new place.
unsafe impl PageProvider for ArenaProvider {
    fn page_size(&self) -> usize {
        PAGE
    }

    fn span(&self) -> Option<(usize, usize)> {
        match self.span {
            Span::FirstRegion { start, len } => {
                let (base, count) = extent(start, len)?;
                Some((base.addr(), base.addr() + count * PAGE))
            }
            Span::Window { start, end } => Some((start, end)),
            Span::Anywhere => None,
        }
    }

    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        self.find_region(|pages| pages.map(len, align))
            .and_then(NonNull::new)
    }

    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        let run = run.as_ptr();
        self.find_region(|pages| pages.contains(run.addr()).then(|| pages.unmap(run, len)));
    }

    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let old = run.as_ptr();
        let new = self.find_region(|pages| {
            if !pages.contains(old.addr()) {
                return None;
            }
            let (new, moved) = pages.resize(old, old_len, new_len, may_move)?;
            if moved {
                // SAFETY: both runs lie in this region; the old one is the
                // caller's (per the contract) and the new one was just taken
                // for it; the old pages the new run does not cover are free
                // again, so the copy runs under the lock, before any `map`
                // can hand them out. `copy` allows the overlap.
                unsafe { core::ptr::copy(old, new, old_len.next_multiple_of(PAGE)) };
            }
            Some(new)
        })?;
        NonNull::new(new)
    }
}

#[cfg(test)]
mod tests;
