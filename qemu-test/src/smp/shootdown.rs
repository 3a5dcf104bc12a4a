//! TLB shootdown: before a frame that left a mapping is reused, every other
//! CPU drops the old translation.
//!
//! # Protocol
//!
//! The initiator (a CPU unmapping pages, holding the page-table lock) takes
//! [`REQUEST_LOCK`], publishes the range and a new generation number
//! (Release), sends one IPI to each other online CPU, and waits until each
//! has acknowledged that generation (its `shootdown_acked`, Acquire). A
//! target's handler reads the range, invalidates it (`invlpg` per page, or
//! a CR3 reload for a long range) and acknowledges. Only then do the
//! frames go back to the pool (`paging::RetiredFrames`).
//!
//! The IPI is an **NMI**. The heap's locks are `IrqSpinLock`s, which spin
//! with interrupts off: a CPU waiting for the lock the initiator holds
//! would never take a maskable IPI, and the initiator would wait for its
//! acknowledgement forever. An NMI gets through `cli`, through `hlt`, and
//! through a lock spin, so the wait always ends (liveness). The handler
//! takes no lock and touches only the request and its own per-CPU area.
//! Two initiators are ordered by `REQUEST_LOCK`; one spinning for it still
//! acknowledges the other's NMI.
//!
//! `no-shootdown` on the kernel command line turns the IPIs off during the
//! shootdown test (the local flush stays), to show that the test then fails.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ft_malloc::IrqSpinLock;
use lock_api::Mutex;
use x86_64::VirtAddr;
use x86_64::structures::paging::page::PageRange;

use super::percpu::{CPUS, this_cpu};
use super::{lapic, online_cpus};

/// Above this many pages, a target reloads CR3 (dropping every non-global
/// translation) instead of invalidating page by page.
const FULL_FLUSH_PAGES: u64 = 32;
/// How long an initiator waits for an acknowledgement before declaring the
/// target dead: the watchdog's bound.
const ACK_TIMEOUT_TICKS: u64 = crate::smp::jobs::WATCHDOG_TICKS;

/// Serializes initiators.
static REQUEST_LOCK: Mutex<IrqSpinLock, ()> = Mutex::new(());
/// The current request: first page address, page count, generation.
static REQUEST_START: AtomicU64 = AtomicU64::new(0);
static REQUEST_PAGES: AtomicU64 = AtomicU64::new(0);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Whether shootdowns are sent (cleared during the shootdown test under
/// `no-shootdown`).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Shootdowns started (one per retired batch, whatever the CPU count).
static SHOOTDOWNS: AtomicU64 = AtomicU64::new(0);
/// IPIs sent (one per other CPU per shootdown).
static IPIS: AtomicU64 = AtomicU64::new(0);
/// Pages covered by those shootdowns.
static PAGES: AtomicU64 = AtomicU64::new(0);

/// Whether `no-shootdown` asked for the shootdown test to run without IPIs.
static OFF_IN_TEST: AtomicBool = AtomicBool::new(false);

/// `no-shootdown`: the shootdown test runs with the IPIs off. Only that test:
/// stale translations anywhere else would corrupt the heap at a random
/// moment, and the run would fail somewhere else than where it must.
pub fn turn_off_in_test() {
    OFF_IN_TEST.store(true, Ordering::Release);
}

/// Whether the shootdown test is to run without IPIs.
pub fn off_in_test() -> bool {
    OFF_IN_TEST.load(Ordering::Acquire)
}

/// Turns the shootdown IPIs off or on again (around the shootdown test).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Release);
}

/// Whether shootdowns are on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Counters: (shootdowns, IPIs sent, pages covered).
pub fn counts() -> (u64, u64, u64) {
    (
        SHOOTDOWNS.load(Ordering::Acquire),
        IPIS.load(Ordering::Acquire),
        PAGES.load(Ordering::Acquire),
    )
}

/// The generation an AP starts at (it holds no translation of older ones).
pub fn current_generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Makes every other online CPU drop its translations of `pages`, and
/// returns once all have acknowledged. The caller flushed its own TLB.
pub fn shoot_down(pages: PageRange) {
    let cpus = online_cpus();
    if pages.is_empty() || cpus == 1 || !enabled() {
        return;
    }
    let me = this_cpu().index;
    let _guard = REQUEST_LOCK.lock();
    let count = pages.end - pages.start;
    REQUEST_START.store(pages.start.start_address().as_u64(), Ordering::Relaxed);
    REQUEST_PAGES.store(count, Ordering::Relaxed);
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    SHOOTDOWNS.fetch_add(1, Ordering::Relaxed);
    PAGES.fetch_add(count, Ordering::Relaxed);
    let targets = CPUS[..cpus].iter().filter(|cpu| cpu.index != me);
    for cpu in targets.clone() {
        lapic::send_nmi(cpu.apic_id.load(Ordering::Acquire));
        IPIS.fetch_add(1, Ordering::Relaxed);
    }
    for cpu in targets {
        let start = crate::tsc::ticks();
        while cpu.shootdown_acked.load(Ordering::Acquire) < generation {
            assert!(
                crate::tsc::ticks().wrapping_sub(start) < ACK_TIMEOUT_TICKS,
                "CPU {} did not acknowledge TLB shootdown {generation}",
                cpu.index
            );
            core::hint::spin_loop();
        }
    }
}

/// The NMI handler's work: carry out the pending shootdown, if any.
/// Returns false for an NMI that was no shootdown.
pub fn handle_nmi() -> bool {
    let this = this_cpu();
    let generation = GENERATION.load(Ordering::Acquire);
    if generation <= this.shootdown_acked.load(Ordering::Relaxed) {
        return false;
    }
    let start = REQUEST_START.load(Ordering::Relaxed);
    let pages = REQUEST_PAGES.load(Ordering::Relaxed);
    if pages > FULL_FLUSH_PAGES {
        x86_64::instructions::tlb::flush_all();
    } else {
        for i in 0..pages {
            x86_64::instructions::tlb::flush(VirtAddr::new(start + i * 4096));
        }
    }
    this.shootdowns_received.fetch_add(1, Ordering::Relaxed);
    this.shootdown_acked.store(generation, Ordering::Release);
    true
}
