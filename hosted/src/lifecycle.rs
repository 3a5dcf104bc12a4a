//! Process life events: the first call into the library ([`settings`],
//! [`ensure`]: the heap's key, the fork handlers, the settings) and `fork`.
//! (The C library's load-time constructor and exit-time destructor are in
//! `c_api/hooks.rs`.)
//!
//! The heap itself needs no initialisation (it is a `const` static), so
//! `malloc` works before any constructor runs; [`ensure`] readies the rest at
//! the first call in case a program allocates or forks before the library's
//! constructor ran.
//!
//! # Fork
//!
//! The child of a multi-threaded `fork` has one thread; a heap lock held by
//! any other thread at that instant would stay held forever there. So the
//! `pthread_atfork` prepare handler takes every heap lock, and the parent and
//! child handlers release them. *When* it takes them matters, because glibc's
//! own `fork` (2.36, posix/fork.c) takes locks too: it checks
//! `__libc_single_threaded`, runs the prepare handlers (ours among them),
//! then, only if multi-threaded, its NSS database lock (briefly), its stdio
//! list lock (`_IO_list_lock`), and its own malloc's locks *last*, "because
//! the libio list lock has an indirect malloc dependency (via getdelim)".
//!
//! Taking the heap locks in the handler, before the list lock, reverses that
//! order and can deadlock: `getline` holds a FILE lock and reallocs (waits for
//! a heap lock we hold), `fflush(NULL)` holds the list lock and waits for that
//! FILE lock, and `fork` waits for the list lock. So, when multi-threaded,
//! `prepare` takes the list lock itself *first* (it is recursive: glibc's
//! second acquisition just counts), then the heap locks. A thread holding a
//! FILE lock that waits for a heap lock now gets it, because we take no heap
//! lock until no thread can be inside stdio's list walk. The parent handler
//! releases the heap locks, then our level of the list lock (glibc released
//! its own before running the handlers). The child releases only the heap
//! locks: glibc has already reset the list lock there, so unlocking it again
//! would break its count.
//!
//! When single-threaded (as glibc reads it, `__libc_single_threaded`),
//! `prepare` takes no lock at all, as glibc skips its malloc locks: no other
//! thread can hold one, and `fork` may run in a signal handler that
//! interrupted this very thread inside `malloc` (waiting for its lock would
//! hang forever). The child of such a fork must not allocate, which is what
//! POSIX allows it anyway (async-signal-safe calls only). A flag remembers
//! whether `prepare` locked, so the other two handlers unlock exactly that.
//!
//! Other allocators: jemalloc and tcmalloc register `pthread_atfork` handlers
//! that lock everything, in the same place as ours did (same cycle risk with
//! stdio); mimalloc takes no fork locks and relies on thread-local heaps;
//! glibc's malloc locks last, inside `fork`, and skips it when
//! single-threaded. A preloaded library cannot run code inside `fork` after
//! the list lock, hence taking the list lock ourselves.
//!
//! Residual risk: glibc takes its NSS database lock between our handler and
//! the list lock, so a thread holding that lock while waiting for a heap lock
//! would still close a cycle. In glibc 2.36 (nss/nss_database.c) that lock
//! is held only to compare file-change stamps, `stat("/")`, and copy the
//! configuration struct; the `malloc` calls (state allocation, reloading
//! nsswitch.conf with `getline`) happen outside it. So no cycle is possible
//! there today; a future glibc that allocates under it would reopen one.
//! The same holds for a handler registered before ours that allocates (its
//! prepare runs after ours): it would wait for our locks.
//!
//! Handlers registered earlier run their `prepare` later (POSIX order), so
//! registering at load time means ours runs after those of libraries loaded
//! later, which may still allocate in theirs.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::config;
#[cfg(feature = "c-abi")]
use crate::config::Config;
use crate::futex_mutex::single_threaded;
use crate::{HEAP, thread_cache};

/// Whether the fork handlers have been registered (or are being).
static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);
/// Whether `before_fork` took the list lock and the heap locks (it does not
/// when single-threaded). Concurrent forks are serialised by glibc's atfork
/// lock in the multi-threaded case, and cannot happen in the other.
static LOCKED_FOR_FORK: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    /// glibc's stdio list lock (recursive), exported since GLIBC_2.2.5.
    fn _IO_list_lock();
    fn _IO_list_unlock();
}

extern "C" fn before_fork() {
    if single_threaded() {
        LOCKED_FOR_FORK.store(false, Ordering::Relaxed);
        return;
    }
    // SAFETY: takes glibc's recursive list lock, released in the parent
    // handler and reset by glibc in the child.
    unsafe { _IO_list_lock() };
    // The hardened mode's locks first: a hardened LARGE free holds its lock
    // while it may set up the thread's cache (the pool's lock) or free into
    // the heap (`hardened/large_quarantine.rs`).
    #[cfg(feature = "c-abi")]
    crate::hardened::before_fork();
    thread_cache::before_fork();
    HEAP.lock_all();
    // The provider's books: innermost, taken under heap locks.
    crate::window::before_fork();
    LOCKED_FOR_FORK.store(true, Ordering::Relaxed);
}

extern "C" fn after_fork_in_parent() {
    if LOCKED_FOR_FORK.swap(false, Ordering::Relaxed) {
        // SAFETY: `before_fork` took every lock, and the list lock, in this
        // thread; glibc has released its own level of the list lock.
        unsafe {
            crate::window::after_fork();
            HEAP.unlock_all();
            thread_cache::after_fork();
            #[cfg(feature = "c-abi")]
            crate::hardened::after_fork();
            _IO_list_unlock();
        }
    }
}

extern "C" fn after_fork_in_child() {
    if LOCKED_FOR_FORK.swap(false, Ordering::Relaxed) {
        // SAFETY: the parent's forking thread took every lock in
        // `before_fork`; this thread is its copy, and no other thread exists
        // in the child. The list lock was reset by glibc: not ours to touch.
        unsafe {
            crate::window::after_fork();
            HEAP.unlock_all();
            thread_cache::after_fork();
            #[cfg(feature = "c-abi")]
            crate::hardened::after_fork();
        }
    }
}

/// The settings, for an entry point. The first call into the library (made
/// before the load-time constructor ran, or before libc set `environ` up)
/// readies the process first ([`ensure`]), so that no block is handed out
/// before the key is drawn. After that, one relaxed load.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn settings() -> Config {
    config::loaded().unwrap_or_else(first_call)
}

#[cfg(feature = "c-abi")]
#[cold]
fn first_call() -> Config {
    ensure();
    config::load()
}

/// Readies the process once: the heap's key, the corruption handler, the
/// fork handlers, and the settings read. Cheap after the first call.
#[inline]
pub(crate) fn ensure() {
    if !FORK_HANDLERS.load(Ordering::Relaxed) {
        register();
    }
}

#[cold]
fn register() {
    // The key before anything is marked or armed, and before the flag lets
    // other callers past `ensure`: every caller derives the same value, so
    // racing first calls agree.
    // SAFETY: no block has been handed out yet: every path into the heap
    // (the C functions through `settings`, `FtMalloc`) calls `ensure` first,
    // and only this function sets the flag.
    unsafe { ft_malloc::set_key(random_key()) };
    // Claim first: if `pthread_atfork` itself allocates, the nested `malloc`
    // sees the flag set and does not recurse.
    if FORK_HANDLERS.swap(true, Ordering::Relaxed) {
        return;
    }
    // The heap reports the corruption it finds (a poisoned free list) the
    // way the library reports a bad pointer.
    HEAP.set_corruption_handler(crate::policy::heap_corrupted);
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
    // A Rust program's `FtMalloc` reads `FT_MALLOC_CHECK` too.
    config::load();
}

/// The heap's key for free marks and slack canaries (`ft_malloc::set_key`):
/// the kernel's 16 random bytes for this process (`AT_RANDOM`), mixed
/// (SplitMix64's finaliser) so that the key does not give away those bytes,
/// which glibc also uses (stack protector, pointer guard). The core's
/// default key if the kernel gave none.
fn random_key() -> usize {
    // SAFETY: getauxval has no preconditions; AT_RANDOM, when present,
    // points at 16 bytes the kernel put on the initial stack for the
    // process's lifetime.
    let (a, b) = unsafe {
        let at = libc::getauxval(libc::AT_RANDOM) as *const u64;
        if at.is_null() {
            return ft_malloc::DEFAULT_KEY;
        }
        (at.read_unaligned(), at.add(1).read_unaligned())
    };
    let mut z = a ^ b.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}
