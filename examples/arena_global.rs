//! The core as a program's `#[global_allocator]` over one fixed region: the
//! set-up of a bare-metal or embedded target without an MMU, shown here in a
//! hosted program so that it runs (`cargo run --example arena_global`).
//!
//! On real hardware the region would be a linker-script symbol or a RAM
//! range from the memory map; nothing else changes. A kernel whose interrupt
//! handlers allocate would name a lock that disables interrupts as the
//! second type parameter (`ft_malloc::IrqSpinLock` with the `x86_64`
//! feature).

use std::collections::BTreeMap;
use std::mem::MaybeUninit;

use ft_malloc::{ArenaProvider, Heap};

/// The memory the heap may use: 16 MiB of `.bss`.
const REGION_BYTES: usize = 16 << 20;
static mut REGION: [MaybeUninit<u8>; REGION_BYTES] = [MaybeUninit::uninit(); REGION_BYTES];

#[global_allocator]
// SAFETY: REGION is used by nothing but this heap, for the whole program.
static HEAP: Heap<ArenaProvider> =
    Heap::new(unsafe { ArenaProvider::new((&raw mut REGION).cast(), REGION_BYTES) });

fn main() {
    // Everything below (the strings, the map, the formatting) allocates
    // from REGION.
    let mut words: BTreeMap<String, usize> = BTreeMap::new();
    let text = "the quick brown fox jumps over the lazy dog the end";
    for word in text.split_whitespace() {
        *words.entry(word.to_owned()).or_default() += 1;
    }
    let big = vec![7u8; 1 << 20]; // LARGE: a page run of its own
    assert_eq!(words["the"], 3);

    let stats = HEAP.stats();
    let arena = HEAP.provider();
    println!(
        "{} distinct words, {} KiB vector",
        words.len(),
        big.len() >> 10
    );
    println!(
        "live: {} blocks, {} bytes; zones: {} TINY, {} SMALL; LARGE runs: {}",
        stats.live_blocks, stats.live_bytes, stats.tiny_zones, stats.small_zones, stats.large_runs
    );
    println!(
        "arena: {} of {} KiB handed out",
        arena.used_bytes() >> 10,
        arena.capacity_bytes() >> 10
    );
    assert!(stats.large_runs >= 1);
    assert!(arena.used_bytes() <= REGION_BYTES);
}
