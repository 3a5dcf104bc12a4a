//! The seed's page-fault sequence, printed with this kernel's real values
//! for one allocation from the kernel heap (`make demo`):
//!
//! request → virtual address returned → first access → the MMU finds no
//! mapping → page fault → the kernel takes a free frame and maps it →
//! the faulting instruction resumes → the access completes.
//!
//! Every value printed is read back from the machine (CR2, the error code and
//! RIP as the handler saw them, the page-table entries as the MMU reads
//! them), and the trace checks them against each other: it fails the run if
//! the story does not hold. Between the request and the final check it
//! allocates nothing, so the only faults are the ones it reports.

use alloc::format;
use alloc::string::String;
use core::alloc::Layout;

use x86_64::VirtAddr;

use crate::HEAP;
use crate::demand_paging::{FaultRecord, KERNEL_HEAP, WINDOWS, fault_record, faults_resolved};
use crate::frames::FRAMES;
use crate::layout::PAGE_SIZE;
use crate::paging::{self, walk};
use crate::println;

/// The request traced: more than 32 KiB, so LARGE (a run of its own); page
/// alignment puts the block on a page of its own, after the run's header.
const REQUEST_SIZE: usize = 40_000;
const REQUEST_ALIGN: usize = 4096;
/// What the first access writes.
const VALUE: u8 = 0x2a;

/// The access itself, as one instruction at a known address: `store_byte`'s
/// first instruction is the store, so a fault's RIP can be matched to it.
#[unsafe(naked)]
extern "sysv64" fn store_byte(address: *mut u8, value: u8) {
    core::arch::naked_asm!("mov byte ptr [rdi], sil", "ret")
}

/// Where the store instruction is.
fn store_byte_address() -> u64 {
    store_byte as *const () as u64
}

fn print_walk(address: u64) {
    let names = ["PML4", "PDPT", "PD", "PT"];
    let walk = walk(VirtAddr::new(address));
    crate::print!("             ");
    for (level, name) in names.iter().enumerate() {
        match walk.entries[level] {
            Some(entry) => crate::print!(
                "{name}[{}] = {entry:#x}{}",
                u16::from(walk.indices[level]),
                if level < 3 { " -> " } else { "" }
            ),
            None => {
                crate::print!("{name}[{}] = not present", u16::from(walk.indices[level]));
                break;
            }
        }
    }
    println!();
}

fn describe_error_code(code: u64) -> &'static str {
    match code & 0b111 {
        0b000 => "not present | read | kernel mode",
        0b010 => "not present | write | kernel mode",
        _ => "other",
    }
}

/// Prints the trace; false if a check failed.
pub fn run() -> bool {
    match trace() {
        Ok(()) => true,
        Err(why) => {
            println!("trace: FAILED: {why}");
            false
        }
    }
}

fn trace() -> Result<(), String> {
    println!("trace: the page-fault sequence of one allocation, with this kernel's real values");
    let layout =
        Layout::from_size_align(REQUEST_SIZE, REQUEST_ALIGN).map_err(|e| format!("{e}"))?;

    println!(
        "[1 Request] HEAP.allocate(size = {REQUEST_SIZE}, align = {REQUEST_ALIGN}): over 32 KiB, so LARGE: a page run of its own"
    );
    let (faults_before_allocate, runs_before) = (faults_resolved(), HEAP.provider().runs_mapped());
    let block = HEAP.allocate(layout).ok_or("the allocation failed")?;
    let a = block.as_ptr() as u64;
    // Read the logs before anything else can fault.
    let faults_in_allocate = faults_resolved() - faults_before_allocate;
    let allocate_faults: [Option<FaultRecord>; 4] = core::array::from_fn(|i| {
        let i = i as u64;
        (i < faults_in_allocate)
            .then(|| fault_record(faults_before_allocate + i))
            .flatten()
    });
    let runs_in_allocate = HEAP.provider().runs_mapped() - runs_before;
    let runs: [Option<(u64, u64)>; 4] = core::array::from_fn(|i| {
        let i = i as u64;
        (i < runs_in_allocate)
            .then(|| HEAP.provider().mapped_run(runs_before + i))
            .flatten()
    });
    let (run_start, run_len) = runs
        .iter()
        .flatten()
        .copied()
        .find(|&(start, len)| (start..start + len).contains(&a))
        .ok_or("no run handed out during the allocation holds A")?;
    let run_end = run_start + run_len;

    println!("[2 Return ] virtual address A = {a:#018x}");
    println!(
        "             inside allocate, the provider handed out {runs_in_allocate} virtual run(s), mapping none of it:"
    );
    for &(start, len) in runs.iter().flatten() {
        let what = if start == run_start {
            "the LARGE run holding A"
        } else {
            "a node of the heap's page map (metadata)"
        };
        println!(
            "             - {start:#x}..{:#x} ({} pages): {what}",
            start + len,
            len / PAGE_SIZE
        );
    }
    println!(
        "             and the heap's own first writes (its metadata) faulted {faults_in_allocate} page(s) in:"
    );
    for f in allocate_faults.iter().flatten() {
        let what = if (run_start..run_end).contains(&f.address) {
            "the block header at the run's start"
        } else {
            "a page-map node"
        };
        println!(
            "             - {:#x} ({what}) -> frame {:#x}",
            f.address, f.frame
        );
    }
    if allocate_faults.iter().flatten().count() as u64 != faults_in_allocate {
        return Err(String::from(
            "more faults in allocate than the trace can show",
        ));
    }

    println!(
        "[3 Access ] write {VALUE:#04x} to A: `mov byte ptr [rdi], sil` at RIP {:#x} (store_byte)",
        store_byte_address()
    );
    println!("[4 Check  ] the MMU walks the page tables for A:");
    print_walk(a);
    if paging::translate(VirtAddr::new(a)).is_some() {
        return Err(format!(
            "A = {a:#x} is already mapped before its first access"
        ));
    }

    let free_before = FRAMES.free_frames();
    let seq = faults_resolved();
    store_byte(block.as_ptr(), VALUE);
    let faults_in_access = faults_resolved() - seq;
    let f: FaultRecord = fault_record(seq).ok_or("the access did not fault")?;

    println!(
        "[5 Fault  ] no mapping: #PF, CPU {} enters the kernel's handler (on its own IST stack)",
        f.cpu
    );
    println!(
        "             CR2 = {:#018x}, error code = {:#x} ({}), RIP = {:#x}",
        f.address,
        f.error_code,
        describe_error_code(f.error_code),
        f.rip
    );
    println!(
        "[6 Kernel ] CR2 is in the {} window, inside a live run (the reservation bitmap: this kernel's VMA);",
        WINDOWS[f.window as usize].name
    );
    println!(
        "             free frame N = {:#x} taken by CPU {} (free frames {free_before} -> {}) and zeroed",
        f.frame, f.cpu, f.free_frames_after
    );
    println!(
        "[7 Map    ] PT entry written under the page-table lock: {:#x} = N | PRESENT | WRITABLE | NO_EXECUTE; CPU {}'s TLB entry flushed (invlpg)",
        f.entry, f.cpu
    );
    println!(
        "[8 Resume ] iretq to RIP {:#x}: the CPU restarts the store",
        f.rip
    );

    // SAFETY: A is the first byte of the live block.
    let read_back = unsafe { block.as_ptr().read_volatile() };
    let physical = paging::translate(VirtAddr::new(a)).ok_or("A is not mapped after the fault")?;
    let offset = a % PAGE_SIZE;
    // SAFETY: N + offset is in the identity map; reading RAM directly.
    let in_ram = unsafe { paging::phys_to_virt(physical).read_volatile() };
    println!(
        "[9 Success] the store completed: A reads {read_back:#04x}; A -> physical {:#x} = N + {offset:#x}, where RAM holds {in_ram:#04x}",
        physical.as_u64()
    );
    println!(
        "             the walk now (the MMU set ACCESSED | DIRTY in the entry as the store went through):"
    );
    print_walk(a);

    let checks = [
        (
            faults_in_access == 1,
            "the first access faulted exactly once",
        ),
        (f.address == a, "CR2 is A"),
        (
            f.error_code == 0b010,
            "the error code says: not present, write, kernel mode",
        ),
        (
            f.rip == store_byte_address(),
            "RIP is the store instruction",
        ),
        (
            WINDOWS[f.window as usize].name == KERNEL_HEAP.name,
            "the fault was in the kernel heap window",
        ),
        (
            f.free_frames_after as usize + 1 == free_before,
            "exactly one frame was taken",
        ),
        (
            physical.as_u64() == f.frame + offset,
            "A now translates to N + offset",
        ),
        (
            f.entry & !0xfff & 0x000f_ffff_ffff_f000 == f.frame,
            "the entry written names frame N",
        ),
        (
            read_back == VALUE && in_ram == VALUE,
            "the value is in RAM at N + offset",
        ),
    ];
    for (holds, what) in checks {
        if !holds {
            return Err(format!("check failed: {what}"));
        }
    }

    // SAFETY: the block is live and freed once.
    unsafe { HEAP.deallocate(block) }.map_err(|e| format!("free: {}", e.as_str()))?;
    HEAP.trim();
    let frame =
        x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(f.frame));
    println!(
        "[  Free   ] deallocate + trim: the run is unmapped, A -> {}, frame N free again: {}",
        if paging::translate(VirtAddr::new(a)).is_some() {
            "still mapped"
        } else {
            "not present"
        },
        FRAMES.is_free(frame)
    );
    if paging::translate(VirtAddr::new(a)).is_some() || !FRAMES.is_free(frame) {
        return Err(String::from("the run was not given back"));
    }
    println!("trace: all {} checks hold", checks.len());
    Ok(())
}
