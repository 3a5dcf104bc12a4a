//! [`FutexMutex`]: the heap's lock in a hosted process.
//!
//! A spinlock is wrong for a preloaded `malloc`: programs run more threads
//! than there are cores, and a thread spinning on a lock whose holder was
//! preempted burns its whole time slice for nothing. This lock spins briefly
//! (the holder usually leaves within a few hundred cycles: heap critical
//! sections are short), then sleeps in the kernel with `futex(2)` until the
//! holder wakes it. It is the classic three-state futex mutex (Drepper,
//! "Futexes Are Tricky", mutex 2), the algorithm Rust's std uses on Linux.
//!
//! It needs no initialisation beyond a zero word, never allocates, and may be
//! released by the child of a `fork` (the word is plain memory; waiters that
//! existed in the parent do not exist in the child, and a spurious wake-up is
//! harmless).

use core::sync::atomic::{AtomicU32, Ordering};

use lock_api::{GuardSend, RawMutex};

use crate::os::ErrnoGuard;

/// Nobody holds the lock.
const UNLOCKED: u32 = 0;
/// Held, and nobody sleeps on it: unlocking needs no system call.
const LOCKED: u32 = 1;
/// Held, and some thread may sleep on it: unlocking must wake one.
const CONTENDED: u32 = 2;
/// Busy-wait iterations before sleeping. About 1 to 3 µs on current x86:
/// longer than a typical heap critical section, shorter than a context switch.
const SPIN_LIMIT: u32 = 100;

/// A futex-based [`lock_api::RawMutex`].
#[derive(Debug)]
pub struct FutexMutex {
    state: AtomicU32,
}

impl FutexMutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        FutexMutex {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut state = self.spin();
        if state == UNLOCKED {
            match self.state.compare_exchange(
                UNLOCKED,
                LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        loop {
            // Mark the lock contended before sleeping, so the holder knows to
            // wake us. If it was free at that instant, we now hold it (marked
            // contended, which at worst costs one unneeded wake-up).
            if state != CONTENDED && self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return;
            }
            futex_wait(&self.state, CONTENDED);
            state = self.spin();
        }
    }

    /// Spins while the lock is held by a thread that is (probably) running,
    /// and returns the last state seen.
    fn spin(&self) -> u32 {
        let mut spins = 0;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state != LOCKED || spins == SPIN_LIMIT {
                return state;
            }
            core::hint::spin_loop();
            spins += 1;
        }
    }
}

impl Default for FutexMutex {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `lock` returns only after moving the state from UNLOCKED to LOCKED
// or CONTENDED with Acquire ordering, which exactly one thread can do until
// `unlock` stores UNLOCKED with Release ordering: mutual exclusion with the
// right happens-before edges.
unsafe impl RawMutex for FutexMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = FutexMutex::new();
    // Any thread may unlock (the fork child does so for its parent's thread).
    type GuardMarker = GuardSend;

    #[inline]
    fn lock(&self) {
        // No other thread exists to race with (and none can start while
        // this one is inside the allocator): a load and a store do, as in
        // glibc's own malloc, and the state stays right for when a second
        // thread starts. A lock already held here means re-entry (a signal
        // handler calling malloc): that takes the slow path and waits, as
        // before, instead of entering the heap twice.
        if single_threaded() && self.state.load(Ordering::Relaxed) == UNLOCKED {
            self.state.store(LOCKED, Ordering::Relaxed);
            return;
        }
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    unsafe fn unlock(&self) {
        if single_threaded() {
            // Still one thread: nobody can be waiting.
            self.state.store(UNLOCKED, Ordering::Relaxed);
            return;
        }
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex_wake_one(&self.state);
        }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }
}

unsafe extern "C" {
    /// glibc (2.32+) keeps this true while the process has a single thread;
    /// it turns false before a second thread starts, and true again in the
    /// child of a `fork`.
    static __libc_single_threaded: core::ffi::c_char;
}

/// Whether the process has only the calling thread (also what glibc's
/// `fork` checks to skip its own locking; `lifecycle` does the same).
#[inline]
pub(crate) fn single_threaded() -> bool {
    // SAFETY: a plain byte that glibc writes only on the paths above, which
    // happen-before any other thread could call into the allocator.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

/// Sleeps while `*word == expected` (returns at once otherwise, or on any
/// wake-up or signal: the caller re-checks).
fn futex_wait(word: &AtomicU32, expected: u32) {
    let _errno = ErrnoGuard::save();
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, which lives for
    // the call; a null timeout means no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one thread sleeping on `word`, if any.
fn futex_wake_one(word: &AtomicU32) {
    let _errno = ErrnoGuard::save();
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}
