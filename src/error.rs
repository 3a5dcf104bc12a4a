//! What can go wrong, as values: the core never prints and never aborts; the
//! caller (the C shim, a kernel) decides what to say.

use core::fmt;

/// A pointer handed to `deallocate`, `reallocate` or `usable_size` that the
/// heap refuses. The heap is unchanged when one of these is returned.
///
/// New checks may add variants, hence `#[non_exhaustive]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeapError {
    /// Not a block this heap handed out: never allocated here, an interior or
    /// misaligned pointer, or a pointer into memory the heap does not own.
    InvalidPointer,
    /// A block of a live zone that is already free.
    DoubleFree,
    /// The heap's own metadata for this pointer failed a consistency check
    /// (for example a LARGE header overwritten by a buffer underflow).
    Corrupted,
    /// The block's slack canary (the byte right after its requested size)
    /// was overwritten: the program wrote past the end of its block. The
    /// block is not freed (nor resized): it stays out of reuse, so nothing
    /// the overflow reached is handed out again.
    Overflow,
}

impl HeapError {
    /// A short lowercase description, for messages such as
    /// `free(): invalid pointer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HeapError::InvalidPointer => "invalid pointer",
            HeapError::DoubleFree => "double free",
            HeapError::Corrupted => "corrupted heap metadata",
            HeapError::Overflow => "heap overflow past the requested size",
        }
    }
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for HeapError {}

/// Why `reallocate` failed. In every case the old block is untouched and
/// still owned by the caller (or was never valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReallocError {
    /// The pointer was refused; see [`HeapError`].
    Invalid(HeapError),
    /// No memory for the new size (or the size is impossible).
    OutOfMemory,
}

impl fmt::Display for ReallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReallocError::Invalid(e) => e.fmt(f),
            ReallocError::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

impl core::error::Error for ReallocError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ReallocError::Invalid(e) => Some(e),
            ReallocError::OutOfMemory => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::error::Error;

    #[test]
    fn errors_display_and_chain() {
        extern crate std;
        use std::string::ToString;
        let e = ReallocError::Invalid(HeapError::DoubleFree);
        assert_eq!(e.to_string(), "double free");
        assert_eq!(e.source().unwrap().to_string(), "double free");
        assert!(ReallocError::OutOfMemory.source().is_none());
        assert_eq!(ReallocError::OutOfMemory.to_string(), "out of memory");
    }
}
