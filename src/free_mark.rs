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
//!   bit is set there: the zone only knows it lent the block out).
//!
//! Only a free (or a realloc) reads the mark, of the block its caller gives
//! up. Introspection never does: a block the program holds is the
//! program's to write, at any moment, with anything (the mark's value
//! included); a cached block says so in its size slot (`zone/sizes.rs`).
//!
//! # Two frees of one block at once: the claim
//!
//! A free decides that the block is its own with **one atomic swap** of the
//! mark's word ([`claim`]): it writes the mark and reads what was there.
//! The free that reads something else than the mark has taken the block;
//! the one that reads the mark lost (a double free), and what it wrote is
//! what was there, so the heap is unchanged. Of two frees racing for one
//! block, exactly one wins, whatever their paths:
//!
//! - a front cache's free (no lock) checks the block first (boundary, size,
//!   slack canary: `cache/depot.rs`), then claims it, then keeps it;
//! - the zone path (`free.rs`, under the class lock) validates the block,
//!   then claims it, then pushes it on the free list. The class lock
//!   serialises zone frees among themselves, not against a cache's free:
//!   the claim does. A span (`span.rs`) is never taken by a cache, so its
//!   frees are all under the lock and need no claim.
//!
//! The zone path's early mark check (in its validation, before the claim)
//! only refuses a plain double free sooner; the claim is what decides. The
//! front cache's free has no early check: the claim refuses a marked block
//! at no extra cost. A racing winner's mark can land in the loser's canary
//! check (a block of fewer than 16 bytes has its canary in the mark's
//! word), and a plain double free of a cached block may find its canary
//! changed: a broken canary is reported as a double free when the mark is
//! there.
//!
//! Everything else is the holder's alone, so plain (relaxed) loads and
//! stores suffice: marking a block the zone pushes or lends ([`set`]), and
//! clearing it when the block is handed out ([`take`], [`clear`]). A swap
//! racing with a hand-out reads either the mark (lost: the block is still
//! free) or the cleared word (won: the block was handed out again first, so
//! this free is the new holder's, as far as the heap can tell). The claim
//! is `Relaxed`: it decides who owns the block, and the block's bytes reach
//! another thread only through a lock (the depot's, the class's) after it.
//!
//! Cost: an `xchg` instead of a `mov` on each free (the instruction counts
//! are the same; measured in INTERNALS.md, "The free mark").
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
//! is derived from the same key. The key is odd ([`set_key`] sets its
//! lowest bit): blocks are 16-aligned, so every mark is odd too, and the
//! canary byte is the mark's low byte as it is, never zero, with nothing
//! to compute on `malloc` or `free`.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The key used until [`set_key`] is called (odd, as every key).
pub const DEFAULT_KEY: usize = 0xf4ee_b10c_c0a5_7e11_u64 as usize;
const _: () = assert!(DEFAULT_KEY & 1 == 1);

/// Mixed with the block's address. Read with a relaxed load (a plain `mov`):
/// it is written once, before any block is marked.
static KEY: AtomicUsize = AtomicUsize::new(DEFAULT_KEY);

/// Sets the key that free marks and slack canaries are derived from, for
/// every heap of the program. Kernels pass boot-time entropy (RDRAND, the
/// TSC); without a call, [`DEFAULT_KEY`] is used. The key's lowest bit
/// is set whatever `key` says (the module documentation says why): 63 bits
/// of it count.
///
/// # Safety
///
/// No heap of this program may have handed out or marked a block yet (in a
/// kernel: call it before the first allocation; the hosted library does it
/// at its first call). A block armed or marked under the old key would read
/// as overflowed, or a free block as handed out (its double free then
/// missed).
pub unsafe fn set_key(key: usize) {
    KEY.store(key | 1, Ordering::Relaxed);
}

/// The current key.
#[inline(always)]
pub(crate) fn key() -> usize {
    KEY.load(Ordering::Relaxed)
}

/// The key marks and canaries are derived from now (odd; [`set_key`]'s
/// argument with its lowest bit set), for a caller that keeps a copy in a
/// word of its own and hands it to
/// [`FrontCache::try_deallocate_flat_in`](crate::FrontCache::try_deallocate_flat_in):
/// a static of the caller's crate is one load, this crate's a load of its
/// address first in a shared library. It never changes once a block is
/// marked ([`set_key`]'s contract).
#[inline]
pub fn current_key() -> usize {
    key()
}

/// The mark's word of `block`, as an atomic: a racing free may swap it
/// while another thread reads it.
///
/// # Safety
///
/// `block` is a TINY or SMALL block (at least two words, word aligned) of
/// a zone that stays mapped while the reference is used.
#[inline(always)]
unsafe fn word<'a>(block: NonNull<u8>) -> &'a AtomicUsize {
    // SAFETY: per the contract the word is mapped and aligned. Every read
    // or write of the mark goes through this atomic; the slack canary of a
    // block under 16 bytes is written there byte by byte, by the block's
    // holder, after `take` (a free racing that is the program's use after
    // free of a block handed out again).
    unsafe { AtomicUsize::from_ptr(block.as_ptr().cast::<usize>().wrapping_add(1)) }
}

/// The mark of `block`: its address mixed with the key. (The slack canary
/// is derived from it too, so a free computes it once.)
#[inline(always)]
pub(crate) fn value(block: NonNull<u8>) -> usize {
    value_with(block, key())
}

/// [`value`] with the key given (the caller read [`key`], or a copy of it).
#[inline(always)]
pub(crate) fn value_with(block: NonNull<u8>, key: usize) -> usize {
    key ^ block.as_ptr().addr()
}

/// Marks `block` free, when it is the caller's already: a block the zone
/// lends to a cache, one a zone free has claimed ([`claim`]), the blocks of
/// a span (freed under the class lock only).
///
/// # Safety
///
/// `block` is a TINY or SMALL block the caller holds and no longer hands out.
#[inline(always)]
pub(crate) unsafe fn set(block: NonNull<u8>) {
    // SAFETY: per the contract.
    unsafe { word(block).store(value(block), Ordering::Relaxed) }
}

/// [`set`], the mark `mark` (`value(block)`) computed by the caller.
///
/// # Safety
///
/// As for [`set`], and `mark == value(block)`.
#[inline(always)]
pub(crate) unsafe fn set_to(block: NonNull<u8>, mark: usize) {
    // SAFETY: per the contract.
    unsafe { word(block).store(mark, Ordering::Relaxed) }
}

/// Claims `block` for a free: marks it with `mark` (`value(block)`) in one
/// atomic swap and returns whether this free took it, i.e. the word did not
/// hold the mark already. `false` is a double free: another free holds (or
/// has just taken) the block, and the word is unchanged. See the module
/// documentation.
///
/// # Safety
///
/// `block` is a carved TINY or SMALL block of a zone that cannot be
/// released meanwhile (it lends this block, or its class lock is held),
/// and `mark == value(block)`.
#[inline(always)]
pub(crate) unsafe fn claim(block: NonNull<u8>, mark: usize) -> bool {
    // SAFETY: per the contract.
    unsafe { claim_over(block, mark) != mark }
}

/// [`claim`], returning the word it replaced: the claim took the block
/// unless that is `mark`. A free that then cannot keep the block undoes
/// its claim with [`unclaim`] and that word.
///
/// # Safety
///
/// As for [`claim`].
#[inline(always)]
pub(crate) unsafe fn claim_over(block: NonNull<u8>, mark: usize) -> usize {
    // SAFETY: per the contract.
    unsafe { word(block).swap(mark, Ordering::Relaxed) }
}

/// Undoes a winning [`claim_over`] of a block the free hands on to a path
/// that claims it again (the zone's): the word gets back what the claim
/// replaced, so the block is as the program left it. Not a clear: the
/// slack canary of a request under 16 bytes lies in this word, and a
/// zeroed canary reads as an overflow. A double free racing in between
/// reads the mark and is refused; the path the block goes on to wins.
///
/// # Safety
///
/// `block` is a block whose mark the caller's claim set over `replaced`,
/// and which it holds still.
#[inline(always)]
pub(crate) unsafe fn unclaim(block: NonNull<u8>, replaced: usize) {
    // SAFETY: per the contract.
    unsafe { word(block).store(replaced, Ordering::Relaxed) }
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
    unsafe { word(block).store(0, Ordering::Relaxed) }
}

/// Clears the mark of a free block about to be handed out and returns it
/// (the block's [`value`]: a block that is free carries it). A load and a
/// store, not a swap: a double free racing in between reads the mark and
/// loses (module documentation).
///
/// # Safety
///
/// `block` is a TINY or SMALL block the caller holds, marked free.
#[inline(always)]
pub(crate) unsafe fn take(block: NonNull<u8>) -> usize {
    // SAFETY: per the contract.
    unsafe {
        let word = word(block);
        let mark = word.load(Ordering::Relaxed);
        word.store(0, Ordering::Relaxed);
        mark
    }
}

/// Whether `block` carries the free mark.
///
/// # Safety
///
/// `block` is a carved block of a zone that is mapped, which the caller is
/// freeing (or resizing): a block someone else holds is theirs to write,
/// and is never read (introspection reads size slots, `zone/sizes.rs`).
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
    // SAFETY: per the contract the word is mapped; atomic, because a racing
    // free may claim it.
    unsafe { word(block).load(Ordering::Relaxed) == mark }
}
