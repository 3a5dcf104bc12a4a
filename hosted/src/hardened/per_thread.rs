//! What a thread's cache carries for the hardened mode: its quarantine ring
//! and its random state. `thread_cache.rs` owns the cache and hands this
//! part to the hardened mode ([`crate::thread_cache::hardened_state`]);
//! this file owns what is in it. Both are used by their thread only (and,
//! at exit or when reclaimed, by whoever holds the cache alone): no lock.

use core::ptr::NonNull;

use super::keys;
use super::quarantine::{self, Ring};
use crate::HEAP;
use crate::policy::Misuse;

/// The hardened mode's part of one thread's cache.
pub(crate) struct PerThread {
    /// The thread's quarantine FIFO (`quarantine.rs`).
    pub(super) quarantine: Ring,
    /// xorshift64 state for `FT_MALLOC_RANDOM_SLOTS`; 0 until first used.
    random: u64,
}

impl PerThread {
    /// The initial state, all zero bytes: a new cache's `PerThread` is the
    /// kernel's zeroes, never written (`thread_cache::map_cache`); this is
    /// what the test compares them with.
    #[cfg(test)]
    pub(crate) const fn new() -> Self {
        PerThread {
            quarantine: Ring::new(),
            random: 0,
        }
    }

    /// The thread's next random number (xorshift64, seeded from the
    /// process secret and this state's address).
    pub(super) fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        if x == 0 {
            x = keys::seed(core::ptr::from_ref(self).addr());
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    /// At thread exit (or when an exited thread's cache is reclaimed):
    /// checks every block held in the quarantine and frees it to the heap
    /// itself (the calling thread has no cache of its own meanwhile); a
    /// block written after it was freed is reported and kept out of reuse.
    pub(crate) fn drain(&mut self) {
        for (block, usable) in self.quarantine.drain() {
            // SAFETY: a held block: still live in the heap, ours.
            if unsafe { quarantine::check_and_release(block, usable) } {
                free_to_heap(block);
            } else {
                Misuse::WriteAfterFree.report("free", block.as_ptr().cast());
            }
        }
    }
}

/// Frees a checked block straight to the heap.
fn free_to_heap(block: NonNull<u8>) {
    // SAFETY: `deallocate` validates the pointer first.
    if let Err(error) = unsafe { HEAP.deallocate(block) } {
        Misuse::Heap(error).report("free", block.as_ptr().cast());
    }
}

#[cfg(test)]
mod tests {
    use super::PerThread;

    /// `thread_cache::map_cache` leaves a new cache's `PerThread` as the
    /// kernel's zeroes: they must be `PerThread::new()`.
    #[test]
    fn new_is_all_zero_bytes() {
        let state = PerThread::new();
        // SAFETY: reads the bytes of a live value; `PerThread` holds
        // integers only (no padding).
        let bytes = unsafe {
            core::slice::from_raw_parts(
                core::ptr::from_ref(&state).cast::<u8>(),
                core::mem::size_of::<PerThread>(),
            )
        };
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
