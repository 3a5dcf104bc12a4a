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
///   every call, and every run lies inside it.
/// - The optional methods either do exactly what their documentation says or
///   keep their default behaviour.
pub unsafe trait PageProvider {
    /// The provider's page size in bytes.
    fn page_size(&self) -> usize;

    /// Maps a run of `len` bytes (a non-zero multiple of the page size) whose
    /// start is aligned to `align` (a power of two; at least the page size).
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
    fn span(&self) -> Option<(usize, usize)> {
        None
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
