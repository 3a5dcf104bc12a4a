//! The per-CPU area: what each CPU keeps of its own, found through GS.
//!
//! CPU `i` owns `CPUS[i]`. At start-up it writes the area's address into its
//! GS base (the `IA32_GS_BASE` MSR) and into the area's first word, so
//! `gs:[0]` is the area's address: [`this_cpu`] is one load, valid with
//! interrupts on or off (every CPU's GS points at its own area for good; the
//! kernel never runs user code, so nothing swaps GS).
//!
//! Fields are atomics: the owner writes them, and other CPUs (the bootstrap
//! CPU waiting for an AP to report in, a test reading counts) read them.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ft_malloc::FrontCache;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

use crate::layout::MAX_CPUS;

/// One CPU's area. The first field must stay at offset 0 (`gs:[0]`).
#[repr(C, align(64))]
pub struct PerCpu {
    /// The area's own address, read through `gs:[0]`.
    self_address: AtomicU64,
    /// Index in [`CPUS`]: 0 for the bootstrap CPU, then in start order.
    pub index: usize,
    /// The CPU's local APIC id (what an IPI is addressed to).
    pub apic_id: AtomicU32,
    /// Set by the CPU itself once it runs Rust on its own stack, GDT, TSS,
    /// IDT and GS base, with its local APIC enabled.
    pub online: AtomicBool,
    /// Set while this CPU's page-fault handler runs: a fault inside it would
    /// reuse this CPU's IST stack and destroy the frame being handled.
    pub in_page_fault: AtomicBool,
    /// Page faults this CPU resolved by mapping a frame.
    pub faults_mapped: AtomicU64,
    /// Page faults this CPU found already resolved by another CPU that
    /// faulted on the same page (no frame taken).
    pub faults_raced: AtomicU64,
    /// The last TLB shootdown this CPU carried out (`smp::shootdown`).
    pub shootdown_acked: AtomicU64,
    /// Shootdown requests this CPU carried out.
    pub shootdowns_received: AtomicU64,
    /// The kernel heap's front cache for this CPU (`cpu_caches`): used only
    /// by this CPU, with its interrupts off.
    pub cache: UnsafeCell<FrontCache>,
    /// Blocks this CPU allocated from the kernel heap (`#[global_allocator]`).
    pub allocations: AtomicU64,
    /// Blocks this CPU freed to the kernel heap.
    pub frees: AtomicU64,
    /// APIC timer interrupts taken.
    pub timer_ticks: AtomicU64,
    /// Blocks the timer handler allocated, checked and freed.
    pub timer_allocations: AtomicU64,
    /// Allocations the timer handler was refused (memory exhausted).
    pub timer_refused: AtomicU64,
    /// Blocks the timer handler found altered before freeing them.
    pub timer_corrupted: AtomicU64,
    /// The last job (`smp::jobs`) this CPU finished, and its verdict.
    pub job_done: AtomicU64,
    pub job_ok: AtomicBool,
}

// SAFETY: every field but `cache` is atomic; `cache` is touched only by the
// CPU that owns the area, with its interrupts off (`cpu_caches`), so no two
// contexts ever use it at once.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new(index: usize) -> Self {
        PerCpu {
            self_address: AtomicU64::new(0),
            index,
            apic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            in_page_fault: AtomicBool::new(false),
            faults_mapped: AtomicU64::new(0),
            faults_raced: AtomicU64::new(0),
            shootdown_acked: AtomicU64::new(0),
            shootdowns_received: AtomicU64::new(0),
            cache: UnsafeCell::new(FrontCache::new()),
            allocations: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            timer_ticks: AtomicU64::new(0),
            timer_allocations: AtomicU64::new(0),
            timer_refused: AtomicU64::new(0),
            timer_corrupted: AtomicU64::new(0),
            job_done: AtomicU64::new(0),
            job_ok: AtomicBool::new(false),
        }
    }
}

/// Every CPU's area, indexed by CPU number.
pub static CPUS: [PerCpu; MAX_CPUS] = {
    let mut cpus = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        cpus[i] = PerCpu::new(i);
        i += 1;
    }
    cpus
};

/// Points this CPU's GS base at `CPUS[cpu]`. Each CPU calls it first thing,
/// with its own index.
pub fn install(cpu: usize) {
    let area = &CPUS[cpu];
    let address = area as *const PerCpu as u64;
    area.self_address.store(address, Ordering::Release);
    GsBase::write(VirtAddr::new(address));
}

/// This CPU's area, or `None` before [`install`] ran on it (GS base still 0).
pub fn try_this_cpu() -> Option<&'static PerCpu> {
    let address: u64;
    // SAFETY: reads one word at gs:[0]. Before `install`, GS base is 0 and
    // this reads physical address 0, inside the identity map; after it, the
    // area's first word. Either way the value is only used if it names an
    // area of CPUS.
    unsafe {
        asm!("mov {}, gs:[0]", out(reg) address, options(nostack, readonly, preserves_flags))
    };
    let first = CPUS.as_ptr() as u64;
    let offset = address.wrapping_sub(first);
    let size = size_of::<PerCpu>() as u64;
    (offset < size * MAX_CPUS as u64 && offset.is_multiple_of(size))
        .then(|| &CPUS[(offset / size) as usize])
}

/// This CPU's area.
///
/// # Panics
///
/// If the CPU has not called [`install`] yet (a start-up ordering bug).
pub fn this_cpu() -> &'static PerCpu {
    try_this_cpu().expect("per-CPU area used before its GS base was set")
}

/// This CPU's index (0 before [`install`], which only the bootstrap CPU can
/// be in).
pub fn cpu_index() -> usize {
    try_this_cpu().map_or(0, |cpu| cpu.index)
}
