//! The in-kernel benchmark: one workload on ft_malloc and on
//! `linked_list_allocator`, each over its own demand-paged window, timed in
//! TSC cycles (`rdtsc`), with the page faults each one caused.
//!
//! The workload is a seeded sequence of allocations and frees over a fixed
//! number of slots (a slot is freed if full, filled if empty), with sizes
//! mostly TINY, some SMALL, a few LARGE; every page of each new block is
//! written once, as a program would. Both allocators see the same sequence.
//! Three rounds each, alternating: the first round pays the page faults, the
//! later ones run on memory already mapped (ft_malloc keeps its emptied
//! zones and caches LARGE runs until trimmed; linked_list_allocator's
//! region stays mapped).
//!
//! The runner starts QEMU with `-icount shift=0`, so a TSC tick is one
//! executed instruction (see `tsc`): the numbers are instruction counts,
//! identical from run to run, page-fault handling included (and also shown
//! apart). They compare the two allocators' work, not a real CPU's cycles.

use core::alloc::Layout;
use core::ptr::NonNull;

use ft_malloc::{Heap, PageProvider};

use crate::demand_paging::{BENCH_CORE, BENCH_LLA, Window};
use crate::heap_provider::DemandPagedProvider;
use crate::layout::PAGE_SIZE;
use crate::{println, tsc};

/// Allocations plus frees per round.
const OPERATIONS: usize = 40_000;
/// Live-block slots.
const SLOTS: usize = 1024;
/// Rounds per allocator.
const ROUNDS: usize = 3;
/// The sequence's seed.
const SEED: u64 = 0x5eed_f73a_110c;

static CORE_HEAP: Heap<DemandPagedProvider> = Heap::new(DemandPagedProvider::new(&BENCH_CORE));

/// A request size: 70% TINY (8..=128), 24% SMALL up to 4 KiB, 5% SMALL up
/// to 32 KiB, 1% LARGE up to 256 KiB.
fn size_for(random: u64) -> usize {
    let pick = random % 100;
    let r = (random >> 8) as usize;
    match pick {
        0..70 => 8 + r % 121,
        70..94 => 129 + r % (4096 - 128),
        94..99 => 4097 + r % (32_768 - 4096),
        _ => 32_769 + r % (256 * 1024 - 32_768),
    }
}

/// xorshift64*: small, seeded, the same on every run (also `bench_smp`'s).
pub(crate) struct Random(pub(crate) u64);

impl Random {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The two allocators behind one interface.
trait Allocator {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    /// # Safety
    /// `ptr` came from `allocate(layout)` and is freed once.
    unsafe fn free(&mut self, ptr: NonNull<u8>, layout: Layout);
}

struct Core;

impl Allocator for Core {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        CORE_HEAP.allocate(layout)
    }
    unsafe fn free(&mut self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { CORE_HEAP.deallocate(ptr) }.expect("valid free");
    }
}

impl Allocator for linked_list_allocator::Heap {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.allocate_first_fit(layout).ok()
    }
    unsafe fn free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { self.deallocate(ptr, layout) }
    }
}

/// What one round measured.
struct Round {
    ticks: u64,
    faults: u64,
    fault_ticks: u64,
    provider_calls: u64,
    provider_ticks: u64,
    failed: usize,
    resident_pages: usize,
}

/// Runs the workload once on `allocator`, whose memory lives in `window`
/// and comes from `provider` (`None`: a fixed region, no provider calls).
fn round(
    allocator: &mut impl Allocator,
    window: &Window,
    provider: Option<&DemandPagedProvider>,
) -> Round {
    let provider_before = provider.map_or((0, 0), DemandPagedProvider::call_ticks);
    let mut slots: [Option<(NonNull<u8>, Layout)>; SLOTS] = [None; SLOTS];
    let mut random = Random(SEED);
    let mut failed = 0;
    let (faults_before, fault_ticks_before) = (window.faults(), window.fault_ticks());
    let start = tsc::ticks();
    for _ in 0..OPERATIONS {
        let r = random.next();
        let slot = &mut slots[(r % SLOTS as u64) as usize];
        match slot.take() {
            // SAFETY: allocated below with this layout, freed once.
            Some((ptr, layout)) => unsafe { allocator.free(ptr, layout) },
            None => {
                let layout =
                    Layout::from_size_align(size_for(random.next()), 16).expect("valid layout");
                match allocator.allocate(layout) {
                    Some(ptr) => {
                        for offset in (0..layout.size()).step_by(PAGE_SIZE as usize) {
                            // SAFETY: inside the block.
                            unsafe { ptr.as_ptr().add(offset).write_volatile(offset as u8) };
                        }
                        *slot = Some((ptr, layout));
                    }
                    None => failed += 1,
                }
            }
        }
    }
    let resident_pages = window.resident_pages();
    for (ptr, layout) in slots.iter_mut().filter_map(Option::take) {
        // SAFETY: live blocks, freed once.
        unsafe { allocator.free(ptr, layout) };
    }
    let ticks = tsc::ticks() - start;
    let provider_after = provider.map_or((0, 0), DemandPagedProvider::call_ticks);
    Round {
        ticks,
        faults: window.faults() - faults_before,
        fault_ticks: window.fault_ticks() - fault_ticks_before,
        provider_calls: provider_after.0 - provider_before.0,
        provider_ticks: provider_after.1 - provider_before.1,
        failed,
        resident_pages,
    }
}

fn report(round_number: usize, name: &str, r: &Round) {
    println!(
        "bench: round {round_number}  {name:<22} {:>10} ticks: {:>8} in {:>4} page faults, {:>8} in {:>4} map/unmap/resize; {:>5} KiB resident at the end; {} failed",
        r.ticks,
        r.fault_ticks,
        r.faults,
        r.provider_ticks,
        r.provider_calls,
        r.resident_pages * PAGE_SIZE as usize / 1024,
        r.failed
    );
}

/// Runs the benchmark; false if an allocator failed a request.
pub fn run() -> bool {
    println!(
        "bench: {OPERATIONS} operations over {SLOTS} slots per round, seed {SEED:#x}; sizes 70% 8-128 B, 24% -4 KiB, 5% -32 KiB, 1% -256 KiB; every page of a new block written once"
    );
    println!(
        "bench: TSC ticks (= instructions under the runner's -icount shift=0), page-fault handling included"
    );
    // linked_list_allocator manages one fixed region: the whole window,
    // reserved (and committed) up front, mapped page by page on first touch.
    let lla_provider = DemandPagedProvider::new(&BENCH_LLA);
    let region_len = BENCH_LLA.layout.len as usize;
    let Some(region) = lla_provider.map(region_len, PAGE_SIZE as usize) else {
        println!("bench: cannot reserve linked_list_allocator's region");
        return false;
    };
    let mut lla = linked_list_allocator::Heap::empty();
    // SAFETY: the region is ours alone until it is unmapped below.
    unsafe { lla.init(region.as_ptr(), region_len) };

    let mut ok = true;
    let mut totals = [(0u64, 0u64); 2];
    for n in 1..=ROUNDS {
        let rounds = [
            round(&mut Core, &BENCH_CORE, Some(CORE_HEAP.provider())),
            round(&mut lla, &BENCH_LLA, None),
        ];
        for ((name, r), total) in ["ft_malloc", "linked_list_allocator"]
            .iter()
            .zip(&rounds)
            .zip(&mut totals)
        {
            report(n, name, r);
            ok &= r.failed == 0;
            *total = (total.0 + r.ticks, total.1 + r.faults);
        }
    }
    let [(core_ticks, core_faults), (lla_ticks, lla_faults)] = totals;
    println!(
        "bench: total  ft_malloc {core_ticks} ticks, {core_faults} faults; linked_list_allocator {lla_ticks} ticks, {lla_faults} faults; ft_malloc/linked_list_allocator = {}.{:02}",
        core_ticks / lla_ticks.max(1),
        core_ticks * 100 / lla_ticks.max(1) % 100
    );

    CORE_HEAP.trim();
    // SAFETY: linked_list_allocator is done with its region.
    unsafe { lla_provider.unmap(region, region_len) };
    ok
}
