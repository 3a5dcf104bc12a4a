//! malloc_trim and mallopt: glibc's knobs.
//!
//! `mallopt` accepts every parameter glibc 2.36 accepts and answers as glibc
//! does (1, or 0 for an `M_MXFAST` outside `0..=160`). Two mean something
//! here and are honoured:
//!
//! - `M_CHECK_ACTION` (-5): glibc's old bits, bit 1 "abort", bit 0 "print":
//!   2 or 3 is `FT_MALLOC_CHECK=abort`, 1 is `warn`, 0 is `quiet`;
//! - `M_PERTURB` (-6): non-zero turns `FT_MALLOC_SCRIBBLE` on, 0 off (the
//!   fill bytes stay this library's `0xAA`/`0x55`, not glibc's value).
//!
//! The others are accepted and have no effect, because the structure they
//! tune does not exist here: `M_MXFAST` (fastbins; the per-thread caches
//! have fixed sizes), `M_TRIM_THRESHOLD` and `M_TOP_PAD` (no top chunk; empty
//! zones and freed LARGE runs are kept or released by the heap's own
//! limits), `M_MMAP_THRESHOLD` and `M_MMAP_MAX` (every block above
//! `SMALL_MAX` gets its own run), `M_ARENA_TEST` and `M_ARENA_MAX` (one heap
//! with per-thread caches, no arenas), and glibc's unused `M_NLBLKS`,
//! `M_GRAIN`, `M_KEEP`. An unknown parameter returns 1, as in glibc.

use core::ffi::c_int;

use crate::config::{self, CheckMode};
use crate::{HEAP, lifecycle};

/// glibc's `mallopt` parameter numbers (`<malloc.h>`).
const M_MXFAST: c_int = 1;
const M_CHECK_ACTION: c_int = -5;
const M_PERTURB: c_int = -6;
/// glibc's largest `M_MXFAST` (`80 * sizeof(size_t) / 4` on 64-bit).
const MXFAST_MAX: c_int = (80 * size_of::<usize>() / 4) as c_int;

/// `malloc_trim(3)`: gives every free page the heap can back to the kernel
/// (`Heap::trim`: the depots' blocks, empty zones, free pages inside zones,
/// freed LARGE runs kept for reuse; like glibc's, the per-thread caches keep
/// their few blocks). `pad` is ignored
/// (there is no top chunk to keep). Returns 1 if memory was released, else
/// 0, as glibc does.
///
/// # Safety
///
/// None.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_trim(pad: usize) -> c_int {
    let _ = pad;
    c_int::from(HEAP.trim() != 0)
}

/// `mallopt(3)`: see the module documentation. Returns 1 on success, 0 for a
/// value glibc refuses.
///
/// # Safety
///
/// None.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    // Settings are changed after they are read (and the process readied),
    // so the environment cannot undo this.
    let _ = lifecycle::settings();
    match param {
        M_MXFAST => c_int::from((0..=MXFAST_MAX).contains(&value)),
        M_CHECK_ACTION => {
            config::set_check(if value & 2 != 0 {
                CheckMode::Abort
            } else if value & 1 != 0 {
                CheckMode::Warn
            } else {
                CheckMode::Quiet
            });
            1
        }
        M_PERTURB => {
            config::set_scribble(value != 0);
            1
        }
        _ => 1,
    }
}
