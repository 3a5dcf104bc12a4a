//! Canaries: the bytes between the requested size and the block's end,
//! and a trailer word holding the requested size, checked on free and
//! realloc (`FT_MALLOC_CANARY`).
//!
//! ```text
//! | requested bytes | 0 | keyed bytes (0 ..= SPAN - 1) | (unused) | trailer: size ^ keyed(address) |
//! ^ block           ^ requested                         ^ usable - TRAILER               ^ usable
//! ```
//!
//! The first canary byte is zero (as hardened_malloc's): a string that
//! fills its block without a terminator stops there instead of reading on.
//! The others hold a byte drawn from the process secret, never zero, and
//! the trailer is the size masked with a keyed hash of the block's address
//! (`keys::keyed`): reading one block's trailer tells nothing of another's
//! nor of the secret. The price of the zero byte: an off-by-one write of a
//! NUL (a `strcpy` one byte too far) is not caught by this canary; any other
//! byte there, and anything further, is.
//!
//! The canary covers at most [`SPAN`] bytes: a LARGE block may sit in a
//! run much bigger than asked (a reused cached run), and filling all of it
//! would touch pages the program never does.
//!
//! Each request gets [`EXTRA`] more bytes, so there are always at least two
//! canary bytes (the zero and a keyed one), even after `malloc(0)`. A write past the requested size,
//! into the block's slack or further into the trailer (which then decodes
//! to an impossible size), is found when the block is freed or
//! reallocated. The trailer also gives back the exact requested size, for
//! `malloc_usable_size` and `free_sized`.

use core::ptr::{self, NonNull};

use super::bytes::all_bytes_are;
use super::keys::{keyed, secret};

/// The trailer word.
const TRAILER: usize = size_of::<usize>();
/// Bytes added to every request: two canary bytes at least (the zero and a
/// keyed one), and the trailer.
pub(crate) const EXTRA: usize = 2 + TRAILER;
/// Canary bytes at most after the requested size (one page).
const SPAN: usize = 4096;
/// Canaries up to this long (most TINY blocks') are written and checked as
/// two words, not a `memset` and a loop.
const WORDS_MAX: usize = 16;
/// Salts the trailer's keyed hash of the address.
const TRAILER_SALT: usize = 0x7a11_e7c0_de5e_a1ed_u64 as usize;

/// Where the canary bytes of a `size`-byte block end.
fn canary_end(size: usize, trailer: usize) -> usize {
    trailer.min(size.saturating_add(SPAN))
}

fn encode(block: NonNull<u8>, size: usize) -> usize {
    size ^ keyed(TRAILER_SALT, block.as_ptr().addr())
}

/// What the canary bytes after the first hold: a byte of the process
/// secret, never zero.
#[inline]
fn canary_byte() -> u8 {
    (secret() >> 8) as u8 | 1
}

/// Eight canary bytes.
#[inline]
fn canary_word() -> u64 {
    u64::from(canary_byte()) * 0x0101_0101_0101_0101
}

/// Writes the canary and trailer of a block of `usable` bytes handed out for
/// `size` bytes.
///
/// # Safety
///
/// `block` is a live block of `usable >= size + EXTRA` bytes, the caller's.
#[inline(always)]
pub(crate) unsafe fn arm(block: NonNull<u8>, size: usize, usable: usize) {
    let trailer = usable - TRAILER;
    let end = canary_end(size, trailer);
    // SAFETY: `[size, usable)` lies in the block, per the contract; a short
    // canary is two (overlapping) words in `[size, usable)`: `size + 8 <=
    // usable` as there are `EXTRA` bytes at least. The trailer is written
    // last, over what they put past the canary.
    unsafe {
        let at = block.as_ptr().add(size);
        if end - size <= WORDS_MAX {
            let word = canary_word();
            at.cast::<u64>().write_unaligned(word);
            at.add((end - size).saturating_sub(8))
                .cast::<u64>()
                .write_unaligned(word);
        } else {
            ptr::write_bytes(at, canary_byte(), end - size);
        }
        at.write(0);
        block
            .as_ptr()
            .add(trailer)
            .cast::<usize>()
            .write_unaligned(encode(block, size));
    }
}

/// Canary bytes `realloc` checks (with the trailer) before it resizes a
/// block in place: the ones an overflow off the end of the data reaches
/// first. A full scan at every `realloc` would make growing a big block a
/// few bytes at a time quadratic; `free` scans them all.
pub(crate) const REALLOC_WINDOW: usize = 256;

/// Re-arms a block resized in place from `old_size` to `size` bytes: the
/// canary bytes the new size needs that are not canary bytes yet are
/// written (the ones given up by a shrink, or the ones past the old canary
/// after a growth), the trailer records the new size. Costs what changed,
/// not the block's size.
///
/// # Safety
///
/// `block` is a live block of `usable >= size + EXTRA` bytes armed for
/// `old_size` bytes.
pub(crate) unsafe fn resize_in_place(
    block: NonNull<u8>,
    old_size: usize,
    size: usize,
    usable: usize,
) {
    let trailer = usable - TRAILER;
    let (old_end, end) = (canary_end(old_size, trailer), canary_end(size, trailer));
    // Canary now: [old_size, old_end), its zero at old_size. Wanted:
    // [size, end), its zero at size. A shrink also turns the old zero into
    // a keyed byte.
    let (from, to) = if size < old_size {
        (size, (old_size + 1).min(end))
    } else {
        (old_end.max(size), end)
    };
    // SAFETY: `[from, to)`, `size < end` and the trailer lie in the block.
    unsafe {
        if from < to {
            ptr::write_bytes(block.as_ptr().add(from), canary_byte(), to - from);
        }
        block.as_ptr().add(size).write(0);
        block
            .as_ptr()
            .add(trailer)
            .cast::<usize>()
            .write_unaligned(encode(block, size));
    }
}

/// The requested size of a block of `usable` bytes, if its trailer and
/// canary bytes are intact (all of them, or the first `window`); `None` if
/// anything past the requested size was overwritten.
///
/// # Safety
///
/// `block` is a live block of `usable` bytes (readable).
pub(crate) unsafe fn check(
    block: NonNull<u8>,
    usable: usize,
    window: Option<usize>,
) -> Option<usize> {
    if usable < EXTRA {
        return None;
    }
    let trailer = usable - TRAILER;
    // SAFETY: the trailer word lies inside the block.
    let size =
        unsafe { block.as_ptr().add(trailer).cast::<usize>().read_unaligned() } ^ encode(block, 0);
    if size > usable - EXTRA {
        return None;
    }
    let end = canary_end(size, trailer);
    let end = window.map_or(end, |w| end.min(size.saturating_add(w)));
    if end - size <= WORDS_MAX {
        // SAFETY: two words in `[size, usable)` (`size + 8 <= usable`, see
        // `arm`). Read as little-endian, the first `n` canary bytes are the
        // low `n` bytes of the first word.
        let (first, last) = unsafe {
            let at = block.as_ptr().add(size);
            (
                u64::from_le(at.cast::<u64>().read_unaligned()),
                at.add((end - size).saturating_sub(8))
                    .cast::<u64>()
                    .read_unaligned(),
            )
        };
        let n = end - size;
        let mask = if n >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        let last_mask = if n > 8 { u64::MAX } else { 0 };
        // The first byte (the low one) is the zero.
        let word = canary_word();
        let differ = ((first ^ (word & !0xFF)) & mask) | ((last ^ word) & last_mask);
        return (differ == 0).then_some(size);
    }
    // SAFETY: `[size, end)` lies inside the block.
    let canary = unsafe { core::slice::from_raw_parts(block.as_ptr().add(size), end - size) };
    (canary[0] == 0 && all_bytes_are(&canary[1..], canary_byte())).then_some(size)
}
