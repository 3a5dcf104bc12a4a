//! show_alloc_mem and show_alloc_mem_ex: the heap, printed for a person.
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
//! The output goes to stdout with `write(2)` from a stack buffer while the
//! heap's locks are held (the core's `visit`), so the picture is consistent
//! and nothing allocates. A C caller that also uses `printf` should
//! `fflush(stdout)` first, as with any mix of stdio and `write`.

use core::fmt::Write;

use ft_malloc::{BlockInfo, HeapVisitor, Kind, ZoneInfo};

use crate::HEAP;
use crate::fd_writer::FdWriter;

/// Stack buffer for the output: large enough that a typical heap prints in a
/// few `write` calls, small enough for any thread's stack.
const OUTPUT_BYTES: usize = 4096;
/// `show_alloc_mem_ex`: bytes of each live block shown in the hex dump.
const DUMP_BYTES: usize = 32;
/// `show_alloc_mem_ex`: bytes per hex dump line.
const DUMP_LINE: usize = 16;
/// `show_alloc_mem_ex`: cells of the occupancy map of a zone.
const MAP_CELLS: usize = 64;

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
/// hex dump of its first bytes, then an occupancy map of the zone's slots.
struct Detailed {
    out: FdWriter<OUTPUT_BYTES>,
    total: usize,
    /// The zone being printed, whose map is pending.
    zone: Option<ZoneInfo>,
    /// Live blocks seen per map cell of the current zone.
    cells: [usize; MAP_CELLS],
}

impl Detailed {
    /// Slots of `zone` each map cell stands for.
    fn slots_per_cell(zone: &ZoneInfo) -> usize {
        zone.capacity.div_ceil(MAP_CELLS).max(1)
    }

    /// Prints the occupancy map of the zone just finished: one cell per
    /// `slots_per_cell` slots, `#` all live, `+` some live, `.` carved but
    /// free, `_` never used yet.
    fn finish_zone(&mut self) {
        let Some(zone) = self.zone.take() else { return };
        if zone.kind == Kind::Large {
            return;
        }
        let per_cell = Self::slots_per_cell(&zone);
        let used_cells = zone.capacity.div_ceil(per_cell);
        let _ = write!(self.out, "  map [");
        for (cell, &live) in self.cells.iter().enumerate().take(used_cells) {
            let first_slot = cell * per_cell;
            let slots = per_cell.min(zone.capacity - first_slot);
            let symbol = if live == slots {
                b'#'
            } else if live > 0 {
                b'+'
            } else if first_slot < zone.carved {
                b'.'
            } else {
                b'_'
            };
            self.out.bytes(&[symbol]);
        }
        let _ = writeln!(
            self.out,
            "] {per_cell} slot(s) per cell: # all live, + some, . free, _ never used"
        );
    }

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
        self.finish_zone();
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
        self.cells = [0; MAP_CELLS];
        self.zone = Some(*zone);
    }

    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        let end = block.start + block.requested;
        let _ = writeln!(
            self.out,
            "{:#X} - {:#X} : {} bytes (usable {})",
            block.start, end, block.requested, block.usable
        );
        self.total += block.requested;
        if zone.kind != Kind::Large {
            let cell = block.index / Self::slots_per_cell(zone);
            if let Some(count) = self.cells.get_mut(cell) {
                *count += 1;
            }
        }
        self.dump(block);
    }
}

/// Prints the detailed listing on stdout: every zone with its geometry and
/// occupancy map, every live block with a hex dump of its first 32 bytes.
#[unsafe(no_mangle)]
pub extern "C" fn show_alloc_mem_ex() {
    let mut detailed = Detailed {
        out: FdWriter::new(libc::STDOUT_FILENO),
        total: 0,
        zone: None,
        cells: [0; MAP_CELLS],
    };
    HEAP.visit(&mut detailed);
    detailed.finish_zone();
    let _ = writeln!(detailed.out, "Total : {} bytes", detailed.total);
    detailed.out.flush();
}
