//! Two threads free the same block at the same instant (`c/racing_double_free.c`):
//! exactly one free is accepted, the other is reported as a double free,
//! and no two live blocks ever share an address, in every checking mode.
//!
//! Before the free mark was claimed with one atomic swap (`src/free_mark.rs`),
//! both frees got through in 2 to 4 of 6 processes of 20,000 rounds under
//! `FT_MALLOC_CHECK=warn`, and the hardened quarantine held a block twice
//! (then reported it as overwritten, or its canary as broken). Each test
//! here runs [`RUNS`] processes; the ignored one runs 100 per mode, as the
//! issue asks (`cargo test -p ft_malloc_hosted --test racing_double_free
//! -- --ignored`).

mod common;

use common::{Run, command, compile, preloaded, run};

/// Processes per mode in the suite.
const RUNS: usize = 20;
/// Racing pairs per process.
const ROUNDS: usize = 10_000;
/// `128 + SIGABRT`.
const ABORTED: i32 = 134;

fn race(env: &[(&str, &str)]) -> Run {
    let mut cmd = command(compile("racing_double_free.c"));
    cmd.arg(ROUNDS.to_string());
    for (key, value) in env {
        cmd.env(key, value);
    }
    run(preloaded(&mut cmd))
}

fn is_double_free_report(line: &str) -> bool {
    line.starts_with("ft_malloc: free(): double free 0x")
}

/// Runs `runs` processes under `FT_MALLOC_CHECK=warn` and `env`: each must
/// report exactly one double free per round, nothing else, and find no
/// aliasing.
fn survives(env: &[(&str, &str)], runs: usize) {
    let env: Vec<_> = [("FT_MALLOC_CHECK", "warn")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    for i in 0..runs {
        let out = race(&env);
        let reports = out.stderr.lines().filter(|l| is_double_free_report(l));
        assert!(
            out.code == 0
                && out.stdout == format!("clean {ROUNDS}\n")
                && reports.count() == ROUNDS
                && out.stderr.lines().count() == ROUNDS,
            "process {i} of {runs} under {env:?}: {} (stdout {:?}, exit {}, {} report lines, the first: {:?})",
            "not one double free reported per round, or blocks aliased",
            out.stdout,
            out.code,
            out.stderr.lines().count(),
            out.stderr.lines().find(|l| !is_double_free_report(l)),
        );
    }
}

/// Runs `runs` processes under `FT_MALLOC_CHECK=abort` and `env`: each must
/// abort at the first racing pair, with one report, of a double free.
fn aborts(env: &[(&str, &str)], runs: usize) {
    let env: Vec<_> = [("FT_MALLOC_CHECK", "abort")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    for i in 0..runs {
        let out = race(&env);
        let reports: Vec<&str> = out.stderr.lines().collect();
        assert!(
            out.code == ABORTED
                && out.stdout.is_empty()
                && reports.len() == 1
                && is_double_free_report(reports[0]),
            "process {i} of {runs} under {env:?}: not one double free reported before the abort: {out:#?}"
        );
    }
}

#[test]
fn racing_frees_are_one_free_and_one_double_free_under_warn() {
    survives(&[], RUNS);
}

#[test]
fn racing_frees_abort_as_a_double_free_under_abort() {
    aborts(&[], RUNS);
}

#[test]
fn racing_frees_are_one_free_and_one_double_free_hardened() {
    survives(&[("FT_MALLOC_HARDENED", "1")], RUNS);
}

/// The bar: 100 of 100 processes clean in every mode.
#[test]
#[ignore = "400 processes, minutes: run with --ignored"]
fn a_hundred_processes_are_clean_in_every_mode() {
    survives(&[], 100);
    aborts(&[], 100);
    survives(&[("FT_MALLOC_HARDENED", "1")], 100);
    aborts(&[("FT_MALLOC_HARDENED", "1")], 100);
}

/// LARGE blocks, racing frees under the hardened mode's guard pages: the
/// LARGE quarantine must hold a block once. (Before the hardened LARGE
/// frees were serialised, 2 of 3 processes of 300 rounds aliased live
/// blocks, 4 and 79 of them, and reported some second frees as invalid
/// pointers or broken canaries.) Every kept block stays live, so rounds
/// are few: 600 blocks of 40 KB and 100 KB.
#[test]
fn racing_frees_of_large_blocks_are_one_free_and_one_double_free_hardened() {
    const LARGE_ROUNDS: usize = 300;
    for env in [
        [("FT_MALLOC_HARDENED", "1"), ("FT_MALLOC_CHECK", "warn")],
        [("FT_MALLOC_GUARD_PAGES", "1"), ("FT_MALLOC_CHECK", "warn")],
    ] {
        for i in 0..5 {
            let mut cmd = command(compile("racing_double_free.c"));
            cmd.args([LARGE_ROUNDS.to_string(), "large".to_string()]);
            cmd.envs(env);
            let out = run(preloaded(&mut cmd));
            let reports = out.stderr.lines().filter(|l| is_double_free_report(l));
            assert!(
                out.code == 0
                    && out.stdout == format!("clean {LARGE_ROUNDS}\n")
                    && reports.count() == LARGE_ROUNDS
                    && out.stderr.lines().count() == LARGE_ROUNDS,
                "process {i} under {env:?}: exit {}, {:?}, {} report lines, the first other: {:?}",
                out.code,
                out.stdout,
                out.stderr.lines().count(),
                out.stderr.lines().find(|l| !is_double_free_report(l)),
            );
        }
    }
}
