//! Process life events: load (fork handlers), `fork`, and exit
//! (`FT_MALLOC_SHOW_AT_EXIT`).
//!
//! The hooks are plain ELF `.init_array` / `.fini_array` entries, which the
//! dynamic loader runs when the library is loaded and at exit: no `atexit`
//! (glibc's may call `calloc`), no Rust runtime. The heap itself needs no
//! initialisation (it is a `const` static), so `malloc` works before the
//! constructor runs; only the fork handlers wait for it, and [`ensure`] also
//! registers them at the first allocation in case a program forks before our
//! constructor ran.
//!
//! Fork safety: `prepare` takes every heap lock, so no thread is inside the
//! heap when the address space is copied; the parent releases them, and the
//! child, whose only thread is the one that forked, releases them too and can
//! allocate at once even if other threads were inside `malloc` at the time.
//! Handlers registered earlier run their `prepare` later (POSIX order), so
//! registering at load time means ours runs after those of libraries loaded
//! later, which may still allocate in theirs.

#[cfg(feature = "c-abi")]
use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, Ordering};

#[cfg_attr(not(feature = "c-abi"), allow(unused_imports))]
use crate::{HEAP, config};

/// Whether the fork handlers have been registered (or are being).
static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);

extern "C" fn before_fork() {
    HEAP.lock_all();
}

extern "C" fn after_fork_in_parent() {
    // SAFETY: `before_fork` took every lock in this thread.
    unsafe { HEAP.unlock_all() };
}

extern "C" fn after_fork_in_child() {
    // SAFETY: the parent's forking thread took every lock in `before_fork`;
    // this thread is its copy, and no other thread exists in the child.
    unsafe { HEAP.unlock_all() };
}

/// Registers the fork handlers once. Cheap after the first call.
#[inline]
pub(crate) fn ensure() {
    if !FORK_HANDLERS.load(Ordering::Relaxed) {
        register();
    }
}

#[cold]
fn register() {
    // Claim first: if `pthread_atfork` itself allocates, the nested `malloc`
    // sees the flag set and does not recurse.
    if FORK_HANDLERS.swap(true, Ordering::Relaxed) {
        return;
    }
    // The heap reports the corruption it finds (a poisoned free list) the
    // way the library reports a bad pointer.
    HEAP.set_corruption_handler(crate::report::heap_corrupted);
    let _errno = crate::os::ErrnoGuard::save();
    // SAFETY: the handlers are `extern "C" fn()` living as long as the
    // process (this library is never unloaded while in use as the malloc).
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        );
    }
}

#[cfg(feature = "c-abi")]
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
    ensure();
    let _ = config::get();
    // Touch every lock (the pages of the heap's static state).
    HEAP.lock_all();
    // SAFETY: this thread has just taken every lock.
    unsafe { HEAP.unlock_all() };
    if let Some(block) = HEAP.allocate(WARM_UP) {
        // SAFETY: just allocated from this heap, not used.
        let _ = unsafe { HEAP.deallocate(block) };
    }
}

#[cfg(feature = "c-abi")]
/// The warm-up request: the smallest class, the one start-up code uses most.
const WARM_UP: Layout = Layout::new::<u8>();

#[cfg(feature = "c-abi")]
/// Exit-time destructor: `FT_MALLOC_SHOW_AT_EXIT`.
extern "C" fn on_exit() {
    if config::get().show_at_exit {
        crate::c_api::show_alloc_mem();
    }
}

#[cfg(feature = "c-abi")]
#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[cfg(feature = "c-abi")]
#[used]
#[unsafe(link_section = ".fini_array")]
static ON_EXIT: extern "C" fn() = on_exit;
