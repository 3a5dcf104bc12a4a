//! Canaries: the bytes between the requested size and the block's end,
//! and a trailer word holding the requested size, checked on free and
//! realloc (`FT_MALLOC_CANARY`).
//!
//! ```text
//! | requested bytes | canary bytes (>= 1) ... | trailer: size ^ key ^ address |
//! ^ block                                      ^ usable - TRAILER               ^ usable
//! ```
//!
//! Each request gets [`EXTRA`] more bytes, so there is always at least one
//! canary byte, even after `malloc(0)`. A write past the requested size,
//! into the block's slack or further into the trailer (which then decodes
//! to an impossible size), is found when the block is freed or
//! reallocated. The trailer also gives back the exact requested size, for
//! `malloc_usable_size` and `free_sized`.

use core::ptr::{self, NonNull};

use super::{all_bytes_are, secret};

/// The trailer word.
const TRAILER: usize = size_of::<usize>();
/// Bytes added to every request: one canary byte at least, and the trailer.
pub(crate) const EXTRA: usize = 1 + TRAILER;
/// What canary bytes hold.
const CANARY_BYTE: u8 = 0xC5;
/// Mixed into the trailer with the process secret and the address.
const TRAILER_SALT: usize = 0x7a11_e7c0_de5e_a1ed_u64 as usize;

fn encode(block: NonNull<u8>, size: usize) -> usize {
    size ^ secret() ^ TRAILER_SALT ^ block.as_ptr().addr()
}

/// Writes the canary and trailer of a block of `usable` bytes handed out for
/// `size` bytes.
///
/// # Safety
///
/// `block` is a live block of `usable >= size + EXTRA` bytes, the caller's.
pub(crate) unsafe fn arm(block: NonNull<u8>, size: usize, usable: usize) {
    let trailer = usable - TRAILER;
    // SAFETY: `[size, usable)` lies in the block, per the contract.
    unsafe {
        ptr::write_bytes(block.as_ptr().add(size), CANARY_BYTE, trailer - size);
        block
            .as_ptr()
            .add(trailer)
            .cast::<usize>()
            .write_unaligned(encode(block, size));
    }
}

/// The requested size of a block of `usable` bytes, if its trailer and
/// canary bytes are intact; `None` if anything past the requested size was
/// overwritten.
///
/// # Safety
///
/// `block` is a live block of `usable` bytes (readable).
pub(crate) unsafe fn check(block: NonNull<u8>, usable: usize) -> Option<usize> {
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
    // SAFETY: `[size, trailer)` lies inside the block.
    let canary = unsafe { core::slice::from_raw_parts(block.as_ptr().add(size), trailer - size) };
    all_bytes_are(canary, CANARY_BYTE).then_some(size)
}
