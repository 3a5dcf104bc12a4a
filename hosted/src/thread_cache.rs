//! One [`FrontCache`] per thread: the common `malloc` and `free` take no
//! lock and make no atomic read-modify-write.
//!
//! # Where a thread finds its cache
//!
//! A thread-local pointer. In a shared library, Rust's `thread_local!`
//! compiles to the general-dynamic TLS model: a call to `__tls_get_addr` on
//! every access. On x86_64 the pointer is instead a `.tdata` symbol of our
//! own, read with the initial-exec sequence (`mov` from the GOT, then a
//! `%fs`-relative load: two instructions), as glibc's tcache and mimalloc
//! do. Initial-exec TLS is what libraries loaded at start-up get
//! (`LD_PRELOAD`, `-lft_malloc`); a `dlopen` of the library later would need
//! glibc's spare static TLS, which it has for exactly this (16 bytes here).
//!
//! The pointer is never null: a thread without a cache of its own points
//! at `NO_CACHE`, an inert cache (`FrontCache::inert`) whose fast paths
//! decline everything, as an empty cache's do (every thread starts so:
//! the TLS image holds its address, relocated when the library is
//! loaded). So the fast paths of `malloc` and `free` test nothing for "no
//! cache": their slow paths tell the states apart, by a second word.
//!
//! # A thread's cache, from first malloc to exit
//!
//! - **No cache yet** (state 0): the thread has not allocated yet. Its
//!   first call takes a cache from the pool (reclaiming those of exited
//!   threads first if it is empty, see below, or else mapping a new one),
//!   puts it on the pool's in-use list, registers the pool's `pthread_key`
//!   destructor for it, and stores it. While that happens the state is
//!   `BUSY`, so an allocation made meanwhile (by `pthread_setspecific`,
//!   say) uses the heap directly. A thread whose first call is a `free`
//!   sets one up too: the inert cache declines it to the full path.
//! - **A cache**: allocations and frees go through it.
//! - **`GONE`**: the thread is exiting. The key's destructor has flushed
//!   the cache back to the heap, pointed the slot at `NO_CACHE` again and
//!   returned the cache to the pool; whatever other destructors free or
//!   allocate later goes to the heap directly.
//!
//! A thread that allocates and exits 10,000 times over reuses the same few
//! caches: the footprint stays flat.
//!
//! # Caches set up too late: reclaimed from exited threads
//!
//! glibc runs `pthread_key` destructors in rounds, at most
//! `PTHREAD_DESTRUCTOR_ITERATIONS` (4); a value set during the last round
//! gets no destructor call. A thread whose first `malloc` happens in a
//! destructor of that round sets up a cache whose key destructor never runs:
//! the mapped cache and every block lent to it were lost (5,000 such threads
//! took a program from about 7 to 120 MiB, `tests/thread_exit.rs`).
//!
//! So every cache in use is also on the pool's in-use list, with its owner:
//! the thread's kernel id and the process it was set up in. When a thread
//! needs a cache and the pool has none, and at least half the in-use list
//! (and [`SCAN_MIN`]) was set up since it was last looked through, each
//! cache of this process whose thread the kernel no longer knows
//! (`tgkill(pid, tid, 0)` fails with `ESRCH`) is flushed and goes back to
//! the pool. So a look costs at most two `tgkill` per cache set up since
//! the last, and caches left behind grow to about as many as the live
//! threads' (or [`SCAN_MIN`]) at most before they are looked for. An exited thread's id may
//! already name a new thread: its cache then waits for that one to exit
//! too (a delay, never a wrong reclaim: a thread that exists keeps its id).
//! Caches set up before a `fork` name the parent: the child never reclaims
//! them (the forking thread still uses its own; the others are abandoned,
//! see below).
//!
//! We chose this over the alternatives:
//! - a `__cxa_thread_atexit_impl` destructor runs *before* the key
//!   destructors (glibc's `start_thread`: `__call_tls_dtors`, then
//!   `__nptl_deallocate_tsd`), and one registered during them is never run;
//! - running such a thread without a cache (as `GONE` does) needs to know
//!   that the key destructors are running, in their last round: glibc says
//!   so nowhere public (its own tcache is freed by `__libc_thread_freeres`,
//!   a hook we cannot use);
//! - a robust mutex per cache (`EOWNERDEAD` once its thread dies) is also
//!   exact, but a `fork` child inherits the forking thread's mutex held by
//!   a thread id it does not have, which its next owner would wait on.
//!
//! # Fork
//!
//! In the child only the forking thread exists. Its cache is intact (that
//! thread was in `fork`, not in `malloc`). The caches of the other threads
//! were copied mid-use, possibly half updated: they are abandoned, and the
//! blocks they held stay lent (glibc abandons other threads' tcaches the
//! same way; they stay on the in-use list, never reclaimed: they name the
//! parent). The pool's lock is taken in the fork prepare handler, so the
//! child never inherits it held.
//!
//! # Locks
//!
//! The pool's lock is taken before the heap's: reclaiming flushes caches
//! into the heap with it held, and the fork prepare handler takes it first
//! too. Nothing takes it with a heap lock held.
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

/// A thread's cache, as it sits in the pool or in use. The front cache
/// comes first (`repr(C)`): the slot's pointer is then the cache's, with no
/// offset to add on every `malloc` and `free`.
#[repr(C)]
struct ThreadCache {
    cache: FrontCache,
    /// Next cache in the pool, or on the in-use list.
    next: *mut ThreadCache,
    /// Previous cache on the in-use list.
    prev: *mut ThreadCache,
    /// The thread using it (while on the in-use list).
    owner: Owner,
    /// The hardened mode's part (its quarantine ring and random state),
    /// beside the cache so that it needs no lock (`hardened/per_thread.rs`).
    /// Last, and never written by [`map_cache`] (the kernel's zeroes are
    /// its initial state): its 8 KiB are resident only in threads that use
    /// the hardened mode.
    #[cfg(feature = "c-abi")]
    hardened: crate::hardened::per_thread::PerThread,
}

/// The thread a cache is set up for, as the kernel names it.
#[derive(Clone, Copy)]
struct Owner {
    /// The process it was set up in (a `fork` child is another).
    pid: libc::pid_t,
    tid: libc::pid_t,
}

impl Owner {
    /// The calling thread.
    fn current() -> Owner {
        // SAFETY: plain system calls without arguments.
        let (pid, tid) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid)) };
        Owner {
            pid,
            tid: tid as libc::pid_t,
        }
    }

    /// Whether the thread has exited for sure: the kernel knows no thread
    /// of this process (`pid`) by its id any more. A thread that exists
    /// keeps its id, so `true` means it runs no more code; an id already
    /// reused reads as alive (the cache waits). Leaves `errno` changed.
    fn has_exited(self, pid: libc::pid_t) -> bool {
        // SAFETY: signal 0 sends nothing, it only checks that the thread
        // exists.
        self.pid == pid
            && unsafe { libc::syscall(libc::SYS_tgkill, pid, self.tid, 0) } == -1
            && crate::os::errno() == libc::ESRCH
    }
}

/// A thread without a cache of its own: setting one up...
const BUSY: usize = 1;
/// ... or exiting. (0: it has not allocated yet.)
const GONE: usize = 2;

/// Where the slot of a thread without a cache of its own points: an inert
/// cache (`FrontCache::inert`), whose fast paths decline everything, so
/// the fast paths of `malloc` and `free` read the slot and go, with no
/// test for "no cache". Only ever read (through raw pointers), by every
/// such thread.
#[repr(transparent)]
struct NoCache(FrontCache);

// SAFETY: never written; read only through `FrontCache`'s raw-pointer fast
// paths, which do not write an inert cache.
unsafe impl Sync for NoCache {}

static NO_CACHE: NoCache = NoCache(FrontCache::inert());

/// [`NO_CACHE`]'s address: what the slot holds when the thread has no
/// cache of its own.
#[inline(always)]
fn no_cache() -> usize {
    (&raw const NO_CACHE).addr()
}

// ---- the thread-local slot ----

#[cfg(target_arch = "x86_64")]
mod slot {
    // Two words of thread-local storage, hidden (not interposable): the
    // cache's address, in .tdata, [`super::NO_CACHE`]'s in every new thread
    // (the TLS image is relocated at load time like any data, and copied
    // for each thread); the state of a thread without a cache, in .tbss
    // (0: none yet).
    core::arch::global_asm!(
        ".pushsection .tdata,\"awT\",@progbits",
        ".p2align 3",
        ".globl ft_malloc_thread_cache",
        ".hidden ft_malloc_thread_cache",
        ".type ft_malloc_thread_cache, @object",
        ".size ft_malloc_thread_cache, 8",
        "ft_malloc_thread_cache:",
        ".quad {no_cache}",
        ".popsection",
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl ft_malloc_thread_state",
        ".hidden ft_malloc_thread_state",
        ".type ft_malloc_thread_state, @object",
        ".size ft_malloc_thread_state, 8",
        "ft_malloc_thread_state:",
        ".zero 8",
        ".popsection",
        no_cache = sym super::NO_CACHE,
    );

    /// The calling thread's cache's address ([`super::no_cache`] without
    /// one).
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

    /// Sets the calling thread's cache's address.
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

    /// The state of a thread without a cache: 0, `BUSY` or `GONE`.
    #[inline(always)]
    pub(super) fn state() -> usize {
        let value: usize;
        // SAFETY: as in `get`.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + ft_malloc_thread_state@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) value,
                options(nostack, readonly, preserves_flags),
            );
        }
        value
    }

    /// Sets the state of a thread without a cache.
    #[inline(always)]
    pub(super) fn set_state(value: usize) {
        // SAFETY: as in `get`.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + ft_malloc_thread_state@GOTTPOFF]",
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
        static SLOT: Cell<*const super::NoCache> = const { Cell::new(&raw const super::NO_CACHE) };
        static STATE: Cell<usize> = const { Cell::new(0) };
    }

    #[inline(always)]
    pub(super) fn get() -> usize {
        SLOT.with(Cell::get).addr()
    }

    #[inline(always)]
    pub(super) fn set(value: usize) {
        SLOT.with(|s| s.set(core::ptr::with_exposed_provenance(value)))
    }

    #[inline(always)]
    pub(super) fn state() -> usize {
        STATE.with(Cell::get)
    }

    #[inline(always)]
    pub(super) fn set_state(value: usize) {
        STATE.with(|s| s.set(value))
    }
}

/// The calling thread's cache, if it has one (setting it up on first use).
#[inline(always)]
fn current() -> Option<&'static mut FrontCache> {
    let value = slot::get();
    if value != no_cache() {
        // SAFETY: a slot not at `NO_CACHE` holds this thread's
        // `ThreadCache`, used by this thread only, until its exit
        // destructor runs.
        return Some(unsafe { &mut (*(value as *mut ThreadCache)).cache });
    }
    if slot::state() == 0 { set_up() } else { None }
}

/// The calling thread's cache, or the inert [`NO_CACHE`] if it has none
/// (nothing is set up: for the fast paths, which reach it through raw
/// pointers only and leave everything else to a slow path).
#[inline(always)]
fn current_or_inert() -> *mut FrontCache {
    // A `ThreadCache` starts with its `FrontCache`, and `NoCache` is one.
    core::ptr::with_exposed_provenance_mut(slot::get())
}

/// The calling thread's cache and the hardened mode's part of it, if it
/// has a cache (not set up here: a thread frees after it has allocated, and
/// a shuffle without cached blocks has nothing to do).
#[cfg(feature = "c-abi")]
#[inline]
pub(crate) fn hardened_state() -> Option<(
    &'static mut FrontCache,
    &'static mut crate::hardened::per_thread::PerThread,
)> {
    let value = slot::get();
    // SAFETY: as in `current`; the two fields are disjoint.
    (value != no_cache()).then(|| unsafe {
        let thread = &mut *(value as *mut ThreadCache);
        (&mut thread.cache, &mut thread.hardened)
    })
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

/// Allocates `size` bytes at the default alignment (C's `malloc`) through
/// the calling thread's cache; `None` for a size no layout has.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn allocate_size(size: usize) -> Option<NonNull<u8>> {
    match current() {
        Some(cache) => cache.allocate_size(&HEAP, size),
        None => HEAP.allocate(Layout::from_size_align(size, ft_malloc::DEFAULT_ALIGN).ok()?),
    }
}

/// `FrontCache::allocate_cached` of the calling thread's cache: `None`
/// when only [`allocate_size`] can tell (no cache yet, an empty magazine, a
/// LARGE size). Calls nothing.
#[inline(always)]
pub(crate) fn allocate_cached(size: usize) -> Option<NonNull<u8>> {
    // SAFETY: the thread's own cache, or the inert one.
    unsafe { FrontCache::allocate_cached_in(current_or_inert(), size) }
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

/// `FrontCache::try_deallocate` of the calling thread's cache: `None` when
/// only [`deallocate`] can tell (no cache yet, a pointer the lock-free
/// check cannot vouch for), and nothing was changed.
///
/// # Safety
///
/// As [`ft_malloc::Heap::deallocate`].
#[inline(always)]
pub(crate) unsafe fn try_deallocate(ptr: NonNull<u8>) -> Option<Result<(), HeapError>> {
    // SAFETY: per the contract; the thread's own cache, or the inert one.
    unsafe { FrontCache::try_deallocate_raw_in(current_or_inert(), &HEAP, ptr.as_ptr()) }
}

/// [`try_deallocate`] of a pointer that may be null, with the heap's flat
/// page map given (`free`'s gate, `config::free_gate`): the sentinel
/// declines every pointer.
///
/// # Safety
///
/// As [`ft_malloc::Heap::deallocate`]; `flat` is `HEAP.mapped_flat()` or
/// the sentinel; `key` is `ft_malloc::current_key()` unless `flat` is the
/// sentinel.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) unsafe fn try_deallocate_flat(
    flat: *const ft_malloc::cache::MappedFlat,
    key: usize,
    ptr: *mut u8,
) -> Option<Result<(), HeapError>> {
    // SAFETY: per the contract; the thread's own cache, or the inert one.
    unsafe { FrontCache::try_deallocate_flat_in(current_or_inert(), &HEAP, flat, key, ptr) }
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

/// `FrontCache::reallocate_vouched` through the calling thread's cache
/// (the heap's locked path, which checks the block again, for a thread
/// without one).
///
/// # Safety
///
/// As `FrontCache::reallocate_vouched`.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) unsafe fn reallocate_vouched(
    ptr: NonNull<u8>,
    vouched: ft_malloc::cache::Vouched,
    layout: Layout,
) -> Result<NonNull<u8>, ft_malloc::ReallocError> {
    // SAFETY: per the contract.
    unsafe {
        match current() {
            Some(cache) => cache.reallocate_vouched(&HEAP, ptr, vouched, layout),
            None => HEAP.reallocate(ptr, layout),
        }
    }
}

/// [`reallocate_vouched`] for a block that grows by a move
/// (`Vouched::grows_by_move`), when the thread has a cache; `None`, with
/// nothing done, when it has none. Without the other cases, so that the
/// move returns its block in registers.
///
/// # Safety
///
/// As `FrontCache::reallocate_vouched`.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) unsafe fn grow_vouched(
    ptr: NonNull<u8>,
    vouched: ft_malloc::cache::Vouched,
    layout: Layout,
) -> Option<Result<NonNull<u8>, ft_malloc::ReallocError>> {
    // SAFETY: per the contract.
    current().map(|cache| unsafe { cache.reallocate_vouched(&HEAP, ptr, vouched, layout) })
}

// ---- setting up, exit, fork ----

/// Caches of exited threads, ready for new ones, and the caches in use.
struct Pool {
    free: *mut ThreadCache,
    /// The `pthread_key` whose destructor gives a thread's cache back.
    key: Option<libc::pthread_key_t>,
    /// Every cache a thread uses (or used, if it exited without giving it
    /// back: "Caches set up too late").
    in_use: *mut ThreadCache,
    in_use_count: usize,
    /// Caches put on the in-use list since it was last looked through.
    linked_since_scan: usize,
}

/// The in-use list is looked through after at least this many set-ups.
const SCAN_MIN: usize = 8;

impl Pool {
    /// A cache from the pool, if it has one.
    fn take_free(&mut self) -> Option<*mut ThreadCache> {
        let cache = NonNull::new(self.free)?;
        // SAFETY: pooled caches are valid and owned by the pool.
        self.free = unsafe { cache.as_ref().next };
        Some(cache.as_ptr())
    }

    /// Gives `cache`, flushed and off the in-use list, to the pool.
    ///
    /// # Safety
    ///
    /// `cache` is valid, flushed, and used by no thread.
    unsafe fn give(&mut self, cache: *mut ThreadCache) {
        // SAFETY: per the contract.
        unsafe { (*cache).next = self.free };
        self.free = cache;
    }

    /// Puts `cache` on the in-use list for `owner`.
    ///
    /// # Safety
    ///
    /// `cache` is valid and on no list.
    unsafe fn link(&mut self, cache: *mut ThreadCache, owner: Owner) {
        // SAFETY: per the contract; listed caches are valid.
        unsafe {
            (*cache).owner = owner;
            (*cache).prev = ptr::null_mut();
            (*cache).next = self.in_use;
            if let Some(head) = self.in_use.as_mut() {
                head.prev = cache;
            }
        }
        self.in_use = cache;
        self.in_use_count += 1;
        self.linked_since_scan += 1;
    }

    /// Takes `cache` off the in-use list.
    ///
    /// # Safety
    ///
    /// `cache` is on the in-use list.
    unsafe fn unlink(&mut self, cache: *mut ThreadCache) {
        // SAFETY: per the contract; listed caches are valid.
        unsafe {
            let (prev, next) = ((*cache).prev, (*cache).next);
            match prev.as_mut() {
                Some(prev) => prev.next = next,
                None => self.in_use = next,
            }
            if let Some(next) = next.as_mut() {
                next.prev = prev;
            }
        }
        self.in_use_count -= 1;
    }

    /// Flushes the caches of exited threads (set up too late for the key's
    /// destructor) into the pool, if at least half the in-use list (and
    /// [`SCAN_MIN`]) was set up since it was last looked through.
    #[cold]
    fn reclaim_exited(&mut self) {
        let since = self.linked_since_scan;
        if since < SCAN_MIN || 2 * since < self.in_use_count {
            return;
        }
        self.linked_since_scan = 0;
        // SAFETY: a plain system call.
        let pid = unsafe { libc::getpid() };
        let mut cursor = self.in_use;
        // SAFETY: listed caches are valid; an exited thread's is used by
        // no one (`has_exited`), so it is ours to flush.
        while let Some(cache) = unsafe { cursor.as_mut() } {
            cursor = cache.next;
            if cache.owner.has_exited(pid) {
                // SAFETY: as above.
                unsafe {
                    self.unlink(cache);
                    flush(cache);
                    self.give(cache);
                }
            }
        }
    }
}

// SAFETY: the pool's caches are owned by the pool, behind its lock.
unsafe impl Send for Pool {}

static POOL: Mutex<FutexMutex, Pool> = Mutex::const_new(
    FutexMutex::new(),
    Pool {
        free: ptr::null_mut(),
        key: None,
        in_use: ptr::null_mut(),
        in_use_count: 0,
        linked_since_scan: 0,
    },
);

/// Gives the calling thread a cache. `None` if it cannot have one now.
#[cold]
#[inline(never)]
fn set_up() -> Option<&'static mut FrontCache> {
    slot::set_state(BUSY);
    let _errno = ErrnoGuard::save();
    let mut pool = POOL.lock();
    let key = match pool.key {
        Some(key) => key,
        None => {
            let mut key = 0;
            // SAFETY: `give_back` has the destructor signature; glibc's
            // pthread_key_create does not allocate.
            if unsafe { libc::pthread_key_create(&mut key, Some(give_back)) } != 0 {
                slot::set_state(0);
                return None;
            }
            pool.key = Some(key);
            key
        }
    };
    let cache = match pool.take_free() {
        Some(cache) => cache,
        None => {
            pool.reclaim_exited();
            match pool.take_free() {
                Some(cache) => cache,
                None => {
                    // A new cache is mapped and first written (its pages
                    // faulted in) with the pool lock released: threads
                    // starting together do not queue behind each other's
                    // system calls. The cache is this thread's alone until
                    // linked.
                    drop(pool);
                    let Some(cache) = map_cache() else {
                        slot::set_state(0);
                        return None;
                    };
                    pool = POOL.lock();
                    cache
                }
            }
        }
    };
    // SAFETY: a valid cache, on no list.
    unsafe { pool.link(cache, Owner::current()) };
    drop(pool);
    // SAFETY: `key` is ours; the value is the destructor's argument.
    unsafe { libc::pthread_setspecific(key, cache.cast()) };
    slot::set_state(0);
    slot::set(cache as usize);
    // SAFETY: just stored: this thread's cache.
    Some(unsafe { &mut (*cache).cache })
}

/// A new, empty `ThreadCache` from the kernel (not from the heap: the heap's
/// blocks are the program's, as `show_alloc_mem` lists them).
fn map_cache() -> Option<*mut ThreadCache> {
    let len = core::mem::size_of::<ThreadCache>().next_multiple_of(4096);
    let cache = crate::provider::mmap_anywhere(len)?.cast::<ThreadCache>();
    let cache = cache.as_ptr();
    // SAFETY: `len` fresh writable bytes, enough for one `ThreadCache`;
    // each field written through its own place. `hardened` is left as the
    // kernel gave it, all zero bytes: `PerThread::new()` is all zeroes
    // (`per_thread::tests`), so the cache is fully initialised, and the
    // ring's pages stay untouched (a read of them maps the shared zero
    // page) until the hardened mode pushes a block.
    unsafe {
        ptr::addr_of_mut!((*cache).cache).write(FrontCache::new());
        ptr::addr_of_mut!((*cache).next).write(ptr::null_mut());
        ptr::addr_of_mut!((*cache).prev).write(ptr::null_mut());
        ptr::addr_of_mut!((*cache).owner).write(Owner { pid: 0, tid: 0 });
    }
    Some(cache)
}

/// The key's destructor, at thread exit: flush the cache to the heap and
/// return it to the pool. Later frees of this thread go to the heap.
extern "C" fn give_back(value: *mut libc::c_void) {
    let cache = value.cast::<ThreadCache>();
    slot::set(no_cache());
    slot::set_state(GONE);
    // SAFETY: the value stored by `set_up`: this thread's cache, unused now
    // (the slot no longer points to it).
    unsafe { flush(cache) };
    let mut pool = POOL.lock();
    // SAFETY: as above, on the in-use list; the pool owns it from now on.
    unsafe {
        pool.unlink(cache);
        pool.give(cache);
    }
}

/// Gives back every block `cache` holds: its quarantined blocks are checked
/// and freed to the heap (the calling thread's slot is `GONE` or `BUSY`:
/// not into a cache), then its magazines.
///
/// # Safety
///
/// `cache` is valid and used by no thread.
unsafe fn flush(cache: *mut ThreadCache) {
    // SAFETY: per the contract.
    unsafe {
        #[cfg(feature = "c-abi")]
        (*cache).hardened.drain();
        (*cache).cache.flush(&HEAP);
    }
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
