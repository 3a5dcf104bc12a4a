//! The quarantine (`FT_MALLOC_QUARANTINE`): freed TINY and SMALL blocks are
//! held back, zero-filled and tagged, in a FIFO of [`SLOTS`] blocks before
//! the heap may hand them out again. When one leaves (pushed out by a newer
//! one), it must still be all zero but for its tag: anything else was
//! written after it was freed.
//!
//! The tag (first word: the block's address mixed with the process secret)
//! also tells a second free of a held block, which the heap itself would
//! accept (it still counts the block as live): a block carrying its tag is
//! looked up in the FIFO.
//!
//! # Concurrency
//!
//! One lock (a [`FutexMutex`]) guards the FIFO. It is a leaf: nothing is
//! called with it held (the evicted block is checked and freed after it is
//! released), so it orders before no other lock. The fork prepare handler
//! takes it before the heap's locks (`lifecycle.rs`), so a child never
//! inherits it held.

use core::ptr::NonNull;

use lock_api::Mutex;

use super::{all_bytes_are, secret};
use crate::futex_mutex::FutexMutex;

/// Blocks held at most: with SMALL blocks of up to 32 KiB, at most 16 MiB
/// held, and usually far less (most freed blocks are small).
pub(crate) const SLOTS: usize = 512;
/// Mixed into the tag with the process secret and the address.
const TAG_SALT: usize = 0x9ba7_7e1d_4e1d_0f4e_u64 as usize;

/// A held block: address and usable size.
type Held = (usize, usize);

struct Fifo {
    slots: [Held; SLOTS],
    /// Index of the oldest block.
    head: usize,
    len: usize,
}

// SAFETY: the FIFO holds addresses only, behind its lock.
unsafe impl Send for Fifo {}

static FIFO: Mutex<FutexMutex, Fifo> = Mutex::const_new(
    FutexMutex::new(),
    Fifo {
        slots: [(0, 0); SLOTS],
        head: 0,
        len: 0,
    },
);

/// The tag a held block carries in its first word.
fn tag(block: NonNull<u8>) -> usize {
    secret() ^ TAG_SALT ^ block.as_ptr().addr()
}

/// Whether `block` (a live block, readable) is held here: a free of it is
/// a double free.
///
/// # Safety
///
/// `block` is a block the heap counts as live, at least a word long.
pub(crate) unsafe fn holds(block: NonNull<u8>) -> bool {
    // SAFETY: per the contract, the first word is readable.
    if unsafe { block.as_ptr().cast::<usize>().read() } != tag(block) {
        return false;
    }
    let fifo = FIFO.lock();
    (0..fifo.len).any(|i| fifo.slots[(fifo.head + i) % SLOTS].0 == block.as_ptr().addr())
}

/// Holds `block` (`usable` bytes, freed by the program): zero-fills and tags
/// it. Returns the block pushed out, if the FIFO was full, for the caller
/// to [`check`](self::check) and free.
///
/// # Safety
///
/// `block` is a live TINY or SMALL block of `usable` bytes that the program
/// has just freed and that is not held yet.
pub(crate) unsafe fn hold(block: NonNull<u8>, usable: usize) -> Option<(NonNull<u8>, usize)> {
    // SAFETY: the block's `usable` bytes are ours now.
    unsafe {
        core::ptr::write_bytes(block.as_ptr(), 0, usable);
        block.as_ptr().cast::<usize>().write(tag(block));
    }
    let mut fifo = FIFO.lock();
    let evicted = if fifo.len == SLOTS {
        let oldest = fifo.slots[fifo.head];
        fifo.head = (fifo.head + 1) % SLOTS;
        fifo.len -= 1;
        Some(oldest)
    } else {
        None
    };
    let tail = (fifo.head + fifo.len) % SLOTS;
    fifo.slots[tail] = (block.as_ptr().addr(), usable);
    fifo.len += 1;
    drop(fifo);
    evicted.map(|(addr, usable)| {
        // SAFETY: only non-null block addresses are pushed.
        (unsafe { NonNull::new_unchecked(addr as *mut u8) }, usable)
    })
}

/// Whether a block leaving the quarantine is as it was held: its tag, then
/// zeros. Clears the tag (the block goes back to the heap next).
///
/// # Safety
///
/// `block` is a block [`hold`] returned as evicted.
pub(crate) unsafe fn check_and_release(block: NonNull<u8>, usable: usize) -> bool {
    // SAFETY: the block is still live in the heap, `usable` bytes.
    let bytes = unsafe { core::slice::from_raw_parts_mut(block.as_ptr(), usable) };
    let word = size_of::<usize>();
    let tagged = bytes[..word] == tag(block).to_ne_bytes();
    let clean = all_bytes_are(&bytes[word..], 0);
    bytes[..word].fill(0);
    tagged && clean
}

/// Fork prepare: no thread may hold the FIFO's lock when the address space
/// is copied.
pub(crate) fn before_fork() {
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
    unsafe { FIFO.force_unlock() };
}
