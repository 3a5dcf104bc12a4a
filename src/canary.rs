//! The slack canary: one keyed byte right after the requested bytes of a
//! TINY or SMALL block that has room for it, checked when the block is
//! freed or reallocated. On by default (it costs a few instructions per
//! malloc/free pair, BENCHMARKS.md).
//!
//! ```text
//! | requested bytes | canary | rest of the block (not checked) |
//! ^ block           ^ block + requested                       ^ block + block size
//! ```
//!
//! The requested size is already kept per block (the zone's size array),
//! so the check needs nothing more: a block whose requested size is its
//! block size has no canary. The byte is derived from the process's key
//! (`free_mark::set_key`) and the block's address, and is never zero, so a
//! string copy's terminating NUL one byte too far is caught, and so is any
//! write through `malloc(0)` (requested 0, block 16). Writes that skip the
//! byte, or land only beyond it in the slack, are not: the hardened mode's
//! canary (hosted) covers the slack and the block's end.
//!
//! Because the bytes after the requested size are not the program's,
//! `usable_size` (`malloc_usable_size`) returns the requested size.

use core::ptr::NonNull;

use crate::free_mark;

/// The canary byte of a block whose free mark is `mark` (key and address
/// mixed: `free_mark::value`): its low byte, never zero because every mark
/// is odd (the key is, and blocks are 16-aligned: `free_mark.rs`).
#[inline(always)]
fn byte(mark: usize) -> u8 {
    // Bits 4 to 7 of the address differ between neighbours, bits 0 to 3
    // are the key's. (A cached block's mark overwritten after its free
    // makes any byte here: the block is refused when freed, as it should.)
    mark as u8
}

/// Writes the canary of a block of `block_size` bytes handed out for
/// `requested` bytes (nothing when the request fills the block).
///
/// # Safety
///
/// `block` is a TINY or SMALL block (or a span of blocks, `span.rs`) of
/// `block_size` bytes the caller holds, `requested <= block_size`.
#[inline(always)]
pub(crate) unsafe fn arm(block: NonNull<u8>, requested: usize, block_size: usize) {
    if requested < block_size {
        // SAFETY: per the contract, and `requested < block_size`.
        unsafe { arm_past(block, requested, free_mark::value(block)) }
    }
}

/// Writes the canary of a block handed out for `requested` bytes whose
/// free mark is `mark` (a cached block carries it: `free_mark::take`).
///
/// # Safety
///
/// `block` is a TINY or SMALL block the caller holds, of more than
/// `requested` bytes; `mark == free_mark::value(block)` (any other value
/// makes the block read as overflowed when it is freed).
#[inline(always)]
pub(crate) unsafe fn arm_past(block: NonNull<u8>, requested: usize, mark: usize) {
    // SAFETY: `requested` is inside the block, per the contract.
    unsafe { block.as_ptr().add(requested).write(byte(mark)) };
}

/// Whether the canary of a block armed for `requested` bytes is intact
/// (true when it has none).
///
/// # Safety
///
/// `block` is a live TINY or SMALL block (or span) of `block_size` bytes,
/// armed for `requested <= block_size` bytes; its holder is not writing it
/// concurrently (it is being freed or reallocated).
#[inline(always)]
pub(crate) unsafe fn intact(block: NonNull<u8>, requested: usize, block_size: usize) -> bool {
    // SAFETY: per the contract.
    unsafe { intact_for(block, requested, block_size, free_mark::value(block)) }
}

/// [`intact_for`] for a caller that has compared `requested` with the
/// block size already: the canary of a block armed for `requested` bytes,
/// fewer than the block holds, is intact.
///
/// # Safety
///
/// As for [`intact_for`], and `requested < block_size`.
#[inline(always)]
pub(crate) unsafe fn intact_past(block: NonNull<u8>, requested: usize, mark: usize) -> bool {
    // SAFETY: `requested < block_size`: inside the block, per the contract.
    unsafe { block.as_ptr().add(requested).read() == byte(mark) }
}

/// [`intact`], for a caller that has computed the block's free mark
/// (`free_mark::value(block)`) already.
///
/// # Safety
///
/// As for [`intact`], and `mark == free_mark::value(block)`.
#[inline(always)]
pub(crate) unsafe fn intact_for(
    block: NonNull<u8>,
    requested: usize,
    block_size: usize,
    mark: usize,
) -> bool {
    // SAFETY: `requested < block_size`: inside the block, per the contract.
    requested >= block_size || unsafe { block.as_ptr().add(requested).read() } == byte(mark)
}
