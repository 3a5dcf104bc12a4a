//! A small x86_64 kernel whose heap is ft_malloc, backed by demand paging.
//!
//! QEMU boots it through the PVH entry (`boot/`), it copies the boot memory
//! map (`memory_map`), builds a physical frame allocator from it (`frames`),
//! and installs exception handlers (`gdt`, `faults`). From then on its
//! `#[global_allocator]` is an [`ft_malloc::Heap`] whose page provider
//! (`heap_provider`) hands out *virtual* runs: the heap's first touch of each
//! page faults, and the page-fault handler maps a zeroed frame there
//! (`demand_paging`, `paging`) — the sequence `trace` prints step by step.
//! Frames are committed when a run is handed out (`frames`), so running out
//! of memory is an allocation returning `None`, never a fault that cannot
//! be served. The tests run on a guarded stack (`kernel_stack`); `layout`
//! holds the address-space plan and every size.
//!
//! On several CPUs (`QEMU_SMP=N`), `smp` finds them in the ACPI MADT,
//! starts them and gives each its per-CPU area; the `#[global_allocator]`
//! puts a front cache per CPU in front of the heap (`cpu_caches`); the page
//! tables take a lock and unmapped frames wait for a TLB shootdown
//! (`paging`, `smp::shootdown`); the APIC timer's handler allocates on every
//! tick (`interrupts`).
//!
//! The kernel command line (QEMU's `-append`) picks what runs: `tests`
//! (the kernel tests, `tests/`, on every CPU), `bench` (ft_malloc against
//! linked_list_allocator), `bench-kernel` (a small kernel's six everyday
//! workloads: the core with either lock, talc, linked_list_allocator,
//! `bench_kernel`), `bench-smp` (1, 2, 4 … CPUs allocating at once,
//! `bench_smp`), `trace`, `blog-heap` (a static empty heap given a 100 KiB
//! region later, as a blog_os-style kernel sets it up, `blog_heap`),
//! `no-shootdown` (TLB shootdown IPIs off,
//! to show that the shootdown test then fails), or a deliberate failure
//! `fail=...` (`deliberate`). No command line means `tests bench`. The result leaves
//! through the isa-debug-exit device (`exit`).
//!
//! Built for the host (as `cargo build --workspace` does), this crate is only
//! a notice: the kernel needs `--target x86_64-unknown-none`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod bench_kernel;
#[cfg(target_os = "none")]
mod bench_smp;
#[cfg(target_os = "none")]
mod bitmap;
#[cfg(target_os = "none")]
mod blog_heap;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cpu_caches;
#[cfg(target_os = "none")]
mod deliberate;
#[cfg(target_os = "none")]
mod demand_paging;
#[cfg(target_os = "none")]
mod exit;
#[cfg(target_os = "none")]
mod faults;
#[cfg(target_os = "none")]
mod frames;
#[cfg(target_os = "none")]
mod gdt;
#[cfg(target_os = "none")]
mod heap_provider;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
mod kernel_stack;
#[cfg(target_os = "none")]
mod layout;
#[cfg(target_os = "none")]
mod memory_map;
#[cfg(target_os = "none")]
mod paging;
#[cfg(target_os = "none")]
mod serial;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod tests;
#[cfg(target_os = "none")]
mod trace;
#[cfg(target_os = "none")]
mod tsc;

#[cfg(target_os = "none")]
pub use kernel::*;

#[cfg(target_os = "none")]
mod kernel {
    use ft_malloc::{Heap, IrqSpinLock};
    use spin::Once;

    use crate::cpu_caches::PerCpuCaches;
    use crate::demand_paging::KERNEL_HEAP;
    use crate::exit::{ExitCode, exit_qemu};
    use crate::frames::FRAMES;
    use crate::heap_provider::DemandPagedProvider;
    use crate::memory_map::{BootInfo, RegionKind};
    use crate::{
        bench, bench_kernel, bench_smp, blog_heap, boot, deliberate, kernel_stack, println, serial,
        smp, tests, trace,
    };

    /// The kernel heap: ft_malloc over demand-paged runs of the kernel heap
    /// window. `Box`, `Vec`, `String` and `BTreeMap` allocate here, through
    /// [`GLOBAL`]'s per-CPU caches.
    ///
    /// Its lock is `IrqSpinLock`, which keeps interrupts off while a heap
    /// lock is held, as a kernel whose interrupt handlers allocate needs.
    /// The page-fault handler, which can arrive with a heap lock held on the
    /// heap's first touch of a page, allocates nothing and takes only the
    /// page-table lock, which no code holds while touching heap memory.
    pub static HEAP: Heap<DemandPagedProvider, IrqSpinLock> =
        Heap::new(DemandPagedProvider::new(&KERNEL_HEAP));

    /// The `#[global_allocator]`: [`HEAP`] behind one front cache per CPU.
    #[global_allocator]
    static GLOBAL: PerCpuCaches = PerCpuCaches::new(&HEAP);

    /// The kernel's copy of the boot information.
    static BOOT_INFO: Once<BootInfo> = Once::new();

    /// What runs when the command line is empty.
    const DEFAULT_COMMAND_LINE: &str = "tests bench";

    /// The first Rust code, called by `boot/entry.s` in long mode with the
    /// physical address of the PVH `hvm_start_info`.
    pub extern "sysv64" fn kernel_main(start_info: u32) -> ! {
        serial::init();
        println!("ft_malloc test kernel: booted through PVH, long mode, first GiB identity-mapped");
        smp::init_bootstrap_cpu();

        // SAFETY: `start_info` is what the PVH loader passed in %ebx, and no
        // frame has been handed out yet, so the boot data is intact.
        let boot = match unsafe { BootInfo::copy_from(u64::from(start_info)) } {
            Ok(boot) => BOOT_INFO.call_once(|| boot),
            Err(error) => {
                println!("cannot read the PVH boot information: {error}");
                exit_qemu(ExitCode::Failure);
            }
        };
        println!("memory map (from hvm_start_info):");
        for region in boot.regions() {
            let kind = match region.kind {
                RegionKind::Usable => "usable",
                RegionKind::Other(_) => "reserved",
            };
            println!(
                "    {:#012x}..{:#012x} {kind}",
                region.range.start, region.range.end
            );
        }
        let image = boot::kernel_image();
        let frames = FRAMES.init(boot, image.clone());
        println!(
            "kernel image {:#x}..{:#x}; {frames} free frames ({} MiB) for the heap",
            image.start,
            image.end,
            (frames * 4096) >> 20
        );
        kernel_stack::switch_to_guarded_stack(run)
    }

    /// Runs what the command line asks for, on the guarded kernel stack.
    extern "sysv64" fn run() -> ! {
        let cmdline = BOOT_INFO.get().map_or("", |boot| boot.cmdline()).trim();
        let cmdline = if cmdline.is_empty() {
            DEFAULT_COMMAND_LINE
        } else {
            cmdline
        };
        println!("command line: {cmdline}");
        let rsdp = BOOT_INFO.get().and_then(|boot| boot.rsdp);
        match smp::start_other_cpus(rsdp) {
            Ok(cpus) => println!("smp: {cpus} CPU(s) online"),
            Err(error) => {
                println!("smp: starting the other CPUs failed: {error}");
                exit_qemu(ExitCode::Failure);
            }
        }
        let mut ok = true;
        for word in cmdline.split_whitespace() {
            ok &= match word {
                "tests" => tests::run_all(),
                "bench" => bench::run(),
                "bench-kernel" => bench_kernel::run(),
                "bench-smp" => bench_smp::run(),
                "trace" => trace::run(),
                "blog-heap" => blog_heap::run(),
                "no-shootdown" => {
                    println!(
                        "no-shootdown: TLB shootdown IPIs off in the shootdown test (it must fail)"
                    );
                    smp::shootdown::turn_off_in_test();
                    true
                }
                _ => match word.strip_prefix("fail=") {
                    Some(how) => deliberate::fail(how),
                    None => {
                        println!(
                            "unknown command-line word {word:?} (expected tests, bench, bench-smp, trace, blog-heap, no-shootdown or fail=...)"
                        );
                        false
                    }
                },
            };
        }
        if ok && cmdline.split_whitespace().any(|word| word == "tests") {
            let cpus = smp::online_cpus();
            println!(
                "all tests passed on {cpus} CPU{}",
                if cpus == 1 { "" } else { "s" }
            );
        }
        exit_qemu(if ok {
            ExitCode::Success
        } else {
            ExitCode::Failure
        })
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        println!();
        println!("KERNEL PANIC: {info}");
        exit_qemu(ExitCode::Failure)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "ft_malloc_qemu_test is a kernel for x86_64-unknown-none: run it with `cargo qemu` \
         (or `make qemu`), not on the host"
    );
    std::process::exit(2);
}
