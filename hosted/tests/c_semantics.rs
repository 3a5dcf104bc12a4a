//! Every C-level promise (return values and errno for each bad input), checked
//! by `tests/c/semantics.c` under the library, linked and preloaded.

mod common;

use common::{command, compile, preloaded, run};

/// Checks `semantics.c` makes; a run that stops early fails on the count.
const EXPECTED_CHECKS: usize = 44;

#[test]
fn every_bad_input_returns_what_glibc_returns() {
    // The bad pointers in the program are deliberate: quiet mode keeps stderr
    // for real problems.
    let out = run(preloaded(&mut command(compile("semantics.c"))).env("FT_MALLOC_CHECK", "quiet"));
    let failed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    let passed = out.stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(passed, EXPECTED_CHECKS, "{}", out.stdout);
    assert!(out.stderr.is_empty(), "quiet mode printed: {}", out.stderr);
}
