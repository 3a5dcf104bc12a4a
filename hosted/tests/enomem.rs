//! Out of memory: under an address-space limit (`ulimit -v`, set by the
//! program itself with setrlimit(RLIMIT_AS) once loaded), big requests fail
//! with NULL + ENOMEM and smaller ones still succeed.

mod common;

use common::{command, compile, preloaded, run};

#[test]
fn enomem_under_an_address_space_limit() {
    let out = run(preloaded(&mut command(compile("enomem.c"))));
    println!("{}", out.stdout);
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        13
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// A request no trim can make room for (beyond the address space, RAM +
/// swap, `RLIMIT_AS`) fails at once, without emptying the heap's caches:
/// a freed 8 MiB run stays cached.
#[test]
fn impossible_requests_fail_without_trimming() {
    let out = run(preloaded(&mut command(compile("impossible.c"))));
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{}",
        out.stdout
    );
}
