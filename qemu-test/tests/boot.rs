//! Boots the test kernel under QEMU and checks what it prints: this is how
//! `cargo test` (and so `make test`) runs the kernel tests.
//!
//! The kernel is built once per run of this file, by a nested
//! `cargo build --release --target x86_64-unknown-none` into a target
//! directory of its own under `CARGO_TARGET_TMPDIR` (so it never waits on
//! the outer build's lock), then booted through `run-qemu.sh`, the same
//! runner `cargo qemu` uses. Needs `qemu-system-x86_64` and the
//! `x86_64-unknown-none` rustup target; without them these tests fail and
//! say so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TARGET: &str = "x86_64-unknown-none";
const PACKAGE: &str = env!("CARGO_PKG_NAME");

fn package_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the kernel (once) and returns its ELF.
fn kernel() -> &'static Path {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", PACKAGE, "--target", TARGET])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(package_dir())
            .status()
            .expect("cannot run cargo");
        assert!(
            status.success(),
            "building the kernel failed (is the target installed? `rustup target add {TARGET}`)"
        );
        target_dir.join(TARGET).join("release").join(PACKAGE)
    })
}

/// What one boot printed and how the runner judged it.
struct Boot {
    passed: bool,
    output: String,
}

/// Boots the kernel with `cmdline` through the runner, on one CPU.
fn boot(cmdline: &[&str], timeout_seconds: u32) -> Boot {
    boot_cpus(cmdline, 1, timeout_seconds)
}

/// Boots the kernel with `cmdline` on a machine of `cpus` CPUs.
fn boot_cpus(cmdline: &[&str], cpus: usize, timeout_seconds: u32) -> Boot {
    let output = Command::new(package_dir().join("run-qemu.sh"))
        .arg(kernel())
        .args(cmdline)
        .env("QEMU_TIMEOUT", timeout_seconds.to_string())
        .env("QEMU_SMP", cpus.to_string())
        .output()
        .expect("cannot run run-qemu.sh");
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "")
        + &String::from_utf8_lossy(&output.stderr);
    Boot {
        passed: output.status.success(),
        output: text,
    }
}

/// The hexadecimal number after `label` on the first line containing it.
fn hex_after(output: &str, label: &str) -> u64 {
    let rest = &output[output
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{output}"))
        + label.len()..];
    let digits: String = rest
        .trim_start()
        .trim_start_matches("0x")
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16)
        .unwrap_or_else(|_| panic!("no number after {label:?} in:\n{output}"))
}

#[test]
fn every_kernel_test_passes() {
    let boot = boot(&["tests"], 300);
    assert!(boot.passed, "the kernel tests failed:\n{}", boot.output);
    let test_lines: Vec<&str> = boot
        .output
        .lines()
        .filter(|l| l.starts_with("test "))
        .collect();
    assert_eq!(
        test_lines.len(),
        8,
        "expected 8 test lines:\n{}",
        boot.output
    );
    assert!(
        test_lines.iter().all(|l| l.contains(" ... ok (")),
        "a kernel test failed:\n{}",
        boot.output
    );
    assert!(
        boot.output.contains("kernel tests: 8 passed, 0 failed"),
        "{}",
        boot.output
    );
    assert!(
        boot.output
            .contains("test interrupt_handlers_allocate ... ok (CPU 0: "),
        "{}",
        boot.output
    );
    assert!(
        boot.output.contains("all tests passed on 1 CPU"),
        "{}",
        boot.output
    );
    assert!(boot.output.contains("run-qemu: PASS"), "{}", boot.output);
}

/// Boots `cpus` CPUs and checks that every one of them started (each AP
/// reports in from Rust on its own stack, GDT/TSS, IDT and GS base, with its
/// APIC id as the MADT listed it) and that every kernel test passed on all
/// of them at once.
fn every_cpu_starts_and_passes_the_tests(cpus: usize) {
    let boot = boot_cpus(&["tests"], cpus, 400);
    assert!(boot.passed, "{cpus} CPUs: the run failed:\n{}", boot.output);
    assert!(
        boot.output
            .contains(&format!("smp: MADT lists {cpus} CPU(s)")),
        "{}",
        boot.output
    );
    for cpu in 1..cpus {
        assert!(
            boot.output.contains(&format!(
                "smp: CPU {cpu} (APIC id {cpu}) online: own stack, GDT/TSS, IDT, GS base, APIC"
            )),
            "CPU {cpu} did not report in:\n{}",
            boot.output
        );
    }
    assert!(
        boot.output.contains(&format!("smp: {cpus} CPU(s) online")),
        "{}",
        boot.output
    );
    // Every per-CPU test ran on every CPU.
    for test in [
        "tiny_small_large_patterns",
        "alloc_collections",
        "faults_equal_distinct_pages_touched",
        "frames_return_after_free_and_trim",
        "realloc_keeps_contents",
        "irq_lock_restores_the_interrupt_flag",
        "blocks_freed_on_another_cpu",
    ] {
        for cpu in 0..cpus {
            assert!(
                boot.output
                    .contains(&format!("test {test} on CPU {cpu} ... ok (")),
                "{test} did not pass on CPU {cpu}:\n{}",
                boot.output
            );
        }
    }
    for test in [
        "same_pages_faulted_by_every_cpu",
        "tlb_shootdown_before_frame_reuse",
        "interrupt_handlers_allocate",
        "out_of_frames_fails_cleanly on CPU 0",
        "every_frame_back_after_flush",
    ] {
        assert!(
            boot.output.contains(&format!("test {test} ... ok (")),
            "{test} did not pass:\n{}",
            boot.output
        );
    }
    assert!(!boot.output.contains("FAILED"), "{}", boot.output);
    assert!(
        boot.output
            .contains(&format!("all tests passed on {cpus} CPUs")),
        "{}",
        boot.output
    );
}

#[test]
fn two_cpus_start_and_pass_the_tests() {
    every_cpu_starts_and_passes_the_tests(2);
}

#[test]
fn four_cpus_start_and_pass_the_tests() {
    every_cpu_starts_and_passes_the_tests(4);
}

/// With the shootdown IPIs off, the CPU that held the old translation reads
/// the reused frame's new bytes: the shootdown test must catch it.
#[test]
fn the_shootdown_test_fails_without_shootdowns() {
    let boot = boot_cpus(&["no-shootdown", "tests"], 2, 400);
    assert!(!boot.passed, "passed without shootdowns:\n{}", boot.output);
    assert!(
        boot.output.contains(
            "test tlb_shootdown_before_frame_reuse ... FAILED: CPU 1 read 0xbbbbbbbbbbbbbbbb"
        ),
        "{}",
        boot.output
    );
    assert!(
        boot.output.contains("reached through a stale TLB entry"),
        "{}",
        boot.output
    );
}

/// A blog_os-style heap: a static empty heap answers null (no fault) until
/// its 100 KiB region is mapped and handed over, then passes blog_os's heap
/// tests (many boxes, a long-lived box, a large vector).
#[test]
fn a_static_empty_heap_gets_its_100_kib_region_late_as_in_blog_os() {
    let boot = boot(&["blog-heap"], 120);
    assert!(boot.passed, "blog-heap failed:\n{}", boot.output);
    for line in [
        "blog-heap: allocation_before_the_region_is_null ... ok",
        "blog-heap: init_heap mapped 25 pages and handed them over (100 KiB usable)",
        "blog-heap: simple_allocation ... ok",
        "blog-heap: large_vec ... ok",
        "blog-heap: many_boxes ... ok",
        "blog-heap: many_boxes_long_lived ... ok",
        "blog-heap: all_freed ... ok",
        "blog-heap: all passed",
    ] {
        assert!(
            boot.output.contains(line),
            "{line:?} missing:\n{}",
            boot.output
        );
    }
}

#[test]
fn trace_shows_the_page_fault_sequence_with_real_values() {
    let boot = boot(&["trace"], 120);
    assert!(boot.passed, "the trace failed:\n{}", boot.output);
    for step in [
        "[1 Request]",
        "[2 Return ]",
        "[3 Access ]",
        "[4 Check  ]",
        "[5 Fault  ]",
        "[6 Kernel ]",
        "[7 Map    ]",
        "[8 Resume ]",
        "[9 Success]",
    ] {
        assert!(
            boot.output.contains(step),
            "step {step} missing:\n{}",
            boot.output
        );
    }
    // The fault's address is the address the heap returned, the frame the
    // handler chose is where that address now points, and the access resumed
    // at the faulting instruction.
    let a = hex_after(&boot.output, "virtual address A =");
    assert_eq!(hex_after(&boot.output, "CR2 ="), a, "{}", boot.output);
    let frame = hex_after(&boot.output, "free frame N =");
    assert_eq!(
        hex_after(&boot.output, "A -> physical"),
        frame + a % 4096,
        "{}",
        boot.output
    );
    assert_eq!(
        hex_after(&boot.output, "RIP ="),
        hex_after(&boot.output, "iretq to RIP"),
        "{}",
        boot.output
    );
    assert!(
        boot.output.contains("CPU 0 enters the kernel's handler"),
        "the trace does not say which CPU took the fault:\n{}",
        boot.output
    );
    assert!(
        boot.output.contains("trace: all 9 checks hold"),
        "{}",
        boot.output
    );
}

#[test]
fn benchmark_runs_both_allocators_on_demand_paged_windows() {
    let boot = boot(&["bench"], 300);
    assert!(boot.passed, "the benchmark failed:\n{}", boot.output);
    for name in ["ft_malloc", "linked_list_allocator"] {
        let rounds: Vec<&str> = boot
            .output
            .lines()
            .filter(|l| l.starts_with("bench: round") && l.contains(name))
            .collect();
        assert_eq!(
            rounds.len(),
            3,
            "{name}: expected 3 rounds:\n{}",
            boot.output
        );
        assert!(
            rounds.iter().all(|l| l.contains(" 0 failed")),
            "{name} failed requests:\n{}",
            boot.output
        );
    }
    // Demand paging is really used: the first round of each faults pages in.
    for line in boot
        .output
        .lines()
        .filter(|l| l.starts_with("bench: round 1"))
    {
        let before_label = &line[..line.find(" page faults").expect("a page-fault count")];
        let faults: u64 = before_label
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(faults > 0, "no page faults in {line:?}");
    }
}

/// The SMP benchmark runs every allocator on 1 and 2 CPUs at once.
#[test]
fn smp_benchmark_runs_every_allocator_on_each_cpu_count() {
    let boot = boot_cpus(&["bench-smp"], 2, 400);
    assert!(boot.passed, "the SMP benchmark failed:\n{}", boot.output);
    for name in [
        "ft_malloc + per-CPU caches",
        "ft_malloc, no caches",
        "linked_list_allocator + lock",
        "talc + lock",
    ] {
        for cpus in [1, 2] {
            assert!(
                boot.output.lines().any(|l| l.starts_with("bench-smp: ")
                    && l.contains(name)
                    && l.contains(&format!(" {cpus} CPU(s): "))
                    && l.contains(" ticks/op")),
                "{name} on {cpus} CPU(s) missing:\n{}",
                boot.output
            );
        }
    }
}

/// A deliberate failure must make the runner fail, with `expected` in the output.
fn assert_fails(cmdline: &str, expected: &str, timeout_seconds: u32) {
    let boot = boot(&[cmdline], timeout_seconds);
    assert!(!boot.passed, "{cmdline} passed:\n{}", boot.output);
    assert!(
        boot.output.contains(expected),
        "{cmdline}: {expected:?} missing:\n{}",
        boot.output
    );
}

#[test]
fn an_access_outside_the_heap_fails_the_run() {
    assert_fails(
        "fail=outside-heap",
        "UNEXPECTED PAGE FAULT at 0x0000500000000040: address in no heap window",
        120,
    );
}

#[test]
fn a_use_after_free_fails_the_run() {
    assert_fails("fail=use-after-free", "outside every live run", 120);
}

#[test]
fn a_stack_overflow_is_reported_from_the_fault_stack() {
    assert_fails("fail=stack-overflow", "kernel stack overflow", 120);
}

#[test]
fn a_triple_fault_is_not_a_pass() {
    // -no-reboot makes QEMU exit 0 on a triple fault: the runner must not
    // take that for success.
    assert_fails("fail=triple-fault", "triple fault or reset", 120);
}

#[test]
fn a_panic_fails_the_run() {
    assert_fails("fail=panic", "KERNEL PANIC", 120);
}

#[test]
fn a_hang_is_ended_by_the_timeout() {
    assert_fails("fail=hang", "timeout after 5s", 5);
}

#[test]
fn an_unknown_command_fails_the_run() {
    assert_fails("no-such-mode", "unknown command-line word", 120);
}
