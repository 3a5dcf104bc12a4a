//! The quarantine (`FT_MALLOC_QUARANTINE`): freed TINY and SMALL blocks are
//! held back, zero-filled and tagged, in a FIFO of [`SLOTS`] blocks before
//! the heap may hand them out again. When one leaves (pushed out by a newer
//! one), it must still be all zero but for its tag: anything else was
//! written after it was freed.
//!
//! Each thread has its own FIFO (a [`Ring`] next to its front cache, see
//! `per_thread.rs`): no lock, no shared cache line. A thread with no
//! cache (setting one up, or exiting) uses one shared FIFO behind a lock.
//! A thread's ring is drained (checked and freed) when it exits.
//!
//! The tag (first word: a keyed hash of the block's address, `keys::keyed`)
//! tells a second free of a held block, which the heap itself would accept
//! (it still counts the block as live). The tag alone decides, so a block
//! held by another thread's ring is found as well: only a held block
//! carries it (it is cleared when the block leaves), and a program cannot
//! write it by chance (64 bits that depend on the secret).
//!
//! # Concurrency
//!
//! Two frees of one block at the same instant: each checks the block
//! (`holds` says no to both), then [`claim`]s it with one atomic swap of
//! the tag into its first word. Exactly one reads something else than the
//! tag and holds the block; the other read the tag, wrote it back (nothing
//! changed) and reports a double free. The heap's own free mark works the
//! same way (`src/free_mark.rs` in the core). One race is left: a second
//! free that starts while the block's *first* free leaves the ring (the
//! tag cleared, the heap's mark not yet set) is held again instead of
//! refused: it needs the same block freed twice with [`SLOTS`] frees of
//! the same thread in between, meeting in a window of a few instructions.
//!
//! The shared FIFO's lock (a [`FutexMutex`]) is a leaf: nothing is called
//! with it held (the evicted block is checked and freed after it is
//! released), so it orders before no other lock. The fork prepare handler
//! takes it before the heap's locks (`lifecycle.rs`), so a child never
//! inherits it held.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use lock_api::Mutex;

use super::bytes::all_bytes_are;
use super::keys::keyed;
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
        // A ring that was never filled holds its blocks in its first
        // `pushed` slots: the others are not visited (a thread of the
        // default mode, which never pushes, exits without a walk over
        // every slot).
        let unused = SLOTS - self.pushed.min(SLOTS);
        (unused..SLOTS).filter_map(move |i| {
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

/// The tag's word of `block`, as an atomic: two racing frees may claim it
/// at once (module documentation).
///
/// # Safety
///
/// `block` is a block the heap counts as live, at least a word long.
#[inline]
unsafe fn tag_word<'a>(block: NonNull<u8>) -> &'a AtomicUsize {
    // SAFETY: per the contract, the first word is mapped; blocks are word
    // aligned.
    unsafe { AtomicUsize::from_ptr(block.as_ptr().cast::<usize>()) }
}

/// Whether `block` (a live block, readable) is held in a quarantine: a free
/// of it is a double free.
///
/// # Safety
///
/// `block` is a block the heap counts as live, at least a word long.
#[inline]
pub(crate) unsafe fn holds(block: NonNull<u8>) -> bool {
    // SAFETY: per the contract.
    unsafe { tag_word(block).load(Ordering::Relaxed) == tag(block) }
}

/// Claims `block` for the quarantine: swaps the tag into its first word.
/// `false` if the tag was there already (a double free: another free holds
/// the block, or has just claimed it), with the word unchanged.
///
/// # Safety
///
/// `block` is a live TINY or SMALL block at least [`TAG_BYTES`] long, which
/// the program has just freed.
#[inline]
pub(crate) unsafe fn claim(block: NonNull<u8>) -> bool {
    let tag = tag(block);
    // SAFETY: per the contract.
    unsafe { tag_word(block).swap(tag, Ordering::Relaxed) != tag }
}

/// Holds `block` (`usable` bytes, freed by the program, [`claim`]ed) in
/// `ring`, the calling thread's (or, without one, the shared ring):
/// zero-fills it after its tag.
/// Returns the block pushed out, if the ring was full, for the caller to
/// [`check_and_release`] and free.
///
/// # Safety
///
/// `block` is a live TINY or SMALL block of `usable` bytes that the program
/// has just freed and that this call's caller claimed.
pub(crate) unsafe fn hold(
    ring: Option<&mut Ring>,
    block: NonNull<u8>,
    usable: usize,
) -> Option<(NonNull<u8>, usize)> {
    // SAFETY: the block's `usable` bytes are ours now; the first word is
    // the tag (claimed).
    unsafe {
        core::ptr::write_bytes(block.as_ptr().add(TAG_BYTES), 0, usable - TAG_BYTES);
    }
    let held = (block.as_ptr().addr(), usable);
    let evicted = match ring {
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
    // SAFETY: the block is still live in the heap, `usable` bytes; its
    // first word is read and cleared as an atomic (a racing double free may
    // swap it, `claim`).
    unsafe {
        let tagged = tag_word(block).load(Ordering::Relaxed) == tag(block);
        let rest = core::slice::from_raw_parts(block.as_ptr().add(TAG_BYTES), usable - TAG_BYTES);
        let clean = all_bytes_are(rest, 0);
        tag_word(block).store(0, Ordering::Relaxed);
        tagged && clean
    }
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
