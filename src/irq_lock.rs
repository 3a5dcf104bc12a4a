//! A kernel heap's lock (feature `x86_64`): a spin lock that also turns
//! interrupts off while it is held. The test kernel (`qemu-test/`) uses it.

use core::arch::asm;
use core::hint::spin_loop;
use core::sync::atomic::{AtomicU16, Ordering};

use lock_api::{GuardNoSend, RawMutex};
use x86_64::instructions::interrupts;
use x86_64::registers::rflags;

/// RFLAGS' interrupt flag (IF, bit 9).
const INTERRUPT_FLAG: u16 = 1 << 9;
/// Set in every held lock's word, whatever the flags were (bit 0 of
/// RFLAGS is the carry flag, which may be clear).
const HELD: u16 = 1;

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
///
/// # Cost
///
/// The flag is saved once per lock and restored once per unlock, and the
/// heap locks once per allocation and once per free. The saved flags are
/// the lock word itself: locking swaps 0 for the low 16 bits of RFLAGS
/// (with bit 0 set, so that a held word is never 0), so no separate store
/// records them, and unlocking reads the word it clears. Over the default
/// spin lock that is `pushfq`, `pop`, `or`, `cli` per lock and a load, a
/// test and `sti` per unlock.
pub struct IrqSpinLock {
    /// 0 while free; while held, the holder's RFLAGS (low 16 bits) as they
    /// were before it locked, with [`HELD`] set: its interrupt flag is
    /// what the unlock restores.
    word: AtomicU16,
}

impl core::fmt::Debug for IrqSpinLock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IrqSpinLock")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// The low 16 bits of RFLAGS (the interrupt flag among them), with
/// [`HELD`] set: a held lock's word, never 0.
#[inline(always)]
fn flags_held() -> u16 {
    // Truncation intended: IF is bit 9.
    (rflags::read_raw() as u16) | HELD
}

/// Turns interrupts back on (`sti`).
///
/// The `x86_64` crate's `enable` is `sti; nop`, the `nop` ending the one
/// instruction shadow in which `sti` keeps interrupts off. An unlock needs
/// no such care: whatever follows it (at least the caller's next
/// instruction) runs in the shadow, and the interrupt is taken right after.
#[inline(always)]
fn enable_interrupts() {
    // SAFETY: `sti` changes only the interrupt flag; it is privileged, as
    // every use of this lock is (ring 0, see the type's documentation).
    // Not `nomem`: like a lock release, memory accesses must not move
    // across it.
    unsafe { asm!("sti", options(preserves_flags, nostack)) };
}

// SAFETY: `lock` returns only after moving `word` from 0 to a non-zero value
// with Acquire ordering, which one CPU at a time can do until `unlock` stores
// 0 with Release ordering: mutual exclusion with the right happens-before
// edges. Guards must not move to another CPU (`GuardNoSend`), because the
// interrupt flag restored on unlock is that CPU's.
unsafe impl RawMutex for IrqSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = IrqSpinLock {
        word: AtomicU16::new(0),
    };
    type GuardMarker = GuardNoSend;

    #[inline]
    fn lock(&self) {
        let held = flags_held();
        // Off before spinning: an interrupt taken while we wait could
        // allocate and wait for a lock this CPU is about to hold.
        interrupts::disable();
        while self
            .word
            .compare_exchange_weak(0, held, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.word.load(Ordering::Relaxed) != 0 {
                spin_loop();
            }
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        let held = flags_held();
        interrupts::disable();
        if self
            .word
            .compare_exchange(0, held, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            true
        } else {
            if held & INTERRUPT_FLAG != 0 {
                enable_interrupts();
            }
            false
        }
    }

    #[inline]
    unsafe fn unlock(&self) {
        // Only the holder writes the word while it is held.
        let held = self.word.load(Ordering::Relaxed);
        self.word.store(0, Ordering::Release);
        // Locks nest (the heap's `lock_all` takes them all, and releases
        // them in reverse): only the outermost one saw interrupts enabled,
        // so only its unlock turns them back on.
        if held & INTERRUPT_FLAG != 0 {
            enable_interrupts();
        }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }
}
