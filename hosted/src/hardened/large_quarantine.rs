//! Freed LARGE blocks with guard pages on (`FT_MALLOC_GUARD_PAGES`): the
//! pages of the bytes the program asked for made inaccessible (`PROT_NONE`
//! in place, or, from 256 KiB, their pages moved aside first: see
//! [`make_inaccessible`]),
//! held in a bounded FIFO
//! ([`RUNS`] blocks, [`BYTES_MAX`] bytes) before the heap gets them back,
//! so a read or write after free faults while the block is held. When one
//! leaves it is made accessible again, zeroed if `FT_MALLOC_ZERO_ON_FREE`
//! is on, and freed to the heap, whose LARGE cache may hand its pages out
//! again without faulting them in (unmapping every freed run and faulting
//! every page of the next one in was 17x the default mode's time on
//! `large_churn`).
//!
//! Only blocks that start on a page qualify (the hardened `malloc` aligns
//! LARGE blocks so, which puts the heap's run header on the page before):
//! the header stays readable, so the heap can still check a held pointer
//! (a double free of a held block is found here, by address). Other LARGE
//! blocks are unmapped at free as before.
//!
//! The FIFO's lock is a leaf taken around the bookkeeping only (the system
//! calls run outside it); fork takes it like the small quarantine's.
//!
//! # Racing frees of one block
//!
//! A free reads the block (its canary), zeroes it and protects its pages
//! before the FIFO holds it: two frees of one block at the same instant
//! could both pass [`holds`], both hold it (later released twice, the
//! second time perhaps into another owner's block), or one could read pages
//! the other had just protected. So a hardened free of a LARGE block runs
//! from its first look at the block to its hold under [`FREES`]
//! ([`serialise_free`]): of two racing frees the second finds the block
//! held and is a double free. This costs little parallelism: protecting
//! pages (`mprotect`) takes the process's mmap lock in the kernel anyway.
//! Lock order: [`FREES`], then the FIFO's lock, the small quarantine's, the
//! thread-cache pool's and the heap's (a free under it may end in the heap,
//! or set up the thread's cache); the fork prepare handler takes it first.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use lock_api::Mutex;

use crate::futex_mutex::FutexMutex;

/// Blocks held at most.
const RUNS: usize = 8;
/// Bytes held at most (the pages stay resident while held).
const BYTES_MAX: usize = 32 << 20;
/// The page size the blocks are aligned to.
pub(crate) const PAGE: usize = 4096;

struct Fifo {
    /// (address, bytes made inaccessible, where their pages are parked or
    /// 0), oldest first.
    runs: [(usize, usize, usize); RUNS],
    len: usize,
    bytes: usize,
}

// SAFETY: addresses only, behind the lock.
unsafe impl Send for Fifo {}

static FIFO: Mutex<FutexMutex, Fifo> = Mutex::const_new(
    FutexMutex::new(),
    Fifo {
        runs: [(0, 0, 0); RUNS],
        len: 0,
        bytes: 0,
    },
);
/// Held by each hardened free of a LARGE block from its check to its hold
/// (the module docs, "Racing frees of one block").
static FREES: Mutex<FutexMutex, ()> = Mutex::const_new(FutexMutex::new(), ());

/// Serialises the calling free of a LARGE block with every other one, until
/// the guard is dropped.
pub(crate) fn serialise_free() -> lock_api::MutexGuard<'static, FutexMutex, ()> {
    FREES.lock()
}

/// `FIFO.len`, readable without the lock: frees skip the lookup when 0.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Whether `block` is held here (a free of it is a double free).
pub(crate) fn holds(block: NonNull<u8>) -> bool {
    if HELD.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let fifo = FIFO.lock();
    fifo.runs[..fifo.len]
        .iter()
        .any(|&(addr, _, _)| addr == block.as_ptr().addr())
}

/// Holds the freed LARGE `block` of `usable` bytes, its first `len` (a
/// multiple of the page) inaccessible; calls `release` with the block and
/// its `len` for each block pushed out (accessible again). Returns false,
/// holding nothing, if the block does not qualify (see the module docs) or
/// cannot be protected.
///
/// # Safety
///
/// `block` is a live LARGE block of `usable` bytes the program has just
/// freed, not held yet; nothing but this module touches it until
/// `release` gets it.
pub(crate) unsafe fn hold(
    block: NonNull<u8>,
    len: usize,
    usable: usize,
    mut release: impl FnMut(NonNull<u8>, usize),
) -> bool {
    if !block.as_ptr().addr().is_multiple_of(PAGE) || len > usable || len > BYTES_MAX {
        return false;
    }
    // SAFETY: the block's pages are the program's no more; the heap's
    // header is on the page before.
    let Some(parked) = (unsafe { make_inaccessible(block.as_ptr(), len) }) else {
        return false;
    };
    let mut evicted = [(0, 0, 0); RUNS];
    let mut count = 0;
    {
        let mut fifo = FIFO.lock();
        while fifo.len == RUNS || fifo.bytes + len > BYTES_MAX {
            let oldest = fifo.runs[0];
            fifo.runs.copy_within(1.., 0);
            fifo.len -= 1;
            fifo.bytes -= oldest.1;
            evicted[count] = oldest;
            count += 1;
        }
        let at = fifo.len;
        fifo.runs[at] = (block.as_ptr().addr(), len, parked);
        fifo.len += 1;
        fifo.bytes += len;
        HELD.store(fifo.len, Ordering::Relaxed);
    }
    for &(addr, len, parked) in &evicted[..count] {
        let block = addr as *mut u8;
        // SAFETY: a held block, made inaccessible by `hold`; ours again.
        unsafe { make_accessible(block, len, parked) };
        // SAFETY: only non-null addresses are held.
        release(unsafe { NonNull::new_unchecked(block) }, len);
    }
    true
}

/// Blocks of fewer bytes are protected in place ([`make_inaccessible`]):
/// `mprotect` costs per resident page (about 0.1 us a page each way on the
/// 2-core VM of BENCHMARKS.md), moving the pages aside costs about 30 us
/// whatever the size (three calls), so the two cross near 256 KiB.
const MOVE_ASIDE_MIN: usize = 256 << 10;

/// Makes the `len` bytes at `block` fault on any access, keeping their
/// pages for [`make_accessible`]. A block of [`MOVE_ASIDE_MIN`] bytes or
/// more has its pages moved to an address the kernel picks (`mremap` with
/// `MREMAP_DONTUNMAP`, which leaves the range mapped, and empty), then the
/// empty range made `PROT_NONE`: moving page table entries and protecting
/// an empty range costs a fraction of protecting many resident pages in
/// place, which is what smaller blocks get (and the fallback, on older
/// kernels). Returns where the pages went (0: they stayed), `None` if the
/// range cannot be protected.
///
/// # Safety
///
/// `[block, block + len)` is page-aligned private anonymous memory of
/// ours that nothing uses.
unsafe fn make_inaccessible(block: *mut u8, len: usize) -> Option<usize> {
    if len < MOVE_ASIDE_MIN {
        // SAFETY: per the contract.
        let protected = unsafe { libc::mprotect(block.cast(), len, libc::PROT_NONE) } == 0;
        return protected.then_some(0);
    }
    // SAFETY: per the contract; the new address is the kernel's choice, so
    // no mapping is replaced.
    let parked = unsafe {
        libc::mremap(
            block.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_DONTUNMAP,
            // The variadic new address, unused without `MREMAP_FIXED`, but
            // read by the kernel all the same: left to chance it made
            // some calls fail with EINVAL.
            ptr::null_mut::<libc::c_void>(),
        )
    };
    let parked = if parked == libc::MAP_FAILED {
        0
    } else {
        parked.addr()
    };
    // SAFETY: per the contract.
    if unsafe { libc::mprotect(block.cast(), len, libc::PROT_NONE) } == 0 {
        return Some(parked);
    }
    if parked != 0 {
        // SAFETY: the pages just moved out, back where they were.
        unsafe { move_back(block, len, parked) };
    }
    None
}

/// Undoes [`make_inaccessible`]: the pages are moved back over the
/// inaccessible range (which is ours, so `MREMAP_FIXED` replaces nothing
/// else), or the range made accessible again in place.
///
/// # Safety
///
/// `block`, `len` and `parked` are a held block's, as
/// [`make_inaccessible`] left them.
unsafe fn make_accessible(block: *mut u8, len: usize, parked: usize) {
    if parked != 0 {
        // SAFETY: per the contract.
        unsafe { move_back(block, len, parked) };
    } else {
        // SAFETY: per the contract.
        unsafe { libc::mprotect(block.cast(), len, libc::PROT_READ | libc::PROT_WRITE) };
    }
}

/// Moves `len` bytes of pages at `parked` back to `block`, or, if the
/// kernel refuses (no memory for the mapping), drops them and makes the
/// range at `block` readable and writable again (its pages fault in anew).
///
/// # Safety
///
/// `parked` holds pages moved out of `block`, which is ours.
unsafe fn move_back(block: *mut u8, len: usize, parked: usize) {
    // SAFETY: per the contract: both ranges are ours.
    unsafe {
        let moved = libc::mremap(
            parked as *mut libc::c_void,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            block.cast::<libc::c_void>(),
        );
        if moved == libc::MAP_FAILED {
            libc::munmap(parked as *mut libc::c_void, len);
            libc::mprotect(block.cast(), len, libc::PROT_READ | libc::PROT_WRITE);
        }
    }
}

/// Fork prepare: no thread may hold the FIFO's lock when the address space
/// is copied.
pub(crate) fn before_fork() {
    core::mem::forget(FREES.lock());
    core::mem::forget(FIFO.lock());
}

/// Fork, parent and child: release the FIFO's lock.
///
/// # Safety
///
/// [`before_fork`] took it on this thread (or on the parent's thread this
/// child is a copy of).
pub(crate) unsafe fn after_fork() {
    // SAFETY: per the contract.
    unsafe {
        FIFO.force_unlock();
        FREES.force_unlock();
    }
}
