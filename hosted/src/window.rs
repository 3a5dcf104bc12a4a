//! The provider's span: one address window, chosen once per process, that
//! [`MmapProvider`](crate::provider::MmapProvider) places its runs in, so
//! that the heap's page map is a flat array over it (one subtraction, one
//! shift, one comparison and one load per lookup) instead of the 3-level
//! tree.
//!
//! # Claimed by convention, not reserved
//!
//! The window is *not* a `PROT_NONE` mapping. Each run in it is an ordinary
//! mapping made with `MAP_FIXED_NOREPLACE` at an address these books choose,
//! and given back with `munmap`. A reservation would make commits inside it
//! free of `RLIMIT_AS` (the kernel counted the range when it was reserved): a program
//! that sets `setrlimit(RLIMIT_AS, current + 96 MiB)` after start-up
//! (`hosted/tests/c/enomem.c`, `ulimit -v` semantics) would then get
//! gigabytes more, and `statm` would show the whole window. Plain mappings
//! keep every limit, `ENOMEM`, overcommit and RSS behaviour exactly as they
//! were. What keeps other mappings out of the window is its place: a random
//! 2 MiB-aligned spot in `[1 TiB, 32 TiB)`, far below where the kernel puts
//! `mmap` results (top-down from near 128 TiB) and above a non-PIE
//! program's `brk` heap; `MAP_FIXED_NOREPLACE` catches the rare mapping
//! that is there anyway (the range is then skipped, [`CONFLICT_TRIES`]).
//! Randomising the spot keeps heap addresses unpredictable, as the kernel's
//! own mmap randomisation does (about 24 bits here, 28 there).
//!
//! # Size, and when there is none
//!
//! `2 × RAM`, rounded up to a power of two, between [`MIN_WINDOW`] and
//! [`MAX_WINDOW`]; the page map's array costs 1/512 of it (128 MiB of
//! address space for a 64 GiB window, in `VmSize` from the first
//! allocation, resident page by page as slots are written). No window, so
//! the tree as before, when:
//! - `RLIMIT_AS` is finite and below [`MIN_WINDOW`] (the window is capped to
//!   the limit otherwise, so its array takes at most 1/512 of it);
//! - the process is 32-bit, or its address space does not reach the window
//!   (the last page is probed once: a 39-bit aarch64 kernel refuses it).
//!
//! A process that outgrows its window maps further runs anywhere, as
//! before; the page map keeps those in a tree beside the array
//! (`src/page_map.rs`); they grow in place or are copied, never moved
//! (`provider.rs`). One that maps more than half of its window (`RAM`
//! bytes, a process that overcommits) makes the heap's span *tight*
//! (INTERNALS.md, "A tight span"): new zones get their scarce layout and
//! cached LARGE runs are cut to the request, as in a nearly full arena.
//!
//! # Protocol
//!
//! - **Chosen once, before any run.** [`span`] is the only way in: the
//!   provider's `map` and the heap's page map both ask it first. The first
//!   callers each compute a proposal (the same one: it follows from the
//!   machine and the process's random bytes; its probe page is unmapped at
//!   once, so losing costs nothing) and publish it by compare-exchange on one word, `STATE`
//!   (start | log2 of the length, or [`NO_WINDOW`]); every caller returns
//!   what won. So the answer never changes, with no lock and no waiting.
//! - **The books** (which parts of the window are free) are under one
//!   lock, [`BOOKS`], innermost: the provider takes it under heap locks,
//!   holds it for a scan of at most [`FREE_EXTENTS`] entries, and makes no
//!   system call while holding it. A range is taken from the books before
//!   it is mapped, and given back after it is unmapped, so two runs never
//!   claim one address.
//! - **fork**: the parent's `before_fork` takes the lock after the heap's
//!   ([`before_fork`]), so the child never inherits it held.

use core::sync::atomic::{AtomicUsize, Ordering};

use lock_api::{Mutex, RawMutex};

use crate::futex_mutex::FutexMutex;
use crate::os::{self, ErrnoGuard};

/// `bytes` as a `usize`: the sizes and places below are 64-bit ones (a
/// 32-bit process has no window: [`propose`] returns before using them).
const fn wide(bytes: u64) -> usize {
    bytes as usize
}

/// The smallest window worth its array (8 MiB of slots); a smaller
/// `RLIMIT_AS` means no window.
pub(crate) const MIN_WINDOW: usize = wide(4 << 30);
/// The largest window (a 2 GiB array of address space).
const MAX_WINDOW: usize = wide(1 << 40);
/// The window is `RAM_FACTOR × RAM` (rounded up to a power of two): room for
/// a process that overcommits, without an array out of proportion.
const RAM_FACTOR: usize = 2;
/// Where windows are placed: `[PLACE_LOW, PLACE_HIGH)`, at a multiple of
/// `PLACE_ALIGN`.
const PLACE_LOW: usize = wide(1 << 40);
const PLACE_HIGH: usize = wide(1 << 45);
const PLACE_ALIGN: usize = 2 << 20;
/// Free ranges the books remember (16 bytes each). A range given back when
/// they are full is left to the kernel: the window loses it.
pub(crate) const FREE_EXTENTS: usize = 1024;
/// Ranges a `map` skips because some other mapping was there, before it
/// maps outside the window.
pub(crate) const CONFLICT_TRIES: usize = 4;

/// `STATE` before the window is chosen.
const UNCHOSEN: usize = 0;
/// `STATE` when the process has no window.
const NO_WINDOW: usize = 1;
/// Low bits of `STATE` holding log2 of the window's length.
const LOG_MASK: usize = 0x3f;

static STATE: AtomicUsize = AtomicUsize::new(UNCHOSEN);

/// The window `[start, end)`, chosen on the first call; `None` if the
/// process has none (then never one).
#[inline]
pub(crate) fn span() -> Option<(usize, usize)> {
    match STATE.load(Ordering::Acquire) {
        UNCHOSEN => choose(),
        NO_WINDOW => None,
        state => Some(decode(state)),
    }
}

fn decode(state: usize) -> (usize, usize) {
    let start = state & !LOG_MASK;
    (start, start + (1 << (state & LOG_MASK)))
}

#[cold]
#[inline(never)]
fn choose() -> Option<(usize, usize)> {
    let _errno = ErrnoGuard::save();
    let proposal = propose().unwrap_or(NO_WINDOW);
    let state =
        match STATE.compare_exchange(UNCHOSEN, proposal, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => proposal,
            Err(won) => won,
        };
    (state != NO_WINDOW).then(|| decode(state))
}

/// A window for this process, encoded for `STATE`, or `None`.
fn propose() -> Option<usize> {
    if usize::BITS < 64 {
        return None;
    }
    let len = window_len()?;
    let slots = (PLACE_HIGH - PLACE_LOW - len) / PLACE_ALIGN;
    let start = PLACE_LOW + (random() % slots as u64) as usize * PLACE_ALIGN;
    // The address space must reach the window's end.
    let page = os::page_size();
    let last = start + len - page;
    // SAFETY: a fresh page at an address nothing of ours uses, unmapped at
    // once; NOREPLACE (or, on kernels before 4.17, the hint) leaves any
    // existing mapping alone.
    unsafe { map_fixed(last, page, libc::PROT_NONE, libc::MAP_NORESERVE) }.ok()?;
    // SAFETY: the probe page just mapped, which nothing refers to.
    unsafe { libc::munmap(last as *mut libc::c_void, page) };
    Some(start | len.trailing_zeros() as usize)
}

/// The window's length for this machine and `RLIMIT_AS`, or `None`.
// On a 32-bit target `MIN_WINDOW` truncates to 0 and the comparison with
// it is constant (clippy says so); such a process never gets here.
#[allow(clippy::absurd_extreme_comparisons)]
fn window_len() -> Option<usize> {
    // SAFETY: sysinfo and getrlimit only write the structures given.
    let (ram, limit) = unsafe {
        let mut limit: libc::rlimit = core::mem::zeroed();
        let limit = if libc::getrlimit(libc::RLIMIT_AS, &mut limit) == 0 {
            limit.rlim_cur
        } else {
            libc::RLIM_INFINITY
        };
        // `sysinfo`, not `sysconf(_SC_PHYS_PAGES)` (which asks it): the
        // first call to `sysconf` makes a 64 KiB window of libc's
        // read-only data resident (its switch's table; BENCHMARKS.md,
        // branch `rss`).
        let mut info: libc::sysinfo = core::mem::zeroed();
        let ram = if libc::sysinfo(&mut info) == 0 {
            (info.totalram as usize).saturating_mul(info.mem_unit.max(1) as usize)
        } else {
            0
        };
        (ram, limit)
    };
    let mut len = ram
        .saturating_mul(RAM_FACTOR)
        .checked_next_power_of_two()
        .unwrap_or(MAX_WINDOW)
        .clamp(MIN_WINDOW, MAX_WINDOW);
    if limit != libc::RLIM_INFINITY {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if limit < MIN_WINDOW {
            return None;
        }
        // The largest power of two within the limit.
        len = len.min(1 << (usize::BITS - 1 - limit.leading_zeros()));
    }
    Some(len)
}

/// 64 bits from the kernel's random bytes for this process (`AT_RANDOM`),
/// mixed with a constant of this module's own, so the place says nothing of
/// the heap's key (`lifecycle.rs`) drawn from the same bytes. A fixed value
/// if the kernel gave none.
fn random() -> u64 {
    // SAFETY: getauxval has no preconditions; AT_RANDOM, when present,
    // points at 16 bytes the kernel put on the initial stack for the
    // process's lifetime.
    let (a, b) = unsafe {
        let at = libc::getauxval(libc::AT_RANDOM) as *const u64;
        if at.is_null() {
            (0, 0)
        } else {
            (at.read_unaligned(), at.add(1).read_unaligned())
        }
    };
    // SplitMix64's finaliser.
    let mut z = a.rotate_left(17) ^ b ^ 0x6a09_e667_f3bc_c908;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why a fixed mapping was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Another mapping is there: skip this range.
    Occupied,
    /// The kernel is out of memory or address space (`ENOMEM`, `EAGAIN`).
    Exhausted,
}

/// Maps `[addr, addr + len)` afresh (zero-filled, private, anonymous) with
/// `prot` and `flags`, only if nothing is mapped there.
///
/// # Safety
///
/// `addr` and `len` are page aligned; nothing of the caller's lies in the
/// range (the call itself never replaces a mapping).
pub(crate) unsafe fn map_fixed(
    addr: usize,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
) -> Result<(), Refused> {
    // SAFETY: NOREPLACE maps nothing over an existing mapping; a kernel
    // before 4.17 ignores the flag and takes `addr` as a hint, checked below.
    let got = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE | flags,
            -1,
            0,
        )
    };
    if got == libc::MAP_FAILED {
        return Err(if os::errno() == libc::EEXIST {
            Refused::Occupied
        } else {
            Refused::Exhausted
        });
    }
    if got.addr() != addr {
        // An old kernel placed it elsewhere: `addr` was taken.
        // SAFETY: the mapping just made, which nothing refers to.
        unsafe { libc::munmap(got, len) };
        return Err(Refused::Occupied);
    }
    Ok(())
}

/// A free range of the window, `[start, end)`.
#[derive(Clone, Copy, Debug)]
struct Extent {
    start: usize,
    end: usize,
}

/// Which parts of the window are free: everything from `top` up, and the
/// ranges in `free` (sorted by address, never adjacent to each other or to
/// `top`: they are merged).
pub(crate) struct Books {
    /// Offset from the window's start of the first byte never handed out
    /// (or handed out and given back, then merged down).
    top: usize,
    count: usize,
    free: [Extent; FREE_EXTENTS],
}

/// The books, under the lock every thread takes to use them.
pub(crate) static BOOKS: Mutex<FutexMutex, Books> =
    Mutex::const_new(FutexMutex::new(), Books::new());

impl Books {
    /// Empty books: the whole window free.
    const fn new() -> Self {
        Books {
            top: 0,
            count: 0,
            free: [Extent { start: 0, end: 0 }; FREE_EXTENTS],
        }
    }

    /// Takes a range for a run of `len` bytes whose start is aligned to
    /// `align`, with `guard` bytes before and after it. Returns the run's
    /// start, or `None` if the window has no such range. First fit: a
    /// remembered range, else the top.
    pub(crate) fn take(
        &mut self,
        (start, end): (usize, usize),
        len: usize,
        align: usize,
        guard: usize,
    ) -> Option<usize> {
        let place = |from: usize| {
            let body = from.checked_add(guard)?.checked_next_multiple_of(align)?;
            Some((body, body.checked_add(len)?.checked_add(guard)?))
        };
        for i in 0..self.count {
            let e = self.free[i];
            let Some((body, hi)) = place(e.start) else {
                continue;
            };
            if hi > e.end {
                continue;
            }
            let head = Extent {
                start: e.start,
                end: body - guard,
            };
            let tail = Extent {
                start: hi,
                end: e.end,
            };
            match (head.start < head.end, tail.start < tail.end) {
                (false, false) => self.remove(i),
                (false, true) => self.free[i] = tail,
                (true, false) => self.free[i] = head,
                (true, true) if self.count < FREE_EXTENTS => {
                    self.free[i] = head;
                    self.insert(i + 1, tail);
                }
                // No room to remember both halves: try another range.
                (true, true) => continue,
            }
            return Some(body);
        }
        let low = start + self.top;
        let (body, hi) = place(low)?;
        if hi > end {
            return None;
        }
        self.top = hi - start;
        if body - guard > low {
            // The alignment gap below the run (over-aligned runs only).
            self.give(start, low, body - guard);
        }
        Some(body)
    }

    /// Takes `[from, to)` for a run that ends at `from` to grow into, if it
    /// is all free. Returns whether it was taken.
    pub(crate) fn take_after(
        &mut self,
        (start, end): (usize, usize),
        from: usize,
        to: usize,
    ) -> bool {
        if from == start + self.top {
            if to > end {
                return false;
            }
            self.top = to - start;
            return true;
        }
        let i = self.free[..self.count].partition_point(|e| e.start < from);
        if i == self.count || self.free[i].start != from || self.free[i].end < to {
            return false;
        }
        if self.free[i].end == to {
            self.remove(i);
        } else {
            self.free[i].start = to;
        }
        true
    }

    /// Gives `[from, to)` back (already unmapped), merging it with its free
    /// neighbours or the top (the window's `start` locates the top). A range
    /// the books have no room for is forgotten: the window loses it.
    pub(crate) fn give(&mut self, start: usize, from: usize, to: usize) {
        if to == start + self.top {
            self.top = from - start;
            // The free range just below joins the top too.
            if self.count > 0 && self.free[self.count - 1].end == from {
                self.top = self.free[self.count - 1].start - start;
                self.count -= 1;
            }
            return;
        }
        let i = self.free[..self.count].partition_point(|e| e.start < from);
        let joins_prev = i > 0 && self.free[i - 1].end == from;
        let joins_next = i < self.count && self.free[i].start == to;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.free[i - 1].end = self.free[i].end;
                self.remove(i);
            }
            (true, false) => self.free[i - 1].end = to,
            (false, true) => self.free[i].start = from,
            (false, false) if self.count < FREE_EXTENTS => {
                self.insert(
                    i,
                    Extent {
                        start: from,
                        end: to,
                    },
                );
            }
            (false, false) => {}
        }
    }

    fn insert(&mut self, i: usize, e: Extent) {
        self.free.copy_within(i..self.count, i + 1);
        self.free[i] = e;
        self.count += 1;
    }

    fn remove(&mut self, i: usize) {
        self.free.copy_within(i + 1..self.count, i);
        self.count -= 1;
    }
}

/// Takes the books' lock for a `fork` (after the heap's locks: it is the
/// innermost).
pub(crate) fn before_fork() {
    // SAFETY: the raw lock is released by `after_fork`, in the parent or the
    // child, on this thread's behalf.
    unsafe { BOOKS.raw() }.lock();
}

/// Releases the lock [`before_fork`] took.
///
/// # Safety
///
/// [`before_fork`] took it, on this thread (or its copy in the child).
pub(crate) unsafe fn after_fork() {
    // SAFETY: per the contract.
    unsafe { BOOKS.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: (usize, usize) = (1 << 40, (1 << 40) + (64 << 20));
    const P: usize = 4096;

    fn free_ranges(b: &Books) -> std::vec::Vec<(usize, usize)> {
        b.free[..b.count]
            .iter()
            .map(|e| (e.start - W.0, e.end - W.0))
            .collect()
    }

    #[test]
    fn runs_come_from_the_top_and_given_back_ones_are_reused_first_fit() {
        let mut b = Books::new();
        let a = b.take(W, 4 * P, P, 0).unwrap();
        let c = b.take(W, 2 * P, P, 0).unwrap();
        let d = b.take(W, P, P, 0).unwrap();
        assert_eq!((a - W.0, c - W.0, d - W.0, b.top), (0, 4 * P, 6 * P, 7 * P));
        b.give(W.0, a, a + 4 * P);
        assert_eq!(free_ranges(&b), [(0, 4 * P)]);
        // First fit splits the hole; the rest stays free.
        assert_eq!(b.take(W, P, P, 0), Some(a));
        assert_eq!(free_ranges(&b), [(P, 4 * P)]);
        // Neighbours merge: the hole and `c`, then the top swallows them.
        b.give(W.0, c, c + 2 * P);
        assert_eq!(free_ranges(&b), [(P, 6 * P)]);
        b.give(W.0, d, d + P);
        assert_eq!((free_ranges(&b), b.top), ([].into(), P));
    }

    #[test]
    fn alignment_and_guards_leave_their_gaps_free() {
        let mut b = Books::new();
        b.take(W, P, P, 0).unwrap();
        let aligned = b.take(W, P, 64 * P, P).unwrap();
        assert_eq!(aligned % (64 * P), 0);
        // The gap below the guard is free; the guards are the run's.
        assert_eq!(free_ranges(&b), [(P, aligned - P - W.0)]);
        assert_eq!(b.top, aligned + 2 * P - W.0);
        // A run too big for the window is refused, leaving the books as
        // they were.
        assert_eq!(b.take(W, 64 << 20, P, 0), None);
        assert_eq!(b.top, aligned + 2 * P - W.0);
    }

    #[test]
    fn a_run_grows_into_the_top_or_a_free_range_after_it_only() {
        let mut b = Books::new();
        let a = b.take(W, P, P, 0).unwrap();
        assert!(b.take_after(W, a + P, a + 3 * P), "the top is free");
        let c = b.take(W, P, P, 0).unwrap();
        let d = b.take(W, P, P, 0).unwrap();
        assert!(!b.take_after(W, c + P, c + 2 * P), "d is in the way");
        b.give(W.0, d, d + P);
        // `d` went back to the top: `c` grows into it and beyond.
        assert!(b.take_after(W, c + P, c + 4 * P));
        let e = b.take(W, 4 * P, P, 0).unwrap();
        let f = b.take(W, P, P, 0).unwrap();
        b.give(W.0, e + 2 * P, e + 4 * P);
        assert!(
            !b.take_after(W, e + P, e + 3 * P),
            "not right after the run"
        );
        assert!(b.take_after(W, e + 2 * P, e + 3 * P));
        assert_eq!(free_ranges(&b), [(e + 3 * P - W.0, e + 4 * P - W.0)]);
        assert!(!b.take_after(W, f + P, W.1 + P), "past the window's end");
    }

    #[test]
    fn the_window_is_chosen_once_in_its_place() {
        let first = span();
        assert_eq!(span(), first);
        if let Some((start, end)) = first {
            assert!(start >= PLACE_LOW && end <= PLACE_HIGH);
            assert_eq!(start % PLACE_ALIGN, 0);
            assert!((end - start).is_power_of_two() && end - start >= MIN_WINDOW);
        }
    }
}
