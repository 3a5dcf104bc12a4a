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
///
/// The system call is made with `syscall(SYS_write)`, not libc's `write`:
/// `write` is a cancellation point, and no allocator entry point may be one
/// (a thread with a cancel pending that reports a bad `free` or calls
/// `malloc_stats` must return from it, as glibc's malloc does). `syscall`
/// is not a cancellation point.
pub(crate) fn write_all(fd: i32, mut bytes: &[u8]) -> bool {
    let _errno = ErrnoGuard::save();
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice for its length.
        let written = unsafe {
            libc::syscall(
                libc::SYS_write,
                libc::c_long::from(fd),
                bytes.as_ptr(),
                bytes.len(),
            )
        };
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

/// The system page size, read once from the auxiliary vector (where
/// `sysconf(_SC_PAGESIZE)` reads it; `sysconf` itself would make a 64 KiB
/// window of libc's read-only data resident in every process).
pub(crate) fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let _errno = ErrnoGuard::save();
    // SAFETY: `getauxval` has no preconditions.
    let answer = unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize;
    let size = if answer >= ft_malloc::MIN_PAGE_SIZE && answer.is_power_of_two() {
        answer
    } else {
        ft_malloc::MIN_PAGE_SIZE
    };
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Holds off thread cancellation while alive (`pthread_setcancelstate`), for
/// the entry points that must call a libc function that is a cancellation
/// point (`malloc_info`'s `fwrite`).
#[cfg(feature = "c-abi")]
pub(crate) struct NoCancel(libc::c_int);

// Not in the `libc` crate: POSIX's, as glibc declares it (`<pthread.h>`).
#[cfg(feature = "c-abi")]
unsafe extern "C" {
    fn pthread_setcancelstate(state: libc::c_int, old: *mut libc::c_int) -> libc::c_int;
}
/// glibc's `PTHREAD_CANCEL_DISABLE` (`PTHREAD_CANCEL_ENABLE` is 0).
#[cfg(feature = "c-abi")]
const PTHREAD_CANCEL_DISABLE: libc::c_int = 1;

#[cfg(feature = "c-abi")]
impl NoCancel {
    pub(crate) fn hold() -> Self {
        let mut old = 0;
        // SAFETY: `old` is a valid out-pointer; the call has no other
        // precondition and does not allocate.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
        NoCancel(old)
    }
}

#[cfg(feature = "c-abi")]
impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: as in `hold`; restores the state `hold` found.
        unsafe { pthread_setcancelstate(self.0, &mut ignored) };
    }
}
