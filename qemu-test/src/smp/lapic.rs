//! The local APIC, in xAPIC mode: each CPU's interrupt controller, and how
//! CPUs signal each other (INIT, SIPI, IPIs).
//!
//! Its registers are memory-mapped at the physical address the
//! `IA32_APIC_BASE` MSR gives (0xFEE0_0000 on every PC), the same address on
//! every CPU, each CPU reaching its own APIC there. That address lies above
//! the boot identity map (1 GiB), so [`map_registers`] identity-maps the
//! 2 MiB around it, uncached, through a page directory kept in the kernel
//! image (not a frame of the pool, so the frame ledger is not concerned).
//! All CPUs share the page tables, so the bootstrap CPU maps it once, before
//! starting the others. (QEMU 7.2's TCG has no x2APIC, whose MSR interface
//! would need no mapping.)

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::interrupts;
use x86_64::instructions::port::Port;
use x86_64::registers::control::Cr3;
use x86_64::registers::model_specific::ApicBase;
use x86_64::structures::paging::{PageTable, PageTableFlags};

use crate::layout::IDENTITY_MAP_END;
use crate::paging::phys_to_virt;

// Register offsets (Intel SDM vol. 3, table 11-1).
const ID: u64 = 0x20;
const SPURIOUS_VECTOR: u64 = 0xF0;
const EOI: u64 = 0xB0;
const ICR_LOW: u64 = 0x300;
const ICR_HIGH: u64 = 0x310;
const LVT_TIMER: u64 = 0x320;
const LVT_LINT0: u64 = 0x350;
/// LVT entry: masked.
const LVT_MASKED: u32 = 1 << 16;
/// The legacy 8259 PICs' data ports (their interrupt masks).
const PIC_MASTER_DATA: u16 = 0x21;
const PIC_SLAVE_DATA: u16 = 0xA1;
const TIMER_INITIAL_COUNT: u64 = 0x380;
const TIMER_CURRENT_COUNT: u64 = 0x390;
const TIMER_DIVIDE: u64 = 0x3E0;

/// LVT timer: periodic mode.
const TIMER_PERIODIC: u32 = 1 << 17;
/// Divide configuration "by 16".
const DIVIDE_BY_16: u32 = 0b0011;
/// Divide configuration "by 1".
const DIVIDE_BY_1: u32 = 0b1011;
/// Delivery mode "fixed" (an ordinary interrupt).
const DELIVERY_FIXED: u32 = 0;
/// The timer's period, in its input clock's ticks divided by 16. QEMU's
/// APIC clock runs at 1 GHz (guest time: instructions under icount), so
/// about a millisecond.
const TIMER_PERIOD: u32 = 62_500;

/// Spurious-interrupt register: APIC software enable.
const APIC_ENABLE: u32 = 1 << 8;
/// The vector of spurious interrupts (its handler must not send an EOI).
pub const SPURIOUS_INTERRUPT_VECTOR: u8 = 0xFF;

// Interrupt command register, low word.
const DELIVERY_INIT: u32 = 0b101 << 8;
const DELIVERY_STARTUP: u32 = 0b110 << 8;
const DELIVERY_NMI: u32 = 0b100 << 8;
const LEVEL_ASSERT: u32 = 1 << 14;
/// Set while the APIC is still sending the last IPI.
const DELIVERY_PENDING: u32 = 1 << 12;

/// A 2 MiB page.
const HUGE_PAGE: u64 = 2 << 20;

/// The registers' virtual (= physical) address, 0 until mapped.
static BASE: AtomicU64 = AtomicU64::new(0);

/// The page directory mapping the GiB that holds the APIC's registers.
/// Only [`map_registers`] touches it, once, before any other CPU runs.
static mut MMIO_DIRECTORY: PageTable = PageTable::new();

/// Identity-maps the local APIC's registers, uncached. Called once, by the
/// bootstrap CPU, before any other CPU starts. Returns their address.
pub fn map_registers() -> u64 {
    let (frame, _) = ApicBase::read();
    let base = frame.start_address().as_u64();
    assert!(
        (IDENTITY_MAP_END..1 << 39).contains(&base),
        "local APIC at {base:#x}: expected above the identity map, in PML4 slot 0"
    );
    let (pml4, _) = Cr3::read();
    // SAFETY: CR3 names the boot PML4, in the identity map; its entry 0 is
    // the boot PDPT (entry.s). Only this CPU runs, and nothing else holds a
    // reference to these tables now.
    let pdpt = unsafe {
        let pml4 = &*phys_to_virt(pml4.start_address()).cast::<PageTable>();
        &mut *phys_to_virt(pml4[0].addr()).cast::<PageTable>()
    };
    let gib = (base >> 30) as usize;
    assert!(pdpt[gib].is_unused(), "GiB {gib} is already mapped");
    // SAFETY: this is the only use of MMIO_DIRECTORY, made once (the PDPT
    // entry was unused above), before any other CPU runs.
    let directory = unsafe { (&raw mut MMIO_DIRECTORY).as_mut_unchecked() };
    let page = base & !(HUGE_PAGE - 1);
    directory[((base >> 21) & 511) as usize].set_addr(
        x86_64::PhysAddr::new(page),
        PageTableFlags::PRESENT
            | PageTableFlags::WRITABLE
            | PageTableFlags::HUGE_PAGE
            | PageTableFlags::NO_CACHE
            | PageTableFlags::WRITE_THROUGH
            | PageTableFlags::NO_EXECUTE,
    );
    // The kernel image is identity-mapped: the directory's address is its
    // physical address.
    pdpt[gib].set_addr(
        x86_64::PhysAddr::new(directory as *const PageTable as u64),
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
    );
    BASE.store(base, Ordering::Release);
    base
}

fn register(offset: u64) -> *mut u32 {
    let base = BASE.load(Ordering::Acquire);
    assert!(
        base != 0,
        "local APIC used before its registers were mapped"
    );
    (base + offset) as *mut u32
}

fn read(offset: u64) -> u32 {
    // SAFETY: an APIC register, mapped uncached by `map_registers`; a
    // volatile 32-bit access, as the APIC requires.
    unsafe { register(offset).read_volatile() }
}

fn write(offset: u64, value: u32) {
    // SAFETY: as in `read`.
    unsafe { register(offset).write_volatile(value) }
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    read(ID) >> 24
}

/// Software-enables this CPU's local APIC (interrupts still masked by
/// RFLAGS.IF until the CPU enables them), and shuts the legacy 8259 PICs
/// out: the firmware left them delivering the PIT's IRQ 0 on vector 8
/// (through LINT0, in ExtINT mode), which the CPU would take for a double
/// fault the first time interrupts are on. Both PICs get every IRQ masked
/// and LINT0 is masked.
pub fn enable() {
    // SAFETY: the PICs' mask registers; masking every IRQ has no other
    // effect.
    unsafe {
        Port::<u8>::new(PIC_MASTER_DATA).write(0xFF);
        Port::<u8>::new(PIC_SLAVE_DATA).write(0xFF);
    }
    write(LVT_LINT0, LVT_MASKED);
    write(
        SPURIOUS_VECTOR,
        APIC_ENABLE | u32::from(SPURIOUS_INTERRUPT_VECTOR),
    );
}

/// Signals the end of the interrupt being handled.
pub fn end_of_interrupt() {
    write(EOI, 0);
}

/// Starts this CPU's APIC timer: periodic, about every millisecond, on
/// `vector`. It interrupts only while the CPU has interrupts on.
pub fn start_timer(vector: u8) {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, TIMER_PERIODIC | u32::from(vector));
    write(TIMER_INITIAL_COUNT, TIMER_PERIOD);
}

/// Turns this CPU's timer into a clock: masked (no interrupt), one-shot,
/// counting down from `u32::MAX` once per tick of its 1 GHz input (QEMU's
/// virtual nanoseconds). [`clock_ns`] reads it; [`start_timer`] restores
/// the periodic interrupt.
pub fn start_clock() {
    write(LVT_TIMER, LVT_MASKED);
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(TIMER_INITIAL_COUNT, u32::MAX);
}

/// Nanoseconds since [`start_clock`] (wraps after about 4 s).
pub fn clock_ns() -> u64 {
    u64::from(u32::MAX - read(TIMER_CURRENT_COUNT))
}

/// Sends an ordinary interrupt on `vector` to CPU `apic_id`.
pub fn send_fixed(apic_id: u32, vector: u8) {
    send(apic_id, DELIVERY_FIXED | LEVEL_ASSERT | u32::from(vector));
}

/// Sends an IPI with command `low` to the CPU whose APIC id is `apic_id`,
/// and waits until the APIC has sent it. Interrupts stay off meanwhile: the
/// two register writes must not be split by a handler sending its own IPI.
fn send(apic_id: u32, low: u32) {
    interrupts::without_interrupts(|| {
        while read(ICR_LOW) & DELIVERY_PENDING != 0 {
            core::hint::spin_loop();
        }
        write(ICR_HIGH, apic_id << 24);
        write(ICR_LOW, low);
        while read(ICR_LOW) & DELIVERY_PENDING != 0 {
            core::hint::spin_loop();
        }
    });
}

/// Resets CPU `apic_id` into its wait-for-SIPI state.
pub fn send_init(apic_id: u32) {
    send(apic_id, DELIVERY_INIT | LEVEL_ASSERT);
}

/// Starts CPU `apic_id` (waiting for a SIPI) in real mode at physical
/// address `page << 12`.
pub fn send_startup(apic_id: u32, page: u8) {
    send(apic_id, DELIVERY_STARTUP | LEVEL_ASSERT | u32::from(page));
}

/// Sends a non-maskable interrupt to CPU `apic_id` (the TLB shootdown IPI).
pub fn send_nmi(apic_id: u32) {
    send(apic_id, DELIVERY_NMI | LEVEL_ASSERT);
}
