//! The debug environment variables: FT_MALLOC_CHECK, FT_MALLOC_SCRIBBLE,
//! FT_MALLOC_TRACE and FT_MALLOC_SHOW_AT_EXIT.

mod common;

use common::{Run, command, compile, preloaded, run};

/// The bad free was reported in one line, then the process aborted.
fn assert_reported_then_aborted(out: &Run) {
    assert_eq!(out.code, 128 + libc::SIGABRT, "{out:#?}");
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "one line, then the abort: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .starts_with("ft_malloc: free(): invalid pointer 0x"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("survived"), "{}", out.stdout);
}

/// The bad free (a pointer never handed out: nothing damaged) was reported
/// in one line, and the program went on.
fn assert_reported_then_survived(out: &Run) {
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stdout.ends_with("survived\n"), "{}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("ft_malloc: free(): invalid pointer 0x"),
        "{}",
        lines[0]
    );
}

/// By default a pointer never handed out is refused and the program goes on
/// (the misuse policy: nothing was damaged); damage aborts (`misuse.rs`).
#[test]
fn check_reports_and_survives_a_harmless_misuse_by_default() {
    assert_reported_then_survived(&run(preloaded(&mut command(compile("leak_at_exit.c")))));
}

/// The hardened mode makes every caught misuse fatal unless told otherwise.
#[test]
fn check_aborts_on_every_misuse_when_hardened() {
    assert_reported_then_aborted(&run(
        preloaded(&mut command(compile("leak_at_exit.c"))).env("FT_MALLOC_HARDENED", "1")
    ));
    assert_reported_then_survived(&run(preloaded(&mut command(compile("leak_at_exit.c")))
        .env("FT_MALLOC_HARDENED", "1")
        .env("FT_MALLOC_CHECK", "warn")));
}

#[test]
fn check_warn_warns_and_continues() {
    assert_reported_then_survived(&run(
        preloaded(&mut command(compile("leak_at_exit.c"))).env("FT_MALLOC_CHECK", "warn")
    ));
}

#[test]
fn check_abort_aborts() {
    assert_reported_then_aborted(&run(
        preloaded(&mut command(compile("leak_at_exit.c"))).env("FT_MALLOC_CHECK", "abort")
    ));
}

#[test]
fn check_quiet_says_nothing() {
    let out =
        run(preloaded(&mut command(compile("leak_at_exit.c"))).env("FT_MALLOC_CHECK", "quiet"))
            .success();
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert!(out.stdout.ends_with("survived\n"));
}

#[test]
fn scribble_fills_new_and_freed_blocks() {
    let out = run(preloaded(&mut command(compile("scribble.c"))).env("FT_MALLOC_SCRIBBLE", "1"))
        .success();
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{}",
        out.stdout
    );
}

/// Runs `leak_at_exit.c` preloaded, with `variable=value` and bad pointers
/// ignored quietly.
fn run_leak_at_exit(variable: &str, value: &str) -> common::Run {
    run(preloaded(&mut command(compile("leak_at_exit.c")))
        .env(variable, value)
        .env("FT_MALLOC_CHECK", "quiet"))
    .success()
}

/// The address the program prints on its first line, `leak at 0x...`.
fn leaked_address(stdout: &str) -> &str {
    stdout
        .lines()
        .next()
        .unwrap()
        .strip_prefix("leak at ")
        .unwrap()
}

#[test]
fn trace_logs_every_call_to_stderr() {
    let out = run_leak_at_exit("FT_MALLOC_TRACE", "stderr");
    let leak = leaked_address(&out.stdout);
    for expected in [
        format!("malloc(4242) = {leak}"),
        "calloc(3, 5) = 0x".to_string(),
        ", 77) = 0x".to_string(),
        "free(0x".to_string(),
    ] {
        assert!(
            out.stderr.contains(&expected),
            "missing {expected:?} in\n{}",
            out.stderr
        );
    }
}

#[test]
fn trace_goes_to_a_file_descriptor() {
    let program = compile("leak_at_exit.c");
    let trace = common::scratch().join("trace.txt");
    let script = format!("exec 7>'{}'; exec '{}'", trace.display(), program.display());
    let out = run(preloaded(&mut command("sh"))
        .args(["-c", &script])
        .env("FT_MALLOC_TRACE", "7")
        .env("FT_MALLOC_CHECK", "quiet"))
    .success();
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let logged = std::fs::read_to_string(trace).unwrap();
    assert!(logged.contains("malloc(4242) = 0x"), "{logged}");
}

#[test]
fn show_at_exit_lists_the_leak() {
    let out = run_leak_at_exit("FT_MALLOC_SHOW_AT_EXIT", "1");
    let leak = leaked_address(&out.stdout).strip_prefix("0x").unwrap();
    let leak = usize::from_str_radix(leak, 16).unwrap();
    let line = format!("{:#X} - {:#X} : 4242 bytes", leak, leak + 4242);
    assert!(
        out.stdout.contains(&line),
        "{line} missing in\n{}",
        out.stdout
    );
    // The listing runs from the library's ELF destructor, before libc
    // flushes stdio buffers at exit, so the program's buffered "survived"
    // may come after it.
    assert!(
        out.stdout.lines().any(|l| l.starts_with("Total : ")),
        "{}",
        out.stdout
    );
}

#[test]
fn show_alloc_mem_ex_maps_and_dumps() {
    let out = run(preloaded(&mut command(compile("show_ex.c")))).success();
    println!("{}", out.stdout);
    let text = &out.stdout;
    assert!(
        text.contains("48 65 6c 6c 6f 2c 20 66 74 5f 6d 61 6c 6c 6f 63  |Hello, ft_malloc|"),
        "{text}"
    );
    assert!(text.contains("... 8 more bytes"), "{text}");
    assert!(text.contains("5a 5a 5a 5a"), "{text}");
    assert!(text.contains("... 99968 more bytes"), "{text}");
    assert!(text.contains("blocks of 48 bytes:"), "{text}");
    assert!(text.contains("LARGE : 0x"), "{text}");
    // The listing ends with the total; the heap map follows (tests/pictures.rs).
    let total = text.find("\nTotal : ").expect("a total line");
    assert!(text[total..].contains("\n\nHeap map: "), "{text}");
}
