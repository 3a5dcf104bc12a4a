//! What the library writes: misuse reports and `FT_MALLOC_TRACE` lines.
//! (Whether a misuse is reported, and whether the process then goes on, is
//! the policy's decision: `policy.rs`.)
//!
//! Both are single lines written with one `write(2)` from the stack, so lines
//! from different threads do not interleave (writes up to `PIPE_BUF` bytes to
//! a pipe are atomic) and nothing allocates.

use core::ffi::c_void;
use core::fmt::Write;

use crate::fd_writer::FdWriter;

/// Longest line a report or trace can produce, with room to spare.
const LINE_BYTES: usize = 192;

/// One report line on stderr: `ft_malloc: {function}(): {what} {ptr}`, e.g.
/// `ft_malloc: free(): invalid pointer 0x7ffc1b2a3c40`.
#[cold]
pub(crate) fn misuse_line(function: &str, what: &str, ptr: *const c_void) {
    let mut line = FdWriter::<LINE_BYTES>::new(libc::STDERR_FILENO);
    let _ = writeln!(line, "ft_malloc: {function}(): {what} {ptr:p}");
    line.flush();
}

/// Writes one `FT_MALLOC_TRACE` line to `fd` (the C functions trace calls).
#[cfg(feature = "c-abi")]
#[cold]
pub(crate) fn trace(fd: i32, call: core::fmt::Arguments<'_>) {
    let mut line = FdWriter::<LINE_BYTES>::new(fd);
    let _ = line.write_fmt(call);
    line.bytes(b"\n");
    line.flush();
}
