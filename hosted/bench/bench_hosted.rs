//! `make bench-hosted`: libft_malloc.so against glibc's malloc, jemalloc,
//! mimalloc and tcmalloc, on allocation-heavy C workloads and real programs.
//!
//! Every (workload, allocator) pair runs `--runs` times (default 5),
//! interleaved: each round runs every workload once under every allocator, in
//! an order rotated from round to round, so drift of the machine (caches,
//! frequency, other load) spreads over all allocators alike. Medians are
//! reported: wall time, and peak RSS (`ru_maxrss`) measured by a tiny C
//! helper (`measure.c`) whose own footprint is the only other thing in it.
//!
//! ```text
//! cargo run --release -p ft_malloc_hosted --example bench_hosted -- [--runs N] [--lib PATH] [--only NAME] [--csv]
//!     [--baseline PATH] [--no-peers]
//! ```
//!
//! `--baseline PATH` measures another build of the library too (a column
//! `baseline`: before and after a change); `--no-peers` leaves out
//! jemalloc, mimalloc and tcmalloc.
//!
//! `--csv` prints `workload,allocator,wall_ms,max_rss_kib` lines (medians)
//! instead of the tables (`make bench-csv`, drawn by `scripts/plots.py`).
//!
//! The allocators are the Debian packages libjemalloc2, libmimalloc2.0 and
//! libtcmalloc-minimal4, preloaded; a missing one is skipped with a note.

#[path = "text.rs"]
mod text;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Our library, as Cargo builds it (lib name `ft_malloc_hosted`).
const CARGO_SO: &str = "libft_malloc_hosted.so";
/// Where Debian installs the peers.
const PEERS: [(&str, &str); 3] = [
    ("jemalloc", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    ("mimalloc", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"),
    (
        "tcmalloc",
        "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    ),
];
/// Above this ratio of our time to glibc's, a workload misses the issue's
/// target and is flagged.
const SLOWER_THAN_GLIBC_LIMIT: f64 = 1.5;

struct Allocator {
    name: &'static str,
    /// `None`: glibc's own malloc.
    preload: Option<PathBuf>,
}

struct Workload {
    name: &'static str,
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
}

#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    max_rss_kib: u64,
}

struct Options {
    runs: usize,
    lib: PathBuf,
    /// Another build of the library, measured as `baseline` (before/after).
    baseline: Option<PathBuf>,
    /// Whether jemalloc, mimalloc and tcmalloc run too.
    peers: bool,
    only: Option<String>,
    csv: bool,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut runs = 5;
    let mut lib = None;
    let mut only = None;
    let mut csv = false;
    let mut baseline = None;
    let mut peers = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--lib" => lib = Some(PathBuf::from(args.next().expect("--lib PATH"))),
            "--only" => only = args.next(),
            "--csv" => csv = true,
            "--baseline" => {
                baseline = Some(PathBuf::from(args.next().expect("--baseline PATH")));
            }
            "--no-peers" => peers = false,
            other => panic!("unknown argument {other}"),
        }
    }
    let lib = lib.unwrap_or_else(|| {
        // target/release/examples/bench_hosted -> target/release/
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        [
            profile_dir.join(CARGO_SO),
            profile_dir.join("deps").join(CARGO_SO),
        ]
        .into_iter()
        .find(|p| p.exists())
        .expect("libft_malloc_hosted.so not built: cargo build --release -p ft_malloc_hosted")
    });
    Options {
        runs,
        lib: std::fs::canonicalize(lib).unwrap(),
        baseline: baseline.map(|b| std::fs::canonicalize(b).unwrap()),
        peers,
        only,
        csv,
    }
}

fn gcc(out: &Path, sources: &[PathBuf], extra: &[&str]) {
    let status = Command::new("gcc")
        .args(["-O2", "-w", "-pthread"])
        .args(extra)
        .args(sources)
        .arg("-o")
        .arg(out)
        .status()
        .expect("gcc");
    assert!(status.success(), "gcc failed for {}", out.display());
}

fn gxx(out: &Path, source: &Path) {
    let status = Command::new("g++")
        .args(["-O2", "-w", "-pthread"])
        .arg(source)
        .arg("-o")
        .arg(out)
        .status()
        .expect("g++");
    assert!(status.success(), "g++ failed for {}", out.display());
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

fn workloads(work: &Path) -> Vec<Workload> {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench");
    let tests_c = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    for name in [
        "small_churn",
        "large_churn",
        "realloc_strings",
        "producer_consumer",
        "thread_churn",
        "fork_threads",
    ] {
        gcc(&work.join(name), &[bench.join(format!("{name}.c"))], &[]);
    }
    gcc(&work.join("threads"), &[tests_c.join("threads.c")], &[]);
    gcc(
        &work.join("large_threads"),
        &[bench.join("large_threads.c")],
        &[],
    );
    gcc(
        &work.join("private_churn"),
        &[bench.join("private_churn.c")],
        &[],
    );
    if have("g++") {
        gxx(&work.join("cxx_objects"), &bench.join("cxx_objects.cpp"));
    }
    std::fs::write(work.join("sort.txt"), text::generated_text(400_000)).unwrap();
    std::fs::write(work.join("perl.txt"), text::generated_text(100_000)).unwrap();
    std::fs::write(work.join("awk.txt"), text::generated_text(20_000)).unwrap();
    let path = |p: PathBuf| p.to_str().unwrap().to_string();
    let local = |name: &str| path(work.join(name));
    let s = |x: &str| x.to_string();
    let git_env = ["AUTHOR", "COMMITTER"].into_iter().flat_map(|who| {
        [
            (
                if who == "AUTHOR" {
                    "GIT_AUTHOR_NAME"
                } else {
                    "GIT_COMMITTER_NAME"
                },
                s("Ft Malloc"),
            ),
            (
                if who == "AUTHOR" {
                    "GIT_AUTHOR_EMAIL"
                } else {
                    "GIT_COMMITTER_EMAIL"
                },
                s("ft@malloc.test"),
            ),
            (
                if who == "AUTHOR" {
                    "GIT_AUTHOR_DATE"
                } else {
                    "GIT_COMMITTER_DATE"
                },
                s("2024-01-01T12:00:00Z"),
            ),
        ]
    });
    let mut list = vec![
        Workload {
            name: "small_churn (20M malloc/free, 1 thread)",
            argv: vec![local("small_churn"), s("20000000")],
            env: vec![],
        },
        Workload {
            name: "large_churn (40K x 40 KiB..4 MiB)",
            argv: vec![local("large_churn"), s("40000")],
            env: vec![],
        },
        Workload {
            name: "realloc_strings (9M growing reallocs)",
            argv: vec![local("realloc_strings"), s("3")],
            env: vec![],
        },
        Workload {
            name: "producer_consumer (1 pair, 4M blocks)",
            argv: vec![local("producer_consumer"), s("1"), s("4000000")],
            env: vec![],
        },
        Workload {
            name: "producer_consumer (2 pairs, 2M blocks each)",
            argv: vec![local("producer_consumer"), s("2"), s("2000000")],
            env: vec![],
        },
        Workload {
            name: "producer_consumer (4 pairs, 1M blocks each)",
            argv: vec![local("producer_consumer"), s("4"), s("1000000")],
            env: vec![],
        },
        Workload {
            name: "thread_churn (20K threads, 4 at a time)",
            argv: vec![local("thread_churn"), s("20000")],
            env: vec![],
        },
        Workload {
            name: "threads (8 threads, cross-thread frees)",
            argv: vec![local("threads"), s("8"), s("100000")],
            env: vec![],
        },
        Workload {
            name: "fork_threads (50 forks under 2 allocating threads)",
            argv: vec![local("fork_threads"), s("threads"), s("2"), s("50")],
            env: vec![],
        },
        Workload {
            name: "private_churn (2 threads never sharing, 5M steps each)",
            argv: vec![local("private_churn"), s("2"), s("5000000")],
            env: vec![],
        },
        Workload {
            name: "large_threads (4 threads, 32 KiB..1 MiB, 50K each)",
            argv: vec![local("large_threads"), s("4"), s("50000")],
            env: vec![],
        },
        Workload {
            name: "cxx_objects (2 threads, 4M new/delete each)",
            argv: vec![local("cxx_objects"), s("2"), s("4000000")],
            env: vec![],
        },
        Workload {
            name: "ls -laR /usr/include",
            argv: vec![s("ls"), s("-laR"), s("/usr/include")],
            env: vec![],
        },
        Workload {
            name: "sort 400K lines",
            argv: vec![s("sort"), local("sort.txt")],
            env: vec![],
        },
        Workload {
            name: "python3 heavy.py (PYTHONMALLOC=malloc)",
            argv: vec![s("python3"), path(bench.join("heavy.py"))],
            env: vec![("PYTHONMALLOC", s("malloc"))],
        },
        Workload {
            name: "python3 heavy.py (pymalloc)",
            argv: vec![s("python3"), path(bench.join("heavy.py"))],
            env: vec![],
        },
        Workload {
            name: "gcc -O2 -c (3 test sources)",
            argv: ["gcc", "-O2", "-w", "-pthread", "-c"]
                .into_iter()
                .map(s)
                .chain(["semantics.c", "threads.c", "fork.c"].map(|f| path(tests_c.join(f))))
                .collect(),
            env: vec![],
        },
        Workload {
            name: "git init/add/commit/log/gc",
            argv: vec![s("sh"), path(bench.join("git_session.sh"))],
            env: git_env
                .chain([("HOME", local("")), ("GIT_CONFIG_NOSYSTEM", s("1"))])
                .collect(),
        },
        Workload {
            name: "perl word count (100K lines)",
            argv: vec![
                s("perl"),
                s("-e"),
                s(text::PERL_WORD_COUNT),
                local("perl.txt"),
            ],
            env: vec![],
        },
        Workload {
            name: "awk string building (20K lines)",
            argv: vec![s("awk"), s(text::AWK_PROGRAM), local("awk.txt")],
            env: vec![],
        },
    ];
    list.retain(|w| {
        // A C++ workload is missing (so skipped) without g++.
        let found = have(&w.argv[0]);
        if !found {
            eprintln!("skipping {}: {} not installed", w.name, w.argv[0]);
        }
        found
    });
    list
}

/// One run of `workload` under `allocator`, through the `measure` helper.
fn measure(work: &Path, helper: &Path, allocator: &Allocator, workload: &Workload) -> Sample {
    let report = work.join("measure.out");
    let preload = allocator
        .preload
        .as_ref()
        .map_or_else(|| "-".to_string(), |p| p.to_str().unwrap().to_string());
    let status = Command::new(helper)
        .arg(&preload)
        .arg(&report)
        .args(&workload.argv)
        .envs(workload.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LC_ALL", "C")
        .env_remove("LD_PRELOAD")
        .current_dir(work)
        .status()
        .expect("measure helper");
    assert!(status.success());
    let text = std::fs::read_to_string(&report).unwrap();
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(
        fields[2], 0,
        "{} under {} exited with status {}",
        workload.name, allocator.name, fields[2]
    );
    Sample {
        wall: Duration::from_nanos(fields[0]),
        max_rss_kib: fields[1],
    }
}

fn median<T: Copy + Ord>(values: &mut [T]) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

/// Medians as CSV: one line per workload and allocator. Workload names
/// hold commas, so they are quoted.
fn print_csv(names: &[&str], workloads: &[Workload], samples: &mut [Vec<Vec<Sample>>]) {
    println!("workload,allocator,wall_ms,max_rss_kib");
    for (w, workload) in workloads.iter().enumerate() {
        for (a, runs) in samples[w].iter().enumerate() {
            let wall = median(&mut runs.iter().map(|s| s.wall).collect::<Vec<_>>());
            let rss = median(&mut runs.iter().map(|s| s.max_rss_kib).collect::<Vec<_>>());
            println!(
                "\"{}\",{},{:.3},{rss}",
                workload.name,
                names[a],
                wall.as_secs_f64() * 1000.0
            );
        }
    }
}

fn main() {
    let options = options();
    let work = std::env::temp_dir().join(format!("ft_malloc_bench_{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let helper = work.join("measure");
    gcc(
        &helper,
        &[Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/measure.c")],
        &[],
    );

    let mut allocators = vec![
        Allocator {
            name: "ft_malloc",
            preload: Some(options.lib.clone()),
        },
        Allocator {
            name: "glibc",
            preload: None,
        },
    ];
    if let Some(baseline) = &options.baseline {
        allocators.push(Allocator {
            name: "baseline",
            preload: Some(baseline.clone()),
        });
    }
    for (name, path) in PEERS.into_iter().filter(|_| options.peers) {
        if Path::new(path).exists() {
            allocators.push(Allocator {
                name,
                preload: Some(PathBuf::from(path)),
            });
        } else {
            eprintln!("skipping {name}: {path} not installed");
        }
    }
    let mut workloads = workloads(&work);
    if let Some(only) = &options.only {
        workloads.retain(|w| w.name.contains(only.as_str()));
    }

    // samples[workload][allocator][run]
    let mut samples = vec![vec![Vec::new(); allocators.len()]; workloads.len()];
    for round in 0..options.runs {
        eprintln!("round {}/{}", round + 1, options.runs);
        for (w, workload) in workloads.iter().enumerate() {
            for k in 0..allocators.len() {
                let a = (k + round + w) % allocators.len();
                samples[w][a].push(measure(&work, &helper, &allocators[a], workload));
            }
        }
    }

    let names: Vec<&str> = allocators.iter().map(|a| a.name).collect();
    if options.csv {
        print_csv(&names, &workloads, &mut samples);
        let _ = std::fs::remove_dir_all(&work);
        return;
    }
    println!(
        "Medians of {} interleaved runs. Cells: median (ratio to ft_malloc: above 1 means ft_malloc is better).\n",
        options.runs
    );
    println!("Wall time:\n");
    println!("| workload | {} | ft_malloc / glibc |", names.join(" | "));
    println!("|---|{}---|", "---|".repeat(names.len()));
    let mut too_slow = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        let times: Vec<Duration> = samples[w]
            .iter()
            .map(|runs| median(&mut runs.iter().map(|s| s.wall).collect::<Vec<_>>()))
            .collect();
        let ours = times[0].as_secs_f64();
        let cells: Vec<String> = times
            .iter()
            .enumerate()
            .map(|(a, t)| {
                let ms = t.as_secs_f64() * 1000.0;
                if a == 0 {
                    format!("{ms:.0} ms")
                } else {
                    format!("{ms:.0} ms ({:.2})", t.as_secs_f64() / ours)
                }
            })
            .collect();
        let vs_glibc = ours / times[1].as_secs_f64();
        let flag = if vs_glibc > SLOWER_THAN_GLIBC_LIMIT {
            too_slow.push(workload.name);
            " **over 1.5**"
        } else {
            ""
        };
        println!(
            "| {} | {} | {vs_glibc:.2}{flag} |",
            workload.name,
            cells.join(" | ")
        );
    }
    println!("\nPeak RSS:\n");
    let mut rss_ratios = Vec::new();
    println!("| workload | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    for (w, workload) in workloads.iter().enumerate() {
        let rss: Vec<u64> = samples[w]
            .iter()
            .map(|runs| median(&mut runs.iter().map(|s| s.max_rss_kib).collect::<Vec<_>>()))
            .collect();
        let ours = rss[0] as f64;
        let cells: Vec<String> = rss
            .iter()
            .enumerate()
            .map(|(a, &kib)| {
                let mib = kib as f64 / 1024.0;
                if a == 0 {
                    format!("{mib:.1} MiB")
                } else {
                    format!("{mib:.1} MiB ({:.2})", kib as f64 / ours)
                }
            })
            .collect();
        println!("| {} | {} |", workload.name, cells.join(" | "));
        rss_ratios.push(ours / rss[1] as f64);
    }
    let log_mean = rss_ratios.iter().map(|r| r.ln()).sum::<f64>() / rss_ratios.len().max(1) as f64;
    println!(
        "\nPeak RSS of ft_malloc / glibc, geometric mean over the workloads: {:.2}",
        log_mean.exp()
    );
    if too_slow.is_empty() {
        println!("\nNo workload is more than {SLOWER_THAN_GLIBC_LIMIT}x slower than glibc.");
    } else {
        println!(
            "\nMore than {SLOWER_THAN_GLIBC_LIMIT}x slower than glibc: {}",
            too_slow.join(", ")
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
