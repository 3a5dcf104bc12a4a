//! `ft_malloc_bench`: the ft_malloc core against four `no_std` allocators on one
//! 128 MiB arena, with the method of talc's published benchmarks:
//! random-actions throughput (`random_actions.rs`) and heap efficiency
//! (`heap_efficiency.rs`). `spec.rs` holds every number; `--help` lists the
//! options.
//!
//! The trials are interleaved: for each trial index and each max size, every
//! allocator runs once, in an order rotated from one series to the next, so
//! that a burst of machine noise hits all of them alike. Scores are medians.

mod arena;
mod blocks;
mod breakdown;
mod clock;
mod draw;
mod fill;
mod heap_efficiency;
mod kernel_workloads;
mod min_region;
mod options;
mod peers;
mod random_actions;
mod report;
mod spec;

use std::io::Write;

use heap_efficiency::HeapEfficiency;
use options::{Command, Options};
use random_actions::{Budget, RandomActions, RunResult};
use report::Results;

/// Phases of the seed derivation, so warm-up, measured run and heap
/// efficiency never share an action sequence.
const PHASE_WARMUP: u64 = 1;
const PHASE_MEASURED: u64 = 2;
const PHASE_HEAP_EFFICIENCY: u64 = 3;

fn main() {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", options::USAGE);
            return;
        }
        Err(message) => {
            eprintln!("ft_malloc_bench: {message}");
            std::process::exit(2);
        }
    };

    arena::prefault();
    if options.fill {
        print!("{}", fill::table(&options.peers));
        return;
    }
    if let Some(name) = options.kernel_workload {
        let mut workload = kernel_workloads::KernelWorkload {
            name,
            ops: options.kernel_ops.unwrap_or(100_000),
            seed: options.seed,
        };
        for peer in &options.peers {
            let done = peer.run_fresh_in(kernel_workloads::REGION, &mut workload);
            println!("{name},{},{done}", peer.name());
        }
        return;
    }
    if options.min_region {
        print_min_regions(&options);
        return;
    }
    if options.breakdown {
        heap_efficiency(&options);
        if options.peers.contains(&peers::Peer::FtMalloc) {
            let seed = draw::series_seed(options.seed, 0, 0, PHASE_HEAP_EFFICIENCY);
            print!("{}", breakdown::run(options.he_rounds, seed).table());
        }
        return;
    }
    let trials = random_actions(&options);
    let efficiency = heap_efficiency(&options);
    let results = Results {
        peers: options.peers.clone(),
        sizes: options.sizes.clone(),
        trials,
        efficiency,
    };
    if options.csv {
        print!("{}", results.csv());
    } else {
        print!("{}", results.tables(&header(&options)));
    }
}

/// Runs every trial; returns `trials[size][peer]`.
fn random_actions(options: &Options) -> Vec<Vec<Vec<RunResult>>> {
    let peers = &options.peers;
    let mut trials =
        vec![vec![Vec::with_capacity(options.trials); peers.len()]; options.sizes.len()];
    for trial in 0..options.trials {
        for (s, &max_size) in options.sizes.iter().enumerate() {
            let mut workload = RandomActions {
                max_size,
                warmup: options.warmup,
                budget: options.budget,
                warmup_seed: draw::series_seed(options.seed, trial, max_size, PHASE_WARMUP),
                seed: draw::series_seed(options.seed, trial, max_size, PHASE_MEASURED),
            };
            let first = (trial + s) % peers.len();
            for p in (first..peers.len()).chain(0..first) {
                let result = peers[p].run_fresh(&mut workload);
                trials[s][p].push(result);
            }
            let line: Vec<String> = peers
                .iter()
                .zip(&trials[s])
                .map(|(peer, runs)| format!("{} {}", peer.name(), runs[trial].ops))
                .collect();
            eprintln!(
                "trial {}/{} max {max_size}: {}",
                trial + 1,
                options.trials,
                line.join(", ")
            );
        }
    }
    trials
}

/// Runs heap efficiency on every allocator (deterministic: once each).
fn heap_efficiency(options: &Options) -> Vec<Option<f64>> {
    options
        .peers
        .iter()
        .map(|peer| {
            if options.he_rounds == 0 {
                return None;
            }
            let mut workload = HeapEfficiency {
                rounds: options.he_rounds,
                seed: draw::series_seed(options.seed, 0, 0, PHASE_HEAP_EFFICIENCY),
            };
            let efficiency = peer.run_fresh(&mut workload);
            eprintln!(
                "heap efficiency {}: {:.2}%",
                peer.name(),
                100.0 * efficiency
            );
            let _ = std::io::stderr().flush();
            Some(efficiency)
        })
        .collect()
}

/// Prints each allocator's minimum region for the mixed workload.
fn print_min_regions(options: &Options) {
    println!(
        "Minimum region for the mixed workload ({} KiB live, {} steps, sizes 16..2048)",
        min_region::LIVE_TARGET >> 10,
        min_region::STEPS
    );
    println!("| allocator | region (KiB) |");
    println!("|---|---:|");
    for &peer in &options.peers {
        let region = min_region::min_region(peer, options.seed);
        let shown = region.map_or("over the arena".into(), |r| (r >> 10).to_string());
        println!("| {} | {shown} |", peer.name());
    }
}

fn header(options: &Options) -> String {
    let budget = |b: Budget| match b {
        Budget::CpuTime(d) => format!("{} ms of CPU time", d.as_millis()),
        Budget::WallTime(d) => format!("{} ms", d.as_millis()),
        Budget::Actions(n) => format!("{n} actions"),
    };
    format!(
        "ft_malloc_bench: {} MiB arena, {} trials per allocator and size, \
         warm-up {} then {} per trial, {} heap-efficiency rounds, seed {:#x}",
        spec::ARENA_SIZE >> 20,
        options.trials,
        budget(options.warmup),
        budget(options.budget),
        options.he_rounds,
        options.seed
    )
}
