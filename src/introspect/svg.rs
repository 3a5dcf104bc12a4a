//! The heap as an SVG image (`Heap::write_svg`): see `picture.rs` for the
//! rules; this file only lays the rows out.

use core::fmt::{self, Write};

use super::picture::{Bytes, Cell, Cells, Extent, SVG_CELLS};
use super::{BlockInfo, HeapVisitor, ZoneInfo};
use crate::size_class::Kind;

/// SVG geometry, in pixels.
const WIDTH: usize = 1000;
const LABEL_X: usize = 10;
const CELLS_X: usize = 330;
const CELLS_W: usize = 600;
const ROW_H: usize = 14;
const ROW_STEP: usize = 19;
const HEADER_H: usize = 98;
const AXIS_H: usize = 34;

/// Pixels in tenths, printed as a decimal (`12.5`).
struct Px(usize);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(10) {
            write!(f, "{}", self.0 / 10)
        } else {
            write!(f, "{}.{}", self.0 / 10, self.0 % 10)
        }
    }
}

/// Draws the SVG picture on the second walk.
pub(crate) struct Svg<'w, W: Write> {
    out: &'w mut W,
    extent: &'w Extent,
    cells: Cells<SVG_CELLS>,
    row: usize,
    result: fmt::Result,
}

impl<'w, W: Write> Svg<'w, W> {
    pub(crate) fn new(out: &'w mut W, extent: &'w Extent) -> Self {
        Svg {
            out,
            extent,
            cells: Cells::new(),
            row: 0,
            result: Ok(()),
        }
    }

    /// The document head: size, styles, title, totals and legend.
    pub(crate) fn head(&mut self) -> fmt::Result {
        let e = self.extent;
        let height = HEADER_H + e.rows * ROW_STEP + AXIS_H;
        let o = &mut *self.out;
        writeln!(
            o,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" xml:space=\"preserve\" font-family=\"monospace\" font-size=\"12\">"
        )?;
        o.write_str(
            "<style>.live{fill:#1f5fa8}.free{fill:#a8dba0}.never{fill:#ececec}\
             .slack{fill:#a8dba0}.note{fill:#555}.zone text{fill:#222}</style>\n\
             <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
        )?;
        writeln!(
            o,
            "<text x=\"{LABEL_X}\" y=\"20\" font-size=\"15\" font-weight=\"bold\">ft_malloc heap: \
             {} zones, {} LARGE runs, {} live blocks, {} requested, {} mapped</text>",
            e.zones,
            e.large_runs,
            e.live_blocks,
            Bytes(e.live_bytes),
            Bytes(e.mapped_bytes)
        )?;
        let legend: [(&str, &str); 5] = [
            ("live", "live"),
            ("partly", "partly live (height: live share)"),
            ("free", "free (carved)"),
            ("never", "never carved"),
            ("large", "LARGE run (dark: requested)"),
        ];
        let mut x = LABEL_X;
        for (class, text) in legend {
            match class {
                "partly" => writeln!(
                    o,
                    "<rect x=\"{x}\" y=\"32\" width=\"12\" height=\"12\" class=\"free\"/>\
                     <rect x=\"{x}\" y=\"38\" width=\"12\" height=\"6\" class=\"live\"/>"
                )?,
                "large" => writeln!(
                    o,
                    "<rect x=\"{x}\" y=\"32\" width=\"24\" height=\"12\" class=\"slack\"/>\
                     <rect x=\"{x}\" y=\"32\" width=\"16\" height=\"12\" class=\"live\"/>"
                )?,
                _ => writeln!(
                    o,
                    "<rect x=\"{x}\" y=\"32\" width=\"12\" height=\"12\" class=\"{class}\"/>"
                )?,
            }
            let text_x = x + if class == "large" { 28 } else { 16 };
            writeln!(o, "<text x=\"{text_x}\" y=\"42\">{text}</text>")?;
            // 12 px monospace advances about 7.2 px a character.
            x = text_x + text.len() * 15 / 2 + 18;
        }
        writeln!(
            o,
            "<text x=\"{LABEL_X}\" y=\"66\" class=\"note\">Zone rows: kind, address, block \
             size, live/slots; one cell stands for the number of slots at the right, coloured \
             as above.</text>"
        )?;
        writeln!(
            o,
            "<text x=\"{LABEL_X}\" y=\"82\" class=\"note\">LARGE rows: requested of run \
             bytes; bars to one scale, the full width is {} (axis below).</text>",
            Bytes(e.large_scale())
        )
    }

    /// The LARGE scale under the rows: ticks at each quarter, in bytes.
    fn axis(&mut self) -> fmt::Result {
        let y = HEADER_H + self.row * ROW_STEP + 4;
        let scale = self.extent.large_scale();
        let o = &mut *self.out;
        writeln!(
            o,
            "<g class=\"axis\"><line x1=\"{CELLS_X}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" \
             stroke=\"#555\"/>",
            CELLS_X + CELLS_W
        )?;
        for quarter in 0..=4 {
            let x = CELLS_X + CELLS_W * quarter / 4;
            writeln!(
                o,
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{x}\" y2=\"{}\" stroke=\"#555\"/>\
                 <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" class=\"note\">{}</text>",
                y + 5,
                y + 18,
                Bytes(scale * quarter / 4)
            )?;
        }
        writeln!(
            o,
            "<text x=\"{LABEL_X}\" y=\"{}\" class=\"note\">LARGE scale</text></g>",
            y + 18
        )
    }

    /// Draws the row of a finished zone.
    fn row(&mut self, zone: &ZoneInfo, requested: usize) -> fmt::Result {
        let y = HEADER_H + self.row * ROW_STEP;
        self.row += 1;
        let o = &mut *self.out;
        let kind = match zone.kind {
            Kind::Tiny => "tiny",
            Kind::Small => "small",
            Kind::Large => "large",
        };
        writeln!(o, "<g class=\"zone {kind}\">")?;
        if zone.kind == Kind::Large {
            writeln!(
                o,
                "<text x=\"{LABEL_X}\" y=\"{}\">LARGE {:#X} {} of {}</text>",
                y + 11,
                zone.start,
                Bytes(requested),
                Bytes(zone.len)
            )?;
            let scale = self.extent.large_scale();
            let run_w = (zone.len * CELLS_W * 10 / scale).max(10);
            let live_w = (requested * CELLS_W * 10 / scale).clamp(1, run_w);
            writeln!(
                o,
                "<rect x=\"{CELLS_X}\" y=\"{y}\" width=\"{}\" height=\"{ROW_H}\" class=\"slack\"/>\
                 <rect x=\"{CELLS_X}\" y=\"{y}\" width=\"{}\" height=\"{ROW_H}\" class=\"live large\"/>",
                Px(run_w),
                Px(live_w)
            )?;
        } else {
            writeln!(
                o,
                "<text x=\"{LABEL_X}\" y=\"{}\">{:<5} {:#X} {:>5} B {:>4}/{}</text>",
                y + 11,
                zone.kind.name(),
                zone.start,
                zone.block_size,
                zone.live,
                zone.capacity
            )?;
            let count = Cells::<SVG_CELLS>::count(zone);
            // Cell edges in tenths of a pixel, so every row spans CELLS_W.
            let edge = |i: usize| CELLS_X * 10 + i * CELLS_W * 10 / count;
            for i in 0..count {
                let (x, w) = (edge(i), edge(i + 1) - edge(i));
                let rect = |o: &mut W, dy: usize, h: usize, class: &str| {
                    writeln!(
                        o,
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"{class}\"/>",
                        Px(x),
                        Px(y * 10 + dy),
                        Px(w),
                        Px(h)
                    )
                };
                match self.cells.cell(zone, i) {
                    Cell::Live => rect(o, 0, ROW_H * 10, "live")?,
                    Cell::Free => rect(o, 0, ROW_H * 10, "free")?,
                    Cell::Never => rect(o, 0, ROW_H * 10, "never")?,
                    Cell::Partly { live, slots } => {
                        let h = (ROW_H * 10 * live / slots).max(10);
                        rect(o, 0, ROW_H * 10, "free partly")?;
                        rect(o, ROW_H * 10 - h, h, "live partly")?;
                    }
                }
            }
            writeln!(
                o,
                "<text x=\"{}\" y=\"{}\" class=\"note\">{}/cell</text>",
                CELLS_X + CELLS_W + 6,
                y + 11,
                Cells::<SVG_CELLS>::per_cell(zone)
            )?;
        }
        writeln!(o, "</g>")
    }

    /// Draws the last row and closes the document.
    pub(crate) fn end(&mut self) -> fmt::Result {
        if let Some((zone, requested)) = self.cells.finish() {
            self.row(&zone, requested)?;
        }
        core::mem::replace(&mut self.result, Ok(()))?;
        if self.extent.large_runs != 0 {
            self.axis()?;
        }
        writeln!(self.out, "</svg>")
    }
}

impl<W: Write> HeapVisitor for Svg<'_, W> {
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
