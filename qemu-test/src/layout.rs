//! The kernel's address space and every size it is built around, in one
//! place.
//!
//! ```text
//!   virtual address                      what lives there
//!   0x0000_0000_0000_0000 ..  1 GiB      identity map of physical memory (2 MiB pages,
//!                                        built by boot/entry.s): kernel image, page tables,
//!                                        every physical frame the kernel touches
//!   0x0000_1000_0000_0000 .. +1 GiB      kernel heap window   (the #[global_allocator])
//!   0x0000_2000_0000_0000 .. +256 MiB    CPU i's test heap window, i * 512 GiB higher
//!                                        (a fresh ft_malloc heap for exact counts)
//!   0x0000_2800_0000_0000 .. +256 MiB    CPU i's own heap window, i * 512 GiB higher
//!                                        (the kernel-heap tests, run on every CPU at once)
//!   0x0000_3000_0000_0000 .. +1 GiB      benchmark: ft_malloc
//!   0x0000_3080_0000_0000 .. +1 GiB      SMP benchmark: ft_malloc
//!   0x0000_3800_0000_0000 .. +16 MiB     benchmark: linked_list_allocator
//!   0x0000_3880_0000_0000 .. +32 MiB     SMP benchmark: linked_list_allocator and talc
//!   0x0000_4000_0000_0000 .. +16 MiB     shared window: pages every CPU faults on at once,
//!                                        the TLB shootdown test
//!   0x0000_4444_4444_0000 .. +100 KiB    `blog-heap`: blog_os's heap window, mapped eagerly
//!   0x0000_5000_0000_0000                never mapped: the deliberate stray access
//!   0x0000_6000_0000_0000 .. +260 KiB    kernel stack of CPU 0, with an unmapped guard page below it;
//!                                        CPU i's the same, KERNEL_STACK_STRIDE * i higher
//! ```
//!
//! Below 1 MiB, physical page [`AP_TRAMPOLINE`] receives the real-mode code
//! the other CPUs start in (`smp/trampoline.s`). The local APIC's registers
//! (at 0xFEE0_0000 on every PC) are identity-mapped uncached by a page
//! directory in the kernel image (`smp/lapic.rs`).
//!
//! Every window sits in the lower canonical half (a non-canonical address
//! raises #GP, not #PF) and in a PML4 slot of its own, far from the identity
//! map's huge pages, so the page-fault handler never meets a huge page there.

/// Size of the pages the kernel maps (and of the frames it hands out).
pub const PAGE_SIZE: u64 = 4096;

/// How much physical memory the boot code identity-maps, in GiB (one page
/// directory of 2 MiB pages per GiB). Frames above it are never used, so
/// QEMU's `-m` may exceed it harmlessly.
pub const IDENTITY_MAP_GIB: u64 = 1;
/// First address past the identity map.
pub const IDENTITY_MAP_END: u64 = IDENTITY_MAP_GIB << 30;

/// Frames below 1 MiB hold the real-mode leftovers (BIOS data, option ROMs,
/// the PVH boot data): never handed out.
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// Boot stack in `.bss`, used until the kernel switches to its guarded stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// The kernel stack (after boot): mapped 4 KiB pages below
/// [`kernel_stack_top`], with one unmapped guard page under them so an
/// overflow faults instead of silently overwriting memory.
pub const KERNEL_STACK_PAGES: u64 = 64;
/// The guard page of CPU 0's stack: never mapped, so running off the
/// stack's bottom faults.
pub const KERNEL_STACK_GUARD: u64 = 0x0000_6000_0000_0000;
/// Distance between two CPUs' stacks (guard page included).
pub const KERNEL_STACK_STRIDE: u64 = (1 + KERNEL_STACK_PAGES) * PAGE_SIZE;

/// The guard page under CPU `cpu`'s kernel stack.
pub const fn kernel_stack_guard(cpu: usize) -> u64 {
    KERNEL_STACK_GUARD + cpu as u64 * KERNEL_STACK_STRIDE
}

/// One past the highest byte of CPU `cpu`'s kernel stack.
pub const fn kernel_stack_top(cpu: usize) -> u64 {
    kernel_stack_guard(cpu) + KERNEL_STACK_STRIDE
}

/// The CPU whose stack guard page holds `addr`, if any.
pub const fn stack_guard_owner(addr: u64) -> Option<usize> {
    let Some(offset) = addr.checked_sub(KERNEL_STACK_GUARD) else {
        return None;
    };
    let cpu = offset / KERNEL_STACK_STRIDE;
    if cpu < MAX_CPUS as u64 && offset % KERNEL_STACK_STRIDE < PAGE_SIZE {
        Some(cpu as usize)
    } else {
        None
    }
}

/// The most CPUs the kernel starts (QEMU's `-smp` beyond it: the rest stay
/// parked). Each has its own kernel stack, IST stacks, GDT, TSS and per-CPU
/// area, sized by this.
pub const MAX_CPUS: usize = 8;

/// Physical address of the page the other CPUs start in (real mode): below
/// 1 MiB, page aligned, so a SIPI can name it (vector = address >> 12), and
/// in conventional RAM no frame is ever taken from.
pub const AP_TRAMPOLINE: u64 = 0x8000;

/// Each IST stack (page fault, double fault): the handler runs there, so a
/// fault on a broken kernel stack is still reported.
pub const IST_STACK_SIZE: usize = 32 * 1024;

/// A virtual window of demand-paged memory: the provider hands out runs from
/// it, the page-fault handler fills them.
#[derive(Clone, Copy)]
pub struct WindowLayout {
    /// First address of the window (1 GiB aligned).
    pub start: u64,
    /// Length in bytes (a multiple of 64 pages: one bitmap word).
    pub len: u64,
}

impl WindowLayout {
    /// Pages in the window.
    pub const fn pages(&self) -> usize {
        (self.len / PAGE_SIZE) as usize
    }
    /// 64-bit words of a one-bit-per-page bitmap over the window.
    pub const fn bitmap_words(&self) -> usize {
        self.pages() / 64
    }
}

/// The kernel heap: the `#[global_allocator]`'s runs.
pub const KERNEL_HEAP_WINDOW: WindowLayout = WindowLayout {
    start: 0x0000_1000_0000_0000,
    len: 1 << 30,
};
/// Distance between two CPUs' windows of the same kind: one PML4 slot
/// (512 GiB), so each window's page tables are its own.
pub const PER_CPU_WINDOW_STRIDE: u64 = 1 << 39;

/// CPU `cpu`'s test heap: a fresh ft_malloc heap, so tests that count pages
/// and frames exactly are not disturbed by the kernel's own allocations or
/// by the other CPUs'.
pub const fn test_heap_window(cpu: usize) -> WindowLayout {
    WindowLayout {
        start: 0x0000_2000_0000_0000 + cpu as u64 * PER_CPU_WINDOW_STRIDE,
        len: 256 << 20,
    }
}

/// CPU `cpu`'s own heap: where the kernel-heap tests (patterns, realloc)
/// run when every CPU runs them at once, so each counts its own blocks and
/// faults exactly.
pub const fn cpu_heap_window(cpu: usize) -> WindowLayout {
    WindowLayout {
        start: 0x0000_2800_0000_0000 + cpu as u64 * PER_CPU_WINDOW_STRIDE,
        len: 256 << 20,
    }
}

/// Pages every CPU touches at once (concurrent faults, TLB shootdown).
pub const SHARED_WINDOW: WindowLayout = WindowLayout {
    start: 0x0000_4000_0000_0000,
    len: 16 << 20,
};
/// The benchmark's ft_malloc heap.
pub const BENCH_CORE_WINDOW: WindowLayout = WindowLayout {
    start: 0x0000_3000_0000_0000,
    len: 1 << 30,
};
/// The benchmark's linked_list_allocator region: that allocator manages one
/// fixed region, reserved whole and filled on demand like the others.
pub const BENCH_LLA_WINDOW: WindowLayout = WindowLayout {
    start: 0x0000_3800_0000_0000,
    len: 16 << 20,
};

/// The SMP benchmark's ft_malloc heap.
pub const BENCH_SMP_CORE_WINDOW: WindowLayout = WindowLayout {
    start: 0x0000_3080_0000_0000,
    len: 1 << 30,
};
/// The SMP benchmark's peers: one 16 MiB region each.
pub const BENCH_SMP_PEERS_WINDOW: WindowLayout = WindowLayout {
    start: 0x0000_3880_0000_0000,
    len: 32 << 20,
};

/// `blog-heap`'s window: blog_os's `HEAP_START` and `HEAP_SIZE`, mapped
/// whole before the heap gets it (not demand-paged).
pub const BLOG_HEAP_START: u64 = 0x0000_4444_4444_0000;
/// See [`BLOG_HEAP_START`].
pub const BLOG_HEAP_SIZE: u64 = 100 * 1024;

/// An address in no window and no mapping: `fail=outside-heap` writes there.
pub const STRAY_ADDRESS: u64 = 0x0000_5000_0000_0040;
