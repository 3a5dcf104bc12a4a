//! The ft_malloc subject's own scenarios, run as the subject's README runs
//! them: C programs linked with `-L. -lft_malloc` and started with
//! `LD_LIBRARY_PATH=... LD_PRELOAD=.../libft_malloc.so`.

mod common;

use common::{command, compile, preloaded, run};

/// The subject's best grade band for test1: at most this many minor page
/// faults above the baseline program.
const TEST1_MAX_EXTRA_FAULTS: i64 = 272;
/// The subject's limit for test2 (each block freed at once).
const TEST2_MAX_EXTRA_FAULTS: i64 = 3;
/// Runs per program; the medians are compared (a program's faults vary by
/// up to +-3 pages from run to run with address-space layout randomisation,
/// as much as the whole budget of test2).
const FAULT_RUNS: usize = 15;

fn median_faults(program: &std::path::Path) -> i64 {
    let mut faults: Vec<i64> = (0..FAULT_RUNS)
        .map(|_| run(preloaded(&mut command(program))).success().minor_faults)
        .collect();
    faults.sort_unstable();
    faults[FAULT_RUNS / 2]
}

#[test]
fn page_faults_of_1024_blocks_of_1_kib() {
    let baseline = median_faults(&compile("subject_test0.c"));
    let kept = median_faults(&compile("subject_test1.c"));
    let freed = median_faults(&compile("subject_test2.c"));
    println!(
        "minor page faults: test0 (baseline) {baseline}, test1 {kept} (+{}), test2 {freed} (+{})",
        kept - baseline,
        freed - baseline
    );
    assert!(
        kept - baseline <= TEST1_MAX_EXTRA_FAULTS,
        "test1: {kept} faults, baseline {baseline}"
    );
    assert!(
        freed - baseline <= TEST2_MAX_EXTRA_FAULTS,
        "test2: {freed} faults, baseline {baseline}"
    );
}

#[test]
fn realloc_16_mib_to_128_mib_in_place_and_moving() {
    let out = run(preloaded(&mut command(compile("realloc_grow.c")))).success();
    println!("{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{}", out.stdout);
    assert!(lines[1].ends_with("moved"), "{}", out.stdout);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// The subject's six test programs (test0 to test5, test3 bis included),
/// built with `gcc -L. -lft_malloc` and run with nothing but
/// `LD_LIBRARY_PATH` and `LD_PRELOAD` (no `FT_MALLOC_*` setting), behave as
/// the subject shows: test4's interior pointer is refused with one line on
/// stderr per call, and the program goes on to print `Bonjours`.
#[test]
fn the_subject_test_programs_behave_as_the_subject_shows() {
    for program in ["subject_test0.c", "subject_test1.c", "subject_test2.c"] {
        let out = run(preloaded(&mut command(compile(program))));
        assert_eq!(out.code, 0, "{program}: {out:#?}");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{program}: {out:#?}"
        );
    }
    for program in ["subject_test3.c", "subject_test3bis.c"] {
        let out = run(preloaded(&mut command(compile(program))));
        assert_eq!(out.code, 0, "{program}: {out:#?}");
        assert_eq!(out.stdout, "Bonjours\nBonjours\n", "{program}");
        assert!(out.stderr.is_empty(), "{program}: {}", out.stderr);
    }

    let out = run(preloaded(&mut command(compile("subject_test4.c"))));
    assert_eq!(out.code, 0, "test4 must survive its bad pointers: {out:#?}");
    assert_eq!(out.stdout, "Bonjours\n");
    let reports: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        reports.len(),
        2,
        "one line per refused call: {}",
        out.stderr
    );
    assert!(reports[0].starts_with("ft_malloc: free(): invalid pointer 0x"));
    assert!(reports[1].starts_with("ft_malloc: realloc(): invalid pointer 0x"));

    let out = run(preloaded(&mut command(compile("subject_test5.c")))).success();
    println!("{}", out.stdout);
    let lines: Vec<Line> = out.stdout.lines().map(parse).collect();
    let mut kind = "";
    let mut listed = Vec::new();
    for line in &lines {
        match line {
            Line::Zone { kind: k, .. } => kind = k,
            Line::Block { size, .. } => listed.push((kind, *size)),
            Line::Total(_) => {}
        }
    }
    for size in [1024, 32 << 10, 1 << 20, 16 << 20, 128 << 20] {
        assert!(
            listed.contains(&(kind_of(size), size)),
            "{size} bytes under {}: {}",
            kind_of(size),
            out.stdout
        );
    }
    assert!(
        matches!(lines.last(), Some(Line::Total(_))),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_pointers_are_reported_and_survived_under_check_warn() {
    let out =
        run(preloaded(&mut command(compile("bad_pointers.c"))).env("FT_MALLOC_CHECK", "warn"))
            .success();
    assert!(
        out.stdout.contains("realloc(interior) returned NULL"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("realloc(stack) returned NULL"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("block says: still here"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("done\n"), "{}", out.stdout);
    // One report per bad call, in order, nothing for free(NULL).
    let reports: Vec<&str> = out.stderr.lines().collect();
    let expected = [
        "ft_malloc: free(): invalid pointer 0x",
        "ft_malloc: free(): invalid pointer 0x",
        "ft_malloc: free(): invalid pointer 0x",
        "ft_malloc: free(): invalid pointer 0x",
        "ft_malloc: realloc(): invalid pointer 0x",
        "ft_malloc: realloc(): invalid pointer 0x",
        "ft_malloc: free(): double free 0x",
    ];
    assert_eq!(reports.len(), expected.len(), "{}", out.stderr);
    for (line, prefix) in reports.iter().zip(expected) {
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}"
        );
    }
}

/// One line of `show_alloc_mem`.
#[derive(Debug, PartialEq)]
enum Line {
    Zone {
        kind: String,
        start: usize,
    },
    Block {
        start: usize,
        end: usize,
        size: usize,
    },
    Total(usize),
}

fn hex(text: &str) -> usize {
    let digits = text.strip_prefix("0x").expect("0x prefix");
    assert!(
        digits
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "upper-case hex expected: {text}"
    );
    usize::from_str_radix(digits, 16).unwrap()
}

/// Parses one line in exactly the subject's format, or panics.
fn parse(line: &str) -> Line {
    if let Some(total) = line.strip_prefix("Total : ") {
        let bytes = total.strip_suffix(" bytes").expect("Total ends in bytes");
        return Line::Total(bytes.parse().unwrap());
    }
    for kind in ["TINY", "SMALL", "LARGE"] {
        if let Some(start) = line.strip_prefix(kind).and_then(|r| r.strip_prefix(" : ")) {
            return Line::Zone {
                kind: kind.to_string(),
                start: hex(start),
            };
        }
    }
    let (range, size) = line
        .split_once(" : ")
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    let (start, end) = range
        .split_once(" - ")
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    let size = size
        .strip_suffix(" bytes")
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    Line::Block {
        start: hex(start),
        end: hex(end),
        size: size.parse().unwrap(),
    }
}

fn kind_of(size: usize) -> &'static str {
    match size {
        0..=128 => "TINY",
        129..=32768 => "SMALL",
        _ => "LARGE",
    }
}

#[test]
fn show_alloc_mem_lists_the_mix_line_by_line() {
    let out = run(preloaded(&mut command(compile("show_mix.c")))).success();
    println!("{}", out.stdout);
    // The program's own blocks, as it announced them on stderr.
    let mine: Vec<(usize, usize)> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("mine 0x"))
        .map(|l| {
            let (addr, size) = l.split_once(' ').unwrap();
            (
                usize::from_str_radix(addr, 16).unwrap(),
                size.parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(mine.len(), 8, "{}", out.stderr);

    let lines: Vec<Line> = out.stdout.lines().map(parse).collect();
    let Some(Line::Total(total)) = lines.last() else {
        panic!("last line must be the total: {}", out.stdout)
    };
    let mut zone: Option<(&str, usize)> = None;
    let mut last_address = 0;
    let mut sum = 0;
    let mut found = Vec::new();
    for line in &lines[..lines.len() - 1] {
        match line {
            Line::Zone { kind, start } => {
                assert!(*start > last_address, "zones out of order at {start:#X}");
                last_address = *start;
                zone = Some((kind.as_str(), *start));
            }
            Line::Block { start, end, size } => {
                let (kind, zone_start) = zone.expect("block before any zone header");
                assert!(*start > last_address, "blocks out of order at {start:#X}");
                assert!(*start > zone_start);
                assert_eq!(*end, start + size, "end = start + size");
                assert_eq!(kind, kind_of(*size), "{size} bytes listed under {kind}");
                last_address = *start;
                sum += size;
                if mine.contains(&(*start, *size)) {
                    found.push((*start, *size));
                }
            }
            Line::Total(_) => panic!("Total before the end"),
        }
    }
    assert_eq!(*total, sum, "Total must add up the blocks");
    assert_eq!(
        found.len(),
        mine.len(),
        "every block of the program listed: {found:?}"
    );
    // The LARGE ones each sit 32 bytes into their own zone.
    for (start, size) in mine.iter().filter(|(_, s)| *s > 32768) {
        let header = lines
            .iter()
            .position(|l| matches!(l, Line::Block { start: s, .. } if s == start));
        let Some(Line::Zone {
            kind,
            start: zone_start,
        }) = header.map(|i| &lines[i - 1])
        else {
            panic!("LARGE block {start:#X} ({size}) must follow its own zone header")
        };
        assert_eq!(kind, "LARGE");
        assert_eq!(start - zone_start, 32);
    }
}
