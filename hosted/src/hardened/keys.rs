//! The hardened mode's per-process secret and the keyed hash of what it
//! stores where a program can read it (canary trailers, quarantine tags),
//! and the seed of each thread's random state.

use core::sync::atomic::{AtomicUsize, Ordering};

/// wyhash's "mum": the two halves of a 64 x 64 -> 128-bit product, xored.
fn mum(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    m as u64 ^ (m >> 64) as u64
}

/// A keyed hash of `x` (an address) under the process secret and `salt`,
/// for what the heap stores in memory a program can read (canary trailers,
/// quarantine tags). Unlike a xor with the secret, one value read with its
/// address known does not give the secret away, nor the value of another
/// address: not a cryptographic MAC, but no cheap algebra inverts it.
#[inline]
pub(super) fn keyed(salt: usize, x: usize) -> usize {
    let key = secret() as u64;
    mum(x as u64 ^ key ^ salt as u64, key.rotate_left(32) | 1) as usize
}

/// A per-process secret for the canary and quarantine tags: derived from
/// the kernel's 16 random bytes (`AT_RANDOM`, read once) through a hash, so
/// that nothing stored reveals them (glibc draws its stack and pointer
/// guards from the same bytes).
pub(super) fn secret() -> usize {
    static SECRET: AtomicUsize = AtomicUsize::new(0);
    let known = SECRET.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    // SAFETY: getauxval has no preconditions; AT_RANDOM, when present,
    // points at 16 bytes the kernel put on the initial stack for the
    // process's lifetime.
    let (low, high) = unsafe {
        let at = libc::getauxval(libc::AT_RANDOM) as *const u8;
        if at.is_null() {
            (0, 0)
        } else {
            (
                at.cast::<u64>().read_unaligned(),
                at.add(8).cast::<u64>().read_unaligned(),
            )
        }
    };
    // Never 0, which means "not read yet".
    let value = mum(low ^ 0xa076_1d64_78bd_642f, high ^ 0xe703_7ed1_a0b4_28db) as usize | 1;
    SECRET.store(value, Ordering::Relaxed);
    value
}

/// A nonzero seed for a thread's random state, from the process secret and
/// `salt` (its cache's address).
pub(super) fn seed(salt: usize) -> u64 {
    ((secret() ^ salt.rotate_left(29)) as u64) | 1
}
