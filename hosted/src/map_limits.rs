//! Requests no trim can make room for, told apart from ones that failed
//! only for now (`PageProvider::may_map_later`).
//!
//! When `mmap` refuses a LARGE run, the heap would give back every cache it
//! holds (`Heap::trim`: depots drained, zones walked, `madvise` calls) and
//! try again. That helps when the process is short of address space under
//! `RLIMIT_AS` or of commit charge (`vm.overcommit_memory=2`): what is given
//! back is then available again. It cannot help when the request alone is
//! larger than:
//!
//! - the user address space (47 bits on x86_64 and 48 on aarch64 for a
//!   mapping without an address hint);
//! - `RLIMIT_AS` (read now: the program may change it);
//! - with the kernel's default heuristic overcommit (`vm.overcommit_memory`
//!   0), RAM plus swap: the kernel refuses any single mapping above that
//!   (`__vm_enough_memory`), however much is free.
//!
//! Those fail at once, as glibc's do, keeping the caches. Only the failure
//! path pays for the check (two system calls, and one file read per process
//! for the overcommit mode).

use core::sync::atomic::{AtomicU8, Ordering};

use crate::os::ErrnoGuard;

/// Bytes a mapping without an address hint can span at most.
#[cfg(target_arch = "x86_64")]
const USER_ADDRESS_SPACE: usize = 1 << 47;
#[cfg(target_arch = "aarch64")]
const USER_ADDRESS_SPACE: usize = 1 << 48;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const USER_ADDRESS_SPACE: usize = isize::MAX as usize;

/// Where the kernel says how it overcommits.
const OVERCOMMIT_FILE: &core::ffi::CStr = c"/proc/sys/vm/overcommit_memory";
/// `OVERCOMMIT_MODE` before it is read, and when it cannot be.
const MODE_UNKNOWN: u8 = u8::MAX;
/// `vm.overcommit_memory = 0`: the heuristic that refuses one mapping
/// larger than RAM + swap.
const MODE_HEURISTIC: u8 = 0;

/// The overcommit mode, read at the first failure (it is a sysadmin
/// setting, not one that changes under a running program).
static OVERCOMMIT_MODE: AtomicU8 = AtomicU8::new(MODE_UNKNOWN);

/// Whether `len` bytes could be mapped once the heap gave back all it holds.
pub(crate) fn may_map_later(len: usize) -> bool {
    if len >= USER_ADDRESS_SPACE {
        return false;
    }
    let _errno = ErrnoGuard::save();
    // SAFETY: getrlimit and sysinfo write only the structures given.
    unsafe {
        let mut limit: libc::rlimit = core::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_AS, &mut limit) == 0
            && limit.rlim_cur != libc::RLIM_INFINITY
            && len as libc::rlim_t > limit.rlim_cur
        {
            return false;
        }
        if overcommit_mode() == MODE_HEURISTIC {
            let mut info: libc::sysinfo = core::mem::zeroed();
            if libc::sysinfo(&mut info) == 0 {
                let unit = u64::from(info.mem_unit.max(1));
                let total = (info.totalram as u64)
                    .saturating_add(info.totalswap as u64)
                    .saturating_mul(unit);
                if len as u64 > total {
                    return false;
                }
            }
        }
    }
    true
}

/// `vm.overcommit_memory`, or [`MODE_UNKNOWN`].
fn overcommit_mode() -> u8 {
    let mode = OVERCOMMIT_MODE.load(Ordering::Relaxed);
    if mode != MODE_UNKNOWN {
        return mode;
    }
    let mut digit = [0u8; 1];
    // SAFETY: open/read/close of a proc file into a one-byte buffer.
    let read = unsafe {
        let fd = libc::open(OVERCOMMIT_FILE.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return MODE_UNKNOWN;
        }
        let n = libc::read(fd, digit.as_mut_ptr().cast(), 1);
        libc::close(fd);
        n
    };
    let mode = if read == 1 && digit[0].is_ascii_digit() {
        digit[0] - b'0'
    } else {
        MODE_UNKNOWN
    };
    OVERCOMMIT_MODE.store(mode, Ordering::Relaxed);
    mode
}
