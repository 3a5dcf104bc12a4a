//! The `#[global_allocator]`: the kernel heap behind one front cache per
//! CPU.
//!
//! Each CPU's [`FrontCache`] lives in its per-CPU area (`smp::percpu`) and
//! is used only by that CPU, with its interrupts off: an interrupt handler
//! that allocates (the APIC timer's does) would otherwise find the cache
//! half updated. Most allocations and frees then take no lock at all; the
//! heap's `IrqSpinLock`s are taken only to refill or drain a magazine, and
//! stay the fallback (before the per-CPU area exists, for `realloc`).
//!
//! **Frees on another CPU.** A block allocated on CPU A and freed on CPU B
//! goes into B's cache, and from there back to the heap's zones in a whole
//! magazine (through the class's depot, under its lock): the heap, not a
//! CPU, owns the zones, so "back to the owner" is back to the shared zones,
//! as the core's cache design says (`src/cache/mod.rs`). No lock per block,
//! no message to A.
//!
//! **Going offline.** [`flush_this_cpu`] gives the CPU's cached blocks back
//! (the tests do it before the last frame count).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use ft_malloc::{FrontCache, Heap, IrqSpinLock};
use x86_64::instructions::interrupts;

use crate::heap_provider::DemandPagedProvider;
use crate::smp::percpu::try_this_cpu;

/// The kernel heap as the `#[global_allocator]`, through per-CPU caches.
pub struct PerCpuCaches {
    heap: &'static Heap<DemandPagedProvider, IrqSpinLock>,
}

impl PerCpuCaches {
    /// Caches in front of `heap`.
    pub const fn new(heap: &'static Heap<DemandPagedProvider, IrqSpinLock>) -> Self {
        PerCpuCaches { heap }
    }
}

/// Runs `f` on this CPU's cache with interrupts off, or returns `None` if
/// the CPU has no per-CPU area yet (early boot).
fn with_cache<R>(f: impl FnOnce(&mut FrontCache) -> R) -> Option<R> {
    interrupts::without_interrupts(|| {
        let cpu = try_this_cpu()?;
        // SAFETY: only this CPU uses its cache, with interrupts off, and no
        // code path below re-enters the allocator (the page-fault handler
        // allocates nothing, the NMI handler neither): this is the only
        // reference.
        let cache = unsafe { &mut *cpu.cache.get() };
        Some(f(cache))
    })
}

/// Gives this CPU's cached blocks back to the heap.
pub fn flush_this_cpu() {
    with_cache(|cache| cache.flush(&crate::HEAP));
}

/// Blocks in this CPU's cache.
pub fn cached_on_this_cpu() -> usize {
    with_cache(|cache| cache.cached_blocks()).unwrap_or(0)
}

fn count(allocation: bool) {
    if let Some(cpu) = try_this_cpu() {
        let counter = if allocation {
            &cpu.allocations
        } else {
            &cpu.frees
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: blocks come from `heap` (directly or through a cache in front of
// it, always the same heap), which upholds GlobalAlloc's contract; frees go
// back the same way.
unsafe impl GlobalAlloc for PerCpuCaches {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = with_cache(|cache| cache.allocate(self.heap, layout))
            .unwrap_or_else(|| self.heap.allocate(layout));
        if block.is_some() {
            count(true);
        }
        block.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = with_cache(|cache| cache.allocate_zeroed(self.heap, layout))
            .unwrap_or_else(|| self.heap.allocate_zeroed(layout));
        if block.is_some() {
            count(true);
        }
        block.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let Some(block) = NonNull::new(ptr) else {
            return;
        };
        // SAFETY: `block` is live and came from this heap (GlobalAlloc's
        // contract); a block from any CPU's cache is an ordinary live block.
        let result = with_cache(|cache| unsafe { cache.deallocate(self.heap, block) })
            .unwrap_or_else(|| unsafe { self.heap.deallocate(block) });
        if let Err(error) = result {
            panic!("kernel heap: free of {block:p} refused: {}", error.as_str());
        }
        count(false);
    }

    /// Through the heap itself: it grows LARGE blocks in place or moves
    /// their pages, which a cache cannot.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract for `ptr`, `layout` and `new_size`.
        unsafe { GlobalAlloc::realloc(self.heap, ptr, layout, new_size) }
    }
}
