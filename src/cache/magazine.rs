//! Magazines: fixed arrays of free blocks of one class, the unit that front
//! caches and the heap's depots exchange whole (Bonwick's magazine layer).
//!
//! Magazines are heap metadata, like page-map nodes: they come from the
//! provider in chunks, are carved into [`MAGAZINE_BYTES`] pieces, go back to
//! a free list when empty and unused, and the chunks go back to the
//! provider when the heap is dropped. Their lock is a leaf: taken under a
//! class lock, it takes no other lock of the heap.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::Entry;
use crate::provider::{MIN_PAGE_SIZE, PageProvider};

/// Bytes of one magazine.
pub const MAGAZINE_BYTES: usize = 512;
/// Blocks one magazine can hold (a class may use fewer: `bins.rs`).
pub const MAGAZINE_ENTRIES: usize =
    (MAGAZINE_BYTES - 2 * core::mem::size_of::<usize>()) / core::mem::size_of::<Entry>();
/// Bytes the magazine pool takes from the provider at a time.
const CHUNK_BYTES: usize = 16 * MIN_PAGE_SIZE;

/// A magazine: a stack of cached blocks of one class.
#[repr(C)]
pub(crate) struct Magazine {
    /// Next magazine on a depot's list or the free list.
    pub(crate) next: *mut Magazine,
    /// Blocks in `entries`.
    pub(crate) len: usize,
    pub(crate) entries: [MaybeUninit<Entry>; MAGAZINE_ENTRIES],
}

const _: () = assert!(core::mem::size_of::<Magazine>() <= MAGAZINE_BYTES);

impl Magazine {
    /// The `len` blocks it holds.
    pub(crate) fn blocks(&self) -> &[Entry] {
        // SAFETY: entries below `len` are initialised, and
        // `MaybeUninit<Entry>` has the layout of `Entry`.
        unsafe { core::slice::from_raw_parts(self.entries.as_ptr().cast::<Entry>(), self.len) }
    }
}

/// Where magazines come from: chunks from the provider, a free list.
pub(crate) struct MagazinePool {
    free: *mut Magazine,
    /// Chunks mapped so far, linked through their first word.
    chunks: *mut u8,
    /// Where the newest chunk's uncarved part starts, and how much is left.
    carve: *mut u8,
    carve_left: usize,
}

// SAFETY: the pool's memory is owned by the heap and reached under its lock.
unsafe impl Send for MagazinePool {}

impl MagazinePool {
    pub(crate) const fn new() -> Self {
        MagazinePool {
            free: ptr::null_mut(),
            chunks: ptr::null_mut(),
            carve: ptr::null_mut(),
            carve_left: 0,
        }
    }

    /// An empty magazine, or `None` if the provider has no memory.
    pub(crate) fn take<P: PageProvider>(
        &mut self,
        provider: &P,
        metadata: &AtomicUsize,
    ) -> Option<NonNull<Magazine>> {
        let magazine = match NonNull::new(self.free) {
            Some(magazine) => {
                // SAFETY: magazines on the free list are valid and ours.
                self.free = unsafe { magazine.as_ref().next };
                magazine
            }
            None => self.carve(provider, metadata)?,
        };
        // SAFETY: a magazine of ours, unused.
        unsafe {
            (*magazine.as_ptr()).next = ptr::null_mut();
            (*magazine.as_ptr()).len = 0;
        }
        Some(magazine)
    }

    /// Takes an empty magazine back.
    ///
    /// # Safety
    ///
    /// `magazine` came from [`take`](Self::take) of this pool, holds no
    /// block, and nothing refers to it any more.
    pub(crate) unsafe fn give(&mut self, magazine: NonNull<Magazine>) {
        // SAFETY: per the contract.
        unsafe { (*magazine.as_ptr()).next = self.free };
        self.free = magazine.as_ptr();
    }

    fn carve<P: PageProvider>(
        &mut self,
        provider: &P,
        metadata: &AtomicUsize,
    ) -> Option<NonNull<Magazine>> {
        if self.carve_left < MAGAZINE_BYTES {
            let chunk = provider.map(CHUNK_BYTES, MIN_PAGE_SIZE)?;
            metadata.fetch_add(CHUNK_BYTES, Ordering::Relaxed);
            // SAFETY: a fresh chunk of ours: its first word links the chunks.
            unsafe { chunk.as_ptr().cast::<*mut u8>().write(self.chunks) };
            self.chunks = chunk.as_ptr();
            // The first magazine slot holds the link; carve after it.
            self.carve = chunk.as_ptr().wrapping_add(MAGAZINE_BYTES);
            self.carve_left = CHUNK_BYTES - MAGAZINE_BYTES;
        }
        let magazine = self.carve.cast::<Magazine>();
        self.carve = self.carve.wrapping_add(MAGAZINE_BYTES);
        self.carve_left -= MAGAZINE_BYTES;
        NonNull::new(magazine)
    }

    /// Gives every chunk back to the provider.
    ///
    /// # Safety
    ///
    /// No magazine of this pool is used any more.
    pub(crate) unsafe fn release<P: PageProvider>(&mut self, provider: &P, metadata: &AtomicUsize) {
        while let Some(chunk) = NonNull::new(self.chunks) {
            // SAFETY: every chunk starts with the link to the next.
            self.chunks = unsafe { chunk.as_ptr().cast::<*mut u8>().read() };
            // SAFETY: a chunk mapped by `carve`, unused per the contract.
            unsafe { provider.unmap(chunk, CHUNK_BYTES) };
            metadata.fetch_sub(CHUNK_BYTES, Ordering::Relaxed);
        }
        *self = Self::new();
    }
}
