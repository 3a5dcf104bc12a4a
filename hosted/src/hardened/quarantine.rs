//! The quarantine (`FT_MALLOC_QUARANTINE`): freed TINY and SMALL blocks are
//! held back, zero-filled and tagged, in a FIFO of [`SLOTS`] blocks before
//! the heap may hand them out again. When one leaves (pushed out by a newer
//! one), it must still be all zero but for its tag: anything else was
//! written after it was freed.
//!
//! Each thread has its own FIFO (a [`Ring`] next to its front cache, see
//! `thread_cache.rs`): no lock, no shared cache line. A thread with no
//! cache (setting one up, or exiting) uses one shared FIFO behind a lock.
//! A thread's ring is drained (checked and freed) when it exits.
//!
//! The tag (first word: a keyed hash of the block's address, `super::keyed`)
//! tells a second free of a held block, which the heap itself would accept
//! (it still counts the block as live). The tag alone decides, so a block
//! held by another thread's ring is found as well: only a held block
//! carries it (it is cleared when the block leaves), and a program cannot
//! write it by chance (64 bits that depend on the secret).
//!
//! # Concurrency
//!
//! The shared FIFO's lock (a [`FutexMutex`]) is a leaf: nothing is called
//! with it held (the evicted block is checked and freed after it is
//! released), so it orders before no other lock. The fork prepare handler
//! takes it before the heap's locks (`lifecycle.rs`), so a child never
//! inherits it held.

use core::ptr::NonNull;

use lock_api::Mutex;

use super::{all_bytes_are, keyed};
use crate::futex_mutex::FutexMutex;

/// Blocks held at most per FIFO (a power of two): with SMALL blocks of up
/// to 32 KiB, at most 16 MiB held per thread, and usually far less (most
/// freed blocks are small).
pub(crate) const SLOTS: usize = 512;
const _: () = assert!(SLOTS.is_power_of_two());
/// Bytes of a held block's tag (its first word): a block shorter than
/// this cannot be held.
pub(crate) const TAG_BYTES: usize = size_of::<usize>();
/// Mixed into the tag with the process secret and the address.
const TAG_SALT: usize = 0x9ba7_7e1d_4e1d_0f4e_u64 as usize;

/// A held block: address and usable size.
type Held = (usize, usize);

/// A FIFO of held blocks.
pub(crate) struct Ring {
    slots: [Held; SLOTS],
    /// Blocks pushed so far (the next slot is `pushed % SLOTS`).
    pushed: usize,
}

impl Ring {
    pub(crate) const fn new() -> Ring {
        Ring {
            slots: [(0, 0); SLOTS],
            pushed: 0,
        }
    }

    /// Adds a block; returns the oldest one if the ring was full.
    #[inline]
    fn push(&mut self, held: Held) -> Option<Held> {
        let slot = &mut self.slots[self.pushed % SLOTS];
        let oldest = core::mem::replace(slot, held);
        self.pushed += 1;
        (oldest.0 != 0).then_some(oldest)
    }

    /// Takes every held block out, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (NonNull<u8>, usize)> + '_ {
        let start = self.pushed;
        (0..SLOTS).filter_map(move |i| {
            let (addr, usable) = core::mem::take(&mut self.slots[(start + i) % SLOTS]);
            NonNull::new(addr as *mut u8).map(|block| (block, usable))
        })
    }
}

// SAFETY: the ring holds addresses only; the shared one is behind its lock.
unsafe impl Send for Ring {}

/// The FIFO of threads that have no ring of their own.
static SHARED: Mutex<FutexMutex, Ring> = Mutex::const_new(FutexMutex::new(), Ring::new());

/// The tag a held block carries in its first word.
#[inline]
fn tag(block: NonNull<u8>) -> usize {
    keyed(TAG_SALT, block.as_ptr().addr())
}

/// Whether `block` (a live block, readable) is held in a quarantine: a free
/// of it is a double free.
///
/// # Safety
///
/// `block` is a block the heap counts as live, at least a word long.
#[inline]
pub(crate) unsafe fn holds(block: NonNull<u8>) -> bool {
    // SAFETY: per the contract, the first word is readable.
    unsafe { block.as_ptr().cast::<usize>().read() == tag(block) }
}

/// Holds `block` (`usable` bytes, freed by the program) in the calling
/// thread's ring (or the shared one): zero-fills and tags it. Returns the
/// block pushed out, if the ring was full, for the caller to
/// [`check_and_release`] and free.
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
    let held = (block.as_ptr().addr(), usable);
    let evicted = match crate::thread_cache::quarantine() {
        Some(ring) => ring.push(held),
        None => SHARED.lock().push(held),
    };
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
/// `block` is a block [`hold`] returned as evicted (or [`Ring::drain`]).
pub(crate) unsafe fn check_and_release(block: NonNull<u8>, usable: usize) -> bool {
    // SAFETY: the block is still live in the heap, `usable` bytes.
    let bytes = unsafe { core::slice::from_raw_parts_mut(block.as_ptr(), usable) };
    let word = size_of::<usize>();
    let tagged = bytes[..word] == tag(block).to_ne_bytes();
    let clean = all_bytes_are(&bytes[word..], 0);
    bytes[..word].fill(0);
    tagged && clean
}

/// Fork prepare: no thread may hold the shared FIFO's lock when the
/// address space is copied.
pub(crate) fn before_fork() {
    core::mem::forget(SHARED.lock());
}

/// Fork, parent and child: release the shared FIFO's lock.
///
/// # Safety
///
/// [`before_fork`] took it on this thread (or on the parent's thread this
/// child is a copy of).
pub(crate) unsafe fn after_fork() {
    // SAFETY: per the contract.
    unsafe { SHARED.force_unlock() };
}
