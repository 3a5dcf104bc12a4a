//! Memory goes back to the system when a program stops using it: the front
//! caches' decay (the core's `cache/mod.rs`), in a real threaded program.

mod common;

use common::{command, compile_plain, preloaded, run};

/// The `NAME KIB` line of `idle_rss.c`'s output.
fn kib(stdout: &str, name: &str) -> i64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} line in {stdout:?}"))
}

/// Two threads build and free about 50 MiB of mixed blocks and exit (their
/// caches go to the shared depots); the main thread then works lightly in
/// one class. The depots nobody uses must be drained and their zones given
/// back: before the depot sweep, 53 of 56 MiB stayed resident.
#[test]
fn memory_of_exited_threads_goes_back_while_the_program_goes_on() {
    let out = run(preloaded(&mut command(compile_plain("idle_rss.c")))).success();
    let (work, idle) = (kib(&out.stdout, "work "), kib(&out.stdout, "idle "));
    println!("resident: {work} KiB after the work, {idle} KiB after the light phase");
    assert!(
        idle < work / 4,
        "{idle} KiB still resident of {work} KiB: {out:#?}"
    );
}
