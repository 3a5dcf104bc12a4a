//! The `alloc` crate's collections on the kernel heap (the
//! `#[global_allocator]`): Box, Vec, String and BTreeMap, grown, shrunk and
//! dropped, with every value checked; afterwards this CPU has freed every
//! block it allocated, and (when it runs alone) the heap holds exactly the
//! blocks it held before.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use super::{Context, ensure};
use core::sync::atomic::Ordering;

use crate::HEAP;
use crate::smp::percpu::this_cpu;

pub fn run(ctx: &Context) -> Result<String, String> {
    let cpu = this_cpu();
    let balance = || {
        cpu.allocations.load(Ordering::Relaxed) as i64 - cpu.frees.load(Ordering::Relaxed) as i64
    };
    let (before, balance_before) = (HEAP.stats().live_blocks, balance());

    let boxed = Box::new(0x1234_5678_u64);
    ensure!(*boxed == 0x1234_5678, "Box lost its value");

    let mut numbers: Vec<u64> = Vec::new();
    for i in 0..200_000 {
        numbers.push(i * 3);
    }
    ensure!(
        numbers.iter().sum::<u64>() == 3 * 199_999 * 200_000 / 2,
        "Vec sum wrong"
    );
    numbers.truncate(1000);
    numbers.shrink_to_fit();
    ensure!(
        numbers.capacity() >= 1000 && numbers[999] == 2997,
        "Vec shrink lost data"
    );

    let mut text = String::new();
    for i in 0..10_000 {
        write!(text, "{i},").map_err(|_| "write! to String failed".to_string())?;
    }
    ensure!(
        text.len() == 48_890 && text.starts_with("0,1,2,") && text.ends_with("9999,"),
        "String contents wrong"
    );

    let mut map = BTreeMap::new();
    for i in 0..5000u32 {
        map.insert(i.wrapping_mul(2_654_435_761), i.to_string());
    }
    for i in (0..5000u32).step_by(2) {
        ensure!(
            map.remove(&i.wrapping_mul(2_654_435_761)) == Some(i.to_string()),
            "BTreeMap lost key {i}"
        );
    }
    ensure!(map.len() == 2500, "BTreeMap has {} entries", map.len());
    ensure!(
        map.values()
            .all(|v| v.parse::<u32>().is_ok_and(|n| n % 2 == 1)),
        "BTreeMap values wrong"
    );

    let nested: Vec<Vec<u8>> = (0..300).map(|i| alloc::vec![i as u8; i * 37]).collect();
    ensure!(
        nested
            .iter()
            .enumerate()
            .all(|(i, v)| v.len() == i * 37 && v.iter().all(|&b| b == i as u8)),
        "Vec<Vec<u8>> contents wrong"
    );

    let peak = HEAP.stats();
    drop((boxed, numbers, text, map, nested));
    let after = HEAP.stats().live_blocks;
    ensure!(
        balance() == balance_before,
        "CPU {}: {} blocks allocated and not freed",
        cpu.index,
        balance() - balance_before
    );
    // Other CPUs allocate from the same heap meanwhile.
    ensure!(
        !ctx.alone() || after == before,
        "{after} live blocks after dropping everything, {before} before"
    );
    Ok(alloc::format!(
        "Box, Vec (200k), String (49 kB), BTreeMap (5000), Vec<Vec<u8>>; peak {} live blocks, {} KiB mapped",
        peak.live_blocks,
        peak.mapped_bytes / 1024
    ))
}
