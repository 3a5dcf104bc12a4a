//! A pool segment: one page run from the provider, every granule of it
//! registered in the page map as `Owner::Pool`.
//!
//! ```text
//! | SegmentHeader | live bitmap | block | block | ... | block |
//! ^ base (a page)                ^ blocks_start           base + len ^
//! ```
//!
//! The bitmap has one bit per 16 bytes of the segment, set exactly where a
//! live block's user pointer is: a pointer given to `free` is trusted only
//! if its bit is set, so an interior, stale or forged pointer is refused
//! before any header is believed. Blocks tile `[blocks_start, base + len)`.

use core::ptr::NonNull;

use crate::coalesce::block::GRAIN;

const GUARD_KEY: usize = 0x5e9_6e47_c0a1_e5ce_u64 as usize;

#[repr(C)]
struct SegmentHeader {
    /// `base ^ len ^ GUARD_KEY`: proves the header intact.
    guard: usize,
    len: u32,
    /// Live blocks.
    live: u32,
}

/// Bytes before the bitmap.
const HEADER_BYTES: usize = 16;
const _: () = assert!(core::mem::size_of::<SegmentHeader>() <= HEADER_BYTES);

/// Bytes of the bitmap of a segment of `len` bytes, rounded to the grain.
const fn bitmap_bytes(len: usize) -> usize {
    (len / GRAIN).div_ceil(8).next_multiple_of(GRAIN)
}

/// Offset of the first block's header in a segment of `len` bytes.
pub(crate) const fn blocks_offset(len: usize) -> usize {
    HEADER_BYTES + bitmap_bytes(len)
}

fn header<'a>(base: NonNull<u8>) -> &'a mut SegmentHeader {
    // SAFETY: callers pass a live segment's base (see theirs) and hold the
    // pool lock, so no other reference to the header exists.
    unsafe { &mut *base.as_ptr().cast::<SegmentHeader>() }
}

/// Writes the header and clears the bitmap of a fresh segment; returns the
/// first block's header address (the caller writes the block).
///
/// # Safety
///
/// `[base, base + len)` is a fresh run the caller holds, page aligned, and
/// `len` fits a `u32`.
pub(crate) unsafe fn init(base: NonNull<u8>, len: usize) -> *mut u8 {
    let off = blocks_offset(len);
    // SAFETY: per the contract.
    unsafe {
        base.as_ptr().cast::<SegmentHeader>().write(SegmentHeader {
            guard: base.as_ptr().addr() ^ len ^ GUARD_KEY,
            len: len as u32,
            live: 0,
        });
        base.as_ptr()
            .add(HEADER_BYTES)
            .write_bytes(0, off - HEADER_BYTES);
        base.as_ptr().add(off)
    }
}

/// The segment's length, if its header is intact.
///
/// # Safety
///
/// `base` is a live segment's base and the caller holds the pool lock.
pub(crate) unsafe fn len(base: NonNull<u8>) -> Option<usize> {
    let h = header(base);
    let len = h.len as usize;
    (h.guard == base.as_ptr().addr() ^ len ^ GUARD_KEY).then_some(len)
}

/// Live blocks of the segment.
///
/// # Safety
///
/// As for [`len`].
pub(crate) unsafe fn live(base: NonNull<u8>) -> usize {
    header(base).live as usize
}

/// The bit of user pointer `user` (16-aligned, inside the segment): its
/// byte and mask.
fn bit_of(base: NonNull<u8>, user: usize) -> (*mut u8, u8) {
    let i = (user - base.as_ptr().addr()) / GRAIN;
    // SAFETY: `user` is inside the segment, so its bit is in the bitmap.
    let byte = unsafe { base.as_ptr().add(HEADER_BYTES + i / 8) };
    (byte, 1 << (i % 8))
}

/// Whether a live block's user pointer is `user`.
///
/// # Safety
///
/// As for [`len`]; `user` is 16-aligned and inside the segment.
pub(crate) unsafe fn is_live(base: NonNull<u8>, user: usize) -> bool {
    let (byte, mask) = bit_of(base, user);
    // SAFETY: per the contract.
    unsafe { byte.read() & mask != 0 }
}

/// Marks the block at `user` live (or not), and counts it.
///
/// # Safety
///
/// As for [`is_live`]; the bit is currently `!live`.
pub(crate) unsafe fn set_live(base: NonNull<u8>, user: usize, live: bool) {
    let (byte, mask) = bit_of(base, user);
    // SAFETY: per the contract.
    unsafe {
        if live {
            byte.write(byte.read() | mask);
            header(base).live += 1;
        } else {
            byte.write(byte.read() & !mask);
            header(base).live -= 1;
        }
    }
}
