//! The heap pictures (`Heap::write_svg`, `Heap::write_text_picture`) of a
//! known heap: well-formed SVG, one row per zone, the expected cells, LARGE
//! bars to scale, and the text map with and without colours.

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::{Counting, arena};
use ft_malloc::{Heap, HeapVisitor, Kind, ZoneInfo};

type ArenaHeap = Heap<Counting<common::OwnedArena>>;

fn alloc(heap: &ArenaHeap, size: usize) -> NonNull<u8> {
    heap.allocate(Layout::from_size_align(size, 16).unwrap())
        .unwrap()
}

/// A heap with one TINY zone (10 blocks of 16 B: part of its first cell),
/// one SMALL zone of 1 KiB blocks (5 handed out and 2 more carved ahead
/// into the heap's stack, `heap_cache/carve.rs`; the second freed: 4 live
/// cells and 3 free ones, one slot per cell) and two LARGE runs.
fn known_heap() -> ArenaHeap {
    let heap = Heap::new(Counting::new(arena(8 << 20)));
    for _ in 0..10 {
        alloc(&heap, 16);
    }
    let small: Vec<_> = (0..5).map(|_| alloc(&heap, 1024)).collect();
    unsafe { heap.deallocate(small[1]) }.unwrap();
    alloc(&heap, 100_000);
    alloc(&heap, 300_000);
    heap
}

/// The zones as `visit` reports them.
fn zones(heap: &ArenaHeap) -> Vec<ZoneInfo> {
    struct Zones(Vec<ZoneInfo>);
    impl HeapVisitor for Zones {
        fn zone(&mut self, zone: &ZoneInfo) {
            self.0.push(*zone);
        }
    }
    let mut z = Zones(Vec::new());
    heap.visit(&mut z);
    z.0
}

/// A small well-formedness check: tags nest and close, attributes are
/// quoted, text holds no bare `<` or `&`. Returns the element count.
fn check_xml(doc: &str) -> usize {
    let mut open: Vec<&str> = Vec::new();
    let mut elements = 0;
    let mut rest = doc;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        assert!(!text.contains('&') && !text.contains('>'), "text {text:?}");
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(!tag.contains('<'), "tag {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "closing {name}");
        } else {
            elements += 1;
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body.split_whitespace().next().expect("tag name");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
            // Attributes: name="value", values without quotes inside.
            let mut attrs = body[name.len()..].trim();
            while !attrs.is_empty() {
                let eq = attrs.find("=\"").expect("attribute without =\"");
                let key = &attrs[..eq];
                assert!(
                    key.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                    "{key}"
                );
                let close = attrs[eq + 2..].find('"').expect("unquoted") + eq + 2;
                attrs = attrs[close + 1..].trim_start();
            }
            if !self_closing {
                open.push(name);
            }
        }
        rest = &rest[gt + 1..];
    }
    assert!(rest.trim().is_empty(), "text after the root");
    assert!(open.is_empty(), "unclosed {open:?}");
    elements
}

/// The SVG text of each row group, in order.
fn rows(svg: &str) -> Vec<&str> {
    svg.split("<g class=\"zone ")
        .skip(1)
        .map(|row| &row[..row.find("</g>").unwrap()])
        .collect()
}

/// The `width` of the first `<rect>` carrying exactly `class`.
fn width_of(row: &str, class: &str) -> f64 {
    let at = row.find(&format!("class=\"{class}\"")).unwrap();
    let rect = &row[row[..at].rfind("<rect").unwrap()..at];
    let w = &rect[rect.find("width=\"").unwrap() + 7..];
    w[..w.find('"').unwrap()].parse().unwrap()
}

#[test]
fn svg_of_a_known_heap() {
    let heap = known_heap();
    let mut svg = String::new();
    heap.write_svg(&mut svg).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(check_xml(&svg) > 100);

    let zones = zones(&heap);
    let rows = rows(&svg);
    assert_eq!(rows.len(), 4, "two zones and two LARGE runs");
    assert_eq!(rows.len(), zones.len());
    let count = |row: &str, class: &str| row.matches(&format!("class=\"{class}\"")).count();
    for (row, zone) in rows.iter().zip(&zones) {
        match zone.kind {
            Kind::Tiny => {
                // 3821 slots, 32 per cell: the first cell holds the 10.
                assert!(row.starts_with("tiny\">"));
                assert_eq!(count(row, "live"), 0);
                assert_eq!(count(row, "live partly"), 1);
                assert_eq!(count(row, "never"), 119);
                assert!(row.contains(">32/cell<"));
            }
            Kind::Small => {
                assert!(row.starts_with("small\">"));
                assert_eq!(zone.capacity, 103);
                assert_eq!(count(row, "live"), 4);
                assert_eq!(count(row, "free"), 3);
                assert_eq!(count(row, "never"), 96);
                assert!(row.contains(">1/cell<"));
            }
            Kind::Large => assert_eq!(count(row, "live large"), 1),
        }
    }
    assert!(
        svg.contains("2 zones, 2 LARGE runs, 16 live blocks"),
        "{svg}"
    );

    // LARGE bars share one scale: a power of two at least the longest run,
    // drawn 600 px wide and named in the legend.
    let (small_run, big_run) = (zones[2].len, zones[3].len);
    let scale = big_run.next_power_of_two();
    assert!(svg.contains("the full width is 512.0 KiB"), "{svg}");
    assert_eq!(scale, 512 << 10);
    for (row, run) in [(rows[2], small_run), (rows[3], big_run)] {
        let expected = (run * 6000 / scale) as f64 / 10.0;
        assert_eq!(width_of(row, "slack"), expected);
        assert!(width_of(row, "live large") < expected);
    }
}

#[test]
fn svg_of_an_empty_heap_is_still_a_picture() {
    let heap: ArenaHeap = Heap::new(Counting::new(arena(1 << 20)));
    let mut svg = String::new();
    heap.write_svg(&mut svg).unwrap();
    check_xml(&svg);
    assert!(rows(&svg).is_empty());
    assert!(svg.contains("0 zones, 0 LARGE runs, 0 live blocks"));
}

#[test]
fn text_picture_plain_and_coloured() {
    let heap = known_heap();
    let mut plain = String::new();
    heap.write_text_picture(&mut plain, false).unwrap();
    assert!(!plain.contains('\x1b'), "{plain}");
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 2 + 4, "{plain}");
    assert!(lines[0].starts_with("Heap map: # live, + partly live, . free, _ never carved"));
    // TINY: 60 slots per cell, the 10 blocks in the first.
    assert!(lines[2].starts_with("TINY "), "{plain}");
    assert!(
        lines[2].contains(&format!("[+{}] 10/3821 live, 60/cell", "_".repeat(63))),
        "{plain}"
    );
    // SMALL: 103 slots, 2 per cell; live 0, 2, 3, 4 of 7 carved.
    assert!(lines[3].contains(&format!(
        "[+#+.{}{}] 4/103 live, 2/cell",
        "_".repeat(48),
        " ".repeat(12)
    )));
    // LARGE: 64 cells = 512 KiB; the 300000-byte request takes 37 of them.
    assert!(lines[1].contains("LARGE to scale: 64 cells = 512.0 KiB"));
    let bar = &lines[5][lines[5].find('[').unwrap() + 1..lines[5].find(']').unwrap()];
    assert_eq!(bar.len(), 64);
    assert_eq!(
        bar.matches('#').count(),
        (300_000usize * 64).div_ceil(512 << 10)
    );

    let mut colour = String::new();
    heap.write_text_picture(&mut colour, true).unwrap();
    assert!(colour.contains("\x1b[97;44m#"), "{colour:?}");
    // Same text once the escapes are removed.
    let mut stripped = String::new();
    let mut rest = colour.as_str();
    while let Some(at) = rest.find('\x1b') {
        stripped.push_str(&rest[..at]);
        rest = &rest[at + rest[at..].find('m').unwrap() + 1..];
    }
    stripped.push_str(rest);
    assert_eq!(stripped, plain);
}
