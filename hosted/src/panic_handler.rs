//! The library's own panic handler (feature `own-panic-handler`, which the
//! root Makefile turns on for `libft_malloc.so`): the `cdylib` then links no
//! Rust std at all.
//!
//! Why: std's panic handler is the only thing the crate took from std, and
//! it brings std's whole panic machinery (formatting to stderr through std's
//! locks, backtrace symbolisation with gimli, addr2line, miniz_oxide and
//! rustc_demangle, `_Unwind_Backtrace` from `libgcc_s.so.1`): without it
//! the library's `.text` is 169 kB instead of 391 kB. Every program that
//! preloads the library paid for that in resident pages: the kernel maps
//! 64 KiB of file pages around each page fault (fault-around), so a page
//! touched near that code brings it in, and `libgcc_s.so.1` was loaded too.
//! Without it a trivial program's peak RSS under the library drops by a
//! third of a MiB (BENCHMARKS.md, "the fixed footprint").
//!
//! A panic in this library is a bug (the code is written not to panic), and
//! with `panic = "abort"` std would only have printed a message and aborted
//! as well. This handler writes one line to stderr from the stack (nothing
//! allocates: a panic inside `malloc` must not call `malloc`) and aborts.
//!
//! Only for the `cdylib`: a Rust program links std, which has its panic
//! handler, and two handlers in one program do not link. The tests' build
//! (a dev-dependency on this crate) leaves the feature off for that reason;
//! `tests/footprint.rs` builds the library with it.

use core::fmt::Write;
use core::panic::PanicInfo;

use crate::fd_writer::FdWriter;
use crate::os;

/// Room for the message: the location and a short text.
const LINE_BYTES: usize = 256;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut line = FdWriter::<LINE_BYTES>::new(libc::STDERR_FILENO);
    let _ = match info.location() {
        Some(at) => writeln!(
            line,
            "ft_malloc: internal error at {}:{}: {}",
            at.file(),
            at.line(),
            info.message()
        ),
        None => writeln!(line, "ft_malloc: internal error: {}", info.message()),
    };
    line.flush();
    os::abort()
}

// `core` comes precompiled for unwinding, and the unwind tables of its few
// functions with cleanup code name `rust_eh_personality`, which std defines;
// without std the library would not load (an undefined symbol). Nothing ever
// unwinds through this library (panics abort; no C++ exception crosses it:
// `c_api/cxx.rs`), so the routine is never called. If a foreign unwind (a
// C++ throw or a thread cancellation) ever asked it about one of those
// frames, it reports and aborts rather than unwind through heap code holding
// a lock. The symbol is hidden: global in the library, so that the
// references resolve to it, but not exported, so that it cannot interpose on
// the personality routine of a Rust program that preloads the library.
core::arch::global_asm!(
    ".pushsection .text.unlikely.rust_eh_personality,\"ax\",@progbits",
    ".globl rust_eh_personality",
    ".hidden rust_eh_personality",
    ".type rust_eh_personality, @function",
    "rust_eh_personality:",
    "jmp {unwound}",
    ".size rust_eh_personality, . - rust_eh_personality",
    ".popsection",
    unwound = sym unwound_into_library,
);

/// What `rust_eh_personality` does if it is ever called.
extern "C" fn unwound_into_library() -> ! {
    let mut line = FdWriter::<LINE_BYTES>::new(libc::STDERR_FILENO);
    line.bytes(b"ft_malloc: an exception or cancellation unwound into the library\n");
    line.flush();
    os::abort()
}
