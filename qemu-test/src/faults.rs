//! CPU exceptions: the IDT and its handlers.
//!
//! Handlers are naked functions (stable Rust has no `extern "x86-interrupt"`),
//! installed with `set_handler_addr`. On an exception the CPU aligns the
//! stack to 16 bytes (switching to an IST stack for #PF and #DF), pushes
//! SS, RSP, RFLAGS, CS, RIP and, for some vectors, an error code, and jumps
//! to the handler:
//!
//! - `page_fault_entry` saves the registers a Rust function may clobber,
//!   calls [`page_fault`] and returns with `iretq`, which restarts the
//!   faulting instruction. That is how a heap access resumes once its page
//!   is mapped.
//! - The NMI (the TLB shootdown IPI), the APIC timer and the spurious
//!   vector have entries of the same shape in `interrupts`.
//! - Every other exception is fatal: its entry calls [`fatal_exception`],
//!   which reports it and fails the run.

use core::sync::atomic::Ordering;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, PageFaultErrorCode};

use crate::demand_paging::{self, Refusal};
use crate::exit::{ExitCode, exit_qemu};
use crate::gdt::{DOUBLE_FAULT_IST_INDEX, PAGE_FAULT_IST_INDEX};
use crate::layout::stack_guard_owner;
use crate::println;
use crate::smp::percpu::this_cpu;

/// What the CPU pushed, from the error code up (entries without an error
/// code push a zero in its place).
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// The exception's error code (0 if it has none).
    pub error_code: u64,
    /// The instruction that faulted (or the next one, for traps).
    pub rip: u64,
    /// Code segment.
    pub cs: u64,
    /// Flags at the time of the exception.
    pub rflags: u64,
    /// Stack pointer at the time of the exception.
    pub rsp: u64,
    /// Stack segment.
    pub ss: u64,
}

/// Defines an entry that saves the registers a Rust function may clobber,
/// calls `$handler(&ExceptionFrame)` and returns with `iretq`.
///
/// With `error_code`, the CPU pushed one (6 words, as for #PF); without, a
/// zero is pushed in its place, so every frame and the stack alignment are
/// the same (in long mode the CPU aligns RSP to 16 before pushing). The 9
/// saved registers leave the stack 8 bytes off, hence the `sub rsp, 8`
/// before the call. `cld`: the System V ABI wants DF clear, and the
/// interrupted code may have been a backwards `rep movs` (iretq restores
/// its flags).
macro_rules! exception_entry {
    ($name:ident, $handler:path, error_code) => {
        $crate::faults::exception_entry!(@emit $name, $handler, "");
    };
    ($name:ident, $handler:path) => {
        $crate::faults::exception_entry!(@emit $name, $handler, "push 0");
    };
    (@emit $name:ident, $handler:path, $push_zero:literal) => {
        #[unsafe(naked)]
        extern "sysv64" fn $name() {
            core::arch::naked_asm!(
                $push_zero,
                "cld",
                "push rax",
                "push rcx",
                "push rdx",
                "push rsi",
                "push rdi",
                "push r8",
                "push r9",
                "push r10",
                "push r11",
                "lea rdi, [rsp + 9 * 8]", // &ExceptionFrame
                "sub rsp, 8",
                "call {handler}",
                "add rsp, 8",
                "pop r11",
                "pop r10",
                "pop r9",
                "pop r8",
                "pop rdi",
                "pop rsi",
                "pop rdx",
                "pop rcx",
                "pop rax",
                "add rsp, 8", // the error code, or the zero in its place
                "iretq",
                handler = sym $handler,
            )
        }
    };
}
pub(crate) use exception_entry;

exception_entry!(page_fault_entry, page_fault, error_code);

/// The page-fault handler: demand paging for the heap windows, a report and
/// a failed run for everything else. Allocates nothing; takes only the
/// page-table lock (`paging`), which no code holds while touching
/// demand-paged memory.
extern "sysv64" fn page_fault(frame: &ExceptionFrame) {
    let address = Cr2::read_raw();
    // Per CPU: each CPU has its own IST stack, and CPUs fault concurrently.
    let in_page_fault = &this_cpu().in_page_fault;
    if in_page_fault.swap(true, Ordering::AcqRel) {
        println!();
        println!(
            "PAGE FAULT INSIDE THE PAGE-FAULT HANDLER at {address:#018x}, RIP {:#018x}",
            frame.rip
        );
        exit_qemu(ExitCode::Failure);
    }
    let error = PageFaultErrorCode::from_bits_retain(frame.error_code);
    if let Err(refusal) = demand_paging::resolve(address, error, frame.rip) {
        report_page_fault(address, frame, refusal);
        exit_qemu(ExitCode::Failure);
    }
    in_page_fault.store(false, Ordering::Release);
}

fn report_page_fault(address: u64, frame: &ExceptionFrame, refusal: Refusal) {
    println!();
    println!(
        "UNEXPECTED PAGE FAULT at {address:#018x}: {}",
        refusal.describe()
    );
    if let Refusal::NotInALiveRun(window) = refusal {
        println!("    inside the {window} window");
    }
    if let Some(cpu) = stack_guard_owner(address) {
        println!("    this is CPU {cpu}'s kernel stack guard page: kernel stack overflow");
    }
    println!(
        "    error code {:#x} ({:?}), RIP {:#018x}, RSP {:#018x}",
        frame.error_code,
        PageFaultErrorCode::from_bits_retain(frame.error_code),
        frame.rip,
        frame.rsp
    );
}

/// Reports a fatal exception and fails the run.
pub extern "sysv64" fn fatal_exception(vector: u64, frame: &ExceptionFrame) -> ! {
    println!();
    println!(
        "FATAL EXCEPTION {} (vector {vector}): error code {:#x}, RIP {:#018x}, RSP {:#018x}",
        exception_name(vector),
        frame.error_code,
        frame.rip,
        frame.rsp
    );
    if vector == 8 {
        println!(
            "    (a double fault: an exception while delivering another, often a stack overflow)"
        );
    }
    exit_qemu(ExitCode::Failure)
}

fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection fault",
        16 => "#MF x87 floating-point error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating-point error",
        20 => "#VE virtualization exception",
        21 => "#CP control protection",
        _ => "exception",
    }
}

/// Defines the entry of a fatal exception: push a zero where the CPU pushed
/// no error code, pass the vector and the frame, never return.
macro_rules! fatal_entry {
    ($name:ident, $vector:literal, with_error_code) => {
        fatal_entry!(@define $name, $vector, "");
    };
    ($name:ident, $vector:literal) => {
        fatal_entry!(@define $name, $vector, "push 0");
    };
    (@define $name:ident, $vector:literal, $push_error_code:literal) => {
        #[unsafe(naked)]
        extern "sysv64" fn $name() {
            core::arch::naked_asm!(
                "cld",
                $push_error_code,
                "mov edi, {vector}",
                "mov rsi, rsp",
                "and rsp, -16",
                "call {report}",
                "ud2",
                vector = const $vector,
                report = sym fatal_exception,
            )
        }
    };
}

fatal_entry!(divide_error_entry, 0);
fatal_entry!(debug_entry, 1);
fatal_entry!(breakpoint_entry, 3);
fatal_entry!(overflow_entry, 4);
fatal_entry!(bound_range_entry, 5);
fatal_entry!(invalid_opcode_entry, 6);
fatal_entry!(device_not_available_entry, 7);
fatal_entry!(double_fault_entry, 8, with_error_code);
fatal_entry!(invalid_tss_entry, 10, with_error_code);
fatal_entry!(segment_not_present_entry, 11, with_error_code);
fatal_entry!(stack_segment_entry, 12, with_error_code);
fatal_entry!(general_protection_entry, 13, with_error_code);
fatal_entry!(x87_entry, 16);
fatal_entry!(alignment_check_entry, 17, with_error_code);
fatal_entry!(machine_check_entry, 18);
fatal_entry!(simd_entry, 19);
fatal_entry!(virtualization_entry, 20);
fatal_entry!(control_protection_entry, 21, with_error_code);

static IDT: Once<InterruptDescriptorTable> = Once::new();

pub fn address_of(entry: extern "sysv64" fn()) -> VirtAddr {
    VirtAddr::new(entry as usize as u64)
}

/// Builds the IDT (once) and loads it on this CPU (every CPU shares it;
/// the IST indices name stacks of each CPU's own TSS).
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: every address is a naked entry above, written for its
        // vector's frame (with or without error code); the IST indices name
        // stacks set up in gdt.rs.
        unsafe {
            idt.divide_error
                .set_handler_addr(address_of(divide_error_entry));
            idt.debug.set_handler_addr(address_of(debug_entry));
            idt.breakpoint
                .set_handler_addr(address_of(breakpoint_entry));
            idt.overflow.set_handler_addr(address_of(overflow_entry));
            idt.bound_range_exceeded
                .set_handler_addr(address_of(bound_range_entry));
            idt.invalid_opcode
                .set_handler_addr(address_of(invalid_opcode_entry));
            idt.device_not_available
                .set_handler_addr(address_of(device_not_available_entry));
            idt.double_fault
                .set_handler_addr(address_of(double_fault_entry))
                .set_stack_index(DOUBLE_FAULT_IST_INDEX);
            idt.invalid_tss
                .set_handler_addr(address_of(invalid_tss_entry));
            idt.segment_not_present
                .set_handler_addr(address_of(segment_not_present_entry));
            idt.stack_segment_fault
                .set_handler_addr(address_of(stack_segment_entry));
            idt.general_protection_fault
                .set_handler_addr(address_of(general_protection_entry));
            idt.page_fault
                .set_handler_addr(address_of(page_fault_entry))
                .set_stack_index(PAGE_FAULT_IST_INDEX);
            idt.x87_floating_point
                .set_handler_addr(address_of(x87_entry));
            idt.alignment_check
                .set_handler_addr(address_of(alignment_check_entry));
            idt.machine_check
                .set_handler_addr(address_of(machine_check_entry));
            idt.simd_floating_point
                .set_handler_addr(address_of(simd_entry));
            idt.virtualization
                .set_handler_addr(address_of(virtualization_entry));
            idt.cp_protection_exception
                .set_handler_addr(address_of(control_protection_entry));
        }
        crate::interrupts::install(&mut idt);
        idt
    });
    idt.load();
}
