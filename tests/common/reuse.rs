//! A provider that makes page-map races happen on purpose.
//!
//! Real `mmap`, with three twists:
//! - it hands out the **most recently released address first**, as a busy
//!   kernel often does, so a stale page-map entry is hit at once instead of
//!   by luck;
//! - after a resize it runs a **hook** (on another thread, joined before the
//!   resize returns): the other thread acts exactly in the window where the
//!   resizing thread has the provider's answer but has not yet fixed the
//!   page map;
//! - on request it **refuses page-map nodes** (maps of exactly
//!   [`NODE_BYTES`]) and sends moves and new runs **far away**, where the map
//!   has no nodes yet.

use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use ft_malloc::PageProvider;

/// Bytes of one page-map node (the core's `NODE_BYTES`: 4096 slots of 8 bytes).
pub const NODE_BYTES: usize = 32 << 10;
const PAGE: usize = 4096;
/// Far places are this far apart: each has a page-map middle node of its own.
const FAR_STRIDE: usize = 1 << 37;
const FAR_BASE: usize = 0x3000_0000_0000;

/// What the hook is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resized {
    /// A run grew, moving or not.
    Grew,
    /// A run shrank in place.
    Shrank,
}

pub struct Reuse {
    /// Released ranges, most recent last.
    released: Mutex<Vec<(usize, usize)>>,
    hook: AtomicPtr<()>,
    /// Growing in place is refused, so a growth must move.
    pub refuse_in_place_growth: AtomicBool,
    /// A moving resize is refused.
    pub refuse_moves: AtomicBool,
    /// Maps of `NODE_BYTES` are refused.
    pub refuse_nodes: AtomicBool,
    /// `refuse_nodes` is set the moment a moving resize starts.
    pub refuse_nodes_from_move: AtomicBool,
    hooks: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Moves, and maps other than nodes, go to a far place.
    pub far: AtomicBool,
    far_next: AtomicUsize,
    /// Each map leaves this many free bytes after the run (so a later
    /// growth can happen where it is).
    pub hole_after: AtomicUsize,
}

impl Reuse {
    pub const fn new() -> Self {
        Reuse {
            released: Mutex::new(Vec::new()),
            hook: AtomicPtr::new(std::ptr::null_mut()),
            refuse_in_place_growth: AtomicBool::new(false),
            refuse_moves: AtomicBool::new(false),
            refuse_nodes: AtomicBool::new(false),
            refuse_nodes_from_move: AtomicBool::new(false),
            hooks: Mutex::new(Vec::new()),
            far: AtomicBool::new(false),
            far_next: AtomicUsize::new(0),
            hole_after: AtomicUsize::new(0),
        }
    }

    /// Runs `hook` on a new thread after every successful resize.
    pub fn set_hook(&self, hook: fn(Resized)) {
        self.hook.store(hook as *mut (), Ordering::SeqCst);
    }

    pub fn clear_hook(&self) {
        self.hook.store(std::ptr::null_mut(), Ordering::SeqCst);
    }

    /// Runs the hook on another thread and waits for it, for a second at
    /// most: the resizing thread holds a heap lock, and a hook that needs
    /// that lock finishes only after the resize returns (see `join_hooks`).
    fn run_hook(&self, what: Resized) {
        let hook = self.hook.load(Ordering::SeqCst);
        if hook.is_null() {
            return;
        }
        // SAFETY: only `set_hook` stores here, a `fn(Resized)`.
        let hook = unsafe { std::mem::transmute::<*mut (), fn(Resized)>(hook) };
        let (done, finished) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            hook(what);
            let _ = done.send(());
        });
        let _ = finished.recv_timeout(std::time::Duration::from_secs(1));
        self.hooks.lock().unwrap().push(thread);
    }

    /// Waits for every hook thread to finish.
    pub fn join_hooks(&self) {
        let threads = std::mem::take(&mut *self.hooks.lock().unwrap());
        for thread in threads {
            thread.join().unwrap();
        }
    }

    fn release(&self, addr: usize, len: usize) {
        self.released.lock().unwrap().push((addr, len));
    }

    fn next_far(&self) -> usize {
        FAR_BASE + self.far_next.fetch_add(1, Ordering::SeqCst) * FAR_STRIDE
    }

    /// `mmap` at exactly `addr`, if nothing is there.
    fn map_at(addr: usize, len: usize) -> Option<NonNull<u8>> {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        if p.addr() != addr {
            // Old kernels treat the flag as a hint.
            // SAFETY: we just mapped it.
            unsafe { libc::munmap(p, len) };
            return None;
        }
        NonNull::new(p.cast())
    }

    /// The most recently released place that fits.
    fn reuse(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let mut released = self.released.lock().unwrap();
        for i in (0..released.len()).rev() {
            let (addr, rlen) = released[i];
            let start = addr.next_multiple_of(align);
            if start + len > addr + rlen {
                continue;
            }
            if let Some(p) = Self::map_at(start, len) {
                released.remove(i);
                return Some(p);
            }
        }
        None
    }

    fn map_anywhere(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let hole = self.hole_after.load(Ordering::SeqCst);
        let total = len + align + hole;
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let base = p.addr();
        let start = base.next_multiple_of(align);
        // SAFETY: trimming parts of our own mapping.
        unsafe {
            if start > base {
                libc::munmap(p, start - base);
            }
            let end = start + len;
            if base + total > end {
                libc::munmap(end as *mut libc::c_void, base + total - end);
            }
        }
        NonNull::new(start as *mut u8)
    }
}

// SAFETY: real anonymous mappings (zeroed, page aligned, disjoint); mremap
// keeps contents.
unsafe impl PageProvider for Reuse {
    fn page_size(&self) -> usize {
        PAGE
    }

    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let align = align.max(PAGE);
        if len == NODE_BYTES {
            if self.refuse_nodes.load(Ordering::SeqCst) {
                return None;
            }
            return self.map_anywhere(len, align);
        }
        if self.far.load(Ordering::SeqCst) {
            return Self::map_at(self.next_far(), len);
        }
        self.reuse(len, align)
            .or_else(|| self.map_anywhere(len, align))
    }

    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        // SAFETY: the caller gives back a run of ours.
        assert_eq!(unsafe { libc::munmap(run.as_ptr().cast(), len) }, 0);
        self.release(run.as_ptr().addr(), len);
    }

    fn zeroed_on_map(&self) -> bool {
        true
    }

    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old: usize,
        new: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let addr = run.as_ptr().addr();
        if new > old && !may_move && self.refuse_in_place_growth.load(Ordering::SeqCst) {
            return None;
        }
        if may_move && self.refuse_moves.load(Ordering::SeqCst) {
            return None;
        }
        if may_move && self.refuse_nodes_from_move.load(Ordering::SeqCst) {
            self.refuse_nodes.store(true, Ordering::SeqCst);
        }
        // SAFETY: `run` is a live mapping of `old` bytes.
        let p = unsafe {
            if may_move && self.far.load(Ordering::SeqCst) {
                libc::mremap(
                    run.as_ptr().cast(),
                    old,
                    new,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    self.next_far() as *mut libc::c_void,
                )
            } else {
                let flags = if may_move { libc::MREMAP_MAYMOVE } else { 0 };
                libc::mremap(run.as_ptr().cast(), old, new, flags)
            }
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        if p.addr() != addr {
            self.release(addr, old);
        } else if new < old {
            self.release(addr + new, old - new);
        }
        self.run_hook(if new > old {
            Resized::Grew
        } else {
            Resized::Shrank
        });
        NonNull::new(p.cast())
    }
}
