//! Work for every CPU at once: the BSP hands one job to all online CPUs,
//! runs it itself, and waits for the others, with a watchdog.
//!
//! # Protocol
//!
//! An AP that has reported in waits in [`serve_jobs`] for
//! [`JOB_GENERATION`] to pass the last job it ran (Acquire), reads the job,
//! runs it, stores its verdict, and publishes the generation it finished in
//! its per-CPU `job_done` (Release). A job runs with interrupts on (the
//! APIC timer's allocating handler ticks through it); between jobs they are
//! off, so the BSP's checks at those quiet points see no CPU allocating. [`run_on_all_cpus`] publishes the job,
//! then the generation (Release), and waits for every AP's `job_done`
//! (Acquire). Jobs run one at a time (only the BSP starts them), so the
//! job slot is never overwritten while an AP may still read it. A CPU that
//! does not finish within [`WATCHDOG_TICKS`] fails the run with its
//! number: a deadlock or a lost IPI is reported, not waited out.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;

use super::online_cpus;
use super::percpu::{CPUS, this_cpu};
use crate::exit::{ExitCode, exit_qemu};
use crate::interrupts::with_timer_ticking;
use crate::{println, tsc};

/// A job: runs on CPU `cpu` (its argument), returns whether it passed.
pub type Job = fn(usize) -> bool;

/// How long a job or a barrier may take on one CPU before the watchdog
/// fails the run, in TSC ticks: about 80 s at this machine's 2.4 GHz (a
/// 4-CPU test run takes 10-35 s in all), under the runner's 120 s default
/// timeout, so a hung CPU is named rather than the run just killed.
pub const WATCHDOG_TICKS: u64 = 200_000_000_000;

/// The job, and whether it runs with interrupts on.
static JOB: Mutex<Option<(Job, bool)>> = Mutex::new(None);
static JOB_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Where an AP spends its life once online: running the BSP's jobs.
pub fn serve_jobs() -> ! {
    let this = this_cpu();
    let mut done = 0;
    loop {
        let generation = loop {
            let generation = JOB_GENERATION.load(Ordering::Acquire);
            if generation > done {
                break generation;
            }
            core::hint::spin_loop();
        };
        let (job, ticking) = (*JOB.lock()).expect("a job was published with its generation");
        let ok = if ticking {
            with_timer_ticking(|| job(this.index))
        } else {
            job(this.index)
        };
        this.job_ok.store(ok, Ordering::Release);
        this.job_done.store(generation, Ordering::Release);
        done = generation;
    }
}

/// Runs `job` on every online CPU at once (this one, the BSP, included),
/// with interrupts on, and returns whether it passed on all of them.
pub fn run_on_all_cpus(job: Job) -> bool {
    run(job, true)
}

/// [`run_on_all_cpus`] with interrupts off (the benchmark: no tick in its
/// instruction counts).
pub fn run_on_all_cpus_quietly(job: Job) -> bool {
    run(job, false)
}

fn run(job: Job, ticking: bool) -> bool {
    *JOB.lock() = Some((job, ticking));
    let generation = JOB_GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    let me = this_cpu().index;
    let mut ok = if ticking {
        with_timer_ticking(|| job(me))
    } else {
        job(me)
    };
    for cpu in &CPUS[1..online_cpus()] {
        let start = tsc::ticks();
        while cpu.job_done.load(Ordering::Acquire) < generation {
            if tsc::ticks().wrapping_sub(start) > WATCHDOG_TICKS {
                println!(
                    "watchdog: CPU {} has not finished its job after {WATCHDOG_TICKS} ticks: hung",
                    cpu.index
                );
                exit_qemu(ExitCode::Failure);
            }
            core::hint::spin_loop();
        }
        ok &= cpu.job_ok.load(Ordering::Acquire);
    }
    ok
}

/// A reusable barrier for the CPUs running a job.
pub struct Barrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl Barrier {
    /// A barrier no CPU has reached.
    pub const fn new() -> Self {
        Barrier {
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Waits until every online CPU has called `wait` (once per round).
    ///
    /// # Panics
    ///
    /// If the others do not all arrive within [`WATCHDOG_TICKS`].
    pub fn wait(&self, what: &str) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == online_cpus() {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let start = tsc::ticks();
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                tsc::ticks().wrapping_sub(start) < WATCHDOG_TICKS,
                "watchdog: CPU {} waited too long at barrier {what:?}",
                this_cpu().index
            );
            core::hint::spin_loop();
        }
    }
}
