//! COM1, the 16550 UART at I/O port 0x3F8: the kernel's only output. QEMU's
//! `-serial stdio` connects it to the terminal running QEMU.
//!
//! The writer holds no lock and no state: each byte is a pair of port
//! accesses. The kernel runs on one CPU with interrupts disabled, so nothing
//! can interleave with a line being written, and code that must never block
//! (the fault handlers, the panic handler) can print without any risk of a
//! deadlock on a lock held by the code they interrupted.

use core::fmt;
use x86_64::instructions::port::Port;

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

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    // Serial::write_str never fails.
    let _ = fmt::Write::write_fmt(&mut Serial, args);
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
