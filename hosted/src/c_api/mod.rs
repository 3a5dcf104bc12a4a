//! The C ABI: the functions a C program links against or that `LD_PRELOAD`
//! puts in front of glibc's.
//!
//! Each entry point is a thin shell around the core [`Heap`](ft_malloc::Heap):
//! it turns C arguments into a [`Layout`], C failures into `NULL` + `errno`,
//! refused pointers into a report, and applies the debug settings. The
//! semantics follow glibc wherever the C and POSIX standards leave a choice;
//! `hosted/README.md` lists each one.
//!
//! Nothing here unwinds (the workspace builds with `panic = "abort"` and these
//! functions do not panic), allocates other than from the heap, or uses std.

mod aligned;
mod alloc;
mod cxx;
mod heap_summary;
mod hooks;
mod info;
mod show;
mod sized;
mod tuning;

pub use aligned::{aligned_alloc, memalign, posix_memalign, pvalloc, valloc};
pub use alloc::{calloc, cfree, free, malloc, malloc_usable_size, realloc, reallocarray, reallocf};
pub use cxx::*;
pub use info::{Mallinfo, Mallinfo2, mallinfo, mallinfo2, malloc_info, malloc_stats};
pub use show::{show_alloc_mem, show_alloc_mem_ex, show_alloc_mem_svg};
pub use sized::{free_aligned_sized, free_sized};
pub use tuning::{malloc_trim, mallopt};

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use crate::config::Config;
pub(crate) use crate::layout::{DEFAULT_ALIGN, c_layout};
use crate::os;
use crate::thread_cache;

/// `FT_MALLOC_SCRIBBLE` fill for new blocks: garbage that is easy to spot.
pub(crate) const SCRIBBLE_NEW: u8 = 0xAA;
/// `FT_MALLOC_SCRIBBLE` fill for freed blocks, so use-after-free reads 0x55.
pub(crate) const SCRIBBLE_FREED: u8 = 0x55;

/// Allocates `size` bytes aligned to `align` (a power of two), scribbling if
/// asked, with the hardened mode's defences if on. Leaves `errno` alone:
/// callers decide how to report a failure.
#[inline]
fn allocate(size: usize, align: usize, config: Config) -> Option<NonNull<u8>> {
    let block = if config.defences.on_alloc() {
        crate::hardened::allocate(size, align, false, config.defences)?
    } else {
        thread_cache::allocate(c_layout(size, align)?)?
    };
    if config.scribble {
        // SAFETY: a fresh block of at least `size` bytes, ours to write.
        unsafe { ptr::write_bytes(block.as_ptr(), SCRIBBLE_NEW, size) };
    }
    Some(block)
}

/// A C result: the block, or `NULL` with `errno = ENOMEM`.
#[inline]
fn or_enomem(block: Option<NonNull<u8>>) -> *mut c_void {
    match block {
        Some(block) => block.as_ptr().cast(),
        None => {
            os::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}
