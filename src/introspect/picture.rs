//! Pictures of the heap: an SVG image and a one-line-per-zone text map.
//!
//! Both are drawn from two walks of the heap under one hold of every lock
//! (`Heap::write_svg` and `Heap::write_text_picture`): the first measures
//! (rows, the largest LARGE run, totals), the second draws. Everything is
//! formatted straight into a `core::fmt::Write`; nothing allocates.
//!
//! A zone is a row of cells, one cell per `ceil(capacity / cells)` slots:
//! *live* if all its slots are live, *partly live* if some are (the SVG
//! fills the live share of the cell's height), *free* if none is live but
//! one is carved, *never carved* otherwise. A LARGE run is a bar to one
//! scale for the whole picture (a power of two at least as long as the
//! largest run): the requested bytes, then the rest of the run.

use core::fmt;

use super::{BlockInfo, HeapVisitor, ZoneInfo};
use crate::size_class::Kind;

/// Cells per zone row in the SVG.
pub(crate) const SVG_CELLS: usize = 120;
/// Cells per zone row in the text map (and width of its LARGE bars).
pub(crate) const TEXT_CELLS: usize = 64;

/// What the first walk learns.
#[derive(Default)]
pub(crate) struct Extent {
    pub(crate) rows: usize,
    pub(crate) zones: usize,
    pub(crate) large_runs: usize,
    pub(crate) largest_run: usize,
    pub(crate) live_blocks: usize,
    pub(crate) live_bytes: usize,
    pub(crate) mapped_bytes: usize,
}

impl Extent {
    /// Bytes a full-width LARGE bar stands for: a round figure for the note.
    pub(crate) fn large_scale(&self) -> usize {
        self.largest_run.max(1).next_power_of_two()
    }
}

impl HeapVisitor for Extent {
    fn zone(&mut self, zone: &ZoneInfo) {
        self.rows += 1;
        self.mapped_bytes += zone.len;
        if zone.kind == Kind::Large {
            self.large_runs += 1;
            self.largest_run = self.largest_run.max(zone.len);
        } else {
            self.zones += 1;
        }
    }

    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        self.live_blocks += 1;
        self.live_bytes += block.requested;
    }
}

/// The state a cell is drawn in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cell {
    /// Every slot of the cell is live.
    Live,
    /// `live` of `slots` are live.
    Partly { live: usize, slots: usize },
    /// No slot is live; at least one is carved.
    Free,
    /// No slot has ever been handed out.
    Never,
}

/// Live blocks per cell of the zone being walked.
pub(crate) struct Cells<const N: usize> {
    zone: Option<ZoneInfo>,
    /// Requested bytes of a LARGE run (its one block).
    requested: usize,
    live: [u32; N],
}

impl<const N: usize> Cells<N> {
    pub(crate) const fn new() -> Self {
        Cells {
            zone: None,
            requested: 0,
            live: [0; N],
        }
    }

    /// Slots each cell of `zone` stands for.
    pub(crate) fn per_cell(zone: &ZoneInfo) -> usize {
        zone.capacity.div_ceil(N).max(1)
    }

    /// Cells the row of `zone` has (at most `N`).
    pub(crate) fn count(zone: &ZoneInfo) -> usize {
        zone.capacity.div_ceil(Self::per_cell(zone))
    }

    /// Starts counting a zone (the previous one must be drawn first).
    pub(crate) fn start(&mut self, zone: &ZoneInfo) {
        self.zone = Some(*zone);
        self.requested = 0;
        self.live = [0; N];
    }

    /// Ends the zone being walked, returning it with its LARGE request; its
    /// counts stay readable until the next `start`.
    pub(crate) fn finish(&mut self) -> Option<(ZoneInfo, usize)> {
        self.zone.take().map(|zone| (zone, self.requested))
    }

    pub(crate) fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        if zone.kind == Kind::Large {
            self.requested = block.requested;
        } else {
            // A span (`span.rs`) is live in each block it joins.
            let blocks = (block.usable / zone.block_size.max(1)).max(1);
            for index in block.index..block.index + blocks {
                if let Some(count) = self.live.get_mut(index / Self::per_cell(zone)) {
                    *count += 1;
                }
            }
        }
    }

    /// The state of cell `i` of `zone`.
    pub(crate) fn cell(&self, zone: &ZoneInfo, i: usize) -> Cell {
        let per_cell = Self::per_cell(zone);
        let first = i * per_cell;
        let slots = per_cell.min(zone.capacity.saturating_sub(first)).max(1);
        let live = self.live.get(i).map_or(0, |&n| n as usize);
        if live >= slots {
            Cell::Live
        } else if live > 0 {
            Cell::Partly { live, slots }
        } else if first < zone.carved {
            Cell::Free
        } else {
            Cell::Never
        }
    }
}

/// A byte count for people: `512 B`, `64.0 KiB`, `1.5 MiB`.
pub(crate) struct Bytes(pub(crate) usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut unit = 0;
        let mut scaled = self.0;
        while scaled >= 1 << 20 && unit < 2 {
            scaled >>= 10;
            unit += 1;
        }
        if scaled < 1024 && unit == 0 {
            return write!(f, "{} B", self.0);
        }
        // One decimal, in integers: tenths of the next unit up.
        let shift = 10 * (unit + 1);
        let tenths = (self.0 as u128 * 10 + (1u128 << (shift - 1))) >> shift;
        let name = ["KiB", "MiB", "GiB"][unit];
        write!(f, "{}.{} {name}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use core::fmt::Write;
    use std::string::String;

    use super::*;

    fn zone(capacity: usize, carved: usize) -> ZoneInfo {
        ZoneInfo {
            kind: Kind::Tiny,
            start: 0x1000,
            len: 65536,
            block_size: 16,
            capacity,
            carved,
            live: 0,
            cached: 0,
        }
    }

    #[test]
    fn cells_aggregate_slots_by_live_share() {
        // 300 slots over 120 cells: 3 slots per cell, 100 cells.
        let z = zone(300, 7);
        assert_eq!(Cells::<SVG_CELLS>::per_cell(&z), 3);
        assert_eq!(Cells::<SVG_CELLS>::count(&z), 100);
        let mut cells = Cells::<SVG_CELLS>::new();
        cells.start(&z);
        for index in [0, 1, 2, 4] {
            let block = BlockInfo {
                start: 0,
                requested: 1,
                usable: 16,
                index,
            };
            cells.block(&z, &block);
        }
        assert_eq!(cells.cell(&z, 0), Cell::Live);
        assert_eq!(cells.cell(&z, 1), Cell::Partly { live: 1, slots: 3 });
        assert_eq!(cells.cell(&z, 2), Cell::Free); // slot 6 carved
        assert_eq!(cells.cell(&z, 3), Cell::Never);
    }

    #[test]
    fn bytes_are_printed_for_people() {
        let text = |n| {
            let mut s = String::new();
            write!(s, "{}", Bytes(n)).unwrap();
            s
        };
        assert_eq!(text(512), "512 B");
        assert_eq!(text(65536), "64.0 KiB");
        assert_eq!(text(1536 * 1024), "1.5 MiB");
        assert_eq!(text(3 << 30), "3.0 GiB");
    }
}
