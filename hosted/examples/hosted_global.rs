//! A Rust program on `ft_malloc_hosted`'s global allocator: `mmap`-backed,
//! futex-locked, fork safe. A program that depends on the crate with its
//! default features exports no C symbol, so C code in the same process keeps
//! the system `malloc`. (Built as an example of this crate it gets the
//! tests' `c-abi` too, which changes nothing below.)
//!
//! `cargo run -p ft_malloc_hosted --example hosted_global`

use std::collections::HashMap;
use std::thread;

use ft_malloc_hosted::{FtMalloc, HEAP};

#[global_allocator]
static GLOBAL: FtMalloc = FtMalloc;

fn main() {
    let workers: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                let mut counts: HashMap<u64, String> = HashMap::new();
                for i in 0..10_000u64 {
                    counts.insert(i, format!("thread {t} item {i}"));
                }
                counts.len()
            })
        })
        .collect();
    let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(total, 40_000);

    let stats = HEAP.stats();
    println!("{total} entries built on 4 threads");
    println!(
        "heap now: {} live blocks, {} KiB mapped, {} provider maps",
        stats.live_blocks,
        stats.mapped_bytes >> 10,
        stats.map_calls
    );
}
