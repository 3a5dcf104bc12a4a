//! One [`FrontCache`] per thread: the common `malloc` and `free` take no
//! lock and make no atomic read-modify-write.
//!
//! # Where a thread finds its cache
//!
//! A thread-local pointer. In a shared library, Rust's `thread_local!`
//! compiles to the general-dynamic TLS model: a call to `__tls_get_addr` on
//! every access. On x86_64 the pointer is instead a `.tbss` symbol of our
//! own, read with the initial-exec sequence (`mov` from the GOT, then a
//! `%fs`-relative load: two instructions), as glibc's tcache and mimalloc
//! do. Initial-exec TLS is what libraries loaded at start-up get
//! (`LD_PRELOAD`, `-lft_malloc`); a `dlopen` of the library later would need
//! glibc's spare static TLS, which it has for exactly this.
//!
//! # A thread's cache, from first malloc to exit
//!
//! - **Null**: the thread has not allocated yet. Its first call takes a
//!   cache from the pool (or maps a new one), registers the pool's
//!   `pthread_key` destructor for it, and stores it. While that happens the
//!   slot holds `BUSY`, so an allocation made meanwhile (by
//!   `pthread_setspecific`, say) uses the heap directly.
//! - **A cache**: allocations and frees go through it.
//! - **`GONE`**: the thread is exiting. The key's destructor has flushed
//!   the cache back to the heap and returned it to the pool; whatever other
//!   destructors free or allocate later goes to the heap directly.
//!
//! A thread that allocates and exits 10,000 times over reuses the same few
//! caches: the footprint stays flat.
//!
//! # Fork
//!
//! In the child only the forking thread exists. Its cache is intact (that
//! thread was in `fork`, not in `malloc`). The caches of the other threads
//! were copied mid-use, possibly half updated: they are abandoned, and the
//! blocks they held stay lent (glibc abandons other threads' tcaches the
//! same way). The pool's lock is taken in the fork prepare handler, so the
//! child never inherits it held.
//!
//! # What shows
//!
//! `show_alloc_mem` lists the blocks the program holds; cached blocks are
//! free, so they are not listed (the core tells them apart by their free
//! mark), and `show_alloc_mem_ex`'s map draws them as free slots.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use ft_malloc::{FrontCache, HeapError};
use lock_api::Mutex;

use crate::HEAP;
use crate::futex_mutex::FutexMutex;
use crate::os::ErrnoGuard;

/// A thread's cache, as it sits in the pool or in use.
struct ThreadCache {
    cache: FrontCache,
    /// The thread's quarantine (hardened mode), beside its cache so that it
    /// needs no lock (`hardened/quarantine.rs`).
    #[cfg(feature = "c-abi")]
    quarantine: crate::hardened::Ring,
    /// The thread's random state for the hardened mode's choice among free
    /// slots (xorshift64; 0 until first used).
    #[cfg(feature = "c-abi")]
    random: u64,
    /// Next cache in the pool.
    next: *mut ThreadCache,
}

/// The slot holds no cache: the thread is setting one up.
const BUSY: usize = 1;
/// The slot holds no cache: the thread is exiting.
const GONE: usize = 2;

// ---- the thread-local slot ----

#[cfg(target_arch = "x86_64")]
mod slot {
    // One pointer of thread-local storage, hidden (not interposable), in
    // .tbss: zero, i.e. "no cache yet", in every new thread.
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl ft_malloc_thread_cache",
        ".hidden ft_malloc_thread_cache",
        ".type ft_malloc_thread_cache, @object",
        ".size ft_malloc_thread_cache, 8",
        "ft_malloc_thread_cache:",
        ".zero 8",
        ".popsection",
    );

    /// The calling thread's slot value.
    #[inline(always)]
    pub(super) fn get() -> usize {
        let value: usize;
        // SAFETY: initial-exec access to our own TLS symbol: the GOT entry
        // holds its offset from the thread pointer (%fs base).
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + ft_malloc_thread_cache@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) value,
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        value
    }

    /// Sets the calling thread's slot.
    #[inline(always)]
    pub(super) fn set(value: usize) {
        // SAFETY: as in `get`.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + ft_malloc_thread_cache@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {v}",
                t = out(reg) _,
                v = in(reg) value,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod slot {
    use core::cell::Cell;

    std::thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(0) };
    }

    #[inline(always)]
    pub(super) fn get() -> usize {
        SLOT.with(Cell::get)
    }

    #[inline(always)]
    pub(super) fn set(value: usize) {
        SLOT.with(|s| s.set(value))
    }
}

/// The calling thread's cache, if it has one (setting it up on first use).
#[inline(always)]
fn current() -> Option<&'static mut FrontCache> {
    let value = slot::get();
    if value > GONE {
        // SAFETY: a slot above `GONE` holds this thread's `ThreadCache`,
        // used by this thread only, until its exit destructor runs.
        return Some(unsafe { &mut (*(value as *mut ThreadCache)).cache });
    }
    if value == 0 { set_up() } else { None }
}

/// The calling thread's quarantine ring, if it has a cache (not set up
/// here: a thread frees after it has allocated).
#[cfg(feature = "c-abi")]
#[inline]
pub(crate) fn quarantine() -> Option<&'static mut crate::hardened::Ring> {
    let value = slot::get();
    // SAFETY: as in `current`.
    (value > GONE).then(|| unsafe { &mut (*(value as *mut ThreadCache)).quarantine })
}

/// Makes the calling thread's next allocation of `class` a random one of
/// its cached blocks (`FT_MALLOC_RANDOM_SLOTS`).
#[cfg(feature = "c-abi")]
#[inline]
pub(crate) fn shuffle(class: ft_malloc::SizeClass) {
    let value = slot::get();
    if value <= GONE {
        return;
    }
    // SAFETY: as in `current`.
    let thread = unsafe { &mut *(value as *mut ThreadCache) };
    let mut x = thread.random;
    if x == 0 {
        x = crate::hardened::seed(value);
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    thread.random = x;
    thread.cache.shuffle(class, (x >> 32) as usize);
}

// ---- the operations ----

/// Allocates through the calling thread's cache.
#[inline(always)]
pub(crate) fn allocate(layout: Layout) -> Option<NonNull<u8>> {
    match current() {
        Some(cache) => cache.allocate(&HEAP, layout),
        None => HEAP.allocate(layout),
    }
}

/// Allocates zeroed memory through the calling thread's cache.
#[inline(always)]
pub(crate) fn allocate_zeroed(layout: Layout) -> Option<NonNull<u8>> {
    match current() {
        Some(cache) => cache.allocate_zeroed(&HEAP, layout),
        None => HEAP.allocate_zeroed(layout),
    }
}

/// Frees through the calling thread's cache.
///
/// # Safety
///
/// As [`ft_malloc::Heap::deallocate`].
#[inline(always)]
pub(crate) unsafe fn deallocate(ptr: NonNull<u8>) -> Result<(), HeapError> {
    // SAFETY: per the contract.
    unsafe {
        match current() {
            Some(cache) => cache.deallocate(&HEAP, ptr),
            None => HEAP.deallocate(ptr),
        }
    }
}

/// Reallocates through the calling thread's cache (lock-free for TINY
/// and SMALL blocks).
///
/// # Safety
///
/// As [`ft_malloc::Heap::reallocate`].
#[inline]
pub(crate) unsafe fn reallocate(
    ptr: NonNull<u8>,
    layout: Layout,
) -> Result<NonNull<u8>, ft_malloc::ReallocError> {
    // SAFETY: per the contract.
    unsafe {
        match current() {
            Some(cache) => cache.reallocate(&HEAP, ptr, layout),
            None => HEAP.reallocate(ptr, layout),
        }
    }
}

// ---- setting up, exit, fork ----

/// Caches of exited threads, ready for new ones.
struct Pool {
    free: *mut ThreadCache,
    /// The `pthread_key` whose destructor gives a thread's cache back.
    key: Option<libc::pthread_key_t>,
}

// SAFETY: the pool's caches are owned by the pool, behind its lock.
unsafe impl Send for Pool {}

static POOL: Mutex<FutexMutex, Pool> = Mutex::const_new(
    FutexMutex::new(),
    Pool {
        free: ptr::null_mut(),
        key: None,
    },
);

/// Gives the calling thread a cache. `None` if it cannot have one now.
#[cold]
#[inline(never)]
fn set_up() -> Option<&'static mut FrontCache> {
    slot::set(BUSY);
    let _errno = ErrnoGuard::save();
    let mut pool = POOL.lock();
    let key = match pool.key {
        Some(key) => key,
        None => {
            let mut key = 0;
            // SAFETY: `give_back` has the destructor signature; glibc's
            // pthread_key_create does not allocate.
            if unsafe { libc::pthread_key_create(&mut key, Some(give_back)) } != 0 {
                slot::set(0);
                return None;
            }
            pool.key = Some(key);
            key
        }
    };
    let cache = match NonNull::new(pool.free) {
        Some(cache) => {
            // SAFETY: pooled caches are valid and owned by the pool.
            pool.free = unsafe { cache.as_ref().next };
            cache.as_ptr()
        }
        None => match map_cache() {
            Some(cache) => cache,
            None => {
                slot::set(0);
                return None;
            }
        },
    };
    drop(pool);
    // SAFETY: `key` is ours; the value is the destructor's argument.
    unsafe { libc::pthread_setspecific(key, cache.cast()) };
    slot::set(cache as usize);
    // SAFETY: just stored: this thread's cache.
    Some(unsafe { &mut (*cache).cache })
}

/// A new, empty `ThreadCache` from the kernel (not from the heap: the heap's
/// blocks are the program's, as `show_alloc_mem` lists them).
fn map_cache() -> Option<*mut ThreadCache> {
    let len = core::mem::size_of::<ThreadCache>().next_multiple_of(4096);
    let cache = crate::provider::mmap_anywhere(len)?.cast::<ThreadCache>();
    // SAFETY: `len` fresh writable bytes, enough for one `ThreadCache`.
    unsafe {
        cache.write(ThreadCache {
            cache: FrontCache::new(),
            #[cfg(feature = "c-abi")]
            quarantine: crate::hardened::Ring::new(),
            #[cfg(feature = "c-abi")]
            random: 0,
            next: ptr::null_mut(),
        })
    };
    Some(cache.as_ptr())
}

/// The key's destructor, at thread exit: flush the cache to the heap and
/// return it to the pool. Later frees of this thread go to the heap.
extern "C" fn give_back(value: *mut libc::c_void) {
    let cache = value.cast::<ThreadCache>();
    slot::set(GONE);
    // SAFETY: the value stored by `set_up`: this thread's cache, unused now
    // (the slot no longer points to it). Its quarantined blocks are checked
    // and freed to the heap (the slot is `GONE`: not into this cache).
    unsafe {
        #[cfg(feature = "c-abi")]
        crate::hardened::drain(&mut (*cache).quarantine);
        (*cache).cache.flush(&HEAP);
    }
    let mut pool = POOL.lock();
    // SAFETY: as above; the pool owns it from now on.
    unsafe { (*cache).next = pool.free };
    pool.free = cache;
}

/// Fork prepare: no thread may hold the pool's lock when the address space
/// is copied.
pub(crate) fn before_fork() {
    core::mem::forget(POOL.lock());
}

/// Fork, parent and child: release the pool's lock.
///
/// # Safety
///
/// [`before_fork`] took it on this thread (or on the parent's thread this
/// child is a copy of).
pub(crate) unsafe fn after_fork() {
    // SAFETY: per the contract.
    unsafe { POOL.force_unlock() };
}
