//! Concurrency regressions under real threads, real `fork` and real
//! `LD_PRELOAD`, one C program per defect, each run for a few seconds with
//! `FT_MALLOC_CHECK=abort` (a valid pointer refused by the heap aborts), plus
//! the stress harness (`stress.c`). A hang is a failure: the watchdog kills
//! the program and the test says so.

mod common;

use std::time::Duration;

use common::{Run, command, compile, preloaded, run_within};

/// How long a race program runs (its own clock), and how long before the
/// watchdog calls it a hang: every program here finishes its race in a few
/// seconds on a loaded two-core machine.
const RACE_SECONDS: &str = "4";
const HANG: Duration = Duration::from_secs(20);

/// Runs `tests/c/<program>` preloaded, with `FT_MALLOC_CHECK=abort`.
fn race(program: &str, args: &[&str], timeout: Duration) -> Run {
    run_within(
        preloaded(&mut command(compile(program)))
            .env("FT_MALLOC_CHECK", "abort")
            .args(args),
        timeout,
    )
}

/// Fails with what went wrong: a hang, or a non-zero exit (an abort's report
/// is on stderr).
fn assert_clean(program: &str, out: &Run) {
    assert!(
        !out.timed_out,
        "{program} hung (deadlock?): killed after {:?}\n{out:#?}",
        out.wall
    );
    assert_eq!(out.code, 0, "{program} failed:\n{out:#?}");
    assert!(out.stderr.is_empty(), "{program} reported:\n{}", out.stderr);
}

/// Defect 1: after a LARGE `realloc` moved its run (`mremap` MAYMOVE), the
/// old run's page-map entry must not outlive the move, or a zone another
/// thread maps at the old address loses its entry and its frees are refused.
#[test]
fn large_realloc_that_moves_does_not_unregister_a_new_zone() {
    let out = race("large_realloc_move.c", &[RACE_SECONDS, "2"], HANG);
    assert_clean("large_realloc_move", &out);
    assert!(out.stdout.ends_with(": 0 broken\n"), "{out:#?}");
}

/// Defect 2: `trim` (run when `malloc` fails under RLIMIT_AS) shrinks zones
/// while other threads map zones and look their blocks up: no live block may
/// be refused.
#[test]
fn trim_under_address_space_pressure_refuses_no_live_block() {
    let out = race("rlimit_trim.c", &[RACE_SECONDS, "4"], HANG);
    assert_clean("rlimit_trim", &out);
    assert!(out.stdout.ends_with(": 0 broken\n"), "{out:#?}");
}

/// Defect 3: `fork` while threads hold stdio locks and allocate (`getline`)
/// and wait for them (`fflush(NULL)`): the fork handlers must not close a
/// lock cycle with glibc's stdio list lock.
#[test]
fn fork_while_threads_are_inside_stdio_does_not_hang() {
    let out = race("fork_stdio.c", &[RACE_SECONDS], HANG);
    assert_clean("fork_stdio", &out);
    assert!(out.stdout.ends_with(": 0 failed children\n"), "{out:#?}");
}

/// Defect 4: `fork` from a signal handler of a single-threaded program that
/// interrupted `malloc` or `free`: the fork handlers must take no heap lock
/// there, as glibc's fork takes none of its own.
#[test]
fn fork_from_a_signal_handler_when_single_threaded_does_not_hang() {
    let out = race("fork_signal.c", &[RACE_SECONDS], HANG);
    assert_clean("fork_signal", &out);
    assert!(out.stdout.ends_with(": 0 failed children\n"), "{out:#?}");
}

/// Defect 5, default mode (`FT_MALLOC_CHECK` unset, warn): a freed block's
/// link pointed at itself is detected and reported, the program goes on, and
/// the block is not handed out twice.
#[test]
fn poisoned_free_list_link_is_reported_and_never_hands_a_block_out_twice() {
    let out = run_within(preloaded(&mut command(compile("freelist_poison.c"))), HANG);
    assert_eq!(out.code, 0, "the same block came back twice:\n{out:#?}");
    let pointers: Vec<&str> = out.stdout.split_whitespace().collect();
    assert!(
        pointers.len() == 2 && pointers[0] != pointers[1],
        "{out:#?}"
    );
    assert!(
        out.stderr.to_lowercase().contains("corrupt"),
        "the corrupt link was not reported:\n{out:#?}"
    );
}

/// Defect 5, `FT_MALLOC_CHECK=abort`: the corruption report ends the process
/// with SIGABRT.
#[test]
fn poisoned_free_list_link_aborts_in_abort_mode() {
    let out = race("freelist_poison.c", &[], HANG);
    assert_eq!(
        out.code,
        128 + libc::SIGABRT,
        "expected an abort on the corrupt link:\n{out:#?}"
    );
    assert!(
        out.stderr.to_lowercase().contains("corrupt"),
        "the abort did not say why:\n{out:#?}"
    );
}

/// The stress harness (`stress.c`): mixed sizes, reallocs across kinds,
/// cross-thread frees, RLIMIT_AS phases, forks beside stdio threads, every
/// block's pattern checked. 30 s by default; `STRESS_SECONDS` (which
/// `make stress` sets) runs it longer.
#[test]
fn stress_harness_mixed_load_with_forks_and_enomem() {
    let seconds = std::env::var("STRESS_SECONDS").unwrap_or_else(|_| "30".into());
    let limit: u64 = seconds.parse().expect("STRESS_SECONDS is whole seconds");
    let out = race(
        "stress.c",
        &[&seconds, "4"],
        Duration::from_secs(limit + 60),
    );
    println!("{}", out.stdout.trim_end());
    assert_clean("stress", &out);
    assert!(out.stdout.trim_end().ends_with(": OK"), "{out:#?}");
}

/// The harness's checks can fail: one byte changed in one block must fail
/// the run, loudly.
#[test]
fn stress_harness_catches_a_changed_byte() {
    let out = race("stress.c", &["2", "2", "--corrupt"], HANG);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("FAILURE: pattern mismatch"), "{out:#?}");
    assert!(out.stdout.trim_end().ends_with(": FAILED"), "{out:#?}");
}
