//! [`FdWriter`]: formatted text to a file descriptor from a stack buffer.
//!
//! Everything the allocator prints (reports, traces, `show_alloc_mem`) goes
//! through this: `core::fmt` formats into a fixed array on the stack, which is
//! written with `write(2)` when full and when flushed. No heap, no stdio, no
//! locks, so it is usable inside `malloc` and while the heap's locks are held.

use core::fmt;

use crate::os;

/// A buffered writer to `fd`. Flushes on drop.
pub(crate) struct FdWriter<const N: usize> {
    fd: i32,
    len: usize,
    /// A write failed (the rest is dropped, not retried).
    failed: bool,
    buf: [u8; N],
}

impl<const N: usize> FdWriter<N> {
    pub(crate) const fn new(fd: i32) -> Self {
        FdWriter {
            fd,
            len: 0,
            failed: false,
            buf: [0; N],
        }
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&mut self) {
        if self.len != 0 {
            self.failed |= !os::write_all(self.fd, &self.buf[..self.len]);
            self.len = 0;
        }
    }

    #[cfg(feature = "c-abi")]
    /// Flushes, and says whether every write so far succeeded.
    pub(crate) fn finish(&mut self) -> bool {
        self.flush();
        !self.failed
    }

    /// Appends raw bytes.
    pub(crate) fn bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == N {
                self.flush();
            }
            let n = bytes.len().min(N - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }
}

impl<const N: usize> fmt::Write for FdWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

impl<const N: usize> Drop for FdWriter<N> {
    fn drop(&mut self) {
        self.flush();
    }
}
