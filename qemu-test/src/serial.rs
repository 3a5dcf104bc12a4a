//! COM1, the 16550 UART at I/O port 0x3F8: the kernel's only output. QEMU's
//! `-serial stdio` connects it to the terminal running QEMU.
//!
//! Each byte is a pair of port accesses. One print (a whole line, with
//! `println!`) holds the print lock, so lines of different CPUs do not
//! interleave. The lock is *per CPU*: a CPU that already holds it (a fault
//! or interrupt handler printing over the code it interrupted, the panic
//! handler) prints at once, so code that must never block can print
//! without any risk of a deadlock on the lock its own CPU holds.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use x86_64::instructions::port::Port;

use crate::smp::percpu;

const COM1: u16 = 0x3F8;
// Register offsets from the UART's base port.
const DATA: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const FIFO_CONTROL: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;
/// Line status bit: the transmit holding register is empty.
const TRANSMIT_EMPTY: u8 = 1 << 5;

fn outb(offset: u16, value: u8) {
    // SAFETY: COM1's registers are I/O ports with no memory side effects.
    unsafe { Port::new(COM1 + offset).write(value) }
}

fn inb(offset: u16) -> u8 {
    // SAFETY: as in `outb`; reading the line status has no side effect.
    unsafe { Port::new(COM1 + offset).read() }
}

/// Programs COM1 for 115200 baud, 8 data bits, no parity, one stop bit,
/// FIFOs on, no interrupts.
pub fn init() {
    outb(INTERRUPT_ENABLE, 0x00);
    outb(LINE_CONTROL, 0x80); // DLAB: the next two writes set the divisor
    outb(DATA, 0x01); // divisor 1 = 115200 baud
    outb(INTERRUPT_ENABLE, 0x00);
    outb(LINE_CONTROL, 0x03); // 8N1, DLAB off
    outb(FIFO_CONTROL, 0xC7); // enable and clear FIFOs
    outb(MODEM_CONTROL, 0x03); // DTR + RTS, OUT2 off: no IRQs
}

fn write_byte(byte: u8) {
    while inb(LINE_STATUS) & TRANSMIT_EMPTY == 0 {
        core::hint::spin_loop();
    }
    outb(DATA, byte);
}

/// A `fmt::Write` sink for COM1.
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                write_byte(b'\r');
            }
            write_byte(byte);
        }
        Ok(())
    }
}

/// The CPU printing (its index), or [`NOBODY`].
static PRINTING: AtomicUsize = AtomicUsize::new(NOBODY);
const NOBODY: usize = usize::MAX;

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let me = percpu::cpu_index();
    let nested = PRINTING.load(Ordering::Acquire) == me;
    if !nested {
        while PRINTING
            .compare_exchange_weak(NOBODY, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
    }
    // Serial::write_str never fails.
    let _ = fmt::Write::write_fmt(&mut Serial, args);
    if !nested {
        PRINTING.store(NOBODY, Ordering::Release);
    }
}

/// Prints to COM1.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::serial::_print(format_args!($($arg)*)));
}

/// Prints a line to COM1.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::print!("{}\n", format_args!($($arg)*)));
}
