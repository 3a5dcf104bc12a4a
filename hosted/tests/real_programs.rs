//! Real programs under `LD_PRELOAD=libft_malloc.so`, each compared with a run
//! of the same command on glibc's malloc: same exit status, same stdout, same
//! stderr (so also no report from the library); in the default mode and in
//! the hardened mode (`FT_MALLOC_HARDENED=1`).
//!
//! The programs come from Debian packages (`coreutils`, `python3`, `gcc`,
//! `git`, `perl`, `gawk`/`mawk`); `.ci/run` installs any that are missing.

mod common;
#[path = "../bench/text.rs"]
mod text;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{command, preloaded, run, scratch};
use text::{AWK_PROGRAM, PERL_WORD_COUNT, generated_text};

/// Runs the command built by `make` three times, without the library, with
/// it, and with it hardened, and asserts all runs did the same. Returns the
/// preloaded run's stdout.
fn same_with_and_without(what: &str, make: impl Fn() -> Command) -> String {
    let glibc = run(&mut make());
    let hardened = run(preloaded(&mut make()).env("FT_MALLOC_HARDENED", "1"));
    assert_eq!(
        hardened.code, glibc.code,
        "{what} hardened: exit status differs\n{}",
        hardened.stderr
    );
    assert!(
        hardened.stdout == glibc.stdout,
        "{what} hardened: stdout differs"
    );
    assert_eq!(
        hardened.stderr, glibc.stderr,
        "{what} hardened: stderr differs"
    );
    let ours = run(preloaded(&mut make()));
    // Wall times only for orientation (a debug build of the library, tests
    // running in parallel): `make bench-hosted` measures properly.
    println!(
        "{what}: glibc {:?}, ft_malloc {:?}, hardened {:?}",
        glibc.wall, ours.wall, hardened.wall
    );
    assert_eq!(
        glibc.code, 0,
        "{what} fails even without the library: {glibc:#?}"
    );
    assert_eq!(
        ours.code, glibc.code,
        "{what}: exit status differs\n{}",
        ours.stderr
    );
    assert!(ours.stdout == glibc.stdout, "{what}: stdout differs");
    assert_eq!(ours.stderr, glibc.stderr, "{what}: stderr differs");
    ours.stdout
}

/// A command with a fixed locale and the given working directory.
fn in_dir(program: &str, dir: &Path) -> Command {
    let mut cmd = command(program);
    cmd.current_dir(dir).env("LC_ALL", "C");
    cmd
}

/// A scratch directory of its own for one test.
fn workdir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn ls_la_usr_lib() {
    let dir = workdir("ls");
    let out = same_with_and_without("ls -la /usr/lib", || {
        let mut cmd = in_dir("ls", &dir);
        cmd.args(["-la", "/usr/lib"]);
        cmd
    });
    assert!(out.lines().count() > 10);
    same_with_and_without("ls -laR /usr/include", || {
        let mut cmd = in_dir("ls", &dir);
        cmd.args(["-laR", "/usr/include"]);
        cmd
    });
}

#[test]
fn sort_a_large_file() {
    let dir = workdir("sort");
    std::fs::write(dir.join("input.txt"), generated_text(400_000)).unwrap();
    for args in [
        &["input.txt"][..],
        &["-n", "-k1,1", "-s", "input.txt"],
        &["-u", "-k2", "input.txt"],
    ] {
        let out = same_with_and_without(&format!("sort {}", args.join(" ")), || {
            let mut cmd = in_dir("sort", &dir);
            cmd.args(args);
            cmd
        });
        assert!(out.lines().count() > 1000);
    }
}

const PYTHON_SCRIPT: &str = include_str!("../bench/heavy.py");

#[test]
fn python3_allocation_heavy_script() {
    let dir = workdir("python");
    std::fs::write(dir.join("heavy.py"), PYTHON_SCRIPT).unwrap();
    // PYTHONMALLOC=malloc sends every object, small ones too, to malloc
    // instead of Python's own pool allocator; then the default allocator.
    for python_malloc in ["malloc", "pymalloc"] {
        let out = same_with_and_without(&format!("python3 (PYTHONMALLOC={python_malloc})"), || {
            let mut cmd = in_dir("python3", &dir);
            cmd.arg("heavy.py").env("PYTHONMALLOC", python_malloc);
            cmd
        });
        assert!(out.starts_with(|c: char| c.is_ascii_digit()), "{out}");
    }
}

#[test]
fn gcc_compiles_and_links_a_c_file() {
    let source = common::c_source("threads.c");
    let glibc_dir = workdir("gcc-glibc");
    let ours_dir = workdir("gcc-ours");
    for (dir, preload) in [(&glibc_dir, false), (&ours_dir, true)] {
        let mut cmd = in_dir("gcc", dir);
        cmd.args(["-O2", "-Wall", "-pthread", "-c", "-o", "threads.o"])
            .arg(&source);
        if preload {
            preloaded(&mut cmd);
        }
        run(&mut cmd).success();
        let mut cmd = in_dir("gcc", dir);
        cmd.args(["-pthread", "-o", "threads", "threads.o"]);
        if preload {
            preloaded(&mut cmd);
        }
        run(&mut cmd).success();
    }
    for file in ["threads.o", "threads"] {
        let a = std::fs::read(glibc_dir.join(file)).unwrap();
        let b = std::fs::read(ours_dir.join(file)).unwrap();
        assert!(a == b, "{file} differs when gcc runs on ft_malloc");
    }
}

const GIT_SCRIPT: &str = include_str!("../bench/git_session.sh");

#[test]
fn git_init_add_commit_log() {
    let dir = workdir("git");
    let out = same_with_and_without("git", || {
        let mut cmd = in_dir("sh", &dir);
        cmd.args(["-c", GIT_SCRIPT])
            .env("HOME", &dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Ft Malloc")
            .env("GIT_AUTHOR_EMAIL", "ft@malloc.test")
            .env("GIT_AUTHOR_DATE", "2024-01-01T12:00:00Z")
            .env("GIT_COMMITTER_NAME", "Ft Malloc")
            .env("GIT_COMMITTER_EMAIL", "ft@malloc.test")
            .env("GIT_COMMITTER_DATE", "2024-01-01T12:00:00Z");
        cmd
    });
    assert!(out.contains("second commit"), "{out}");
}

#[test]
fn perl_and_awk_text_processing() {
    let dir = workdir("text");
    std::fs::write(dir.join("text.txt"), generated_text(100_000)).unwrap();
    std::fs::write(dir.join("short.txt"), generated_text(20_000)).unwrap();
    let out = same_with_and_without("perl word count", || {
        let mut cmd = in_dir("perl", &dir);
        cmd.args(["-e", PERL_WORD_COUNT, "text.txt"]);
        cmd
    });
    assert!(out.lines().count() > 1000);
    same_with_and_without("awk", || {
        let mut cmd = in_dir("awk", &dir);
        cmd.args([AWK_PROGRAM, "short.txt"]);
        cmd
    });
}
