//! `show_alloc_mem_svg` and the heap map of `show_alloc_mem_ex`, from C
//! programs under LD_PRELOAD.

mod common;

use std::process::Command;

use common::{command, compile, have, preloaded, run, scratch};

/// Counts, per zone row of an SVG file, the cells of each state, with
/// python3's XML parser (which also proves the file well formed).
const SUMMARY_PY: &str = r#"
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == ns + "svg", root.tag
for g in root.iter(ns + "g"):
    kind = g.get("class", "")
    if not kind.startswith("zone "):
        continue
    label = g.find(ns + "text").text
    classes = [r.get("class") for r in g.iter(ns + "rect")]
    counts = {c: classes.count(c) for c in ("live", "free", "never", "free partly", "live large")}
    print(kind[5:], counts["live"], counts["free"], counts["never"], counts["free partly"], counts["live large"], "|", label)
"#;

#[test]
fn show_alloc_mem_svg_draws_the_heap_of_a_c_program() {
    let svg = scratch().join("heap.svg");
    let out = run(preloaded(
        command(compile("show_svg.c")).arg(&svg).arg("ex"),
    ))
    .success();
    let summary = Command::new("python3")
        .arg("-c")
        .arg(SUMMARY_PY)
        .arg(&svg)
        .output()
        .expect("python3 runs");
    let rows = String::from_utf8(summary.stdout).unwrap();
    assert!(
        summary.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&summary.stderr),
        std::fs::read_to_string(&svg).unwrap()
    );
    let rows: Vec<&str> = rows.lines().collect();

    // One row per zone and LARGE run that show_alloc_mem_ex lists.
    let listed = out
        .stdout
        .lines()
        .filter(|l| {
            ["TINY : ", "SMALL : ", "LARGE : "]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .count();
    assert_eq!(rows.len(), listed, "{rows:#?}\n{}", out.stdout);

    // The 40 blocks of 20000 B: a SMALL zone of 100 slots, one per cell.
    let small = rows
        .iter()
        .find(|r| r.starts_with("small ") && r.contains(" 20480 B "))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert!(small.starts_with("small 40 0 60 0 0 |"), "{small}");
    // 120 live blocks of 112 B: 578 slots, 5 per cell (116 cells), so 24
    // live cells. The thread's cache carved a few more than it handed out
    // (up to the end of the page the last block ends in): those are free,
    // and the rest never carved.
    let tiny = rows
        .iter()
        .find(|r| r.contains("   112 B  120/578"))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    let cells: Vec<usize> = tiny
        .split_whitespace()
        .skip(1)
        .take(5)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(cells[0], 24, "{tiny}");
    assert!(cells[1] <= 4 && cells[1] + cells[2] == 92, "{tiny}");
    assert_eq!((cells[3], cells[4]), (0, 0), "{tiny}");
    // The three LARGE runs, 4 MiB the largest.
    let large: Vec<_> = rows.iter().filter(|r| r.starts_with("large ")).collect();
    assert_eq!(large.len(), 3, "{rows:#?}");
    assert!(large.iter().all(|r| r.starts_with("large 0 0 0 0 1 |")));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("the full width is 8.0 MiB"), "{text}");
}

/// The `Heap map:` part of a `show_alloc_mem_ex` listing.
fn heap_map(stdout: &str) -> &str {
    &stdout[stdout
        .find("Heap map: ")
        .unwrap_or_else(|| panic!("{stdout}"))..]
}

#[test]
fn show_alloc_mem_ex_map_is_plain_when_not_a_terminal() {
    let out = run(preloaded(&mut command(compile("show_ex.c")))).success();
    let map = heap_map(&out.stdout);
    assert!(!out.stdout.contains('\x1b'), "{}", out.stdout);
    assert!(map.starts_with("Heap map: # live, + partly live, . free, _ never carved"));
    // show_ex.c: 11 blocks of 48 B (one freed, not the last), one LARGE
    // block. (The thread's cache borrowed a few more than it handed out:
    // free, in the same first cell.)
    let row = map.lines().find(|l| l.contains("   48 B [")).unwrap();
    assert!(row.contains("] 10/1332 live, 21/cell"), "{row}");
    assert!(row.contains("[+___"), "{row}");
    assert!(map.lines().any(|l| l.starts_with("LARGE ")), "{map}");
}

/// Runs `show_ex.c` under a pseudo-terminal (`script`), preloaded.
fn on_a_terminal(no_color: Option<&str>) -> String {
    let program = compile("show_ex.c");
    let mut cmd = command("script");
    cmd.args(["-qec", program.to_str().unwrap(), "/dev/null"]);
    cmd.env_remove("NO_COLOR");
    if let Some(value) = no_color {
        cmd.env("NO_COLOR", value);
    }
    run(preloaded(&mut cmd)).success().stdout
}

#[test]
fn show_alloc_mem_ex_map_is_coloured_on_a_terminal_unless_no_color() {
    if !have("script") {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let coloured = on_a_terminal(None);
    let map = heap_map(&coloured);
    assert!(map.contains("\x1b[97;44m#"), "{map:?}");
    // Only the map is coloured, not the listing.
    assert!(!coloured[..coloured.find("Heap map: ").unwrap()].contains('\x1b'));
    // NO_COLOR set to anything non-empty turns colours off; empty does not.
    assert!(!on_a_terminal(Some("1")).contains('\x1b'));
    assert!(on_a_terminal(Some("")).contains('\x1b'));
}
