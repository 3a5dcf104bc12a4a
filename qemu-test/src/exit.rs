//! Leaving QEMU with a verdict: the `isa-debug-exit` device (enabled by the
//! runner with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`) turns a
//! write of `code` to its port into QEMU exiting with status `(code << 1) | 1`.
//!
//! The runner (`run-qemu.sh`) accepts only the success status (33). Every
//! other ending — the failure code, a hang killed by its timeout, a triple
//! fault (which `-no-reboot` turns into QEMU exiting with status 0) — fails.

use x86_64::instructions::port::Port;

const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;

/// What the kernel reports to the runner.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum ExitCode {
    /// Every selected test passed: QEMU exits with 33.
    Success = 0x10,
    /// Something failed: QEMU exits with 35.
    Failure = 0x11,
}

/// Ends the run.
pub fn exit_qemu(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device; writing it only makes
    // QEMU exit.
    unsafe { Port::new(ISA_DEBUG_EXIT_PORT).write(code as u32) };
    // Without the device (a different runner) there is nothing left to do.
    halt_forever()
}

/// Stops the CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
