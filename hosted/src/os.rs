//! The few system calls the allocator makes, each wrapped once.
//!
//! Everything here is safe to call from inside `malloc`: no function below
//! allocates, takes a libc lock or uses stdio. Each wrapper leaves `errno` as
//! it found it, because C callers may look at `errno` after a *successful*
//! `malloc` or after `free` (POSIX 2024 requires `free` to preserve it), and a
//! failed `mmap` or an interrupted `futex` must not show through.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Remembers `errno` and puts it back when dropped.
pub(crate) struct ErrnoGuard(i32);

impl ErrnoGuard {
    #[inline]
    pub(crate) fn save() -> Self {
        ErrnoGuard(errno())
    }
}

impl Drop for ErrnoGuard {
    #[inline]
    fn drop(&mut self) {
        set_errno(self.0);
    }
}

/// The calling thread's `errno`.
#[inline]
pub(crate) fn errno() -> i32 {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
#[inline]
pub(crate) fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// Writes all of `bytes` to `fd`, retrying short writes and `EINTR`, giving up
/// on any other error. Returns whether everything was written (most callers
/// have nobody to tell; `show_alloc_mem_svg` returns it).
pub(crate) fn write_all(fd: i32, mut bytes: &[u8]) -> bool {
    let _errno = ErrnoGuard::save();
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice for its length.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written > 0 {
            bytes = &bytes[written as usize..];
        } else if written < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return false;
        }
    }
    true
}

/// Whether `fd` is a terminal (`isatty`; `errno` is left alone).
#[cfg(feature = "c-abi")]
pub(crate) fn is_terminal(fd: i32) -> bool {
    let _errno = ErrnoGuard::save();
    // SAFETY: `isatty` only asks the kernel (an ioctl) about `fd`.
    unsafe { libc::isatty(fd) == 1 }
}

/// Ends the process with `SIGABRT`, as glibc does on heap corruption. Used
/// when `FT_MALLOC_CHECK=abort`.
pub(crate) fn abort() -> ! {
    // SAFETY: `abort` has no preconditions; glibc's does not allocate.
    unsafe { libc::abort() }
}

/// The system page size, read once (`sysconf` answers from the auxiliary
/// vector without allocating).
pub(crate) fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let _errno = ErrnoGuard::save();
    // SAFETY: `sysconf` has no memory preconditions.
    let answer = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if answer >= ft_malloc::MIN_PAGE_SIZE as libc::c_long
        && (answer as usize).is_power_of_two()
    {
        answer as usize
    } else {
        ft_malloc::MIN_PAGE_SIZE
    };
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}
