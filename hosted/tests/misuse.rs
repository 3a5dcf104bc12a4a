//! Heap misuse, one C program per class (`tests/c/misuse/`), run in each
//! mode with its exact expected outcome: killed by SIGABRT or SIGSEGV after
//! the program's "misuse" marker (so at the misuse, not before), or
//! survived with the heap intact (the program's heap check passed).
//!
//! This is the misuse policy of `hosted/README.md` ("What a caught misuse
//! does"), by mode: the default (`FT_MALLOC_CHECK` unset: a pointer that was
//! never handed out is refused and reported, the program goes on; damage
//! aborts), `FT_MALLOC_CHECK=abort` (every caught misuse aborts), `warn` and
//! `quiet` (none does; `quiet` says nothing), and `FT_MALLOC_HARDENED=1`
//! (every caught misuse aborts, as in hardened_malloc). Each program also
//! runs on glibc alone; its outcome there is printed next to ours
//! (`--nocapture`), not asserted (it depends on glibc's version and heap
//! layout).

mod common;

use common::{Run, command, compile_plain, preloaded, run};

/// What a run of a misuse program ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// SIGABRT after the misuse marker.
    Abort,
    /// SIGSEGV after the misuse marker.
    Segv,
    /// Exit 0, heap check passed.
    Survived,
    /// Survived; the read after free saw the old contents.
    Stale,
    /// Survived; the read after free did not see the old contents.
    Clean,
    /// The program found no `free_sized` (glibc 2.36).
    NoFreeSized,
}
use Outcome::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Glibc,
    Default,
    CheckAbort,
    CheckWarn,
    CheckQuiet,
    Hardened,
}

/// The modes of the table's columns, in order.
const MODES: [Mode; 5] = [
    Mode::Default,
    Mode::CheckAbort,
    Mode::CheckWarn,
    Mode::CheckQuiet,
    Mode::Hardened,
];

/// Each program with its expected outcome by default, with
/// `FT_MALLOC_CHECK=abort`, `warn`, `quiet`, and hardened.
const CLASSES: &[(&str, [Outcome; 5])] = &[
    // Nothing damaged: the pointer was never handed out.
    ("invalid_free", [Survived, Abort, Survived, Survived, Abort]),
    (
        "unaligned_free",
        [Survived, Abort, Survived, Survived, Abort],
    ),
    (
        "never_allocated_free",
        [Survived, Abort, Survived, Survived, Abort],
    ),
    // Damage, done or about to be.
    ("double_free", [Abort, Abort, Survived, Survived, Abort]),
    ("overflow_next", [Abort, Abort, Survived, Survived, Abort]),
    ("overflow_slack", [Abort, Abort, Survived, Survived, Abort]),
    ("malloc0_write", [Abort, Abort, Survived, Survived, Segv]),
    ("realloc_freed", [Abort, Abort, Survived, Survived, Abort]),
    // Caught only by a hardened defence.
    (
        "write_after_free",
        [Survived, Survived, Survived, Survived, Abort],
    ),
    (
        "sized_free_mismatch",
        [Survived, Survived, Survived, Survived, Abort],
    ),
    ("read_after_free_small", [Stale, Stale, Stale, Stale, Clean]),
    // Not caught but by the hardened mode's no-access zero-size region.
    (
        "malloc0_read",
        [Survived, Survived, Survived, Survived, Segv],
    ),
    // The pages are gone: the kernel catches it.
    ("read_after_free_large", [Segv, Segv, Segv, Segv, Segv]),
    ("write_after_free_large", [Segv, Segv, Segv, Segv, Segv]),
];

/// The classes the default mode's slack canary catches (at `free`).
const CANARY_CLASSES: &[&str] = &["overflow_next", "overflow_slack", "malloc0_write"];

fn run_in(program: &str, mode: Mode) -> Run {
    let binary = compile_plain(&format!("misuse/{program}.c"));
    let mut cmd = command(binary);
    match mode {
        Mode::Glibc => {}
        Mode::Default => {
            preloaded(&mut cmd);
        }
        Mode::CheckAbort => {
            preloaded(&mut cmd).env("FT_MALLOC_CHECK", "abort");
        }
        Mode::CheckWarn => {
            preloaded(&mut cmd).env("FT_MALLOC_CHECK", "warn");
        }
        Mode::CheckQuiet => {
            preloaded(&mut cmd).env("FT_MALLOC_CHECK", "quiet");
        }
        Mode::Hardened => {
            preloaded(&mut cmd).env("FT_MALLOC_HARDENED", "1");
        }
    }
    run(&mut cmd)
}

/// The outcome of a run, or a description of why it fits none.
fn outcome(out: &Run) -> Result<Outcome, String> {
    let lines: Vec<&str> = out.stdout.lines().collect();
    if lines == ["no free_sized"] && out.code == 0 {
        return Ok(NoFreeSized);
    }
    if lines.first() != Some(&"misuse") {
        return Err(format!("stopped before the misuse: {out:#?}"));
    }
    let survived = lines.last() == Some(&"survived");
    match out.code {
        0 if survived && lines.contains(&"stale") => Ok(Stale),
        0 if survived && lines.contains(&"clean") => Ok(Clean),
        0 if survived && lines.len() == 2 => Ok(Survived),
        c if c == 128 + libc::SIGABRT && !survived => Ok(Abort),
        c if c == 128 + libc::SIGSEGV && !survived => Ok(Segv),
        _ => Err(format!("unexpected end: {out:#?}")),
    }
}

/// Runs one class in every mode and checks ours, reports included: a
/// caught misuse is one line on stderr (none under `quiet`), whether the
/// program then aborts or goes on; an uncaught one, none.
fn check_class(program: &str, expected: [Outcome; 5]) {
    let glibc = outcome(&run_in(program, Mode::Glibc));
    println!("{program}: glibc {glibc:?}, expected {MODES:?}: {expected:?}");
    // Caught without the hardened mode: `FT_MALLOC_CHECK=abort` aborts.
    let caught_by_default = expected[1] == Abort;
    for (mode, want) in MODES.into_iter().zip(expected) {
        let out = run_in(program, mode);
        let got = outcome(&out).unwrap_or_else(|e| panic!("{program} {mode:?}: {e}"));
        assert_eq!(got, want, "{program} {mode:?}: {out:#?}");
        let reports: Vec<&str> = out.stderr.lines().collect();
        // The slack canary's classes say what they are, in every mode that
        // speaks.
        if CANARY_CLASSES.contains(&program) && matches!(mode, Mode::Default | Mode::CheckWarn) {
            assert!(
                out.stderr
                    .contains("(): heap overflow past the requested size 0x"),
                "{program} {mode:?}: {}",
                out.stderr
            );
        }
        let caught = got == Abort || (caught_by_default && mode != Mode::Hardened);
        if caught && mode != Mode::CheckQuiet {
            assert!(
                reports.len() == 1 && reports[0].starts_with("ft_malloc: "),
                "{program} {mode:?}: one report expected: {}",
                out.stderr
            );
        } else {
            assert!(out.stderr.is_empty(), "{program} {mode:?}: {}", out.stderr);
        }
    }
}

macro_rules! misuse_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let (program, expected) = CLASSES
                .iter()
                .find(|(p, _)| *p == stringify!($name))
                .expect("listed in CLASSES");
            check_class(program, *expected);
        }
    )*};
}

misuse_tests!(
    double_free,
    invalid_free,
    unaligned_free,
    never_allocated_free,
    overflow_next,
    overflow_slack,
    write_after_free,
    read_after_free_small,
    read_after_free_large,
    write_after_free_large,
    malloc0_write,
    malloc0_read,
    sized_free_mismatch,
    realloc_freed,
);

/// Every program in `tests/c/misuse/` has a test above.
#[test]
fn every_misuse_program_is_listed() {
    let dir = common::c_source("misuse");
    let mut programs: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".c").map(str::to_string)
        })
        .collect();
    programs.sort();
    let mut listed: Vec<String> = CLASSES.iter().map(|(p, _)| p.to_string()).collect();
    listed.sort();
    assert_eq!(programs, listed);
}

/// Each defence alone catches its class (the variable that names it is
/// enough, without `FT_MALLOC_HARDENED`).
#[test]
fn each_defence_alone_catches_its_class() {
    for (variable, program, want) in [
        ("FT_MALLOC_CANARY", "overflow_slack", Abort),
        ("FT_MALLOC_CANARY", "malloc0_write", Abort),
        ("FT_MALLOC_QUARANTINE", "write_after_free", Abort),
        ("FT_MALLOC_GUARD_PAGES", "read_after_free_large", Segv),
        ("FT_MALLOC_GUARD_PAGES", "malloc0_read", Segv),
        ("FT_MALLOC_ZERO_ON_FREE", "read_after_free_small", Clean),
        ("FT_MALLOC_SIZED_CHECK", "sized_free_mismatch", Abort),
    ] {
        let binary = compile_plain(&format!("misuse/{program}.c"));
        let out = run(preloaded(&mut command(binary)).env(variable, "1"));
        assert_eq!(outcome(&out), Ok(want), "{variable} {program}: {out:#?}");
    }
}

/// The free mark's key (`ft_malloc::set_key`) is drawn per process from the
/// kernel's `AT_RANDOM` bytes, not the core's default constant.
#[test]
fn each_process_draws_its_own_free_mark_key() {
    let binary = compile_plain("free_mark_key.c");
    let keys: Vec<String> = (0..2)
        .map(|_| {
            let out = run(preloaded(&mut command(&binary)));
            assert_eq!(out.code, 0, "{out:#?}");
            out.stdout.trim().to_owned()
        })
        .collect();
    assert_ne!(
        keys[0],
        format!("{:#x}", ft_malloc::DEFAULT_KEY),
        "{keys:?}"
    );
    assert_ne!(keys[0], keys[1]);
}
