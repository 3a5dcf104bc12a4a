//! Symmetric multiprocessing: finding the other CPUs, starting them, and
//! what each CPU keeps of its own.
//!
//! # Start-up protocol
//!
//! 1. The bootstrap CPU (BSP, CPU 0) points its GS base at its per-CPU area
//!    first thing ([`percpu`]), then loads its GDT/TSS and the IDT.
//! 2. Once the frame pool exists, [`start_other_cpus`] reads the CPUs'
//!    APIC ids from the ACPI MADT ([`madt`]), maps the local APIC's
//!    registers and enables the BSP's APIC ([`lapic`]).
//! 3. For each other CPU (AP), one at a time: the BSP maps the AP's kernel
//!    stack, copies the real-mode trampoline to its low page and writes the
//!    AP's parameters ([`trampoline`]), then sends INIT, waits, and sends a
//!    SIPI (a second one if the AP has not reported in after a while).
//! 4. The AP runs the trampoline into long mode, then [`ap_entry`]: GS base,
//!    its own GDT/TSS, the shared IDT, its local APIC; it checks its APIC id
//!    and sets its `online` flag (Release), which the BSP waits for
//!    (Acquire) before reusing the trampoline page for the next AP.
//!
//! 5. Online, the AP serves the BSP's jobs ([`jobs`]).
//!
//! An AP that does not report in within [`START_TIMEOUT_TICKS`] fails the
//! boot: a broken AP start-up must never pass as a machine with fewer CPUs.

pub mod jobs;
pub mod lapic;
mod madt;
pub mod percpu;
pub mod shootdown;
mod trampoline;

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::layout::MAX_CPUS;
use crate::{faults, gdt, kernel_stack, println, tsc};
use percpu::CPUS;

// Delays in TSC ticks: one per instruction under icount, the host's TSC
// rate without it (2.4 GHz on this project's machine); sized so that each
// is at least what it says up to 2.5 GHz.

/// Wait after INIT before the SIPI (the MP specification's 10 ms).
const INIT_DELAY_TICKS: u64 = 25_000_000;
/// Wait for an AP to report in before sending the second SIPI (the
/// specification's 200 µs, rounded up: a SIPI to a running AP is ignored).
const SIPI_RETRY_TICKS: u64 = 2_500_000;
/// How long an AP may take to reach Rust. TCG on a busy host may not run an
/// AP's thread for a long while, so this is generous (about 20 s).
const START_TIMEOUT_TICKS: u64 = 50_000_000_000;

/// CPUs online, the BSP included.
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// How many CPUs are online.
pub fn online_cpus() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// The BSP's first step: its GS base, GDT/TSS and IDT.
pub fn init_bootstrap_cpu() {
    percpu::install(0);
    gdt::init(0);
    faults::init();
}

/// Spins for about `ticks` TSC ticks.
fn delay(ticks: u64) {
    let start = tsc::ticks();
    while tsc::ticks().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Waits up to `ticks` for CPU `cpu` to report in.
fn wait_online(cpu: usize, ticks: u64) -> bool {
    let start = tsc::ticks();
    while !CPUS[cpu].online.load(Ordering::Acquire) {
        if tsc::ticks().wrapping_sub(start) > ticks {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Why the other CPUs could not all be started.
pub enum StartError {
    /// No ACPI tables or no MADT.
    NoMadt(acpi::AcpiError),
    /// The AP with this APIC id never reported in.
    NoResponse {
        /// Its CPU index.
        cpu: usize,
        /// Its local APIC id.
        apic_id: u32,
    },
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::NoMadt(error) => write!(f, "no ACPI MADT ({error:?})"),
            StartError::NoResponse { cpu, apic_id } => write!(
                f,
                "CPU {cpu} (APIC id {apic_id}) did not report in after INIT-SIPI-SIPI"
            ),
        }
    }
}

/// Starts every CPU the MADT lists (up to [`MAX_CPUS`]). Runs on the BSP,
/// once, after the frame pool exists. Returns the number of CPUs online.
pub fn start_other_cpus(rsdp: Option<u64>) -> Result<usize, StartError> {
    let cpus = madt::cpus(rsdp).map_err(|madt::NoMadt(error)| StartError::NoMadt(error))?;
    let base = lapic::map_registers();
    lapic::enable();
    lapic::start_timer(crate::interrupts::TIMER_VECTOR);
    let bsp_id = lapic::id();
    CPUS[0].apic_id.store(bsp_id, Ordering::Release);
    CPUS[0].online.store(true, Ordering::Release);
    println!(
        "smp: MADT lists {} CPU(s) (APIC ids {:?}{}), local APIC at {base:#x}, BSP APIC id {bsp_id}",
        cpus.apic_ids().len() + cpus.ignored,
        cpus.apic_ids(),
        if cpus.ignored > 0 {
            ", beyond MAX_CPUS: not started"
        } else {
            ""
        },
    );
    let others = cpus.apic_ids().iter().filter(|&&id| id != bsp_id);
    for (cpu, &apic_id) in (1..MAX_CPUS).zip(others) {
        let stack_top = kernel_stack::map_stack(cpu);
        CPUS[cpu].apic_id.store(apic_id, Ordering::Release);
        // SAFETY: the previous AP reported in (or there was none), so the
        // trampoline page is free; the stack was just mapped for this CPU.
        unsafe { trampoline::prepare(cpu, stack_top, ap_entry) };
        lapic::send_init(apic_id);
        delay(INIT_DELAY_TICKS);
        lapic::send_startup(apic_id, trampoline::STARTUP_VECTOR);
        if !wait_online(cpu, SIPI_RETRY_TICKS) {
            lapic::send_startup(apic_id, trampoline::STARTUP_VECTOR);
            if !wait_online(cpu, START_TIMEOUT_TICKS) {
                return Err(StartError::NoResponse { cpu, apic_id });
            }
        }
        ONLINE.fetch_add(1, Ordering::AcqRel);
    }
    Ok(online_cpus())
}

/// Where an AP arrives from the trampoline, in long mode on its own stack,
/// interrupts off.
extern "sysv64" fn ap_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    percpu::install(cpu);
    // Translations of earlier shootdowns were never in this CPU's TLB.
    CPUS[cpu]
        .shootdown_acked
        .store(shootdown::current_generation(), Ordering::Release);
    gdt::init(cpu);
    faults::init();
    lapic::enable();
    lapic::start_timer(crate::interrupts::TIMER_VECTOR);
    let this = &CPUS[cpu];
    let (expected, found) = (this.apic_id.load(Ordering::Acquire), lapic::id());
    assert!(
        expected == found,
        "CPU {cpu} was started as APIC id {expected} but its APIC says {found}"
    );
    println!("smp: CPU {cpu} (APIC id {found}) online: own stack, GDT/TSS, IDT, GS base, APIC");
    this.online.store(true, Ordering::Release);
    jobs::serve_jobs()
}
