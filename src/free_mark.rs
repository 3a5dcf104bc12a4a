//! The free mark: how a TINY or SMALL block that is free (on its zone's
//! free list, or kept in a front cache) is told from one that is handed out,
//! by reading the block alone.
//!
//! Every free block holds, in its second word, its address mixed with a
//! key (the first word is the free list's link). The mark is written when a
//! block is freed or put in a cache and cleared when the block is handed
//! out, so:
//!
//! - a front cache catches a double free without a lock: the block already
//!   carries the mark (whichever thread's cache, or zone, holds it);
//! - the zone path refuses a free of a block that sits in a cache (its live
//!   bit is set there: the zone only knows it lent the block out);
//! - introspection tells cached blocks from handed-out ones.
//!
//! A handed-out block whose caller wrote exactly its mark into its second
//! word would be taken for free: with a 64-bit key mixed with the address,
//! that does not happen by accident. The heap's own leftovers are the one
//! way it could: every block is cleared when it is handed out, LARGE ones
//! included when their run may hold old bytes ([`clear`]), so no mark
//! reaches the program's bytes at the address it was made for.
//!
//! The key is the process's ([`set_key`]): a constant by default (a kernel
//! may pass boot-time entropy, RDRAND or the TSC, before its first
//! allocation); the hosted library draws it from the kernel's `AT_RANDOM`
//! bytes before its first block is marked. The slack canary (`canary.rs`)
//! is derived from the same key.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The key used until [`set_key`] is called.
pub const DEFAULT_KEY: usize = 0xf4ee_b10c_c0a5_7e11_u64 as usize;

/// Mixed with the block's address. Read with a relaxed load (a plain `mov`):
/// it is written once, before any block is marked.
static KEY: AtomicUsize = AtomicUsize::new(DEFAULT_KEY);

/// Sets the key that free marks and slack canaries are derived from, for
/// every heap of the program. Kernels pass boot-time entropy (RDRAND, the
/// TSC); without a call, [`DEFAULT_KEY`] is used.
///
/// # Safety
///
/// No heap of this program may have handed out or marked a block yet (in a
/// kernel: call it before the first allocation; the hosted library does it
/// at its first call). A block armed or marked under the old key would read
/// as overflowed, or a free block as handed out (its double free then
/// missed).
pub unsafe fn set_key(key: usize) {
    KEY.store(key, Ordering::Relaxed);
}

/// The current key.
#[inline(always)]
pub(crate) fn key() -> usize {
    KEY.load(Ordering::Relaxed)
}

#[inline(always)]
fn word(block: NonNull<u8>) -> *mut usize {
    // Every class is at least two words long and word aligned.
    block.as_ptr().cast::<usize>().wrapping_add(1)
}

/// The mark of `block`: its address mixed with the key. (The slack canary
/// is derived from it too, so a free computes it once.)
#[inline(always)]
pub(crate) fn value(block: NonNull<u8>) -> usize {
    key() ^ block.as_ptr().addr()
}

/// Marks `block` free.
///
/// # Safety
///
/// `block` is a TINY or SMALL block the caller holds and no longer hands out.
#[inline(always)]
pub(crate) unsafe fn set(block: NonNull<u8>) {
    // SAFETY: per the contract.
    unsafe { set_to(block, value(block)) }
}

/// Marks `block` free with its mark `mark` (`value(block)`, computed by
/// the caller already).
///
/// # Safety
///
/// As for [`set`], and `mark == value(block)`.
#[inline(always)]
pub(crate) unsafe fn set_to(block: NonNull<u8>, mark: usize) {
    // SAFETY: per the contract, the block's first two words are ours.
    unsafe { word(block).write(mark) }
}

/// Clears the mark of a block about to be handed out.
///
/// A LARGE block is cleared too when its run may hold old bytes: a zone
/// block that started at the same address may have left its mark there
/// when its zone went back to the provider, and a realloc that copies the
/// program's uninitialized bytes would carry that mark along, until a
/// block at that address read as free (`tests/heap.rs`,
/// `uninitialized_bytes_never_make_a_live_block_read_as_free`).
///
/// # Safety
///
/// `block` is a block the caller holds, at least two words long.
#[inline(always)]
pub(crate) unsafe fn clear(block: NonNull<u8>) {
    // SAFETY: per the contract.
    unsafe { word(block).write(0) }
}

/// Clears the mark of a free block about to be handed out and returns it
/// (the block's [`value`]: a block that is free carries it).
///
/// # Safety
///
/// `block` is a TINY or SMALL block the caller holds, marked free.
#[inline(always)]
pub(crate) unsafe fn take(block: NonNull<u8>) -> usize {
    // SAFETY: per the contract.
    unsafe {
        let mark = word(block).read();
        word(block).write(0);
        mark
    }
}

/// Whether `block` carries the free mark.
///
/// # Safety
///
/// `block` is a carved block of a zone that is mapped. If the block is
/// handed out, its holder may be writing it: then the answer is only as
/// good as a racy read (introspection uses it for display only).
#[inline(always)]
pub(crate) unsafe fn is_set(block: NonNull<u8>) -> bool {
    // SAFETY: per the contract.
    unsafe { is_set_to(block, value(block)) }
}

/// Whether `block` carries the mark `mark` (`value(block)`).
///
/// # Safety
///
/// As for [`is_set`].
#[inline(always)]
pub(crate) unsafe fn is_set_to(block: NonNull<u8>, mark: usize) -> bool {
    // SAFETY: per the contract the word is mapped; volatile, because a
    // handed-out block's holder may write it concurrently.
    unsafe { word(block).read_volatile() == mark }
}
