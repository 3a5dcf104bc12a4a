//! What the library says: bad-pointer reports and `FT_MALLOC_TRACE` lines.
//!
//! Both are single lines written with one `write(2)` from the stack, so lines
//! from different threads do not interleave (writes up to `PIPE_BUF` bytes to
//! a pipe are atomic) and nothing allocates.

use core::ffi::c_void;
use core::fmt::Write;
use core::ptr::NonNull;

use ft_malloc::HeapError;

use crate::config::{self, CheckMode};
use crate::fd_writer::FdWriter;
use crate::os;

/// Longest line a report or trace can produce, with room to spare.
const LINE_BYTES: usize = 192;

/// Reports a pointer the heap refused in `function` (`"free"`, `"realloc"`,
/// ...): one line on stderr, e.g.
/// `ft_malloc: free(): invalid pointer 0x7ffc1b2a3c40`, then `abort()`
/// unless `FT_MALLOC_CHECK` is `warn` or `quiet`. The call itself has been
/// ignored (the heap is unchanged).
#[cold]
pub(crate) fn bad_pointer(function: &str, ptr: *const c_void, error: HeapError) {
    // "double free" describes only a second free; elsewhere (realloc,
    // malloc_usable_size) the pointer is simply stale.
    let what = match error {
        HeapError::DoubleFree
            if !function.starts_with("free") && !function.starts_with("operator delete") =>
        {
            "pointer already freed"
        }
        _ => error.as_str(),
    };
    misuse(function, ptr, what);
}

/// Reports misuse `what` of `ptr` found in `function` (a bad pointer, or
/// what a hardened-mode defence caught: an overwritten canary, a write
/// after free, a wrong size): one line, then `abort()` unless
/// `FT_MALLOC_CHECK` is `warn` or `quiet`.
#[cold]
pub(crate) fn misuse(function: &str, ptr: *const c_void, what: &str) {
    let check = config::get().check;
    if check == CheckMode::Quiet {
        return;
    }
    let mut line = FdWriter::<LINE_BYTES>::new(libc::STDERR_FILENO);
    let _ = writeln!(line, "ft_malloc: {function}(): {what} {ptr:p}");
    line.flush();
    if check == CheckMode::Abort {
        os::abort();
    }
}

/// The heap's corruption handler (`Heap::set_corruption_handler`): a free
/// list was found overwritten after a free while serving an allocation. The
/// heap already cut the list there (the block at `at` is handed out once,
/// the ones after it leak); this says so, and aborts unless
/// `FT_MALLOC_CHECK` is `warn` or `quiet`, like a refused pointer.
#[cold]
pub(crate) fn heap_corrupted(error: HeapError, at: NonNull<u8>) {
    let check = config::get().check;
    if check == CheckMode::Quiet {
        return;
    }
    let mut line = FdWriter::<LINE_BYTES>::new(libc::STDERR_FILENO);
    let _ = writeln!(
        line,
        "ft_malloc: malloc(): {error}: free list overwritten after free at {:p}",
        at.as_ptr()
    );
    line.flush();
    if check == CheckMode::Abort {
        os::abort();
    }
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
