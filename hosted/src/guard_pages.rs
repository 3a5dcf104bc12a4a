//! Guard pages (`FT_MALLOC_GUARD_PAGES`): every run the provider maps (a
//! zone, or a LARGE block's run) gets one inaccessible page before and one
//! after it, so a linear overflow off the end of a zone or a LARGE block,
//! or an underflow before it, faults at once.
//!
//! Whether runs have guards must not change while any run is mapped (the
//! provider unmaps a run with its guards). So the decision is latched once,
//! by whichever comes first: the settings being read with the option on
//! ([`request`]), or the first run being mapped (then without guards). The
//! settings are read at the first `malloc`, before it maps anything; a
//! program whose first `malloc` runs before libc has set `environ` keeps
//! runs unguarded.
//!
//! Runs with guards never grow in place or move by `mremap` (the guard
//! after the run would be in the way, or left behind): the heap then
//! copies, as it does when `mremap` fails. They shrink in place ([`shrink`]):
//! the first page past the new end becomes the guard, the rest is unmapped,
//! so a shrunk LARGE block gives its tail pages back. Each guarded run is
//! three kernel mappings (`vm.max_map_count`, 65530 by default, bounds them
//! to about 21,000 runs).

use core::sync::atomic::{AtomicU8, Ordering};

use crate::os;

const UNDECIDED: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The settings ask for guards: on, unless a run was mapped already.
pub(crate) fn request() {
    let _ = STATE.compare_exchange(UNDECIDED, ON, Ordering::Relaxed, Ordering::Relaxed);
}

/// Whether runs get guard pages (latched at the first call if undecided).
#[inline]
pub(crate) fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => match STATE.compare_exchange(UNDECIDED, OFF, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => false,
            Err(now) => now == ON,
        },
    }
}

/// Shrinks the guarded run `[run, run + old_len)` to `new_len` bytes in
/// place: a fresh inaccessible page replaces the page right after the new
/// end (its old contents dropped: it is the new guard), and the rest of the
/// old run and its old guard are unmapped. Returns false, the run as it was,
/// if the kernel refuses the new guard.
///
/// # Safety
///
/// `run` is a live run of `old_len` bytes mapped with guards (so the page
/// after it is its guard), ours; `new_len < old_len`, both multiples of the
/// page; nothing uses the bytes past `new_len`.
pub(crate) unsafe fn shrink(run: *mut u8, old_len: usize, new_len: usize) -> bool {
    let page = os::page_size();
    let end = run.addr() + new_len;
    // SAFETY: `[end, end + page)` is inside the run (`new_len < old_len`,
    // page multiples), ours and unused: `MAP_FIXED` replaces only it, in one
    // step (no other thread can map there in between).
    let guard = unsafe {
        libc::mmap(
            end as *mut libc::c_void,
            page,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if guard == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: from the new guard's end to the old guard's end (the rest of
    // the run, `old_len - new_len - page` bytes, and the old guard's page),
    // ours, unused.
    unsafe { libc::munmap((end + page) as *mut libc::c_void, old_len - new_len) };
    true
}
