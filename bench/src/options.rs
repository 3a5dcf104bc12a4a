//! Command-line options. Without any, a run is exactly the specification;
//! the options only shorten or narrow it (for development and profiling).

use std::time::Duration;

use crate::peers::Peer;
use crate::random_actions::Budget;
use crate::spec;

/// What to run and how to print it.
#[derive(Clone, Debug)]
pub struct Options {
    /// Random-actions trials per allocator and size.
    pub trials: usize,
    /// Warm-up of each random-actions run.
    pub warmup: Budget,
    /// Measured part of each random-actions run.
    pub budget: Budget,
    /// Max sizes of the random-actions series.
    pub sizes: Vec<usize>,
    /// Allocators, in table order.
    pub peers: Vec<Peer>,
    /// Heap-efficiency rounds (0 skips it).
    pub he_rounds: usize,
    /// Base seed of every action sequence.
    pub seed: u64,
    /// Print CSV instead of the tables.
    pub csv: bool,
    /// Only find each allocator's minimum region (`min_region.rs`).
    pub min_region: bool,
    /// Only heap efficiency, with the core's breakdown (`breakdown.rs`).
    pub breakdown: bool,
    /// Only the small-region fill table (`fill.rs`).
    pub fill: bool,
    /// Only this workload of `kernel_workloads.rs`, for `--ops` operations.
    pub kernel_workload: Option<&'static str>,
    /// `--ops`, if given.
    pub kernel_ops: Option<usize>,
}

/// The options that together decide the measured budget.
struct BudgetChoice {
    duration: Duration,
    wall_clock: bool,
    ops: Option<usize>,
}

impl BudgetChoice {
    fn warmup_and_budget(&self) -> (Budget, Budget) {
        match self.ops {
            Some(count) => (Budget::Actions(0), Budget::Actions(count)),
            None if self.wall_clock => (
                Budget::WallTime(spec::WARMUP),
                Budget::WallTime(self.duration),
            ),
            None => (
                Budget::WallTime(spec::WARMUP),
                Budget::CpuTime(self.duration),
            ),
        }
    }
}

/// The usage text of `--help`.
pub const USAGE: &str = "\
ft_malloc_bench: the ft_malloc core against talc, rlsf, linked_list_allocator
and buddy_system_allocator on one 128 MiB arena (talc's random-actions and
heap-efficiency method). Without options it runs the full specification.

Usage: cargo run --release -p ft_malloc_bench -- [OPTIONS]

Options:
  --csv               print `allocator,max_size,ops_median,heap_efficiency` lines
  --trials N          random-actions trials per allocator and size [7]
  --duration-ms N     measured time of each random-actions run [200]
  --wall-clock        budget that time on the wall clock, as talc does
                      (default: the benchmark thread's CPU time, which a busy
                      machine's scheduler cannot steal)
  --ops N             run exactly N actions per trial instead of a time budget
                      (no warm-up; deterministic, for callgrind)
  --quick             3 trials of 50 ms, 20 heap-efficiency rounds
  --sizes A,B,...     random-actions max sizes [200,1000,3000,10000,30000]
  --allocators A,...  subset of ft_malloc,talc,rlsf,linked_list,buddy
  --he-rounds N       heap-efficiency rounds, 0 to skip [300]
  --seed N            base seed of the action sequences
  --min-region        instead: the smallest region on which each allocator
                      runs a fixed mixed 16..2048-byte workload (bisection)
  --fill              instead: the share of a 100 KiB region random
                      16..2048-byte blocks fill before the first refusal
                      (seeds 1-5), and the page-aligned 4 KiB blocks it fits
  --breakdown         instead: heap efficiency only (--he-rounds rounds) and,
                      for the core, where the arena went when each round ended
  --kernel-workload W instead: one of a small kernel's workloads
                      (boxes, long_lived, vec, fifo64, random64, random4096;
                      and in_place, a realloc within its block)
                      for --ops operations [100000] on a 4 MiB region;
                      prints `workload,allocator,operations` (for callgrind:
                      bench/workloads_callgrind.sh)
  --help              this text
";

impl Default for Options {
    fn default() -> Self {
        let (warmup, budget) = BudgetChoice {
            duration: spec::DURATION,
            wall_clock: false,
            ops: None,
        }
        .warmup_and_budget();
        Options {
            trials: spec::TRIALS,
            warmup,
            budget,
            sizes: spec::MAX_SIZES.to_vec(),
            peers: Peer::ALL.to_vec(),
            he_rounds: spec::HE_ROUNDS,
            seed: spec::SEED,
            csv: false,
            min_region: false,
            breakdown: false,
            fill: false,
            kernel_workload: None,
            kernel_ops: None,
        }
    }
}

/// What the command line asked for.
pub enum Command {
    /// Run the benchmark.
    Run(Options),
    /// Print the usage text.
    Help,
}

/// Parses the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut budget = BudgetChoice {
        duration: spec::DURATION,
        wall_clock: false,
        ops: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--csv" => options.csv = true,
            "--min-region" => options.min_region = true,
            "--breakdown" => options.breakdown = true,
            "--fill" => options.fill = true,
            "--kernel-workload" => {
                let name = value(&arg)?;
                options.kernel_workload = Some(
                    crate::kernel_workloads::NAMES
                        .into_iter()
                        .find(|&n| n == name)
                        .ok_or(format!("unknown workload `{name}`"))?,
                );
            }
            "--quick" => {
                options.trials = spec::QUICK_TRIALS;
                budget.duration = spec::QUICK_DURATION;
                options.he_rounds = spec::QUICK_HE_ROUNDS;
            }
            "--trials" => options.trials = number(&arg, &value(&arg)?)?,
            "--duration-ms" => {
                let ms = number(&arg, &value(&arg)?)?;
                budget.duration = Duration::from_millis(ms as u64);
            }
            "--wall-clock" => budget.wall_clock = true,
            "--ops" => budget.ops = Some(number(&arg, &value(&arg)?)?),
            "--he-rounds" => options.he_rounds = number(&arg, &value(&arg)?)?,
            "--seed" => options.seed = number(&arg, &value(&arg)?)? as u64,
            "--sizes" => {
                options.sizes = value(&arg)?
                    .split(',')
                    .map(|s| number(&arg, s))
                    .collect::<Result<_, _>>()?;
                if let Some(&bad) = options.sizes.iter().find(|&&s| s <= 16) {
                    return Err(format!(
                        "--sizes: {bad} is too small (the cap is drawn from 16..max)"
                    ));
                }
            }
            "--allocators" => {
                options.peers = value(&arg)?
                    .split(',')
                    .map(|name| Peer::from_name(name).ok_or(format!("unknown allocator `{name}`")))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown option `{other}` (see --help)")),
        }
    }
    options.kernel_ops = budget.ops;
    (options.warmup, options.budget) = budget.warmup_and_budget();
    if options.trials == 0 || options.sizes.is_empty() || options.peers.is_empty() {
        return Err("nothing to run: trials, sizes and allocators must not be empty".into());
    }
    Ok(Command::Run(options))
}

fn number(flag: &str, text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{flag}: `{text}` is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().map(|s| s.to_string())) {
            Ok(Command::Run(options)) => options,
            _ => panic!("{args:?} should parse to a run"),
        }
    }

    #[test]
    fn defaults_are_the_specification() {
        let options = run(&[]);
        assert_eq!(options.trials, 7);
        assert_eq!(options.sizes, [200, 1000, 3000, 10000, 30000]);
        assert_eq!(options.peers.len(), 5);
        assert_eq!(options.he_rounds, 300);
        assert!(matches!(options.budget, Budget::CpuTime(d) if d.as_millis() == 200));
        assert!(matches!(options.warmup, Budget::WallTime(d) if d.as_millis() == 2));
        let options = run(&["--wall-clock", "--quick"]);
        assert!(matches!(options.budget, Budget::WallTime(d) if d.as_millis() == 50));
    }

    #[test]
    fn options_narrow_the_run() {
        let options = run(&[
            "--ops",
            "1000",
            "--allocators",
            "talc,ft_malloc",
            "--sizes",
            "200",
        ]);
        assert!(matches!(options.budget, Budget::Actions(1000)));
        assert!(matches!(options.warmup, Budget::Actions(0)));
        assert_eq!(options.peers, [Peer::Talc, Peer::FtMalloc]);
        assert_eq!(options.sizes, [200]);
    }

    #[test]
    fn bad_options_are_refused() {
        for args in [
            &["--trials"][..],
            &["--sizes", "8"],
            &["--allocators", "glibc"],
            &["--x"],
        ] {
            assert!(
                parse(args.iter().map(|s| s.to_string())).is_err(),
                "{args:?}"
            );
        }
    }
}
