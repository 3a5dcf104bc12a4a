//! [`MmapProvider`]: page runs straight from the kernel with `mmap`, placed in
//! the process's address window (`window.rs`) when it has one.
//!
//! Private anonymous mappings are zero on first touch, can be given back run by
//! run with `munmap`, and emptied of their physical pages with
//! `madvise(MADV_DONTNEED)` while the addresses stay mapped. When the kernel
//! refuses (`ulimit -v`, `vm.overcommit`), the provider answers `None` and the
//! heap turns that into a NULL with `ENOMEM`.
//!
//! # The window, and runs outside it
//!
//! [`span`](PageProvider::span) is the window (`window::span`: chosen once,
//! before the first run, race-free), so the heap's page map is a flat array
//! over it. In the window:
//! - `map` takes a range from the window's books (first fit, else the top)
//!   and maps it there with `MAP_FIXED_NOREPLACE`: one `mmap`, as before.
//!   With guard pages the range is mapped `PROT_NONE` and its middle opened
//!   (`mprotect`): two calls where there were five.
//! - `unmap` is one `munmap`; the range goes back to the books.
//! - `resize` shrinks in place (the tail is unmapped and given back) and
//!   grows in place when the pages after the run are free in the books
//!   (`mremap` without `MREMAP_MAYMOVE`: the run stays one mapping). Otherwise,
//!   when the heap lets it move, it takes a fresh range of the window,
//!   claims it with a `PROT_NONE` placeholder and moves the run's pages
//!   there with `mremap(MREMAP_FIXED)`: no copy, as before the window
//!   (`moves_without_copying` is true, so the heap moves a growing LARGE
//!   run before it tries a copy). The placeholder makes a move need the
//!   new length of free address space under `RLIMIT_AS`, where a plain
//!   `mremap` needs the growth only.
//!
//! Without a window (a 32-bit process, an `RLIMIT_AS` under
//! `window::MIN_WINDOW`, an address space that does not reach it), every run
//! is mapped anywhere and `resize` is `mremap`, as before the window. When
//! the window is full, or [`CONFLICT_TRIES`] ranges in a row turn out taken
//! by other mappings, a run is mapped anywhere too; the page map keeps it in
//! its tree for runs outside the span, and, per the trait's contract, it
//! never moves (`mremap` without `MREMAP_MAYMOVE`).

use core::ptr::{self, NonNull};

use ft_malloc::PageProvider;

use crate::guard_pages;
use crate::os::{self, ErrnoGuard};
use crate::window::{self, BOOKS, CONFLICT_TRIES, Refused};

/// A [`PageProvider`] over `mmap`. Its state is the process's: the window
/// and its books (`window.rs`).
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

/// Bytes of guard page on each side of a run (0 without guard pages).
fn guard_bytes() -> usize {
    if guard_pages::enabled() {
        os::page_size()
    } else {
        0
    }
}

/// Whether `addr` lies in the window `win`.
fn in_window(win: Option<(usize, usize)>, addr: usize) -> bool {
    win.is_some_and(|(start, end)| (start..end).contains(&addr))
}

/// Why a run was not mapped in the window.
enum NotInWindow {
    /// No free range fits (or the ranges tried were someone else's): map
    /// the run elsewhere.
    Full,
    /// The kernel is out of memory or address space: so is every other place.
    Exhausted,
}

/// Maps a run of `len` bytes aligned to `align`, with `guard` bytes of
/// guard on each side, in the window `win`; returns its start.
fn map_in_window(
    win: (usize, usize),
    len: usize,
    align: usize,
    guard: usize,
) -> Result<usize, NotInWindow> {
    for _ in 0..CONFLICT_TRIES {
        let body = BOOKS
            .lock()
            .take(win, len, align, guard)
            .ok_or(NotInWindow::Full)?;
        let (low, total) = (body - guard, len + 2 * guard);
        let mapped = if guard == 0 {
            // SAFETY: the books gave us the range: no run of ours is there.
            unsafe { window::map_fixed(low, total, libc::PROT_READ | libc::PROT_WRITE, 0) }
        } else {
            // SAFETY: as above; the guards stay PROT_NONE, the middle opens
            // (charged to the commit limit then, as a writable mapping is:
            // no MAP_NORESERVE).
            unsafe { window::map_fixed(low, total, libc::PROT_NONE, 0) }.and_then(|()| {
                // SAFETY: the middle of the mapping just made.
                let opened = unsafe {
                    libc::mprotect(
                        body as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                    )
                };
                if opened == 0 {
                    return Ok(());
                }
                // SAFETY: the mapping just made, which nothing uses.
                unsafe { munmap(low, total) };
                Err(Refused::Exhausted)
            })
        };
        match mapped {
            Ok(()) => return Ok(body),
            // Someone else's mapping: the books keep the range taken (the
            // window loses it) and the next try takes another.
            Err(Refused::Occupied) => {}
            Err(Refused::Exhausted) => {
                BOOKS.lock().give(win.0, low, low + total);
                return Err(NotInWindow::Exhausted);
            }
        }
    }
    Err(NotInWindow::Full)
}

/// Maps a run anywhere (outside the window): page aligned by the kernel,
/// trimmed to `align`, with guards made inaccessible.
fn map_anywhere_aligned(len: usize, align: usize, guard: usize) -> Option<NonNull<u8>> {
    let page = os::page_size();
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

// SAFETY: runs are fresh private anonymous mappings: zero-filled, readable
// and writable, page aligned (and placed or trimmed to `align` when more is
// asked), `len` bytes, disjoint from every other live run (the window's
// books hand a range out once, NOREPLACE maps nothing over another mapping,
// the kernel's placements are free ranges), and valid until `munmap` or a
// resize. `span` is `window::span`, fixed once chosen, and chosen before the
// first run; a run lies wholly in the window or wholly outside it (the
// books stay inside it, `map` refuses a kernel placement that touches it,
// and `resize` refuses to grow a run outside into it), and a run outside
// never moves while there is a window. Disjointness never rests on the
// books alone: every mapping in the window is NOREPLACE (or `mremap`
// without MAYMOVE, or MREMAP_FIXED over our own NOREPLACE placeholder).
// `page_size` is the kernel's, fixed.
unsafe impl PageProvider for MmapProvider {
    fn page_size(&self) -> usize {
        os::page_size()
    }

    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let _errno = ErrnoGuard::save();
        let guard = guard_bytes();
        let align = align.max(os::page_size());
        if let Some(win) = window::span() {
            match map_in_window(win, len, align, guard) {
                Ok(body) => return NonNull::new(body as *mut u8),
                Err(NotInWindow::Exhausted) => return None,
                Err(NotInWindow::Full) => {}
            }
        }
        let run = map_anywhere_aligned(len, align, guard)?;
        // The kernel places runs far from the window; one in it (possible
        // only once the address space above it is used up) would be in
        // ranges the books think free, one across its edge would break the
        // trait's contract: refuse both.
        let (low, high) = (
            run.as_ptr().addr() - guard,
            run.as_ptr().addr() + len + guard,
        );
        if let Some((start, end)) = window::span()
            && low < end
            && high > start
        {
            // SAFETY: the run just mapped, with its guards; nothing uses it.
            unsafe { munmap(low, high - low) };
            return None;
        }
        Some(run)
    }

    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        let _errno = ErrnoGuard::save();
        let guard = guard_bytes();
        let low = run.as_ptr().addr() - guard;
        // SAFETY: the caller gives back a whole run it got from `map`, with
        // its guards when runs have them.
        unsafe { munmap(low, len + 2 * guard) };
        let win = window::span();
        if let Some((start, _)) = win.filter(|_| in_window(win, low)) {
            BOOKS.lock().give(start, low, low + len + 2 * guard);
        }
    }

    fn zeroed_on_map(&self) -> bool {
        true
    }

    fn may_map_later(&self, len: usize) -> bool {
        crate::map_limits::may_map_later(len)
    }

    fn span(&self) -> Option<(usize, usize)> {
        window::span()
    }

    fn moves_without_copying(&self) -> bool {
        // `mremap` moves pages, in the window or out of it.
        true
    }

    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let _errno = ErrnoGuard::save();
        let win = window::span();
        let addr = run.as_ptr().addr();
        if guard_pages::enabled() {
            // The guard after the run would be in the way of a growth, or
            // stay behind after a move; a shrink makes a new one.
            let page = os::page_size();
            // SAFETY: the caller owns the run, mapped with guards, and gives
            // up its bytes past `new_len` (page multiples, as all run
            // lengths).
            let shrunk =
                new_len < old_len && unsafe { guard_pages::shrink(run.as_ptr(), old_len, new_len) };
            if let Some((start, _)) = win.filter(|_| shrunk && in_window(win, addr)) {
                // The rest of the run and its old guard were unmapped.
                BOOKS
                    .lock()
                    .give(start, addr + new_len + page, addr + old_len + page);
            }
            return shrunk.then_some(run);
        }
        if let Some(win) = win.filter(|_| in_window(win, addr)) {
            // SAFETY: the caller owns the run and, when it shrinks, gives up
            // its bytes past `new_len`.
            let resized = unsafe { resize_in_window(win, addr, old_len, new_len, may_move) };
            return resized.and_then(|at| NonNull::new(at as *mut u8));
        }
        // Outside the window a run moves only while there is no window (the
        // trait's contract: never out of, into or outside a span), and never
        // grows into the window (it would straddle the span's edge).
        if let Some((start, end)) = win
            && addr < end
            && addr.saturating_add(new_len) > start
        {
            return None;
        }
        let flags = if may_move && win.is_none() {
            libc::MREMAP_MAYMOVE
        } else {
            0
        };
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

/// Resizes the unguarded run `[addr, addr + old_len)` of the window `win`:
/// in place, or else, if `may_move`, by moving its pages to another range of
/// the window (`mremap`, no copy). Returns the run's start, or `None` with
/// the run as it was.
///
/// # Safety
///
/// The run is live and the caller's; when it shrinks, nothing uses its
/// bytes past `new_len`.
unsafe fn resize_in_window(
    win: (usize, usize),
    addr: usize,
    old_len: usize,
    new_len: usize,
    may_move: bool,
) -> Option<usize> {
    let (start, (old_end, new_end)) = (win.0, (addr + old_len, addr + new_len));
    if new_len <= old_len {
        // SAFETY: the run's tail, which the caller gives up.
        unsafe { munmap(new_end, old_len - new_len) };
        BOOKS.lock().give(start, new_end, old_end);
        return Some(addr);
    }
    if BOOKS.lock().take_after(win, old_end, new_end) {
        // `mremap` in place extends the run's own mapping, so a run stays
        // one kernel mapping (a second `mmap` after it would not merge with
        // a run that was moved, whose page offset is its old address's, and
        // a later move of both would fail).
        // SAFETY: the caller owns the run; without MAYMOVE it grows into
        // the unmapped range after it or fails, changing nothing.
        let grown = unsafe { libc::mremap(addr as *mut libc::c_void, old_len, new_len, 0) };
        if grown != libc::MAP_FAILED {
            return Some(addr);
        }
        // Out of memory, or someone else's mapping after the run (a
        // `map` will find it and skip it).
        BOOKS.lock().give(start, old_end, new_end);
    }
    if !may_move {
        return None;
    }
    // SAFETY: the caller owns the run.
    unsafe { move_in_window(win, addr, old_len, new_len) }
}

/// Moves the run `[addr, addr + old_len)` of the window `win` to a fresh
/// range of `new_len` bytes in it: the range is claimed with a `PROT_NONE`
/// mapping first (so that `MREMAP_FIXED`, which replaces whatever is at its
/// target, only ever replaces our own placeholder), then the run's pages
/// are moved over it. Returns the new start, or `None` with the run as it
/// was.
///
/// # Safety
///
/// The run is live and the caller's, and `new_len > old_len`.
unsafe fn move_in_window(
    win: (usize, usize),
    addr: usize,
    old_len: usize,
    new_len: usize,
) -> Option<usize> {
    let page = os::page_size();
    let mut claimed = None;
    for _ in 0..CONFLICT_TRIES {
        let to = BOOKS.lock().take(win, new_len, page, 0)?;
        // SAFETY: the books gave us the range: nothing of ours is there.
        match unsafe { window::map_fixed(to, new_len, libc::PROT_NONE, libc::MAP_NORESERVE) } {
            Ok(()) => {
                claimed = Some(to);
                break;
            }
            Err(Refused::Occupied) => {}
            Err(Refused::Exhausted) => {
                BOOKS.lock().give(win.0, to, to + new_len);
                return None;
            }
        }
    }
    let to = claimed?;
    // SAFETY: the caller owns the run; the target is our placeholder. On
    // success the old range is unmapped and the run lives at `to`, its
    // growth zero-filled; on failure nothing changed.
    let moved = unsafe {
        libc::mremap(
            addr as *mut libc::c_void,
            old_len,
            new_len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to as *mut libc::c_void,
        )
    };
    let (free_from, free_len, result) = if moved == libc::MAP_FAILED {
        // SAFETY: the placeholder, which nothing uses.
        unsafe { munmap(to, new_len) };
        (to, new_len, None)
    } else {
        (addr, old_len, Some(to))
    };
    BOOKS.lock().give(win.0, free_from, free_from + free_len);
    result
}
