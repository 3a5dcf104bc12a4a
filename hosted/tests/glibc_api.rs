//! glibc's malloc API beyond the standard: `tests/c/glibc_api.c` run on
//! glibc and preloaded must print the same checks and `mallopt` answers, and
//! `malloc_stats` the same lines but for the numbers.

mod common;

use common::{command, compile, compile_plain, preloaded, run};

/// `malloc_stats`' lines with each number (and the padding before it)
/// replaced by `N`.
fn shape(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| {
            let text = line.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ');
            let had_number = text.len() != line.len();
            format!("{text}{}\n", if had_number { " N" } else { "" })
        })
        .collect()
}

#[test]
fn mallinfo_malloc_info_trim_mallopt_stats_match_glibc() {
    let program = compile_plain("glibc_api.c");
    let glibc = run(&mut command(&program)).success();
    let ours = run(preloaded(&mut command(&program))).success();
    assert!(!ours.stdout.contains("FAIL"), "{}", ours.stdout);
    assert_eq!(ours.stdout, glibc.stdout, "stdout differs from glibc's");
    assert_eq!(
        shape(&ours.stderr),
        shape(&glibc.stderr),
        "malloc_stats:\n{}\nglibc:\n{}",
        ours.stderr,
        glibc.stderr
    );
    assert!(ours.stderr.starts_with("Arena 0:\nsystem bytes     = "));
}

/// No entry point is a cancellation point (glibc's
/// `tst-malloc-stats-cancellation`): with a cancel pending, `malloc_stats`,
/// `malloc_info`, `show_alloc_mem` and a refused `free` (its report) each
/// print and return.
#[test]
fn no_entry_point_is_a_cancellation_point() {
    let out = run(preloaded(&mut command(compile("no_cancellation.c"))));
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stdout.lines().last(), Some("returned"), "{out:#?}");
    assert!(
        out.stderr.contains("Arena 0:"),
        "malloc_stats printed: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("<malloc version="),
        "malloc_info printed: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ft_malloc: free(): invalid pointer 0x"),
        "the report printed: {}",
        out.stderr
    );
}

/// `mallopt(M_CHECK_ACTION, 1)` is `FT_MALLOC_CHECK=warn`, 0 is `quiet`
/// (glibc 2.36 ignores the parameter, so glibc is not compared).
#[test]
fn mallopt_check_action_sets_the_misuse_policy() {
    let program = compile_plain("glibc_api.c");
    let out = run(preloaded(&mut command(&program)).arg("check_action")).success();
    assert_eq!(out.stdout, "survived\n");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("ft_malloc: free(): invalid pointer 0x"),
        "{}",
        out.stderr
    );
}

/// C23's `free_sized` and `free_aligned_sized` free the block (glibc 2.36
/// does not have them).
#[test]
fn free_sized_and_free_aligned_sized_free() {
    let program = compile_plain("glibc_api.c");
    let out = run(preloaded(&mut command(&program)).arg("sized")).success();
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
}
