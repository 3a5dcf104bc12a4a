//! The library's life hooks as a C library: plain ELF `.init_array` and
//! `.fini_array` entries, which the dynamic loader runs when the library is
//! loaded and at exit (no `atexit`, whose glibc version may call `calloc`;
//! no Rust runtime).

use core::alloc::Layout;

use crate::{HEAP, config, lifecycle, thread_cache};

/// Load-time constructor: fork handlers, settings, and the heap's first-use
/// set-up.
///
/// The warm-up allocation makes the heap's one-time costs (its static state,
/// the first page-map nodes, the first zone) happen when the library loads,
/// as jemalloc's constructor does, instead of inside the program's first
/// `malloc`. Nearly every program allocates during start-up anyway; the ones
/// that measure their own allocations (the subject's page-fault test) then
/// see only what those allocations cost.
extern "C" fn on_load() {
    let _ = lifecycle::settings();
    // Touch every lock (the pages of the heap's static state).
    HEAP.lock_all();
    // SAFETY: this thread has just taken every lock.
    unsafe { HEAP.unlock_all() };
    // Through the thread cache: the main thread's cache and the first
    // magazines are one-time costs too.
    if let Some(block) = thread_cache::allocate(WARM_UP) {
        // SAFETY: just allocated from this heap, not used.
        let _ = unsafe { thread_cache::deallocate(block) };
    }
}

/// The warm-up request: the smallest class, the one start-up code uses most.
const WARM_UP: Layout = Layout::new::<u8>();

/// Exit-time destructor: `FT_MALLOC_SHOW_AT_EXIT`.
extern "C" fn on_exit() {
    if config::current().show_at_exit {
        super::show_alloc_mem();
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[used]
#[unsafe(link_section = ".fini_array")]
static ON_EXIT: extern "C" fn() = on_exit;
