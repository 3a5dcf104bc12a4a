//! The kernel's GDTs and TSSs: one of each per CPU.
//!
//! Each CPU needs a TSS of its own (its IST stacks are its own, and loading
//! a TSS marks its descriptor busy, so two CPUs cannot share one), hence a
//! GDT of its own to hold the descriptor.
//!
//! Long mode ignores segment bases and limits, but still needs a GDT for the
//! code segment and for the TSS. The TSS is here for one thing: its Interrupt
//! Stack Table. The page-fault and double-fault handlers switch to stacks of
//! their own, so a fault caused by a broken kernel stack (an overflow into
//! the guard page) is reported instead of escalating to a triple fault.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use crate::layout::{IST_STACK_SIZE, MAX_CPUS};

/// IST slot of the double-fault handler's stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// IST slot of the page-fault handler's stack.
pub const PAGE_FAULT_IST_INDEX: u16 = 1;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

/// One CPU's IST stacks.
struct IstStacks {
    double_fault: Stack,
    page_fault: Stack,
}

// Only the CPUs write these, through their TSS; Rust never forms a
// reference.
static mut IST_STACKS: [IstStacks; MAX_CPUS] = [const {
    IstStacks {
        double_fault: Stack([0; IST_STACK_SIZE]),
        page_fault: Stack([0; IST_STACK_SIZE]),
    }
}; MAX_CPUS];

static TSS: [Once<TaskStateSegment>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];
static GDT: [Once<(GlobalDescriptorTable, Selectors)>; MAX_CPUS] =
    [const { Once::new() }; MAX_CPUS];

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

/// The top of a stack (stacks grow down).
fn stack_top(stack: *mut Stack) -> VirtAddr {
    VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64
}

/// Loads CPU `cpu`'s GDT, reloads every segment register from it and loads
/// its TSS. Each CPU calls it once, with its own index.
pub fn init(cpu: usize) {
    let tss = TSS[cpu].call_once(|| {
        // SAFETY: only the addresses of CPU `cpu`'s stacks are taken; no
        // reference is formed.
        let (double_fault, page_fault) = unsafe {
            (
                &raw mut IST_STACKS[cpu].double_fault,
                &raw mut IST_STACKS[cpu].page_fault,
            )
        };
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = stack_top(double_fault);
        tss.interrupt_stack_table[PAGE_FAULT_IST_INDEX as usize] = stack_top(page_fault);
        tss
    });
    let (gdt, selectors) = GDT[cpu].call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which
    // lives in a static; the code segment is the 64-bit ring-0 one we run in.
    // SS is reloaded too: `iretq` pops it, and the boot code's selector would
    // name the TSS descriptor in this table.
    unsafe {
        CS::set_reg(selectors.code);
        SS::set_reg(selectors.data);
        DS::set_reg(selectors.data);
        ES::set_reg(selectors.data);
        load_tss(selectors.tss);
    }
}
