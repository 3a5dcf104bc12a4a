//! mallinfo, mallinfo2, malloc_stats, malloc_info: glibc's reports on the
//! heap, from one walk of it ([`Summary`]).
//!
//! How glibc's fields map onto this heap (glibc has arenas of chunks, a top
//! chunk and mmapped chunks; here there are zones of blocks and LARGE runs):
//!
//! | glibc field | here |
//! |---|---|
//! | `arena`    | bytes of TINY and SMALL zones mapped |
//! | `ordblks`  | free TINY/SMALL blocks outside the caches (free lists and never-carved blocks) |
//! | `smblks`   | free blocks held by the per-thread caches and depots (glibc: fastbins) |
//! | `hblks`    | live LARGE runs (glibc: mmapped chunks) |
//! | `hblkhd`   | bytes of live LARGE runs |
//! | `usmblks`  | 0, as in glibc since 2.24 |
//! | `fsmblks`  | bytes of the cached free blocks |
//! | `uordblks` | usable bytes of live TINY/SMALL blocks |
//! | `fordblks` | `arena - uordblks` (so `arena = uordblks + fordblks`, as in glibc) |
//! | `keepcost` | bytes of freed LARGE runs kept for reuse, which `malloc_trim` gives back |
//!
//! `mallinfo` truncates each count to `int`, as glibc does.

use core::ffi::{c_int, c_void};
use core::fmt::{self, Write};

use super::heap_summary::Summary;
use crate::fd_writer::FdWriter;

/// glibc's `struct mallinfo2` (`<malloc.h>`, since 2.33).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Mallinfo2 {
    /// See the module's table.
    pub arena: usize,
    /// See the module's table.
    pub ordblks: usize,
    /// See the module's table.
    pub smblks: usize,
    /// See the module's table.
    pub hblks: usize,
    /// See the module's table.
    pub hblkhd: usize,
    /// See the module's table.
    pub usmblks: usize,
    /// See the module's table.
    pub fsmblks: usize,
    /// See the module's table.
    pub uordblks: usize,
    /// See the module's table.
    pub fordblks: usize,
    /// See the module's table.
    pub keepcost: usize,
}

/// glibc's `struct mallinfo`: the same fields as `int`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Mallinfo {
    /// See the module's table.
    pub arena: c_int,
    /// See the module's table.
    pub ordblks: c_int,
    /// See the module's table.
    pub smblks: c_int,
    /// See the module's table.
    pub hblks: c_int,
    /// See the module's table.
    pub hblkhd: c_int,
    /// See the module's table.
    pub usmblks: c_int,
    /// See the module's table.
    pub fsmblks: c_int,
    /// See the module's table.
    pub uordblks: c_int,
    /// See the module's table.
    pub fordblks: c_int,
    /// See the module's table.
    pub keepcost: c_int,
}

fn mallinfo2_of(s: &Summary) -> Mallinfo2 {
    let (ordblks, _) = s.free_blocks();
    let (smblks, fsmblks) = s.cached_blocks();
    Mallinfo2 {
        arena: s.zone_bytes,
        ordblks,
        smblks,
        hblks: s.large_runs,
        hblkhd: s.large_bytes,
        usmblks: 0,
        fsmblks,
        uordblks: s.zone_in_use,
        fordblks: s.zone_bytes - s.zone_in_use,
        keepcost: s.large_cached_bytes,
    }
}

/// `mallinfo2(3)`: the heap's counters (see the module's table).
///
/// # Safety
///
/// None: reads the heap under its locks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallinfo2() -> Mallinfo2 {
    mallinfo2_of(&Summary::now())
}

/// `mallinfo(3)`: [`mallinfo2`] truncated to `int`, as glibc does.
///
/// # Safety
///
/// None.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallinfo() -> Mallinfo {
    let m = mallinfo2_of(&Summary::now());
    // glibc casts each field to int: the low bits of larger counts.
    let int = |v: usize| v as c_int;
    Mallinfo {
        arena: int(m.arena),
        ordblks: int(m.ordblks),
        smblks: int(m.smblks),
        hblks: int(m.hblks),
        hblkhd: int(m.hblkhd),
        usmblks: int(m.usmblks),
        fsmblks: int(m.fsmblks),
        uordblks: int(m.uordblks),
        fordblks: int(m.fordblks),
        keepcost: int(m.keepcost),
    }
}

/// `malloc_stats(3)`: glibc's lines on stderr. There is one "arena" (the
/// zones); "max mmap regions/bytes" are the LARGE runs live now (the heap
/// keeps no peak).
///
/// # Safety
///
/// None.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_stats() {
    let s = Summary::now();
    let mut out = FdWriter::<512>::new(libc::STDERR_FILENO);
    // glibc prints with %10u / %10lu: unsigned int and unsigned long.
    let uint = |v: usize| v as u32;
    let _ = write!(
        out,
        "Arena 0:\nsystem bytes     = {:>10}\nin use bytes     = {:>10}\n\
         Total (incl. mmap):\nsystem bytes     = {:>10}\nin use bytes     = {:>10}\n\
         max mmap regions = {:>10}\nmax mmap bytes   = {:>10}\n",
        uint(s.zone_bytes),
        uint(s.zone_in_use),
        uint(s.zone_bytes + s.large_bytes),
        uint(s.zone_in_use + s.large_in_use),
        uint(s.large_runs),
        s.large_bytes,
    );
}

/// Bytes `malloc_info` formats at once before handing them to stdio.
const INFO_CHUNK: usize = 256;

/// Formats into a stack buffer and hands full buffers to `fwrite`.
struct StdioWriter {
    file: *mut libc::FILE,
    len: usize,
    failed: bool,
    buf: [u8; INFO_CHUNK],
}

impl StdioWriter {
    fn flush(&mut self) {
        if self.len != 0 {
            // SAFETY: the caller of malloc_info gave an open FILE; the
            // buffer holds `len` initialised bytes. No heap lock is held
            // here, so stdio may call malloc.
            let written = unsafe { libc::fwrite(self.buf.as_ptr().cast(), 1, self.len, self.file) };
            self.failed |= written != self.len;
            self.len = 0;
        }
    }
}

impl Write for StdioWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == INFO_CHUNK {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// glibc's `EINVAL` answer to options other than 0 (it returns the error
/// number, it does not set `errno`).
const MALLOC_INFO_EINVAL: c_int = libc::EINVAL;

/// `malloc_info(3)`: glibc's XML shape (`<malloc version="1">`, one
/// `<heap nr="0">` with a `<size>` line per block size holding free blocks,
/// the `fast`/`rest`/`mmap` totals, `system` and `aspace`), written to `fp`.
/// Returns 0, `EINVAL` for options other than 0, -1 if writing failed.
///
/// # Safety
///
/// `fp` must be an open `FILE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut c_void) -> c_int {
    if options != 0 {
        return MALLOC_INFO_EINVAL;
    }
    // `fwrite` is a cancellation point; no entry point may be one.
    let _no_cancel = crate::os::NoCancel::hold();
    // The walk first, with the locks; stdio (which may allocate) after.
    let s = Summary::now();
    let mut out = StdioWriter {
        file: fp.cast(),
        len: 0,
        failed: false,
        buf: [0; INFO_CHUNK],
    };
    let _ = write_info(&mut out, &s);
    out.flush();
    if out.failed { -1 } else { 0 }
}

fn write_info(out: &mut impl Write, s: &Summary) -> fmt::Result {
    let (free, free_bytes) = s.free_blocks();
    let (cached, cached_bytes) = s.cached_blocks();
    let system = s.zone_bytes;
    out.write_str("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n")?;
    for size in &s.sizes[..s.size_count] {
        let count = size.free + size.cached;
        if count != 0 {
            writeln!(
                out,
                "  <size from=\"{}\" to=\"{}\" total=\"{}\" count=\"{count}\"/>",
                size.block_size,
                size.block_size,
                count * size.block_size
            )?;
        }
    }
    out.write_str("</sizes>\n")?;
    let totals = |out: &mut dyn Write| -> fmt::Result {
        writeln!(
            out,
            "<total type=\"fast\" count=\"{cached}\" size=\"{cached_bytes}\"/>"
        )?;
        writeln!(
            out,
            "<total type=\"rest\" count=\"{free}\" size=\"{free_bytes}\"/>"
        )
    };
    let system_lines = |out: &mut dyn Write| -> fmt::Result {
        writeln!(out, "<system type=\"current\" size=\"{system}\"/>")?;
        writeln!(out, "<system type=\"max\" size=\"{system}\"/>")?;
        writeln!(out, "<aspace type=\"total\" size=\"{system}\"/>")?;
        writeln!(out, "<aspace type=\"mprotect\" size=\"{system}\"/>")
    };
    totals(out)?;
    system_lines(out)?;
    out.write_str("</heap>\n")?;
    totals(out)?;
    writeln!(
        out,
        "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
        s.large_runs, s.large_bytes
    )?;
    system_lines(out)?;
    out.write_str("</malloc>\n")
}
