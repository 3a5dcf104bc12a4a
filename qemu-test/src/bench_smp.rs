//! The SMP benchmark (`bench-smp` on the command line, with `QEMU_SMP=N`):
//! 1, 2, 4 … CPUs allocating at once from one allocator, for
//!
//! - ft_malloc with a front cache per CPU (the kernel heap's setup),
//! - ft_malloc without them (every operation takes a class lock),
//! - linked_list_allocator behind one spin lock,
//! - talc behind one spin lock (its `TalcLock`).
//!
//! Every lock is a [`CountingLock`]: the `IrqSpinLock` counting, per CPU,
//! its acquisitions and those that found it taken (contended). Each CPU
//! runs the same kind of seeded sequence of allocations and frees (mostly
//! TINY, some SMALL; the first byte of each block written), its own seed.
//! CPUs not in a round, and those done with it, wait in `hlt`, so they
//! execute nothing: under `QEMU_ICOUNT=on` (one instruction = one TSC tick,
//! QEMU running the CPUs in turns) the ticks from start to the last
//! finisher are the instructions the allocating CPUs executed, spinning on
//! a taken lock included (QEMU's round-robin runs a CPU for long slices, so
//! the locks are rarely contended there). Wall-clock rates and real
//! contention come from `QEMU_ICOUNT=off` (multi-threaded TCG, one host
//! thread per CPU), the TSC calibrated against the local APIC's
//! nanosecond clock.
//!
//! Each configuration runs twice; the second (memory already faulted in)
//! is reported.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use ft_malloc::{FrontCache, Heap, IrqSpinLock, PageProvider};
use lock_api::{GuardNoSend, Mutex, RawMutex};
use x86_64::instructions::interrupts;

use crate::bench::Random;
use crate::demand_paging::{BENCH_SMP_CORE, BENCH_SMP_PEERS};
use crate::heap_provider::DemandPagedProvider;
use crate::interrupts::{TIMER_VECTOR, WAKE_VECTOR};
use crate::layout::{MAX_CPUS, PAGE_SIZE};
use crate::smp::jobs::{Barrier, run_on_all_cpus_quietly};
use crate::smp::lapic;
use crate::smp::online_cpus;
use crate::smp::percpu::{CPUS, this_cpu};
use crate::{println, tsc};

/// Allocations plus frees per CPU per round.
const OPERATIONS: usize = 20_000;
/// Live-block slots per CPU.
const SLOTS: usize = 256;
/// The peers' regions (each half of their window).
const PEER_REGION: usize = 16 << 20;

/// Lock acquisitions per CPU (by [`CountingLock`]).
static ACQUIRED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Acquisitions that found the lock taken.
static CONTENDED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The kernel's `IrqSpinLock`, counting acquisitions and contention.
pub struct CountingLock(IrqSpinLock);

// SAFETY: delegates every operation to `IrqSpinLock`, a RawMutex; the
// counting has no effect on the locking.
unsafe impl RawMutex for CountingLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = CountingLock(IrqSpinLock::INIT);
    type GuardMarker = GuardNoSend;

    fn lock(&self) {
        let cpu = this_cpu().index;
        if !self.0.try_lock() {
            CONTENDED[cpu].fetch_add(1, Ordering::Relaxed);
            self.0.lock();
        }
        ACQUIRED[cpu].fetch_add(1, Ordering::Relaxed);
    }

    fn try_lock(&self) -> bool {
        let locked = self.0.try_lock();
        if locked {
            ACQUIRED[this_cpu().index].fetch_add(1, Ordering::Relaxed);
        }
        locked
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (RawMutex contract).
        unsafe { self.0.unlock() }
    }
}

static CORE: Heap<DemandPagedProvider, CountingLock> =
    Heap::new(DemandPagedProvider::new(&BENCH_SMP_CORE));
static PEERS_PROVIDER: DemandPagedProvider = DemandPagedProvider::new(&BENCH_SMP_PEERS);
static LLA: Mutex<CountingLock, linked_list_allocator::Heap> =
    Mutex::new(linked_list_allocator::Heap::empty());
static TALC: talc::TalcLock<CountingLock, talc::source::Manual> =
    talc::TalcLock::new(talc::source::Manual);

/// The allocators measured.
#[derive(Clone, Copy)]
enum Subject {
    CoreCached,
    Core,
    LinkedList,
    Talc,
}

const SUBJECTS: [(Subject, &str); 4] = [
    (Subject::CoreCached, "ft_malloc + per-CPU caches"),
    (Subject::Core, "ft_malloc, no caches"),
    (Subject::LinkedList, "linked_list_allocator + lock"),
    (Subject::Talc, "talc + lock"),
];

/// The round being run: subject index, CPUs allocating.
static SUBJECT: AtomicUsize = AtomicUsize::new(0);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static START: Barrier = Barrier::new();
static START_TICKS: AtomicU64 = AtomicU64::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);
static ROUND_DONE: AtomicBool = AtomicBool::new(false);
static END_TICKS: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// 80% TINY (8..=128), 20% SMALL up to 4 KiB.
fn size_for(random: u64) -> usize {
    let r = (random >> 8) as usize;
    if random % 100 < 80 {
        8 + r % 121
    } else {
        129 + r % (4096 - 128)
    }
}

fn allocate(subject: Subject, cache: &mut FrontCache, layout: Layout) -> Option<NonNull<u8>> {
    match subject {
        Subject::CoreCached => cache.allocate(&CORE, layout),
        Subject::Core => CORE.allocate(layout),
        Subject::LinkedList => LLA.lock().allocate_first_fit(layout).ok(),
        // SAFETY: a non-zero size.
        Subject::Talc => NonNull::new(unsafe { TALC.alloc(layout) }),
    }
}

/// # Safety
///
/// `block` came from `allocate(subject, cache, layout)` and is freed once.
unsafe fn free(subject: Subject, cache: &mut FrontCache, block: NonNull<u8>, layout: Layout) {
    // SAFETY: the caller's contract, for each allocator.
    unsafe {
        match subject {
            Subject::CoreCached => cache.deallocate(&CORE, block).expect("valid free"),
            Subject::Core => CORE.deallocate(block).expect("valid free"),
            Subject::LinkedList => LLA.lock().deallocate(block, layout),
            Subject::Talc => TALC.dealloc(block.as_ptr(), layout),
        }
    }
}

/// Waits in `hlt` (interrupts on only inside it) until the round is over.
fn idle_until_round_done() {
    while !ROUND_DONE.load(Ordering::Acquire) {
        interrupts::enable_and_hlt();
        interrupts::disable();
    }
}

/// One CPU's part of a round.
fn round_job(cpu: usize) -> bool {
    let active = ACTIVE.load(Ordering::Acquire);
    let subject = SUBJECTS[SUBJECT.load(Ordering::Acquire)].0;
    // No timer tick during the round (it would allocate, and wake the
    // idle CPUs): the timer becomes a masked clock.
    lapic::start_clock();
    START.wait("bench-smp: start");
    if cpu >= active {
        idle_until_round_done();
        lapic::start_timer(TIMER_VECTOR);
        return true;
    }
    // The round starts when its first CPU does (under icount QEMU may run
    // another CPU before CPU 0).
    START_TICKS.fetch_min(tsc::ticks(), Ordering::AcqRel);
    let mut cache = FrontCache::new();
    let mut slots: [Option<(NonNull<u8>, Layout)>; SLOTS] = [None; SLOTS];
    let mut random = Random(0x5eed_5eed ^ (cpu as u64 + 1) << 32);
    let mut failed = 0;
    for _ in 0..OPERATIONS {
        let r = random.next();
        let slot = &mut slots[(r as usize >> 3) % SLOTS];
        match slot.take() {
            // SAFETY: allocated below by this CPU with this layout.
            Some((block, layout)) => unsafe { free(subject, &mut cache, block, layout) },
            None => {
                let layout = Layout::from_size_align(size_for(r), 16).expect("valid layout");
                match allocate(subject, &mut cache, layout) {
                    Some(block) => {
                        // SAFETY: a fresh block of at least one byte.
                        unsafe { block.as_ptr().write_volatile(r as u8) };
                        *slot = Some((block, layout));
                    }
                    None => failed += 1,
                }
            }
        }
    }
    if FINISHED.fetch_add(1, Ordering::AcqRel) + 1 == active {
        // The last one: the round's end.
        END_TICKS.store(tsc::ticks(), Ordering::Release);
        ROUND_DONE.store(true, Ordering::Release);
        let me = this_cpu().index;
        for other in CPUS[..online_cpus()].iter().filter(|c| c.index != me) {
            lapic::send_fixed(other.apic_id.load(Ordering::Acquire), WAKE_VECTOR);
        }
    } else {
        idle_until_round_done();
    }
    // Untimed: the blocks go back, the cache too.
    for (block, layout) in slots.iter_mut().filter_map(Option::take) {
        // SAFETY: as above.
        unsafe { free(subject, &mut cache, block, layout) };
    }
    cache.flush(&CORE);
    FAILED.fetch_add(failed, Ordering::AcqRel);
    lapic::start_timer(TIMER_VECTOR);
    failed == 0
}

/// What one round measured.
struct Measured {
    ticks: u64,
    acquired: u64,
    contended: u64,
}

fn sum(counters: &[AtomicU64]) -> u64 {
    counters.iter().map(|c| c.load(Ordering::Acquire)).sum()
}

fn measure(subject: usize, active: usize) -> Option<Measured> {
    SUBJECT.store(subject, Ordering::Release);
    ACTIVE.store(active, Ordering::Release);
    FINISHED.store(0, Ordering::Release);
    START_TICKS.store(u64::MAX, Ordering::Release);
    ROUND_DONE.store(false, Ordering::Release);
    let (acquired, contended) = (sum(&ACQUIRED), sum(&CONTENDED));
    if !run_on_all_cpus_quietly(round_job) {
        return None;
    }
    Some(Measured {
        ticks: END_TICKS.load(Ordering::Acquire) - START_TICKS.load(Ordering::Acquire),
        acquired: sum(&ACQUIRED) - acquired,
        contended: sum(&CONTENDED) - contended,
    })
}

/// How long the TSC is calibrated against the APIC's nanosecond clock.
const CALIBRATION_NS: u64 = 20_000_000;

/// TSC ticks per microsecond, measured against the local APIC's clock (the
/// TSC is the same on every CPU; the APIC clock is per CPU). Under icount
/// both follow the instruction count: 1000.
fn tsc_ticks_per_us() -> u64 {
    lapic::start_clock();
    let (ticks, ns) = (tsc::ticks(), lapic::clock_ns());
    while lapic::clock_ns() - ns < CALIBRATION_NS {
        core::hint::spin_loop();
    }
    let per_us = (tsc::ticks() - ticks) * 1000 / (lapic::clock_ns() - ns);
    lapic::start_timer(TIMER_VECTOR);
    per_us.max(1)
}

/// `value / ops` with two decimals, as text parts.
fn per_op(value: u64, ops: u64) -> (u64, u64) {
    (value / ops, value * 100 / ops % 100)
}

/// Runs the benchmark on every online CPU count in 1, 2, 4, …; false if an
/// allocator failed a request.
pub fn run() -> bool {
    let cpus = online_cpus();
    println!(
        "bench-smp: {OPERATIONS} operations per CPU over {SLOTS} slots, sizes 80% 8-128 B, 20% -4 KiB; {cpus} CPUs online; second of two rounds reported"
    );
    let Some(region) = PEERS_PROVIDER.map(2 * PEER_REGION, PAGE_SIZE as usize) else {
        println!("bench-smp: cannot reserve the peers' regions");
        return false;
    };
    // SAFETY: each peer gets its own half of the run, ours until unmapped
    // below (after which neither is used again).
    unsafe {
        LLA.lock().init(region.as_ptr(), PEER_REGION);
        if TALC
            .lock()
            .claim(region.as_ptr().add(PEER_REGION), PEER_REGION)
            .is_none()
        {
            println!("bench-smp: talc refused its region");
            return false;
        }
    }
    let ticks_per_us = tsc_ticks_per_us();
    println!(
        "bench-smp: TSC at {ticks_per_us} ticks per microsecond (1000 under icount, where a tick is an instruction; \
         ops/s are the guest's clock: wall time only without icount)"
    );
    let mut ok = true;
    for (index, (_, name)) in SUBJECTS.iter().enumerate() {
        let mut active = 1;
        while active <= cpus {
            let measured = measure(index, active).and_then(|_| measure(index, active));
            let Some(m) = measured else {
                println!("bench-smp: {name}: a request failed");
                ok = false;
                break;
            };
            let ops = (active * OPERATIONS) as u64;
            let (instr, instr_frac) = per_op(m.ticks, ops);
            let (acq, acq_frac) = per_op(m.acquired * 100, ops);
            let (cont, cont_frac) = per_op(m.contended * 100, ops);
            println!(
                "bench-smp: {name:<30} {active} CPU(s): {instr}.{instr_frac:02} ticks/op, {acq}.{acq_frac:02} lock acquisitions per 100 ops, {cont}.{cont_frac:02} contended per 100 ops, {} ops/s ({} us)",
                ops * 1_000_000 * ticks_per_us / m.ticks.max(1),
                m.ticks / ticks_per_us
            );
            active *= 2;
        }
    }
    CORE.trim();
    // SAFETY: the peers are done with their regions.
    unsafe { PEERS_PROVIDER.unmap(region, 2 * PEER_REGION) };
    ok && FAILED.load(Ordering::Acquire) == 0
}
