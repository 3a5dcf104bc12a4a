//! [`MmapProvider`]: page runs straight from the kernel with `mmap`.
//!
//! Private anonymous mappings are zero on first touch, can be given back run by
//! run with `munmap`, grown or moved without copying with `mremap`, and emptied
//! of their physical pages with `madvise(MADV_DONTNEED)` while the addresses
//! stay reserved. When the kernel refuses (`ulimit -v`, `vm.overcommit`), the
//! provider answers `None` and the heap turns that into a NULL with `ENOMEM`.

use core::ptr::{self, NonNull};

use ft_malloc::PageProvider;

use crate::guard_pages;
use crate::os::{self, ErrnoGuard};

/// A [`PageProvider`] over `mmap`. Stateless: the kernel keeps the books.
#[derive(Debug, Default)]
pub struct MmapProvider(());

impl MmapProvider {
    /// The provider. `const`, so the global heap needs no runtime set-up.
    pub const fn new() -> Self {
        MmapProvider(())
    }
}

/// Maps `len` fresh bytes anywhere, or `None` if the kernel refuses.
pub(crate) fn mmap_anywhere(len: usize) -> Option<NonNull<u8>> {
    // SAFETY: a new private anonymous mapping at an address of the kernel's
    // choosing touches no existing memory.
    let run = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if run == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(run.cast())
    }
}

/// Unmaps `[start, start + len)`, which this module mapped.
///
/// # Safety
///
/// The range is page aligned, lies inside mappings made here, and nothing uses
/// it any more.
unsafe fn munmap(start: usize, len: usize) {
    if len != 0 {
        // SAFETY: per the contract. munmap only fails for bad arguments,
        // which the contract excludes, so its result carries no information.
        unsafe { libc::munmap(start as *mut libc::c_void, len) };
    }
}

// SAFETY: runs come from fresh private anonymous mappings: page aligned (and
// trimmed to `align` when more is asked), `len` bytes, readable and writable,
// zero-filled, disjoint from every other live mapping, and valid until
// `munmap`/`mremap`. `page_size` is the kernel's, fixed for the process.
unsafe impl PageProvider for MmapProvider {
    fn page_size(&self) -> usize {
        os::page_size()
    }

    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let _errno = ErrnoGuard::save();
        let page = os::page_size();
        let guard = if guard_pages::enabled() { page } else { 0 };
        if align <= page && guard == 0 {
            return mmap_anywhere(len);
        }
        // The kernel only promises page alignment: map `align - page` extra
        // bytes (and the guard pages), then cut off the misaligned head and
        // the unused tail.
        let align = align.max(page);
        let total = len.checked_add(align - page)?.checked_add(2 * guard)?;
        let run = mmap_anywhere(total)?.as_ptr().addr();
        let start = (run + guard).next_multiple_of(align);
        let head = start - guard - run;
        let tail = total - head - len - 2 * guard;
        // SAFETY: head, tail and the guards lie inside the mapping just
        // made, page aligned (run, start and len are), and nothing refers to
        // them.
        unsafe {
            munmap(run, head);
            munmap(start + len + guard, tail);
            if guard != 0 {
                libc::mprotect((start - guard) as *mut libc::c_void, guard, libc::PROT_NONE);
                libc::mprotect((start + len) as *mut libc::c_void, guard, libc::PROT_NONE);
            }
        }
        NonNull::new(start as *mut u8)
    }

    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        let _errno = ErrnoGuard::save();
        let guard = if guard_pages::enabled() {
            os::page_size()
        } else {
            0
        };
        // SAFETY: the caller gives back a whole run it got from `map`, with
        // its guards when runs have them.
        unsafe { munmap(run.as_ptr().addr() - guard, len + 2 * guard) };
    }

    fn zeroed_on_map(&self) -> bool {
        true
    }

    fn may_map_later(&self, len: usize) -> bool {
        crate::map_limits::may_map_later(len)
    }

    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let _errno = ErrnoGuard::save();
        if guard_pages::enabled() {
            // The guard after the run would be in the way of a growth, or
            // stay behind after a move; a shrink makes a new one.
            // SAFETY: the caller owns the run, mapped with guards, and gives
            // up its bytes past `new_len` (page multiples, as all run
            // lengths).
            let shrunk =
                new_len < old_len && unsafe { guard_pages::shrink(run.as_ptr(), old_len, new_len) };
            return shrunk.then_some(run);
        }
        let flags = if may_move { libc::MREMAP_MAYMOVE } else { 0 };
        // SAFETY: the caller owns the run `[run, run + old_len)`; mremap
        // either succeeds (the old range is then dead, the new one live and
        // its growth zero-filled) or fails leaving the run untouched.
        let moved = unsafe { libc::mremap(run.as_ptr().cast(), old_len, new_len, flags) };
        if moved == libc::MAP_FAILED {
            None
        } else {
            NonNull::new(moved.cast())
        }
    }

    unsafe fn decommit(&self, start: NonNull<u8>, len: usize) {
        let _errno = ErrnoGuard::save();
        // SAFETY: the caller says the range is inside a live run and holds
        // nothing; DONTNEED on private anonymous memory makes it read as zero
        // on next touch, which the trait allows.
        unsafe { libc::madvise(start.as_ptr().cast(), len, libc::MADV_DONTNEED) };
    }
}
