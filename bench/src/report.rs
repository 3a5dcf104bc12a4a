//! Turning trial results into the printed tables and the CSV lines.

use std::fmt::Write;

use crate::peers::Peer;
use crate::random_actions::RunResult;

/// Everything one benchmark run measured.
pub struct Results {
    /// The allocators, in column order.
    pub peers: Vec<Peer>,
    /// The random-actions max sizes, in row order.
    pub sizes: Vec<usize>,
    /// `trials[size][peer]`: every trial's result.
    pub trials: Vec<Vec<Vec<RunResult>>>,
    /// Heap efficiency per peer (`None` when skipped).
    pub efficiency: Vec<Option<f64>>,
}

impl Results {
    /// Median completed operations of `peer_index` at `size_index`.
    pub fn median_ops(&self, size_index: usize, peer_index: usize) -> f64 {
        median(
            self.trials[size_index][peer_index]
                .iter()
                .map(|r| r.ops as f64),
        )
    }

    /// `(max - min) / median` of the trials, a quick look at the noise.
    fn spread(&self, size_index: usize, peer_index: usize) -> f64 {
        let ops = self.trials[size_index][peer_index].iter().map(|r| r.ops);
        let (min, max) = (ops.clone().min().unwrap_or(0), ops.max().unwrap_or(0));
        (max - min) as f64 / self.median_ops(size_index, peer_index).max(1.0)
    }

    fn core_index(&self) -> Option<usize> {
        self.peers.iter().position(|&p| p == Peer::FtMalloc)
    }

    /// One line per allocator and size, with a header line.
    pub fn csv(&self) -> String {
        let mut out = String::from("allocator,max_size,ops_median,heap_efficiency\n");
        for (p, peer) in self.peers.iter().enumerate() {
            let efficiency = self.efficiency[p].map_or(String::new(), |e| format!("{e:.4}"));
            for (s, size) in self.sizes.iter().enumerate() {
                let ops = self.median_ops(s, p);
                writeln!(out, "{},{size},{ops:.0},{efficiency}", peer.name()).unwrap();
            }
        }
        out
    }

    /// The human-readable report: medians, ratios to the core, noise,
    /// failures and heap efficiency.
    pub fn tables(&self, header: &str) -> String {
        let mut out = String::new();
        writeln!(out, "{header}\n").unwrap();

        self.table(
            &mut out,
            "Random actions: completed operations (median)",
            |s, p| format!("{:.0}", self.median_ops(s, p)),
        );
        if let Some(core) = self.core_index() {
            self.table(
                &mut out,
                "Ratio peer / ft_malloc (below 1: the core is faster)",
                |s, p| {
                    format!(
                        "{:.3}",
                        self.median_ops(s, p) / self.median_ops(s, core).max(1.0)
                    )
                },
            );
            if let Some(talc) = self.peers.iter().position(|&p| p == Peer::Talc) {
                writeln!(out, "ft_malloc / talc:").unwrap();
                for (s, size) in self.sizes.iter().enumerate() {
                    let ratio = self.median_ops(s, core) / self.median_ops(s, talc).max(1.0);
                    writeln!(out, "  max {size:>6}: {ratio:.2}x").unwrap();
                }
                writeln!(out).unwrap();
            }
        }
        self.table(&mut out, "Trial spread (max - min) / median", |s, p| {
            format!("{:.1}%", 100.0 * self.spread(s, p))
        });
        let on_cpu: Vec<f64> = self
            .trials
            .iter()
            .flatten()
            .flatten()
            .map(|r| r.cpu.as_secs_f64() / r.wall.as_secs_f64().max(f64::MIN_POSITIVE))
            .collect();
        let lowest = on_cpu.iter().copied().fold(f64::INFINITY, f64::min);
        writeln!(
            out,
            "The benchmark thread ran for {:.1}% of the measured runs' wall time (median; lowest {:.1}%).\n",
            100.0 * median(on_cpu.iter().copied()),
            100.0 * lowest
        )
        .unwrap();

        let failures: Vec<String> = (0..self.peers.len())
            .flat_map(|p| (0..self.sizes.len()).map(move |s| (s, p)))
            .filter_map(|(s, p)| {
                let (a, r) = self.trials[s][p].iter().fold((0, 0), |(a, r), t| {
                    (a + t.alloc_failures, r + t.realloc_failures)
                });
                (a + r > 0).then(|| {
                    format!(
                        "  {} max {}: {a} refused allocations, {r} refused reallocations",
                        self.peers[p].name(),
                        self.sizes[s]
                    )
                })
            })
            .collect();
        if !failures.is_empty() {
            writeln!(
                out,
                "Refused requests (they score nothing):\n{}\n",
                failures.join("\n")
            )
            .unwrap();
        }

        if self.efficiency.iter().any(Option::is_some) {
            writeln!(
                out,
                "Heap efficiency: live requested bytes / arena at the first failure (mean)"
            )
            .unwrap();
            writeln!(out, "| {:<11} | {:>10} |", "allocator", "efficiency").unwrap();
            writeln!(out, "|{:-<13}|{:->12}|", "", "").unwrap();
            for (p, peer) in self.peers.iter().enumerate() {
                if let Some(e) = self.efficiency[p] {
                    writeln!(out, "| {:<11} | {:>9.2}% |", peer.name(), 100.0 * e).unwrap();
                }
            }
        }
        out
    }

    /// A markdown table: one row per size, one column per allocator.
    fn table(&self, out: &mut String, title: &str, cell: impl Fn(usize, usize) -> String) {
        writeln!(out, "{title}").unwrap();
        write!(out, "| {:>8} |", "max size").unwrap();
        for peer in &self.peers {
            write!(out, " {:>11} |", peer.name()).unwrap();
        }
        write!(out, "\n|{:->10}|", "").unwrap();
        for _ in &self.peers {
            write!(out, "{:->13}|", "").unwrap();
        }
        writeln!(out).unwrap();
        for (s, size) in self.sizes.iter().enumerate() {
            write!(out, "| {size:>8} |").unwrap();
            for p in 0..self.peers.len() {
                write!(out, " {:>11} |", cell(s, p)).unwrap();
            }
            writeln!(out).unwrap();
        }
        writeln!(out).unwrap();
    }
}

/// The median (mean of the middle two for an even count; 0 when empty).
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([5.0, 1.0, 3.0].into_iter()), 3.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn csv_has_one_line_per_allocator_and_size() {
        let run = |ops| RunResult {
            ops,
            ..RunResult::default()
        };
        let results = Results {
            peers: vec![Peer::FtMalloc, Peer::Talc],
            sizes: vec![200, 1000],
            trials: vec![
                vec![vec![run(10), run(30), run(20)], vec![run(5); 3]],
                vec![vec![run(7); 3], vec![run(9); 3]],
            ],
            efficiency: vec![Some(0.9), None],
        };
        assert_eq!(
            results.csv(),
            "allocator,max_size,ops_median,heap_efficiency\n\
             ft_malloc,200,20,0.9000\nft_malloc,1000,7,0.9000\n\
             talc,200,5,\ntalc,1000,9,\n"
        );
    }
}
