//! Concurrency: many threads with cross-thread frees, and fork while other
//! threads are inside malloc.

mod common;

use common::{command, compile, preloaded, run};

#[test]
fn sixteen_threads_with_cross_thread_frees_lose_no_byte() {
    let out = run(preloaded(&mut command(compile("threads.c"))).args(["16", "20000"])).success();
    assert_eq!(out.stdout.trim(), "16 threads x 20000 rounds: 0 broken");
}

#[test]
fn eight_threads_long_run() {
    let out = run(preloaded(&mut command(compile("threads.c"))).args(["8", "60000"])).success();
    assert_eq!(out.stdout.trim(), "8 threads x 60000 rounds: 0 broken");
}

#[test]
fn fork_while_threads_allocate_then_allocate_in_child() {
    let out = run(preloaded(&mut command(compile("fork.c"))).args(["8", "150"])).success();
    // The children's show_alloc_mem output also lands on stdout: the last
    // line is the parent's summary.
    let summary = out.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        summary, "150 forks with 8 busy threads: 0 failed children",
        "{out:#?}"
    );
}
