//! The kernel heap's lock: a spin lock that also turns interrupts off while
//! it is held.
//!
//! A kernel whose interrupt handlers allocate must not take an interrupt on
//! a CPU that holds a heap lock: the handler would spin forever on a lock
//! its own CPU holds. So the lock saves the interrupt flag and clears it
//! before spinning, and puts it back on unlock. This kernel runs with
//! interrupts off, so here the flag is only saved and restored; the point is
//! the type: the core takes any `lock_api::RawMutex` as its `R` parameter,
//! and this is the one a kernel passes.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, Ordering};

use lock_api::{GuardNoSend, RawMutex};
use x86_64::instructions::interrupts;

/// A spin lock that keeps interrupts disabled while held.
pub struct IrqSpinLock {
    locked: AtomicBool,
    /// Whether interrupts were enabled when the holder locked: restored on
    /// unlock. Written only by the holder.
    interrupts_were_enabled: AtomicBool,
}

// SAFETY: `lock` returns only after moving `locked` from false to true with
// Acquire ordering, which one CPU at a time can do until `unlock` stores
// false with Release ordering: mutual exclusion with the right
// happens-before edges. Guards must not move to another CPU (`GuardNoSend`),
// because the interrupt flag restored on unlock is that CPU's.
unsafe impl RawMutex for IrqSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = IrqSpinLock {
        locked: AtomicBool::new(false),
        interrupts_were_enabled: AtomicBool::new(false),
    };
    type GuardMarker = GuardNoSend;

    fn lock(&self) {
        let enabled = interrupts::are_enabled();
        // Off before spinning: an interrupt taken while we wait could
        // allocate and wait for a lock this CPU is about to hold.
        interrupts::disable();
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
        self.interrupts_were_enabled
            .store(enabled, Ordering::Relaxed);
    }

    fn try_lock(&self) -> bool {
        let enabled = interrupts::are_enabled();
        interrupts::disable();
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.interrupts_were_enabled
                .store(enabled, Ordering::Relaxed);
            true
        } else {
            if enabled {
                interrupts::enable();
            }
            false
        }
    }

    unsafe fn unlock(&self) {
        let restore = self.interrupts_were_enabled.load(Ordering::Relaxed);
        self.locked.store(false, Ordering::Release);
        // Locks nest (the heap's `lock_all` takes them all, and releases
        // them in reverse): only the outermost one saw interrupts enabled,
        // so only its unlock turns them back on.
        if restore {
            interrupts::enable();
        }
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}
