//! show_alloc_mem, show_alloc_mem_ex and show_alloc_mem_svg: the heap,
//! printed or drawn for a person.
//!
//! `show_alloc_mem` prints the ft_malloc subject's format, zones and live
//! blocks in increasing address order:
//!
//! ```text
//! TINY : 0xA0000
//! 0xA0020 - 0xA004A : 42 bytes
//! SMALL : 0xAD000
//! 0xAD020 - 0xADEAD : 3725 bytes
//! LARGE : 0xB0000
//! 0xB0020 - 0xBBEEF : 48847 bytes
//! Total : 52698 bytes
//! ```
//!
//! A block is `start - start + requested : requested bytes`; every zone
//! holding a live block gets its header (an empty zone the heap keeps mapped
//! for reuse appears only in `show_alloc_mem_ex`).
//! The output goes to stdout (for `show_alloc_mem_svg`, the caller's file
//! descriptor) with `write(2)` from a stack buffer while the heap's locks are
//! held (the core's `visit`, `write_text_picture`, `write_svg`), so each
//! picture is consistent and nothing allocates. A C caller that also uses `printf` should
//! `fflush(stdout)` first, as with any mix of stdio and `write`.

use core::ffi::c_int;
use core::fmt::Write;

use ft_malloc::{BlockInfo, HeapVisitor, Kind, ZoneInfo};

use crate::fd_writer::FdWriter;
use crate::{HEAP, config, os};

/// Stack buffer for the output: large enough that a typical heap prints in a
/// few `write` calls, small enough for any thread's stack.
const OUTPUT_BYTES: usize = 4096;
/// `show_alloc_mem_ex`: bytes of each live block shown in the hex dump.
const DUMP_BYTES: usize = 32;
/// `show_alloc_mem_ex`: bytes per hex dump line.
const DUMP_LINE: usize = 16;

/// Prints the subject's listing.
struct Listing {
    out: FdWriter<OUTPUT_BYTES>,
    total: usize,
}

impl HeapVisitor for Listing {
    fn zone(&mut self, zone: &ZoneInfo) {
        // An empty zone is mapped but holds no allocated memory: the
        // detailed listing shows it, this one does not.
        if zone.live != 0 {
            let _ = writeln!(self.out, "{} : {:#X}", zone.kind.name(), zone.start);
        }
    }

    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        let end = block.start + block.requested;
        let _ = writeln!(
            self.out,
            "{:#X} - {:#X} : {} bytes",
            block.start, end, block.requested
        );
        self.total += block.requested;
    }
}

/// Prints the heap in the ft_malloc subject's format on stdout.
#[unsafe(no_mangle)]
pub extern "C" fn show_alloc_mem() {
    let mut listing = Listing {
        out: FdWriter::new(libc::STDOUT_FILENO),
        total: 0,
    };
    HEAP.visit(&mut listing);
    let _ = writeln!(listing.out, "Total : {} bytes", listing.total);
    listing.out.flush();
}

/// Prints the detailed listing: per zone a summary, each live block with a
/// hex dump of its first bytes.
struct Detailed {
    out: FdWriter<OUTPUT_BYTES>,
    total: usize,
}

impl Detailed {
    /// Hex dump of the first bytes of a live block.
    fn dump(&mut self, block: &BlockInfo) {
        let shown = block.requested.min(DUMP_BYTES);
        let mut offset = 0;
        while offset < shown {
            let line = DUMP_LINE.min(shown - offset);
            let mut bytes = [0u8; DUMP_LINE];
            for (i, byte) in bytes.iter_mut().enumerate().take(line) {
                // SAFETY: `block.start + offset + i < start + requested`,
                // inside a live block that the heap vouches for; volatile
                // because its owner may be writing it concurrently.
                *byte =
                    unsafe { core::ptr::read_volatile((block.start + offset + i) as *const u8) };
            }
            let _ = write!(self.out, "    {offset:04x} ");
            for byte in &bytes[..line] {
                let _ = write!(self.out, " {byte:02x}");
            }
            for _ in line..DUMP_LINE {
                self.out.bytes(b"   ");
            }
            self.out.bytes(b"  |");
            for &byte in &bytes[..line] {
                let printable = if byte.is_ascii_graphic() || byte == b' ' {
                    byte
                } else {
                    b'.'
                };
                self.out.bytes(&[printable]);
            }
            self.out.bytes(b"|\n");
            offset += line;
        }
        if block.requested > shown {
            let _ = writeln!(self.out, "    ... {} more bytes", block.requested - shown);
        }
    }
}

impl HeapVisitor for Detailed {
    fn zone(&mut self, zone: &ZoneInfo) {
        let end = zone.start + zone.len;
        let _ = write!(
            self.out,
            "{} : {:#X} - {:#X} ({} bytes)",
            zone.kind.name(),
            zone.start,
            end,
            zone.len
        );
        if zone.kind == Kind::Large {
            let _ = writeln!(self.out);
        } else {
            let _ = writeln!(
                self.out,
                ", blocks of {} bytes: {} live, {} carved, {} slots",
                zone.block_size, zone.live, zone.carved, zone.capacity
            );
        }
    }

    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        let end = block.start + block.requested;
        let _ = writeln!(
            self.out,
            "{:#X} - {:#X} : {} bytes (usable {})",
            block.start, end, block.requested, block.usable
        );
        self.total += block.requested;
        self.dump(block);
    }
}

/// Prints the detailed listing on stdout: every zone with its geometry,
/// every live block with a hex dump of its first 32 bytes, the total, then
/// the heap map (the core's `write_text_picture`: one line per zone and
/// LARGE run), in ANSI colours when stdout is a terminal and `NO_COLOR` is
/// unset or empty.
#[unsafe(no_mangle)]
pub extern "C" fn show_alloc_mem_ex() {
    let mut detailed = Detailed {
        out: FdWriter::new(libc::STDOUT_FILENO),
        total: 0,
    };
    HEAP.visit(&mut detailed);
    let _ = writeln!(detailed.out, "Total : {} bytes\n", detailed.total);
    // A second hold of the locks: the map is consistent in itself, and the
    // listing above is only as old as this call.
    let color = os::is_terminal(libc::STDOUT_FILENO) && !config::is_set(b"NO_COLOR");
    let _ = HEAP.write_text_picture(&mut detailed.out, color);
    detailed.out.flush();
}

/// Writes an SVG picture of the heap to `fd` (see the core's `write_svg`):
/// zones as rows of cells coloured live, partly live, free or never carved,
/// LARGE runs as bars to one scale, with a legend. Returns 0, or -1 if `fd`
/// is negative (`errno = EBADF`) or a write failed (`errno` unchanged). The
/// descriptor stays open.
#[unsafe(no_mangle)]
pub extern "C" fn show_alloc_mem_svg(fd: c_int) -> c_int {
    if fd < 0 {
        os::set_errno(libc::EBADF);
        return -1;
    }
    let mut out = FdWriter::<OUTPUT_BYTES>::new(fd);
    let drawn = HEAP.write_svg(&mut out).is_ok();
    if out.finish() && drawn { 0 } else { -1 }
}
