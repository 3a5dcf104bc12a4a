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

/// Defect 5, `FT_MALLOC_CHECK=warn`: freed blocks'
/// links pointed at themselves never make the heap hand a block out twice;
/// the corrupt links that reach a zone's free list are reported and the
/// program goes on.
#[test]
fn poisoned_free_list_link_is_reported_and_never_hands_a_block_out_twice() {
    let out = run_within(
        preloaded(&mut command(compile("freelist_poison.c"))).env("FT_MALLOC_CHECK", "warn"),
        HANG,
    );
    assert_eq!(out.code, 0, "a block came back twice:\n{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let pointers: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(
        pointers.len() == 2 && pointers[0] != pointers[1],
        "{out:#?}"
    );
    assert_eq!(lines.get(1), Some(&"distinct 20000"), "{out:#?}");
    assert!(
        out.stderr.to_lowercase().contains("corrupt"),
        "the corrupt links were not reported:\n{out:#?}"
    );
}

/// Defect 5, `FT_MALLOC_CHECK=abort`: the first corruption report ends the
/// process with SIGABRT.
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

/// The stress harness for 10 s in the hardened mode (every defence on):
/// the quarantine's lock, the canaries, the guard pages and the LARGE runs
/// unmapped at free under threads, forks and RLIMIT_AS phases.
#[test]
fn stress_harness_hardened() {
    let out = run_within(
        preloaded(&mut command(compile("stress.c")))
            .env("FT_MALLOC_CHECK", "abort")
            .env("FT_MALLOC_HARDENED", "1")
            .args(["10", "4"]),
        Duration::from_secs(90),
    );
    println!("{}", out.stdout.trim_end());
    assert_clean("stress (hardened)", &out);
    assert!(out.stdout.trim_end().ends_with(": OK"), "{out:#?}");
}

/// `threads.c` (8 threads, cross-thread frees, reallocs, every block's
/// pattern checked) in the hardened mode. Its canaries once caught the
/// program itself writing a byte through `malloc(0)`.
#[test]
fn threads_hardened() {
    let out = run_within(
        preloaded(&mut command(compile("threads.c")))
            .env("FT_MALLOC_CHECK", "abort")
            .env("FT_MALLOC_HARDENED", "1"),
        Duration::from_secs(120),
    );
    assert_clean("threads (hardened)", &out);
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

/// 10,000 threads allocate, hand half their blocks to another thread to
/// free, and exit: their caches go back at exit (RSS stays flat once warm:
/// within 1 MiB from 5,000 to 10,000 threads; glibc's own thread-stack cache
/// moves it that much), nothing leaks (show_alloc_mem lists the same after
/// 5,000 and after 10,000 threads: only glibc's own blocks for its cached
/// thread stacks), and a block freed from two threads is reported once, as
/// a double free (under `FT_MALLOC_CHECK=warn`, so the program goes on).
#[test]
fn thread_churn_leaves_the_footprint_flat_and_nothing_live() {
    let out = run_within(
        preloaded(&mut command(compile("thread_churn.c"))).env("FT_MALLOC_CHECK", "warn"),
        Duration::from_secs(120),
    );
    assert_eq!(out.code, 0, "{out:#?}");
    let totals: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Total : "))
        .collect();
    assert_eq!(totals.len(), 3, "{out:#?}");
    assert_eq!(totals[0], totals[1], "blocks leaked:\n{}", out.stdout);
    let bytes: usize = totals[1]["Total : ".len()..]
        .trim_end_matches(" bytes")
        .parse()
        .unwrap();
    assert!(bytes <= 4096, "{}", out.stdout);
    let rss: Vec<i64> = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("rss "))
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let (early, late) = (rss[0], rss[1]);
    assert!(
        late <= early + 256,
        "RSS grew from {early} to {late} pages between 5,000 and 10,000 threads"
    );
    assert!(out.stdout.contains("double free done"), "{out:#?}");
    let reports: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(reports.len(), 1, "{out:#?}");
    assert!(reports[0].contains("free(): double free"), "{out:#?}");
}
