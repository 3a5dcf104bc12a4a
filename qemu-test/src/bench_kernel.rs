//! A small kernel's everyday work in the kernel (`bench-kernel`, issue 19):
//! the six workloads of the host benchmark (`bench/src/kernel_workloads.rs`)
//! on a plain `static Heap` with the default spin lock, the same with
//! `IrqSpinLock` (run with interrupts off, then on), the same behind one
//! CPU's [`FrontCache`] (as the test kernel's own heap is,
//! `cpu_caches.rs`), talc and linked_list_allocator,
//! each on a fresh 4 MiB region (one static region, reused in turn),
//! through `GlobalAlloc`.
//!
//! Under the runner's `-icount shift=0` a TSC tick is one guest
//! instruction: the figures are instructions per operation (allocation
//! plus free, or one realloc for `vec`), the loop's own few included (the
//! same for everyone).
//!
//! Each allocator is called through functions that are never inlined
//! ([`Called`]), as a kernel's `#[global_allocator]` is (through
//! `__rust_alloc`) and as the host benchmark does (`bench/src/blocks.rs`):
//! an allocator inlined into the loop would be measured with the loop's
//! register pressure, which no kernel's call site has.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::{NonNull, null_mut};

use ft_malloc::{ArenaProvider, FrontCache, Heap, IrqSpinLock};
use x86_64::instructions::interrupts;

use crate::bench::Random;
use crate::{println, tsc};

/// The region every allocator gets.
const REGION: usize = 4 << 20;
/// Operations per workload.
const OPERATIONS: usize = 20_000;

/// The bytes, page aligned (reached only through a raw pointer).
#[repr(align(4096))]
struct Region(#[allow(dead_code)] [MaybeUninit<u8>; REGION]);
static mut AREA: Region = Region([MaybeUninit::uninit(); REGION]);

/// The region, zeroed (each allocator starts on the same bytes).
fn region() -> *mut u8 {
    let start = (&raw mut AREA).cast::<u8>();
    // SAFETY: the region is used by one allocator at a time, dropped (or
    // forgotten) before the next one is built on it.
    unsafe { start.write_bytes(0, REGION) };
    start
}

/// Blocks one workload keeps live at most.
const MAX_LIVE: usize = 4096;

/// An allocator called, never inlined into the workload's loop.
struct Called<'a, A>(&'a A);

// SAFETY: forwards every call to the allocator, unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Called<'_, A> {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { self.0.alloc(layout) }
    }
    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// Runs `name` on `a`; returns instructions per operation.
fn workload<A: GlobalAlloc>(a: &A, name: &str) -> u64 {
    let a = &Called(a);
    let l = |size: usize| Layout::from_size_align(size, 8).expect("valid");
    let mut live = [(null_mut::<u8>(), 0usize); MAX_LIVE];
    let mut random = Random(0x5eed_0019);
    let mut size_in = |max: usize| 16 + (random.next() as usize) % (max - 15);
    let start = tsc::ticks();
    // SAFETY (every call below): layouts are valid and non-zero; every
    // pointer freed or reallocated came from `a` with that layout and is
    // used once.
    let ops = unsafe {
        match name {
            "boxes" | "long_lived" => {
                let kept = (name == "long_lived").then(|| a.alloc(l(8)));
                for _ in 0..OPERATIONS {
                    let p = a.alloc(l(8));
                    assert!(!p.is_null());
                    p.write(1);
                    a.dealloc(p, l(8));
                }
                if let Some(kept) = kept {
                    a.dealloc(kept, l(8));
                }
                OPERATIONS
            }
            "vec" => {
                for _ in 0..OPERATIONS / 10 {
                    let mut size = 16;
                    let mut p = a.alloc(l(size));
                    while size < 16 << 10 {
                        p = a.realloc(p, l(size), size * 2);
                        assert!(!p.is_null());
                        size *= 2;
                        p.add(size - 1).write(1);
                    }
                    a.dealloc(p, l(size));
                }
                OPERATIONS / 10 * 10
            }
            "fifo64" | "random64" | "random4096" => {
                let (count, max) = if name == "random4096" {
                    (4096, 256)
                } else {
                    (64, 1024)
                };
                for slot in &mut live[..count] {
                    let size = size_in(max);
                    *slot = (a.alloc(l(size)), size);
                }
                for i in 0..OPERATIONS {
                    let at = if name == "fifo64" {
                        i % count
                    } else {
                        (random.next() as usize) % count
                    };
                    let (p, size) = live[at];
                    a.dealloc(p, l(size));
                    let size = 16 + (random.next() as usize) % (max - 15);
                    let p = a.alloc(l(size));
                    assert!(!p.is_null());
                    p.write(1);
                    live[at] = (p, size);
                }
                for &(p, size) in &live[..count] {
                    a.dealloc(p, l(size));
                }
                OPERATIONS
            }
            _ => unreachable!(),
        }
    };
    (tsc::ticks() - start) / ops as u64
}

const NAMES: [&str; 6] = [
    "boxes",
    "long_lived",
    "vec",
    "fifo64",
    "random64",
    "random4096",
];

/// The core behind one CPU's front cache, as `cpu_caches.rs` runs the
/// kernel heap: the cache used with interrupts off (one `pushf`/`cli` and
/// `popf` per call), the heap's `IrqSpinLock`s taken only to refill or
/// drain a magazine.
struct PerCpuCore {
    heap: Heap<ArenaProvider, IrqSpinLock>,
    cache: UnsafeCell<FrontCache>,
}

// SAFETY: the benchmark runs on one CPU and touches the cache only with
// interrupts off (`with_cache`), so it is never used twice at once.
unsafe impl Sync for PerCpuCore {}

impl PerCpuCore {
    fn with_cache<R>(
        &self,
        f: impl FnOnce(&mut FrontCache, &Heap<ArenaProvider, IrqSpinLock>) -> R,
    ) -> R {
        interrupts::without_interrupts(|| {
            // SAFETY: see `Sync` above: the only reference while it lives.
            f(unsafe { &mut *self.cache.get() }, &self.heap)
        })
    }
}

// SAFETY: every block comes from `heap` through the cache and goes back
// the same way.
unsafe impl GlobalAlloc for PerCpuCore {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with_cache(|cache, heap| cache.allocate(heap, layout))
            .map_or(null_mut(), NonNull::as_ptr)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller's contract; a block of ours is not null.
        let result = self.with_cache(|cache, heap| unsafe {
            cache.deallocate(heap, NonNull::new_unchecked(ptr))
        });
        assert!(result.is_ok(), "bench-kernel: a free was refused");
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract (a valid layout for `new_size`).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: the caller's contract; a block of ours is not null.
        self.with_cache(|cache, heap| unsafe {
            cache.reallocate(heap, NonNull::new_unchecked(ptr), new)
        })
        .map_or(null_mut(), NonNull::as_ptr)
    }
}

/// talc behind the same spin lock as the core.
type Talc = talc::TalcLock<spin::Mutex<()>, talc::source::Manual>;

/// linked_list_allocator behind the same spin lock (the kernel builds it
/// without its own `LockedHeap`).
struct Lla(spin::Mutex<linked_list_allocator::Heap>);

// SAFETY: forwards to the heap, which hands out distinct blocks of the
// layout asked for and takes back only what it handed out.
unsafe impl GlobalAlloc for Lla {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(null_mut(), |p| p.as_ptr())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract; a block of ours is not null.
        unsafe {
            self.0
                .lock()
                .deallocate(core::ptr::NonNull::new_unchecked(ptr), layout)
        }
    }
}

/// Runs every workload on every allocator; prints one table row each.
pub fn run() -> bool {
    println!(
        "bench-kernel: instructions per operation (-icount), {OPERATIONS} operations, 4 MiB region, opt-level {}{}",
        env!("KERNEL_OPT_LEVEL"),
        if cfg!(debug_assertions) {
            " with debug assertions"
        } else {
            ""
        }
    );
    println!(
        "bench-kernel: workload    core-spin  core-irq  core-irq-on  core-percpu      talc  linked_list"
    );
    for name in NAMES {
        // SAFETY (each block): the region is this allocator's until it is
        // dropped at the end of the block.
        let spin = {
            let heap: Heap<ArenaProvider> =
                Heap::new(unsafe { ArenaProvider::new(region(), REGION) });
            workload(&heap, name)
        };
        let irq = {
            let heap: Heap<ArenaProvider, IrqSpinLock> =
                Heap::new(unsafe { ArenaProvider::new(region(), REGION) });
            workload(&heap, name)
        };
        // The same with interrupts on, as a kernel runs most of its code:
        // each unlock then turns them back on (`sti`). No timer is started
        // (`bench-kernel` never starts one), so none arrives to be counted.
        let irq_on = {
            let heap: Heap<ArenaProvider, IrqSpinLock> =
                Heap::new(unsafe { ArenaProvider::new(region(), REGION) });
            interrupts::enable();
            let n = workload(&heap, name);
            interrupts::disable();
            n
        };
        let percpu = {
            let core = PerCpuCore {
                heap: Heap::new(unsafe { ArenaProvider::new(region(), REGION) }),
                cache: UnsafeCell::new(FrontCache::new()),
            };
            let n = workload(&core, name);
            core.with_cache(|cache, heap| cache.flush(heap));
            n
        };
        let talc = {
            let talc = Talc::new(talc::source::Manual);
            if unsafe { talc.lock().claim(region(), REGION) }.is_none() {
                println!("bench-kernel: talc refused the region");
                return false;
            }
            workload(&talc, name)
        };
        let lla = {
            let heap = Lla(spin::Mutex::new(linked_list_allocator::Heap::empty()));
            unsafe { heap.0.lock().init(region(), REGION) };
            workload(&heap, name)
        };
        println!(
            "bench-kernel: {name:<11} {spin:>9} {irq:>9} {irq_on:>12} {percpu:>12} {talc:>9} {lla:>12}"
        );
    }
    true
}
