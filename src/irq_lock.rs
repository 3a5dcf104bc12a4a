//! A kernel heap's lock (feature `x86_64`): a spin lock that also turns
//! interrupts off while it is held. The test kernel (`qemu-test/`) uses it.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, Ordering};

use lock_api::{GuardNoSend, RawMutex};
use x86_64::instructions::interrupts;

/// A spin lock that keeps interrupts disabled while held, for the `R`
/// parameter of [`Heap`](crate::Heap) in an x86_64 kernel.
///
/// A kernel whose interrupt handlers allocate must not take an interrupt on
/// a CPU that holds a heap lock: the handler would spin forever on a lock
/// its own CPU holds. So the lock saves the interrupt flag and clears it
/// (`cli`) before spinning, and puts it back on unlock.
///
/// `cli`/`sti` are privileged: use it in ring 0 only (in a user-space
/// program the first lock faults).
///
/// ```no_run
/// use core::mem::MaybeUninit;
/// use ft_malloc::{ArenaProvider, Heap, IrqSpinLock};
///
/// static mut REGION: [MaybeUninit<u8>; 1 << 20] = [MaybeUninit::uninit(); 1 << 20];
///
/// #[global_allocator]
/// // SAFETY: REGION is used by nothing but this heap.
/// static HEAP: Heap<ArenaProvider, IrqSpinLock> =
///     Heap::new(unsafe { ArenaProvider::new((&raw mut REGION).cast(), 1 << 20) });
/// ```
pub struct IrqSpinLock {
    locked: AtomicBool,
    /// Whether interrupts were enabled when the holder locked: restored on
    /// unlock. Written only by the holder.
    interrupts_were_enabled: AtomicBool,
}

impl core::fmt::Debug for IrqSpinLock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IrqSpinLock")
            .field("locked", &self.locked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
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
