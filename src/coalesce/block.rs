//! A pool block's boundary tags: the 16-byte header before every block,
//! and the size a free block repeats in its last word (the footer), so
//! that the block after it can find its start and join it.
//!
//! ```text
//! live:  | size | bits | requested | check | requested bytes, canary, slack ... |
//! free:  | size | bits | next      | prev  | ...                        | size |
//!        ^ header (16 B)            user pointer = header + 16          footer ^
//! ```
//!
//! `size` is the whole block's (header included), a multiple of 16 and at
//! least [`MIN_BLOCK`]. `bits` holds [`LIVE`] and [`PREV_FREE`] (the block
//! before this one is free: its footer is valid) and, above them, a seal
//! of the address, size and flags mixed with the process's key; a live
//! header's `check` seals its requested size the same way. The seal catches
//! a header overwritten by the block before it (an overflow that missed
//! the canary); it proves nothing about a pointer's validity, which the
//! segment's bitmap decides (`segment.rs`). `next`/`prev` are the free
//! list's links, as offsets from the pool's origin (`NONE` for none).

use crate::free_mark;

/// Bytes of a header; the user pointer follows it.
pub(crate) const HEADER: usize = 16;
/// Blocks, user pointers and sizes are multiples of this.
pub(crate) const GRAIN: usize = 16;
/// The smallest block: a header and one grain (room for a free block's
/// footer).
pub(crate) const MIN_BLOCK: usize = HEADER + GRAIN;
/// No block (a link's or a bin's "null").
pub(crate) const NONE: u32 = u32::MAX;

/// The block is handed out.
const LIVE: u32 = 1;
/// The block before this one (in the segment) is free.
const PREV_FREE: u32 = 2;
/// Bits of `bits` that are flags; the rest is the seal.
const FLAGS: u32 = 0xf;

/// Mixes `x` with the key into 32 bits.
#[inline]
fn mix(x: usize) -> u32 {
    let x = (x ^ free_mark::key()) as u64;
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

fn seal(h: *mut u8, size: u32, flags: u32) -> u32 {
    flags | (mix(h.addr() ^ ((size as usize) << 4) ^ flags as usize) & !FLAGS)
}

fn check_of(h: *mut u8, requested: u32) -> u32 {
    mix(h.addr().rotate_left(17) ^ requested as usize)
}

/// The four words of a header.
#[derive(Clone, Copy)]
pub(crate) struct Header {
    pub(crate) size: u32,
    bits: u32,
    a: u32,
    b: u32,
}

impl Header {
    pub(crate) fn is_live(&self) -> bool {
        self.bits & LIVE != 0
    }

    pub(crate) fn prev_free(&self) -> bool {
        self.bits & PREV_FREE != 0
    }

    /// A live block's requested size.
    pub(crate) fn requested(&self) -> usize {
        self.a as usize
    }

    /// A free block's links.
    pub(crate) fn links(&self) -> (u32, u32) {
        (self.a, self.b)
    }
}

/// Reads the header at `h`.
///
/// # Safety
///
/// `h` is a 16-aligned address inside a live segment, 16 bytes before its
/// end or more.
#[inline]
pub(crate) unsafe fn read(h: *mut u8) -> Header {
    let w = h.cast::<u32>();
    // SAFETY: per the contract, four aligned words of the segment.
    unsafe {
        Header {
            size: w.read(),
            bits: w.add(1).read(),
            a: w.add(2).read(),
            b: w.add(3).read(),
        }
    }
}

/// Whether the header at `h` is sealed as written by this module, with a
/// plausible size (`MIN_BLOCK` or more, a multiple of the grain, ending at
/// or before `end`), and for a live block, its requested size sealed and
/// fitting the block.
///
/// # Safety
///
/// As for [`read`].
pub(crate) unsafe fn intact(h: *mut u8, end: usize) -> Option<Header> {
    // SAFETY: per the contract.
    let hd = unsafe { read(h) };
    let size = hd.size as usize;
    let ok = hd.bits == seal(h, hd.size, hd.bits & FLAGS)
        && size >= MIN_BLOCK
        && size.is_multiple_of(GRAIN)
        && h.addr().checked_add(size).is_some_and(|e| e <= end)
        && (!hd.is_live() || (hd.b == check_of(h, hd.a) && hd.requested() <= size - HEADER));
    ok.then_some(hd)
}

/// Writes the four words of a header.
///
/// # Safety
///
/// The caller holds the pool lock and `[h, h + 16)` is a header of a live
/// segment that it owns.
unsafe fn write(h: *mut u8, size: usize, flags: u32, a: u32, b: u32) {
    let size = size as u32;
    let w = h.cast::<u32>();
    // SAFETY: per the contract.
    unsafe {
        w.write(size);
        w.add(1).write(seal(h, size, flags));
        w.add(2).write(a);
        w.add(3).write(b);
    }
}

/// Writes a live block's header.
///
/// # Safety
///
/// The caller holds the pool lock and `[h, h + size)` is a block of a live
/// segment that it is handing out.
pub(crate) unsafe fn write_live(h: *mut u8, size: usize, prev_free: bool, requested: usize) {
    let flags = LIVE | if prev_free { PREV_FREE } else { 0 };
    let requested = requested as u32;
    // SAFETY: per the contract.
    unsafe { write(h, size, flags, requested, check_of(h, requested)) };
}

/// Writes a free block's header (its links `next`, `prev`) and footer.
///
/// # Safety
///
/// The caller holds the pool lock and `[h, h + size)` is a free block of a
/// live segment, `size >= MIN_BLOCK`.
pub(crate) unsafe fn write_free(h: *mut u8, size: usize, prev_free: bool, next: u32, prev: u32) {
    let flags = if prev_free { PREV_FREE } else { 0 };
    // SAFETY: per the contract; the block's last word is inside it.
    unsafe {
        write(h, size, flags, next, prev);
        h.add(size - 4).cast::<u32>().write(size as u32);
    }
}

/// Rewrites a free block's links, its seal unchanged.
///
/// # Safety
///
/// As for [`write_free`], on a block written by it.
pub(crate) unsafe fn set_links(h: *mut u8, next: u32, prev: u32) {
    let w = h.cast::<u32>();
    // SAFETY: per the contract.
    unsafe {
        w.add(2).write(next);
        w.add(3).write(prev);
    }
}

/// Sets or clears the header's "block before is free" flag.
///
/// # Safety
///
/// As for [`read`], and the caller holds the pool lock.
pub(crate) unsafe fn set_prev_free(h: *mut u8, prev_free: bool) {
    // SAFETY: per the contract.
    let hd = unsafe { read(h) };
    let flags = (hd.bits & LIVE) | if prev_free { PREV_FREE } else { 0 };
    // SAFETY: per the contract.
    unsafe { h.cast::<u32>().add(1).write(seal(h, hd.size, flags)) };
}

/// The size a free block's footer holds, read from the block after it
/// (whose header is at `next`).
///
/// # Safety
///
/// `next - 4` is inside a live segment.
pub(crate) unsafe fn footer_before(next: *mut u8) -> usize {
    // SAFETY: per the contract.
    unsafe { next.sub(4).cast::<u32>().read() as usize }
}
