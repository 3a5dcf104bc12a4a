//! The time-stamp counter, the benchmark's clock.
//!
//! The runner starts QEMU with `-icount shift=0`: the guest clock then
//! advances one tick per executed instruction, so a TSC difference counts
//! the instructions executed in between, the same on every run. Without
//! icount (`QEMU_ICOUNT=off`), TCG's TSC follows host time instead.

/// The current TSC value.
pub fn ticks() -> u64 {
    // SAFETY: RDTSC reads a counter; it has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}
