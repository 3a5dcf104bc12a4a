//! C++ programs: `operator new` and `operator delete` in every form are the
//! library's (`c_api/cxx.rs`), a failed `new` behaves as the standard says
//! (new-handler loop, `std::bad_alloc`, NULL from `nothrow`), and misuse
//! through them is caught like misuse through `free`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::{Run, command, preloaded, run, scratch};

/// `tests/c/cxx_operators.cpp`, built once with g++ (C++17: aligned new;
/// sized deallocation, g++'s default from C++14).
fn program() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = scratch().join("cxx_operators");
        let status = Command::new("g++")
            .args(["-O0", "-g", "-std=c++17", "-Wall", "-fsized-deallocation"])
            .arg(common::c_source("cxx_operators.cpp"))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("g++ runs");
        assert!(status.success(), "g++ failed on cxx_operators.cpp");
        out
    })
}

fn run_mode(mode: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = command(program());
    preloaded(&mut cmd).arg(mode).envs(env.iter().copied());
    run(&mut cmd)
}

#[test]
fn every_operator_is_ours_and_fails_as_the_standard_says() {
    let out = run_mode("all", &[]).success();
    assert_eq!(out.stdout.trim(), "ok", "{out:#?}");
    // Also with the settings' slow paths (trace to /dev/null is not
    // needed: the hardened mode takes every other branch).
    let out = run_mode("all", &[("FT_MALLOC_HARDENED", "1")]).success();
    assert_eq!(out.stdout.trim(), "ok", "{out:#?}");
}

#[test]
fn the_program_tells_glibcs_operators_from_ours() {
    // Without the library the same program fails its first check: the
    // test above cannot pass by accident.
    let out = run(command(program()).arg("all"));
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("is from"), "{out:#?}");
}

#[test]
fn a_double_delete_is_caught() {
    let out = run_mode("double_delete", &[]);
    assert_eq!(out.code, 128 + libc::SIGABRT, "{out:#?}");
    assert!(out.stderr.contains("double free"), "{out:#?}");
    assert!(!out.stdout.contains("survived"), "{out:#?}");
}

#[test]
fn a_sized_delete_with_a_wrong_size_is_caught_when_asked() {
    let out = run_mode("wrong_size", &[("FT_MALLOC_SIZED_CHECK", "1")]);
    assert_eq!(out.code, 128 + libc::SIGABRT, "{out:#?}");
    assert!(
        out.stderr
            .contains("operator delete(): size differs from the block's"),
        "{out:#?}"
    );
    // Unchecked (the default), as C++ leaves it: freed as `delete` would.
    let out = run_mode("wrong_size", &[]).success();
    assert!(out.stdout.contains("survived"), "{out:#?}");
}
