//! Providers for the core's tests: the arena over a heap buffer, and a real
//! `mmap` provider, both counting the bytes they hold so tests can check
//! that everything goes back.
#![allow(dead_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use ft_malloc::{ArenaProvider, PageProvider};

/// Wraps a provider and counts what it holds.
pub struct Counting<P> {
    pub inner: P,
    pub held: AtomicUsize,
}

impl<P> Counting<P> {
    pub const fn new(inner: P) -> Self {
        Counting {
            inner,
            held: AtomicUsize::new(0),
        }
    }
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

// SAFETY: forwards to a provider that keeps the contract.
unsafe impl<P: PageProvider> PageProvider for Counting<P> {
    fn page_size(&self) -> usize {
        self.inner.page_size()
    }
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let run = self.inner.map(len, align)?;
        assert_eq!(
            run.as_ptr().addr() % align.max(self.page_size()),
            0,
            "provider alignment"
        );
        self.held.fetch_add(len, Ordering::SeqCst);
        Some(run)
    }
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        self.held.fetch_sub(len, Ordering::SeqCst);
        unsafe { self.inner.unmap(run, len) }
    }
    fn zeroed_on_map(&self) -> bool {
        self.inner.zeroed_on_map()
    }
    fn span(&self) -> Option<(usize, usize)> {
        self.inner.span()
    }
    unsafe fn decommit(&self, start: NonNull<u8>, len: usize) {
        unsafe { self.inner.decommit(start, len) }
    }
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old: usize,
        new: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let r = unsafe { self.inner.resize(run, old, new, may_move) }?;
        self.held.fetch_add(new, Ordering::SeqCst);
        self.held.fetch_sub(old, Ordering::SeqCst);
        Some(r)
    }
}

/// Real anonymous mappings, with `mremap` for resizes.
pub struct Mmap;

// SAFETY: mmap returns fresh zeroed private mappings; over-mapping then
// trimming gives the alignment; mremap keeps contents.
unsafe impl PageProvider for Mmap {
    fn page_size(&self) -> usize {
        4096
    }
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let extra = align.saturating_sub(4096);
        let total = len.checked_add(extra)?;
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let p = p.cast::<u8>();
        let start = p.addr().next_multiple_of(align);
        let head = start - p.addr();
        unsafe {
            if head > 0 {
                libc::munmap(p.cast(), head);
            }
            let tail = total - head - len;
            if tail > 0 {
                libc::munmap(p.add(head + len).cast(), tail);
            }
            NonNull::new(p.add(head))
        }
    }
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        let rc = unsafe { libc::munmap(run.as_ptr().cast(), len) };
        assert_eq!(rc, 0);
    }
    fn zeroed_on_map(&self) -> bool {
        true
    }
    unsafe fn decommit(&self, start: NonNull<u8>, len: usize) {
        let rc = unsafe { libc::madvise(start.as_ptr().cast(), len, libc::MADV_DONTNEED) };
        assert_eq!(rc, 0);
    }
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old: usize,
        new: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let flags = if may_move { libc::MREMAP_MAYMOVE } else { 0 };
        let p = unsafe { libc::mremap(run.as_ptr().cast(), old, new, flags) };
        if p == libc::MAP_FAILED {
            None
        } else {
            NonNull::new(p.cast())
        }
    }
}

/// An arena provider that owns its buffer (so nothing leaks, and Miri's
/// leak check stays quiet).
pub struct OwnedArena {
    provider: ArenaProvider,
    /// From `alloc_zeroed`: a raw pointer, so moving the struct does not
    /// retag (and invalidate) the pointer the provider holds.
    buffer: *mut u8,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is only reached through the provider, which is Sync.
unsafe impl Send for OwnedArena {}
// SAFETY: as above.
unsafe impl Sync for OwnedArena {}

impl Drop for OwnedArena {
    fn drop(&mut self) {
        // SAFETY: from `alloc_zeroed` with `layout` in `arena_aligned`, freed once.
        unsafe { std::alloc::dealloc(self.buffer, self.layout) };
    }
}

impl OwnedArena {
    pub fn used_bytes(&self) -> usize {
        self.provider.used_bytes()
    }
    pub fn capacity_bytes(&self) -> usize {
        self.provider.capacity_bytes()
    }
}

/// An arena provider over a buffer of `bytes` that it owns (aligned to 16
/// bytes only: its first and last pages may be partial).
pub fn arena(bytes: usize) -> OwnedArena {
    arena_aligned(bytes, 16)
}

/// An arena provider over a buffer of `bytes` aligned to `align`, as a
/// kernel's static heap region would be.
pub fn arena_aligned(bytes: usize, align: usize) -> OwnedArena {
    let layout = std::alloc::Layout::from_size_align(bytes, align).unwrap();
    // SAFETY: `bytes > 0` in every test.
    let buffer = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!buffer.is_null());
    // SAFETY: the buffer lives as long as the provider (freed in `Drop`).
    let provider = unsafe { ArenaProvider::new(buffer, bytes) };
    OwnedArena {
        provider,
        buffer,
        layout,
    }
}

// SAFETY: forwards to the arena provider.
unsafe impl PageProvider for OwnedArena {
    fn page_size(&self) -> usize {
        self.provider.page_size()
    }
    fn span(&self) -> Option<(usize, usize)> {
        self.provider.span()
    }
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        self.provider.map(len, align)
    }
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        unsafe { self.provider.unmap(run, len) }
    }
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old: usize,
        new: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        unsafe { self.provider.resize(run, old, new, may_move) }
    }
}

/// xorshift64: the same sequence on every run and target.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    /// A request size in `16..2048`, drawn as the benchmark draws them
    /// (talc's method, `bench/src/draw.rs`): a cap `U[17, 2048)`, then the
    /// size `U[16, cap)`, so small sizes are more frequent than large ones.
    pub fn mixed_size(&mut self) -> usize {
        let cap = 17 + self.below(2048 - 17);
        16 + self.below(cap - 16)
    }
}

/// A provider whose span is reported `wide` bytes long from the inner
/// span's start, though only the inner one's pages are ever handed out (a
/// wider span still holds every run, as the contract asks). The heap then
/// sizes itself for the wide span: a small region that still gets SMALL
/// zones (a span under 2 MiB would serve SMALL requests from its pool).
pub struct WideSpan<P> {
    pub inner: P,
    pub wide: usize,
}

// SAFETY: forwards to a provider that keeps the contract; the span only
// grows, so every run still lies in it.
unsafe impl<P: PageProvider> PageProvider for WideSpan<P> {
    fn page_size(&self) -> usize {
        self.inner.page_size()
    }
    fn span(&self) -> Option<(usize, usize)> {
        let (start, end) = self.inner.span()?;
        Some((start, end.max(start + self.wide)))
    }
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        self.inner.map(len, align)
    }
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        unsafe { self.inner.unmap(run, len) }
    }
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old: usize,
        new: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        unsafe { self.inner.resize(run, old, new, may_move) }
    }
}

/// Real mappings, counting decommits (`madvise(MADV_DONTNEED)`): for the
/// tests of what goes back to the kernel (`decay.rs`, `purge.rs`).
pub struct DecommitCounted {
    pub inner: Mmap,
    pub decommits: AtomicUsize,
}

// SAFETY: forwards to a provider that keeps the contract.
unsafe impl PageProvider for DecommitCounted {
    fn page_size(&self) -> usize {
        self.inner.page_size()
    }
    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        self.inner.map(len, align)
    }
    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        unsafe { self.inner.unmap(run, len) }
    }
    fn zeroed_on_map(&self) -> bool {
        self.inner.zeroed_on_map()
    }
    unsafe fn decommit(&self, start: NonNull<u8>, len: usize) {
        self.decommits.fetch_add(1, Ordering::Relaxed);
        unsafe { self.inner.decommit(start, len) }
    }
    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old: usize,
        new: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        unsafe { self.inner.resize(run, old, new, may_move) }
    }
}

/// A heap over real mappings that counts its decommits.
pub fn decommit_counted_heap() -> ft_malloc::Heap<DecommitCounted> {
    ft_malloc::Heap::new(DecommitCounted {
        inner: Mmap,
        decommits: AtomicUsize::new(0),
    })
}

/// The decommits `heap` made so far.
pub fn decommits(heap: &ft_malloc::Heap<DecommitCounted>) -> usize {
    heap.provider().decommits.load(Ordering::Relaxed)
}
