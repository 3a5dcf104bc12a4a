//! The page provider: the only way the allocator obtains and returns memory
//! (documented on [`PageProvider`], where `cargo doc` shows it).

use core::ptr::NonNull;

/// The smallest page size the core accepts. Zone geometry and the page map
/// work in granules of this size; a provider with larger pages (16 KiB, 64 KiB)
/// simply hands out runs that are multiples of it.
pub const MIN_PAGE_SIZE: usize = 4096;

/// A source of page runs: the only way a [`Heap`](crate::Heap) obtains and
/// returns memory.
///
/// The core never calls `mmap`, never touches page tables and never assumes
/// a particular address space. Everything it manages comes from a provider
/// as *runs*: contiguous, page-aligned ranges of whole pages. A hosted build
/// maps runs with `mmap`, a kernel reserves virtual runs and maps frames on
/// demand, an embedded system carves runs out of a fixed region
/// ([`ArenaProvider`](crate::ArenaProvider)).
///
/// # How the heap calls it
///
/// - **Under heap locks.** `map`, `unmap`, `resize` and `decommit` run
///   while the heap holds the lock of the size class they serve (or the
///   LARGE lock; only `Drop` calls `unmap` without one, having `&mut`), so
///   a slow provider delays that class, and with an interrupt-disabling lock
///   such as `IrqSpinLock` the calls run with interrupts off. `page_size`
///   and `zeroed_on_map` may be called at any time.
/// - **Never from the same heap.** A provider must not allocate from, free
///   to or otherwise call the heap it serves: it would wait for a lock its
///   own thread holds, or recurse. When the heap is the
///   `#[global_allocator]`, that rules out `Box`, `Vec` and anything else
///   that allocates. It must not panic either: `GlobalAlloc` must not
///   unwind.
/// - **Concurrently.** Methods take `&self` because different size classes
///   call the provider at the same time from several threads (or CPUs):
///   `map` for one class while `unmap` or `resize` runs for another. Calls
///   concerning *one* run never overlap (a run belongs to one class or LARGE
///   block, under its lock). A provider that keeps state must synchronise it
///   itself, for example with a lock of its own taken inside these calls.
/// - **Rarely.** Zones are 64 KiB or more and an empty zone per class is
///   kept, so a steady program calls the provider seldom; LARGE blocks call
///   it per block unless the LARGE cache serves them.
/// - **Metadata too.** The page map's nodes (32 KiB each) are runs from the
///   same provider, kept until the heap is dropped; dropping a heap gives
///   every run back.
///
/// # Which `align` values come, and when
///
/// `align` is a power of two, never below the page size, and `len` a
/// multiple of the page size:
///
/// - **The page size**, for nearly every call: a zone (its size fixed by
///   its class, 64 KiB to about 3 MiB, less in a small span), a LARGE
///   block's run of ordinary alignment, the page map's nodes or flat array,
///   and the front caches' magazine chunks (64 KiB).
/// - **More than a page** only for a LARGE run whose `Layout` asks for it:
///   a request aligned to more than 4 KiB (`Layout::from_size_align(n,
///   1 << 21)` gives `align == 2 MiB`) is LARGE whatever its size, and its
///   run is mapped with `align = layout.align()`. A provider that cannot
///   align that far returns `None`, and that one allocation fails.
///
/// So a provider that only hands out page-aligned runs serves every
/// ordinary program; aligning beyond a page is needed only by callers that
/// ask for it.
///
/// # Example
///
/// A provider that carves runs off a static region from the bottom up and
/// never reuses them: the least a provider can be (for a real one, with
/// reuse, see [`ArenaProvider`](crate::ArenaProvider)).
///
/// ```
/// use core::alloc::Layout;
/// use core::ptr::NonNull;
/// use core::sync::atomic::{AtomicUsize, Ordering};
/// use ft_malloc::{Heap, PageProvider};
///
/// #[repr(align(4096))]
/// struct Region([u8; 1 << 20]);
/// static mut REGION: Region = Region([0; 1 << 20]);
///
/// struct Bump {
///     next: AtomicUsize,
/// }
///
/// // SAFETY: runs are disjoint (the offset only grows), aligned as asked,
/// // inside REGION, which only this provider hands out.
/// unsafe impl PageProvider for Bump {
///     fn page_size(&self) -> usize {
///         4096
///     }
///     fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
///         let base = (&raw mut REGION).cast::<u8>();
///         let mut start = 0;
///         self.next
///             .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
///                 // `align` is the page size, or more for an over-aligned
///                 // LARGE block: align the address, not the offset.
///                 let addr = (base.addr() + next).next_multiple_of(align);
///                 start = addr - base.addr();
///                 let end = start.checked_add(len)?;
///                 (end <= 1 << 20).then_some(end)
///             })
///             .ok()?;
///         // SAFETY: `start + len` is within the region.
///         NonNull::new(unsafe { base.add(start) })
///     }
///     unsafe fn unmap(&self, _run: NonNull<u8>, _len: usize) {
///         // Never reused: the region is spent once.
///     }
///     fn zeroed_on_map(&self) -> bool {
///         true // a static starts zeroed and no run is handed out twice
///     }
/// }
///
/// let heap = Heap::<Bump>::new(Bump { next: AtomicUsize::new(0) });
/// let page_aligned = heap.allocate(Layout::from_size_align(100, 8).unwrap()).unwrap();
/// let over_aligned = heap.allocate(Layout::from_size_align(100, 64 << 10).unwrap()).unwrap();
/// assert_eq!(over_aligned.as_ptr().addr() % (64 << 10), 0);
/// // SAFETY: both came from `heap` and are not used afterwards.
/// unsafe {
///     heap.deallocate(page_aligned).unwrap();
///     heap.deallocate(over_aligned).unwrap();
/// }
/// ```
///
/// # Safety
///
/// Implementors promise that:
/// - [`page_size`](Self::page_size) is a power of two, at least
///   [`MIN_PAGE_SIZE`], and never changes.
/// - A run returned by [`map`](Self::map) is `len` bytes long, aligned to at
///   least `max(align, page_size)`, readable and writable (possibly on first
///   touch through a page fault that the environment resolves), does not
///   overlap any other run currently handed out, and stays valid until it is
///   given back with [`unmap`](Self::unmap) (or resized).
/// - If [`zeroed_on_map`](Self::zeroed_on_map) returns `true`, every byte of a
///   freshly mapped run (and of the part added by a resize) reads as zero.
/// - [`span`](Self::span), if it returns a range, returns the same one on
///   every call, and every run lies either wholly inside it or wholly
///   outside it (runs outside are for a provider whose span is full: see
///   [`span`](Self::span)).
/// - The optional methods either do exactly what their documentation says or
///   keep their default behaviour.
pub unsafe trait PageProvider {
    /// The provider's page size in bytes.
    fn page_size(&self) -> usize;

    /// Maps a run of `len` bytes (a non-zero multiple of the page size) whose
    /// start is aligned to `align` (a power of two; at least the page size;
    /// more only for an over-aligned LARGE block: see "Which `align` values
    /// come" above).
    ///
    /// Returns `None` when memory is exhausted; the allocator then reports an
    /// allocation failure and carries on.
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>>;

    /// Gives a run back.
    ///
    /// # Safety
    ///
    /// `run` and `len` must describe exactly one run previously returned by
    /// [`map`](Self::map) (or by a resize) and not yet given back. Nothing may
    /// access the run afterwards.
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize);

    /// Whether freshly mapped memory always reads as zero (true for `mmap` and
    /// for demand paging with zeroed frames). Lets `calloc` skip its memset.
    fn zeroed_on_map(&self) -> bool {
        false
    }

    /// Whether a run of `len` bytes could be mapped at all if the heap gave
    /// back everything it caches. The heap asks after [`map`](Self::map)
    /// refused a LARGE run, before trimming every cache to try again:
    /// `false` (the request exceeds the address space or a fixed limit) makes
    /// an impossible request fail at once instead of emptying the caches for
    /// nothing. The default, `true`, always tries.
    fn may_map_later(&self, len: usize) -> bool {
        let _ = len;
        true
    }

    /// Optional: the address range `[start, end)` that every run this
    /// provider will ever hand out lies in, if it is known and fixed (an
    /// arena knows its region). The heap sizes its page map and its zones
    /// to it: a small span gets a small map and small zones. The default,
    /// `None`, means "anywhere in the address space".
    ///
    /// The heap may ask before the provider has any memory (a kernel heap
    /// that starts empty): the answer must already be the final one, such
    /// as the virtual window the heap will be mapped at
    /// ([`ArenaProvider::empty_in`](crate::ArenaProvider::empty_in)).
    ///
    /// Runs belong inside the span; a provider whose span is full may still
    /// hand out runs wholly outside it (`libft_malloc.so`'s window, once a
    /// process has outgrown it). The page map keeps those in a tree beside
    /// its flat array, so they cost a tree walk per lookup; the small-region
    /// pool, whose links are offsets from the span, takes none of them. A
    /// run never crosses the span's edge, and [`resize`](Self::resize) never
    /// moves one across it or outside it (the heap re-registers a moved run
    /// with the nodes it set aside for the flat array's layout: none).
    fn span(&self) -> Option<(usize, usize)> {
        None
    }

    /// Whether [`resize`](Self::resize) with `may_move` moves a run without
    /// copying its bytes (`mremap` remaps the pages). The heap then moves a
    /// growing LARGE run before it tries a fresh run and a copy; otherwise
    /// (an arena copies all of a moved run) only once its span is tight.
    /// The default: a provider without a span (the address space is the
    /// kernel's, as `mremap`'s) moves cheaply, one with a span copies.
    fn moves_without_copying(&self) -> bool {
        self.span().is_none()
    }

    /// Optional: resizes a run from `old_len` to `new_len` bytes (both
    /// multiples of the page size), like `mremap`. When `may_move` is false
    /// the run must stay where it is. Returns the run's (possibly new) start,
    /// or `None` if the provider cannot do it, in which case the run is
    /// unchanged. The default cannot.
    ///
    /// On success the first `min(old_len, new_len)` bytes keep their contents.
    ///
    /// # Safety
    ///
    /// `run` and `old_len` must describe a live run from this provider. After
    /// success, the old description is dead and only the returned run with
    /// `new_len` is live.
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let _ = (run, old_len, new_len, may_move);
        None
    }

    /// Optional: tells the provider that the pages of `[start, start + len)`
    /// (page aligned, inside a live run) hold nothing of value. The provider
    /// may drop their backing (`madvise(MADV_DONTNEED)`, unmapping frames);
    /// they must read as zero or keep their contents when touched again. The
    /// default does nothing.
    ///
    /// # Safety
    ///
    /// The range must lie inside a live run of this provider, page aligned.
    unsafe fn decommit(&self, start: NonNull<u8>, len: usize) {
        let _ = (start, len);
    }
}

// SAFETY: forwards every call to a provider that keeps the contract.
unsafe impl<P: PageProvider + ?Sized> PageProvider for &P {
    fn page_size(&self) -> usize {
        (**self).page_size()
    }
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        (**self).map(len, align)
    }
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        // SAFETY: same contract.
        unsafe { (**self).unmap(run, len) }
    }
    fn zeroed_on_map(&self) -> bool {
        (**self).zeroed_on_map()
    }
    fn may_map_later(&self, len: usize) -> bool {
        (**self).may_map_later(len)
    }
    fn span(&self) -> Option<(usize, usize)> {
        (**self).span()
    }
    fn moves_without_copying(&self) -> bool {
        (**self).moves_without_copying()
    }
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        // SAFETY: same contract.
        unsafe { (**self).resize(run, old_len, new_len, may_move) }
    }
    unsafe fn decommit(&self, start: NonNull<u8>, len: usize) {
        // SAFETY: same contract.
        unsafe { (**self).decommit(start, len) }
    }
}
