//! Small-region fill (`--fill`): the share of a [`REGION`] (blog_os's
//! 100 KiB heap) that random 16..2048-byte blocks fill before an
//! allocator's first refusal, on seeds 1 to [`SEEDS`], and how many
//! page-aligned 4 KiB blocks it fits. Each run starts on a fresh region.

use std::alloc::{GlobalAlloc, Layout};

use fastrand::Rng;

use crate::peers::{Peer, Workload};

/// The region: blog_os's heap.
pub const REGION: usize = 100 << 10;
/// Seeds 1..=SEEDS.
pub const SEEDS: u64 = 5;

/// Random blocks until the first refusal; the output is the live requested
/// bytes then. Blocks are written at both ends and freed at the end.
struct Mixed {
    seed: u64,
}

impl Workload for Mixed {
    type Output = usize;

    fn run<A: GlobalAlloc>(&mut self, allocator: &A, _name: &'static str) -> usize {
        let mut rng = Rng::with_seed(self.seed);
        let mut blocks = Vec::new();
        let mut live = 0;
        loop {
            // Drawn like the other workloads' (`draw.rs`, talc's method).
            let cap = rng.usize(17..2048);
            let layout = Layout::from_size_align(rng.usize(16..cap), 16).unwrap();
            // SAFETY: a non-zero size and a valid layout.
            let p = unsafe { allocator.alloc(layout) };
            if p.is_null() {
                break;
            }
            // SAFETY: a live block of `layout.size()` bytes.
            unsafe {
                p.write(1);
                p.add(layout.size() - 1).write(1);
            }
            blocks.push((p, layout));
            live += layout.size();
        }
        for (p, layout) in blocks {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { allocator.dealloc(p, layout) };
        }
        live
    }
}

/// Page-aligned 4 KiB blocks until the first refusal; the output is their
/// count.
struct Pages;

impl Workload for Pages {
    type Output = usize;

    fn run<A: GlobalAlloc>(&mut self, allocator: &A, _name: &'static str) -> usize {
        let layout = Layout::from_size_align(4096, 4096).unwrap();
        let mut blocks = Vec::new();
        loop {
            // SAFETY: a valid layout of non-zero size.
            let p = unsafe { allocator.alloc(layout) };
            if p.is_null() {
                break;
            }
            assert!(p.addr().is_multiple_of(4096));
            blocks.push(p);
        }
        let count = blocks.len();
        for p in blocks {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { allocator.dealloc(p, layout) };
        }
        count
    }
}

/// The table: one row per allocator.
pub fn table(peers: &[Peer]) -> String {
    let mut out = format!(
        "Fill of a {} KiB region at the first refusal (random 16..2048-byte blocks), \
         and page-aligned 4 KiB blocks that fit\n| allocator |",
        REGION >> 10
    );
    for seed in 1..=SEEDS {
        out += &format!(" seed {seed} |");
    }
    out += " 4 KiB pages |\n|---|";
    for _ in 0..=SEEDS {
        out += "---:|";
    }
    out.push('\n');
    for &peer in peers {
        out += &format!("| {} |", peer.name());
        for seed in 1..=SEEDS {
            let live = peer.run_fresh_in(REGION, &mut Mixed { seed });
            out += &format!(" {:.1}% |", live as f64 * 100.0 / REGION as f64);
        }
        out += &format!(" {} |\n", peer.run_fresh_in(REGION, &mut Pages));
    }
    out
}
