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
//! Runs with guards are never resized in place or moved by `mremap` (the
//! guard after the run would be in the way, or left behind): the heap then
//! copies, as it does when `mremap` fails. Each guarded run is three kernel
//! mappings (`vm.max_map_count`, 65530 by default, bounds them to about
//! 21,000 runs).

use core::sync::atomic::{AtomicU8, Ordering};

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
