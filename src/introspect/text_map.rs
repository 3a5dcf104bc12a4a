//! The heap as text, one line per zone (`Heap::write_text_picture`): see
//! `picture.rs` for the rules.

use core::fmt::{self, Write};

use super::picture::{Bytes, Cell, Cells, Extent, TEXT_CELLS};
use super::{BlockInfo, HeapVisitor, ZoneInfo};
use crate::size_class::Kind;

/// ANSI colours of the text map (background, with a readable foreground).
const ANSI_LIVE: &str = "\x1b[97;44m";
const ANSI_PARTLY: &str = "\x1b[30;46m";
const ANSI_FREE: &str = "\x1b[30;42m";
const ANSI_NEVER: &str = "\x1b[2m";
const ANSI_RESET: &str = "\x1b[0m";

/// Draws the text map on the second walk.
pub(crate) struct Text<'w, W: Write> {
    out: &'w mut W,
    extent: &'w Extent,
    color: bool,
    cells: Cells<TEXT_CELLS>,
    /// The ANSI colour last written, so runs of one state share it.
    current: Option<&'static str>,
    result: fmt::Result,
}

impl<'w, W: Write> Text<'w, W> {
    pub(crate) fn new(out: &'w mut W, extent: &'w Extent, color: bool) -> Self {
        Text {
            out,
            extent,
            color,
            cells: Cells::new(),
            current: None,
            result: Ok(()),
        }
    }

    /// The legend.
    pub(crate) fn head(&mut self) -> fmt::Result {
        write!(self.out, "Heap map: ")?;
        for (symbol, text) in [
            (b'#', "live, "),
            (b'+', "partly live, "),
            (b'.', "free, "),
            (b'_', "never carved"),
        ] {
            self.symbol(symbol)?;
            self.plain()?;
            write!(self.out, " {text}")?;
        }
        writeln!(
            self.out,
            "\n  zones: one cell = N slots (\"N/cell\"); LARGE to scale: {} cells = {}",
            TEXT_CELLS,
            Bytes(self.extent.large_scale())
        )
    }

    /// Writes one cell's symbol, in its colour if colours are on.
    fn symbol(&mut self, symbol: u8) -> fmt::Result {
        if self.color {
            let colour = match symbol {
                b'#' => ANSI_LIVE,
                b'+' => ANSI_PARTLY,
                b'.' => ANSI_FREE,
                _ => ANSI_NEVER,
            };
            if self.current != Some(colour) {
                if self.current.is_some() {
                    self.out.write_str(ANSI_RESET)?;
                }
                self.out.write_str(colour)?;
                self.current = Some(colour);
            }
        }
        self.out.write_char(symbol as char)
    }

    /// Back to the terminal's own colours.
    fn plain(&mut self) -> fmt::Result {
        if self.current.take().is_some() {
            self.out.write_str(ANSI_RESET)?;
        }
        Ok(())
    }

    fn row(&mut self, zone: &ZoneInfo, requested: usize) -> fmt::Result {
        write!(self.out, "{:<5} {:#014X} ", zone.kind.name(), zone.start)?;
        if zone.kind == Kind::Large {
            let scale = self.extent.large_scale();
            let run = (zone.len * TEXT_CELLS).div_ceil(scale).max(1);
            let live = (requested * TEXT_CELLS).div_ceil(scale).clamp(1, run);
            self.out.write_str("        [")?;
            for i in 0..TEXT_CELLS {
                match i {
                    _ if i < live => self.symbol(b'#')?,
                    _ if i < run => self.symbol(b'.')?,
                    _ => {
                        self.plain()?;
                        self.out.write_char(' ')?;
                    }
                }
            }
            self.plain()?;
            writeln!(self.out, "] {} of {}", Bytes(requested), Bytes(zone.len))
        } else {
            write!(self.out, "{:>5} B [", zone.block_size)?;
            let count = Cells::<TEXT_CELLS>::count(zone);
            for i in 0..count {
                let symbol = match self.cells.cell(zone, i) {
                    Cell::Live => b'#',
                    Cell::Partly { .. } => b'+',
                    Cell::Free => b'.',
                    Cell::Never => b'_',
                };
                self.symbol(symbol)?;
            }
            self.plain()?;
            // Pad short rows so every `]` lines up.
            for _ in count..TEXT_CELLS {
                self.out.write_char(' ')?;
            }
            writeln!(
                self.out,
                "] {}/{} live, {}/cell",
                zone.live,
                zone.capacity,
                Cells::<TEXT_CELLS>::per_cell(zone)
            )
        }
    }

    /// Draws the last row.
    pub(crate) fn end(&mut self) -> fmt::Result {
        if let Some((zone, requested)) = self.cells.finish() {
            self.row(&zone, requested)?;
        }
        core::mem::replace(&mut self.result, Ok(()))
    }
}

impl<W: Write> HeapVisitor for Text<'_, W> {
    fn zone(&mut self, zone: &ZoneInfo) {
        if let Some((done, requested)) = self.cells.finish()
            && self.result.is_ok()
        {
            self.result = self.row(&done, requested);
        }
        self.cells.start(zone);
    }

    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        self.cells.block(zone, block);
    }
}
