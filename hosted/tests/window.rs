//! The provider's address window (`hosted/src/window.rs`, issue 21): by
//! default every run lies in it, so the heap's page map is its flat array;
//! under a low `RLIMIT_AS` there is none and runs are mapped anywhere (the
//! page map's tree), as before; and a process that fills its window maps
//! further runs outside it (the page map's tree beside its array). Every
//! way, the heap works the same.

mod common;

use std::os::unix::process::CommandExt;

use common::{Run, command, compile, preloaded, run};

/// Runs `window.c`, under an address-space limit of `limit` bytes if given
/// (set before the program starts, as `ulimit -v` does, so before the
/// library chooses its window).
fn run_window(limit: Option<u64>, args: &[&str]) -> Run {
    let mut cmd = command(compile("window.c"));
    cmd.args(args);
    preloaded(&mut cmd);
    if let Some(limit) = limit {
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &rlimit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            })
        };
    }
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stdout.ends_with("done\n"), "{out:#?}");
    out
}

/// The value after `key` in the program's output.
fn field(out: &Run, key: &str) -> i64 {
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    let at = words.iter().position(|w| *w == key).unwrap();
    words[at + 1].parse().unwrap()
}

/// The addresses `show_alloc_mem` lists for blocks ("0x... - 0x... : n bytes").
fn listed_blocks(out: &Run) -> Vec<u64> {
    out.stdout
        .lines()
        .filter(|l| l.contains(" bytes") && l.contains(" - "))
        .filter_map(|l| {
            u64::from_str_radix(l.trim().strip_prefix("0x")?.split(' ').next()?, 16).ok()
        })
        .collect()
}

#[test]
fn runs_lie_in_the_window_by_default() {
    let out = run_window(None, &[]);
    assert_eq!(
        field(&out, "in_window"),
        field(&out, "blocks"),
        "{}",
        out.stdout
    );
    let listed = listed_blocks(&out);
    assert!(listed.len() >= 64, "{}", out.stdout);
    assert!(listed.iter().all(|&a| ((1 << 40)..(1 << 45)).contains(&a)));
    // The page map's array over a window of 4 GiB or more is 8 MiB or more
    // of address space: only the pages its slots were written in are
    // resident (64 blocks, about 10 MiB of them LARGE, all touched).
    assert!(field(&out, "rss_kib") < 24 << 10, "{}", out.stdout);
}

#[test]
fn a_low_address_space_limit_maps_runs_anywhere() {
    // 2 GiB: below the smallest window (window::MIN_WINDOW, 4 GiB).
    let out = run_window(Some(2 << 30), &[]);
    assert_eq!(field(&out, "in_window"), 0, "{}", out.stdout);
    let listed = listed_blocks(&out);
    assert!(listed.len() >= 64, "{}", out.stdout);
    assert!(listed.iter().all(|&a| !((1 << 40)..(1 << 45)).contains(&a)));
}

#[test]
fn runs_go_outside_a_full_window() {
    // 7 GiB: a 4 GiB window (the largest power of two under the limit),
    // which three blocks of 1 GiB (untouched) and the page map's array fill.
    let out = run_window(Some(7 << 30), &["fill"]);
    assert_eq!(field(&out, "big_out"), 1, "{}", out.stdout);
    assert!(field(&out, "big_in") >= 2, "{}", out.stdout);
    assert_eq!(
        field(&out, "in_window"),
        field(&out, "blocks"),
        "{}",
        out.stdout
    );
    let listed = listed_blocks(&out);
    assert!(listed.len() >= 64 + 3, "{}", out.stdout);
    assert!(listed.iter().any(|&a| !((1 << 40)..(1 << 45)).contains(&a)));
}

/// LARGE blocks in the window that cannot grow in place are moved by
/// remapping their pages, not copied: two buffers grown alternately to
/// 64 MiB fault in about the pages the program writes (a copy would fault
/// the whole destination in again: 2.3x as many with copies, measured).
#[test]
fn large_blocks_in_the_window_move_without_copying() {
    let mut cmd = command(compile("window_realloc.c"));
    let out = run(preloaded(&mut cmd));
    assert_eq!(out.code, 0, "{out:#?}");
    let (faults, pages) = (field(&out, "faults"), field(&out, "pages"));
    assert!(faults < pages * 5 / 4, "{}", out.stdout);
}
