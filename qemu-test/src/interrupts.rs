//! Interrupts: the NMI (the TLB shootdown IPI), the local APIC timer, whose
//! handler allocates and frees on every tick, the wake-up IPI (ends a
//! `hlt`: the SMP benchmark's idle CPUs) and the spurious vector.
//!
//! The timer proves the kernel heap interrupt-safe on every CPU: its handler
//! allocates from the `#[global_allocator]` (so through the CPU's front
//! cache, and the heap's locks behind it) at any point of the code it
//! interrupts. That is sound because every lock a handler can need is an
//! `IrqSpinLock` (interrupts off while held) and the cache is used with
//! interrupts off: a tick never lands in the middle of either on its CPU.
//!
//! Interrupts are on only while a CPU runs test code (`smp::jobs`, the
//! single-CPU runner): the quiet points between tests, where the frame
//! ledger and the heap's counts are checked, have them off, and so do the
//! trace and the benchmark, whose fault sequence and instruction counts a
//! tick would disturb.

use alloc::alloc::{alloc, dealloc};
use core::alloc::Layout;
use core::sync::atomic::Ordering;

use x86_64::instructions::interrupts;
use x86_64::structures::idt::InterruptDescriptorTable;

use crate::faults::{ExceptionFrame, address_of, exception_entry, fatal_exception};
use crate::smp::lapic::{self, SPURIOUS_INTERRUPT_VECTOR};
use crate::smp::percpu::this_cpu;

/// The APIC timer's vector (above the 32 exception vectors).
pub const TIMER_VECTOR: u8 = 0x30;
/// The wake-up IPI's vector: its handler only acknowledges it; its point
/// is to end a `hlt`.
pub const WAKE_VECTOR: u8 = 0x31;
/// Sizes the timer handler allocates, in turn: TINY and SMALL.
const TIMER_BLOCK_SIZES: [usize; 2] = [64, 2000];

exception_entry!(nmi_entry, nmi);
exception_entry!(timer_entry, timer);
exception_entry!(spurious_entry, spurious);
exception_entry!(wake_entry, wake);

/// The NMI handler: the TLB shootdown IPI. Takes no lock.
extern "sysv64" fn nmi(frame: &ExceptionFrame) {
    if !crate::smp::shootdown::handle_nmi() {
        fatal_exception(2, frame);
    }
}

/// The APIC timer handler: allocates a block, writes and checks it, frees
/// it. A refusal (while a test holds every frame) is counted, not fatal.
extern "sysv64" fn timer(_frame: &ExceptionFrame) {
    let cpu = this_cpu();
    let tick = cpu.timer_ticks.fetch_add(1, Ordering::Relaxed);
    let size = TIMER_BLOCK_SIZES[tick as usize % TIMER_BLOCK_SIZES.len()];
    let layout = Layout::from_size_align(size, 16).expect("valid layout");
    // SAFETY: a non-zero size.
    let block = unsafe { alloc(layout) };
    if block.is_null() {
        cpu.timer_refused.fetch_add(1, Ordering::Relaxed);
    } else {
        let mark = (tick as u8) | 1;
        // SAFETY: a fresh block of `size` bytes, ours until the dealloc.
        let intact = unsafe {
            block.write_volatile(mark);
            block.add(size - 1).write_volatile(mark);
            block.read_volatile() == mark && block.add(size - 1).read_volatile() == mark
        };
        // SAFETY: allocated above with this layout, freed once.
        unsafe { dealloc(block, layout) };
        let counter = if intact {
            &cpu.timer_allocations
        } else {
            &cpu.timer_corrupted
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    lapic::end_of_interrupt();
}

/// A wake-up IPI: the `hlt` it ended was all it was for.
extern "sysv64" fn wake(_frame: &ExceptionFrame) {
    lapic::end_of_interrupt();
}

/// A spurious interrupt: nothing to do, and no EOI (the APIC says so).
extern "sysv64" fn spurious(_frame: &ExceptionFrame) {}

/// Adds the interrupt entries to the IDT.
pub fn install(idt: &mut InterruptDescriptorTable) {
    // SAFETY: each address is an entry above, written for a vector without
    // error code; none uses an IST stack (they run on the interrupted
    // stack, which the CPU aligns).
    unsafe {
        idt.non_maskable_interrupt
            .set_handler_addr(address_of(nmi_entry));
        idt[TIMER_VECTOR].set_handler_addr(address_of(timer_entry));
        idt[SPURIOUS_INTERRUPT_VECTOR].set_handler_addr(address_of(spurious_entry));
        idt[WAKE_VECTOR].set_handler_addr(address_of(wake_entry));
    }
}

/// Runs `f` with this CPU's interrupts on (its APIC timer ticking into the
/// allocating handler), then turns them off again.
pub fn with_timer_ticking<R>(f: impl FnOnce() -> R) -> R {
    interrupts::enable();
    let result = f();
    interrupts::disable();
    result
}
