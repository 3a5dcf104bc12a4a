//! The hardened mode's behaviours beyond catching each misuse class
//! (`misuse.rs`): where blocks land, what a freed LARGE block costs, and a
//! double free across threads with per-thread quarantines.

mod common;

use common::{command, compile_plain, preloaded, run};

/// Runs `tests/c/hardened/<program>.c` preloaded with `env`.
fn run_with(program: &str, env: &[(&str, &str)]) -> common::Run {
    let binary = compile_plain(&format!("hardened/{program}.c"));
    let mut cmd = command(binary);
    preloaded(&mut cmd).envs(env.iter().copied());
    run(&mut cmd)
}

/// The number a program printed.
fn number(out: &common::Run) -> i64 {
    assert_eq!(out.code, 0, "{out:#?}");
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{out:#?}"))
}

/// `FT_MALLOC_RANDOM_SLOTS` (on in the hardened mode): of 255 consecutive
/// mallocs of one size, few land next to the previous block; without it
/// nearly all do (so the measure can tell).
#[test]
fn random_slots_scatter_consecutive_blocks() {
    let ordered = number(&run_with(
        "random_slots",
        &[("FT_MALLOC_HARDENED", "1"), ("FT_MALLOC_RANDOM_SLOTS", "0")],
    ));
    assert!(ordered > 200, "without random slots: {ordered} of 255 near");
    for env in [
        &[("FT_MALLOC_RANDOM_SLOTS", "1")][..],
        &[("FT_MALLOC_HARDENED", "1")][..],
    ] {
        let near = number(&run_with("random_slots", env));
        assert!(near < 100, "{env:?}: {near} of 255 near");
    }
}

/// With guard pages, a freed LARGE block faults on access while it is
/// held (`misuse.rs`), then its run is reused: a malloc/touch/free cycle of
/// 1 MiB does not fault its 256 pages in again each time.
#[test]
fn freed_large_runs_are_reused_after_the_quarantine() {
    let default = number(&run_with("large_reuse", &[]));
    let hardened = number(&run_with("large_reuse", &[("FT_MALLOC_HARDENED", "1")]));
    println!("page faults per 1 MiB cycle: default {default}, hardened {hardened}");
    assert!(hardened < 32, "hardened: {hardened} faults per cycle");
}

/// A block in one thread's quarantine freed again by another thread is a
/// double free (the tag tells, whichever thread holds it).
#[test]
fn double_free_from_another_thread_is_caught() {
    let out = run_with("double_free_other_thread", &[("FT_MALLOC_HARDENED", "1")]);
    assert_eq!(out.stdout, "misuse\n", "{out:#?}");
    assert_eq!(out.code, 128 + libc::SIGABRT, "{out:#?}");
    assert!(out.stderr.contains("double free"), "{out:#?}");
}

/// The quarantine alone (no canaries) holds blocks of 0 to 16 bytes: each
/// request gets room for the tag, and a write into a freed 4-byte block is
/// caught when it leaves.
#[test]
fn the_quarantine_alone_holds_tiny_blocks() {
    let quarantine = [("FT_MALLOC_QUARANTINE", "1")];
    let out = run_with("tiny_blocks", &quarantine);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "survived\n"),
        "{out:#?}"
    );
    assert!(out.stderr.is_empty(), "{out:#?}");
    let binary = compile_plain("hardened/tiny_blocks.c");
    let mut cmd = command(binary);
    preloaded(&mut cmd).envs(quarantine).arg("waf");
    let out = run(&mut cmd);
    assert_eq!(out.code, 128 + libc::SIGABRT, "{out:#?}");
    assert!(out.stderr.contains("write after free"), "{out:#?}");
}

/// A buffer grown one byte at a time to 1 MiB moves about as often in the
/// hardened mode as in the default one: a TINY or SMALL block grows in
/// place while its block has room (its canaries re-armed), a LARGE one
/// while its run does (issue 18, defect 3: every byte of growth moved a
/// small block, 32,768 moves copying 515 MiB).
#[test]
fn realloc_grows_in_place_within_the_block() {
    let parse = |out: &common::Run| -> (u64, u64) {
        assert_eq!(out.code, 0, "{out:#?}");
        let mut fields = out.stdout.split_whitespace().map(|f| f.parse().unwrap());
        (fields.next().unwrap(), fields.next().unwrap())
    };
    let (moves, copied) = parse(&run_with("realloc_by_byte", &[]));
    println!("default: {moves} moves, {copied} bytes copied");
    for env in [
        &[("FT_MALLOC_HARDENED", "1")][..],
        &[("FT_MALLOC_CANARY", "1")][..],
        &[("FT_MALLOC_QUARANTINE", "1")][..],
    ] {
        let (hard_moves, hard_copied) = parse(&run_with("realloc_by_byte", env));
        println!("{env:?}: {hard_moves} moves, {hard_copied} bytes copied");
        // Copies are bounded by the default's or, when that copies less, by
        // the target's size (1 MiB): since the provider's address window
        // (issue 21), a default LARGE run grows in place where it used to
        // move, so the default copies less than one geometric series (0.4
        // MiB) while the hardened modes copy as before (3.3 MiB).
        assert!(
            hard_moves <= 2 * moves + 8 && hard_copied <= 4 * copied.max(1 << 20),
            "{env:?}: {hard_moves} moves ({hard_copied} bytes) against {moves} ({copied}) by default"
        );
    }
}

/// A LARGE block shrunk by `realloc` gives its tail pages back, with guard
/// pages too (a new guard page past the new end, the rest unmapped): 16
/// blocks of 16 MiB filled and shrunk to 1 MiB leave about 16 MiB resident
/// (issue 18, defect 4: with guard pages all 256 MiB stayed until `free`).
#[test]
fn large_shrink_gives_its_tail_pages_back() {
    let default = number(&run_with("large_shrink", &[]));
    println!("default: {default} MiB resident");
    for env in [
        &[("FT_MALLOC_GUARD_PAGES", "1")][..],
        &[("FT_MALLOC_HARDENED", "1")][..],
        &[("FT_MALLOC_CANARY", "1")][..],
    ] {
        let resident = number(&run_with("large_shrink", env));
        println!("{env:?}: {resident} MiB resident");
        assert!(resident < 48, "{env:?}: {resident} MiB resident");
    }
}

/// The hardened canary's first byte is zero (the rest keyed), so a string
/// filling its block without a terminator reads no further than its request
/// (issue 18, defect 7: it read on into the canary), while a write of any
/// other byte there is still caught (`misuse.rs`, `overflow_slack`).
#[test]
fn the_canary_terminates_an_unterminated_string() {
    for env in [
        &[("FT_MALLOC_CANARY", "1")][..],
        &[("FT_MALLOC_HARDENED", "1")][..],
    ] {
        let over = number(&run_with("string_overflow", env));
        assert_eq!(
            over, 0,
            "{env:?}: strlen read {over} bytes past the request"
        );
    }
}

/// With guard pages, `malloc(0)` (and `calloc(0, n)`, `aligned_alloc(16,
/// 0)`) returns distinct pointers into an inaccessible region
/// (`misuse.rs`: a read or write through one faults at once, issue 18,
/// defect 9), each of which `free`, `realloc` and `malloc_usable_size` (0)
/// accept; a second free of one is a double free.
#[test]
fn zero_size_blocks_are_distinct_and_freed() {
    for env in [
        &[("FT_MALLOC_GUARD_PAGES", "1")][..],
        &[("FT_MALLOC_HARDENED", "1")][..],
        &[][..],
    ] {
        let out = run_with("zero_size", env);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "ok\n"),
            "{env:?}: {out:#?}"
        );
        assert!(out.stderr.is_empty(), "{env:?}: {out:#?}");
    }
    let binary = compile_plain("hardened/zero_size.c");
    let mut cmd = command(binary);
    preloaded(&mut cmd)
        .env("FT_MALLOC_HARDENED", "1")
        .arg("twice");
    let out = run(&mut cmd);
    assert_eq!(out.code, 128 + libc::SIGABRT, "{out:#?}");
    assert!(out.stderr.contains("double free"), "{out:#?}");
}

/// What a read after free of a held TINY or SMALL block sees, as the README
/// says: zeros, but for the first word, the quarantine's tag (a keyed hash
/// of the address, no old byte). Issue 18, defect 8: the README said zeros.
#[test]
fn reads_after_free_see_zeros_but_the_tag() {
    for env in [
        &[("FT_MALLOC_QUARANTINE", "1")][..],
        &[("FT_MALLOC_HARDENED", "1")][..],
    ] {
        let out = run_with("read_after_free", env);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "zeros but the tag\n"),
            "{env:?}: {out:#?}"
        );
    }
}

/// With guard pages a freed LARGE block faults on a read through its first
/// or its last page while it is held, on both sides of the 256 KiB at
/// which it stops being protected in place and has its pages moved aside.
#[test]
fn freed_large_blocks_fault_on_either_side_of_the_move_threshold() {
    let binary = compile_plain("hardened/large_read_after_free.c");
    for size in ["40000", "262143", "262144", "1000000"] {
        for last in [&[][..], &["last"][..]] {
            let mut cmd = command(&binary);
            preloaded(&mut cmd)
                .env("FT_MALLOC_GUARD_PAGES", "1")
                .arg(size)
                .args(last);
            let out = run(&mut cmd);
            assert_eq!(
                (out.code, out.stdout.as_str()),
                (128 + libc::SIGSEGV, "misuse\n"),
                "{size} {last:?}: {out:#?}"
            );
        }
    }
}
