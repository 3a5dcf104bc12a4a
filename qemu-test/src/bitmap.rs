//! Bitmaps with atomic updates, one bit per page or frame.
//!
//! The frame allocator's map of free frames and each heap window's map of
//! reserved pages are read by the page-fault handler, which may not take a
//! lock. Atomic words let it read (and the frame allocator claim) bits
//! without one.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bit operations over a slice of atomic words (bit `i` is bit `i % 64` of
/// word `i / 64`).
pub trait AtomicBits {
    /// Number of bits.
    fn bit_len(&self) -> usize;
    /// Whether bit `i` is set.
    fn is_set(&self, i: usize) -> bool;
    /// Sets bit `i`; returns whether it was already set.
    fn set(&self, i: usize) -> bool;
    /// Sets bits `start..start + n`.
    fn set_range(&self, start: usize, n: usize);
    /// Clears bits `start..start + n`.
    fn clear_range(&self, start: usize, n: usize);
    /// The first set bit in `start..end`, if any.
    fn first_set_in(&self, start: usize, end: usize) -> Option<usize>;
    /// The first clear bit in `start..end`, if any.
    fn first_clear_in(&self, start: usize, end: usize) -> Option<usize>;
    /// The first `n` consecutive clear bits starting at a multiple of
    /// `align` (first fit), if any.
    fn find_clear_run(&self, n: usize, align: usize) -> Option<usize>;
    /// Atomically clears the first set bit at or after word `hint` (wrapping
    /// around) and returns its index.
    fn take_first_set(&self, hint: usize) -> Option<usize>;
    /// Number of set bits.
    fn count_set(&self) -> usize;
}

/// The bits of word `w` that fall in `start..end`.
fn word_mask(w: usize, start: usize, end: usize) -> u64 {
    let lo = start.max(w * 64) - w * 64;
    let hi = end.min(w * 64 + 64) - w * 64;
    let upto_hi = if hi == 64 { u64::MAX } else { (1u64 << hi) - 1 };
    upto_hi & !((1u64 << lo) - 1)
}

impl AtomicBits for [AtomicU64] {
    fn bit_len(&self) -> usize {
        self.len() * 64
    }

    fn is_set(&self, i: usize) -> bool {
        self[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    fn set(&self, i: usize) -> bool {
        self[i / 64].fetch_or(1 << (i % 64), Ordering::AcqRel) & (1 << (i % 64)) != 0
    }

    fn set_range(&self, start: usize, n: usize) {
        let end = start + n;
        for (w, word) in self
            .iter()
            .enumerate()
            .take(end.div_ceil(64))
            .skip(start / 64)
        {
            word.fetch_or(word_mask(w, start, end), Ordering::AcqRel);
        }
    }

    fn clear_range(&self, start: usize, n: usize) {
        let end = start + n;
        for (w, word) in self
            .iter()
            .enumerate()
            .take(end.div_ceil(64))
            .skip(start / 64)
        {
            word.fetch_and(!word_mask(w, start, end), Ordering::AcqRel);
        }
    }

    fn first_set_in(&self, start: usize, end: usize) -> Option<usize> {
        if start >= end {
            return None;
        }
        (start / 64..end.div_ceil(64)).find_map(|w| {
            let bits = self[w].load(Ordering::Acquire) & word_mask(w, start, end);
            (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
        })
    }

    fn first_clear_in(&self, start: usize, end: usize) -> Option<usize> {
        if start >= end {
            return None;
        }
        (start / 64..end.div_ceil(64)).find_map(|w| {
            let bits = !self[w].load(Ordering::Acquire) & word_mask(w, start, end);
            (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
        })
    }

    fn find_clear_run(&self, n: usize, align: usize) -> Option<usize> {
        let mut start = 0;
        while start + n <= self.bit_len() {
            match self.first_set_in(start, start + n) {
                None => return Some(start),
                // Skip the whole set stretch, not one bit at a time.
                Some(taken) => {
                    let free = self.first_clear_in(taken, self.bit_len())?;
                    start = free.next_multiple_of(align);
                }
            }
        }
        None
    }

    fn take_first_set(&self, hint: usize) -> Option<usize> {
        let words = self.len();
        for w in (0..words).map(|k| (hint + k) % words) {
            let mut bits = self[w].load(Ordering::Acquire);
            while bits != 0 {
                let bit = bits.trailing_zeros();
                match self[w].compare_exchange(
                    bits,
                    bits & !(1 << bit),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Some(w * 64 + bit as usize),
                    Err(now) => bits = now,
                }
            }
        }
        None
    }

    fn count_set(&self) -> usize {
        self.iter()
            .map(|w| w.load(Ordering::Acquire).count_ones() as usize)
            .sum()
    }
}
