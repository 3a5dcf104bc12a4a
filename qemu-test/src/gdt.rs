//! The kernel's GDT and TSS.
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

use crate::layout::IST_STACK_SIZE;

/// IST slot of the double-fault handler's stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// IST slot of the page-fault handler's stack.
pub const PAGE_FAULT_IST_INDEX: u16 = 1;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

// Only the CPU writes these, through the TSS; Rust never forms a reference.
static mut DOUBLE_FAULT_STACK: Stack = Stack([0; IST_STACK_SIZE]);
static mut PAGE_FAULT_STACK: Stack = Stack([0; IST_STACK_SIZE]);

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

/// The top of a stack (stacks grow down).
fn stack_top(stack: *mut Stack) -> VirtAddr {
    VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64
}

/// Loads the GDT, reloads every segment register from it and loads the TSS.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            stack_top(&raw mut DOUBLE_FAULT_STACK);
        tss.interrupt_stack_table[PAGE_FAULT_IST_INDEX as usize] =
            stack_top(&raw mut PAGE_FAULT_STACK);
        tss
    });
    let (gdt, selectors) = GDT.call_once(|| {
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
