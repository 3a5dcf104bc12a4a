//! Demand paging: virtual windows whose pages get a frame on first touch.
//!
//! A [`Window`] is a range of virtual addresses with a bitmap of *reserved*
//! pages: those inside a run a provider handed out. Nothing in a window is
//! mapped up front. The first access to a reserved page faults, and
//! [`resolve`] — called by the page-fault handler — takes a committed frame,
//! zeroes it, maps it and lets the access restart. A fault anywhere else
//! (outside every window, or on a window page no run covers: a wild pointer
//! or a use after free) is refused, and the handler fails the run.
//!
//! `resolve` runs inside an exception handler that may have interrupted the
//! heap with any of its locks held, so it allocates nothing and takes no
//! lock: it reads the reservation bitmaps and the frame pool through atomics
//! and writes page-table entries that no one else is touching (only pages of
//! reserved runs, and only not-present ones).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use x86_64::structures::idt::PageFaultErrorCode;
use x86_64::structures::paging::Page;
use x86_64::structures::paging::mapper::MapToError;
use x86_64::{PhysAddr, VirtAddr};

use crate::bitmap::AtomicBits;
use crate::frames::FRAMES;
use crate::layout::{self, MAX_CPUS, PAGE_SIZE, WindowLayout};
use crate::paging::{self, Fresh};
use crate::smp::percpu::this_cpu;
use crate::tsc;

/// A demand-paged virtual window.
pub struct Window {
    /// Name used in reports.
    pub name: &'static str,
    /// Where it is.
    pub layout: WindowLayout,
    /// Bit `i` set: page `i` of the window belongs to a live run.
    pub(crate) reserved: &'static [AtomicU64],
    /// Page faults resolved in this window.
    faults: AtomicU64,
    /// Pages currently mapped.
    resident: AtomicUsize,
    /// TSC ticks spent resolving this window's faults.
    fault_ticks: AtomicU64,
}

impl Window {
    /// A window over `layout`, with `reserved` as its bitmap (one bit per
    /// page, all clear).
    pub const fn new(
        name: &'static str,
        layout: WindowLayout,
        reserved: &'static [AtomicU64],
    ) -> Self {
        assert!(reserved.len() == layout.bitmap_words());
        assert!(layout.start.is_multiple_of(1 << 30));
        Window {
            name,
            layout,
            reserved,
            faults: AtomicU64::new(0),
            resident: AtomicUsize::new(0),
            fault_ticks: AtomicU64::new(0),
        }
    }

    /// Whether `addr` is inside the window.
    pub fn contains(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.layout.start) < self.layout.len
    }

    /// Index of the page holding `addr` (which must be inside the window).
    pub fn page_index(&self, addr: u64) -> usize {
        ((addr - self.layout.start) / PAGE_SIZE) as usize
    }

    /// Address of page `index`.
    pub fn page_address(&self, index: usize) -> u64 {
        self.layout.start + index as u64 * PAGE_SIZE
    }

    /// Whether `addr` lies in a live run.
    pub fn is_reserved(&self, addr: u64) -> bool {
        self.contains(addr) && self.reserved.is_set(self.page_index(addr))
    }

    /// Page faults resolved in this window so far.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Acquire)
    }

    /// TSC ticks spent in [`resolve`] for this window's faults.
    pub fn fault_ticks(&self) -> u64 {
        self.fault_ticks.load(Ordering::Acquire)
    }

    /// Pages currently backed by a frame.
    pub fn resident_pages(&self) -> usize {
        self.resident.load(Ordering::Acquire)
    }

    /// Pages currently reserved by live runs.
    pub fn reserved_pages(&self) -> usize {
        self.reserved.count_set()
    }

    /// Records that `n` pages lost their frames (unmapped by a provider).
    pub(crate) fn note_unmapped(&self, n: usize) {
        self.resident.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Declares a window static with its reservation bitmap.
macro_rules! window {
    ($(#[$doc:meta])* $name:ident, $label:literal, $layout:expr) => {
        $(#[$doc])*
        pub static $name: Window = {
            static RESERVED: [AtomicU64; $layout.bitmap_words()] = [const { AtomicU64::new(0) }; $layout.bitmap_words()];
            Window::new($label, $layout, &RESERVED)
        };
    };
}

window!(
    /// Runs of the kernel's `#[global_allocator]`.
    KERNEL_HEAP, "kernel heap", layout::KERNEL_HEAP_WINDOW
);
window!(
    /// Runs of the benchmark's ft_malloc heap.
    BENCH_CORE, "bench ft_malloc", layout::BENCH_CORE_WINDOW
);
window!(
    /// The benchmark's linked_list_allocator region.
    BENCH_LLA, "bench linked_list_allocator", layout::BENCH_LLA_WINDOW
);
window!(
    /// The SMP benchmark's ft_malloc heap.
    BENCH_SMP_CORE, "bench-smp ft_malloc", layout::BENCH_SMP_CORE_WINDOW
);
window!(
    /// The SMP benchmark's peers' regions.
    BENCH_SMP_PEERS, "bench-smp peers", layout::BENCH_SMP_PEERS_WINDOW
);
window!(
    /// Pages all CPUs touch at once.
    SHARED, "shared", layout::SHARED_WINDOW
);

/// Declares an array of per-CPU windows, `$layout(i)` for CPU `i`.
macro_rules! per_cpu_windows {
    ($(#[$doc:meta])* $name:ident, [$($label:literal),* $(,)?], $layout:path) => {
        $(#[$doc])*
        pub static $name: [Window; MAX_CPUS] = {
            const WORDS: usize = $layout(0).bitmap_words();
            static RESERVED: [[AtomicU64; WORDS]; MAX_CPUS] =
                [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_CPUS];
            const LABELS: [&str; MAX_CPUS] = [$($label),*];
            let mut windows = [const { Window::new("", $layout(0), &RESERVED[0]) }; MAX_CPUS];
            let mut cpu = 0;
            while cpu < MAX_CPUS {
                windows[cpu] = Window::new(LABELS[cpu], $layout(cpu), &RESERVED[cpu]);
                cpu += 1;
            }
            windows
        };
    };
}

per_cpu_windows!(
    /// Runs of each CPU's test heap.
    TEST_HEAPS,
    ["test heap 0", "test heap 1", "test heap 2", "test heap 3",
     "test heap 4", "test heap 5", "test heap 6", "test heap 7"],
    layout::test_heap_window
);
per_cpu_windows!(
    /// Runs of each CPU's own heap (the kernel-heap tests on every CPU).
    CPU_HEAPS,
    ["CPU heap 0", "CPU heap 1", "CPU heap 2", "CPU heap 3",
     "CPU heap 4", "CPU heap 5", "CPU heap 6", "CPU heap 7"],
    layout::cpu_heap_window
);

/// How many windows the page-fault handler serves.
const WINDOW_COUNT: usize = 6 + 2 * MAX_CPUS;

/// Every window the page-fault handler serves.
pub static WINDOWS: [&Window; WINDOW_COUNT] = {
    let mut windows: [&Window; WINDOW_COUNT] = [&KERNEL_HEAP; WINDOW_COUNT];
    windows[1] = &BENCH_CORE;
    windows[2] = &BENCH_LLA;
    windows[3] = &SHARED;
    windows[4] = &BENCH_SMP_CORE;
    windows[5] = &BENCH_SMP_PEERS;
    let mut cpu = 0;
    while cpu < MAX_CPUS {
        windows[6 + cpu] = &TEST_HEAPS[cpu];
        windows[6 + MAX_CPUS + cpu] = &CPU_HEAPS[cpu];
        cpu += 1;
    }
    windows
};

/// The frames a run of `pages` pages at `start` may consume: one per page,
/// plus one per page table that mapping it could create (a PT per 2 MiB, a
/// PD per GiB, a PDPT per 512 GiB the run touches). Committed when the run
/// is handed out, so the fault handler never runs short.
pub fn commitment(start: u64, pages: usize) -> usize {
    if pages == 0 {
        return 0;
    }
    let last = start + pages as u64 * PAGE_SIZE - 1;
    let tables = |shift: u32| ((last >> shift) - (start >> shift) + 1) as usize;
    pages + tables(21) + tables(30) + tables(39)
}

/// Why a page fault was not resolved.
#[derive(Clone, Copy, Debug)]
pub enum Refusal {
    /// The address is in no heap window: a stray pointer (or a stack overflow).
    OutsideHeapWindows,
    /// The address is in a window but in no live run: a wild pointer or a
    /// use after free.
    NotInALiveRun(&'static str),
    /// The page is present; the access broke its permissions.
    ProtectionViolation,
    /// Code tried to execute heap memory (heap pages are no-execute).
    InstructionFetch,
    /// A page-table entry has reserved bits set.
    MalformedTable,
    /// No frame for a committed page: the commitment accounting is broken.
    CommitmentBroken,
    /// The page was already mapped, or a page table could not be created.
    MappingFailed,
}

impl Refusal {
    /// A one-line description.
    pub fn describe(&self) -> &'static str {
        match self {
            Refusal::OutsideHeapWindows => "address in no heap window",
            Refusal::NotInALiveRun(_) => {
                "heap window address outside every live run (wild pointer or use after free)"
            }
            Refusal::ProtectionViolation => "protection violation on a present page",
            Refusal::InstructionFetch => "instruction fetch from a no-execute page",
            Refusal::MalformedTable => "reserved bit set in a page-table entry",
            Refusal::CommitmentBroken => "no free frame for a committed page (accounting bug)",
            Refusal::MappingFailed => "mapping failed (page already mapped?)",
        }
    }
}

/// A resolved fault, as the trace prints it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultRecord {
    /// Sequence number: how many faults were resolved before this one.
    pub seq: u64,
    /// The faulting address (CR2).
    pub address: u64,
    /// The CPU's error code.
    pub error_code: u64,
    /// The faulting instruction (where execution resumes).
    pub rip: u64,
    /// The physical frame mapped.
    pub frame: u64,
    /// The page-table entry written.
    pub entry: u64,
    /// Free frames after taking this one.
    pub free_frames_after: u64,
    /// Index into [`WINDOWS`].
    pub window: u64,
    /// The CPU that took the fault.
    pub cpu: u64,
}

/// Words of a [`FaultRecord`] in the log.
const RECORD_WORDS: usize = 9;

/// The last few resolved faults, written by the handler and read by the
/// trace: a ring of atomic words, no lock. A fault claims its sequence
/// number with one `fetch_add`, so faults of several CPUs get distinct ones.
struct FaultLog {
    resolved: AtomicU64,
    slots: [[AtomicU64; RECORD_WORDS]; FAULT_LOG_SLOTS],
}

const FAULT_LOG_SLOTS: usize = 8;

static FAULT_LOG: FaultLog = FaultLog {
    resolved: AtomicU64::new(0),
    slots: [const { [const { AtomicU64::new(0) }; RECORD_WORDS] }; FAULT_LOG_SLOTS],
};

impl FaultLog {
    /// Logs `r` under a fresh sequence number, which it returns.
    fn record(&self, mut r: FaultRecord) -> u64 {
        r.seq = self.resolved.fetch_add(1, Ordering::AcqRel);
        let slot = &self.slots[(r.seq % FAULT_LOG_SLOTS as u64) as usize];
        let words = [
            r.seq,
            r.address,
            r.error_code,
            r.rip,
            r.frame,
            r.entry,
            r.free_frames_after,
            r.window,
            r.cpu,
        ];
        for (cell, word) in slot.iter().zip(words) {
            cell.store(word, Ordering::Release);
        }
        r.seq
    }
}

/// Page faults resolved so far, in every window.
pub fn faults_resolved() -> u64 {
    FAULT_LOG.resolved.load(Ordering::Acquire)
}

/// The resolved fault number `seq` (counting from 0), if still in the log.
pub fn fault_record(seq: u64) -> Option<FaultRecord> {
    let slot = &FAULT_LOG.slots[(seq % FAULT_LOG_SLOTS as u64) as usize];
    let w: [u64; RECORD_WORDS] = core::array::from_fn(|i| slot[i].load(Ordering::Acquire));
    (w[0] == seq && seq < faults_resolved()).then_some(FaultRecord {
        seq: w[0],
        address: w[1],
        error_code: w[2],
        rip: w[3],
        frame: w[4],
        entry: w[5],
        free_frames_after: w[6],
        window: w[7],
        cpu: w[8],
    })
}

/// Resolves a page fault at `address`, or says why it cannot be.
///
/// On success the page holding `address` is mapped to a fresh zeroed frame
/// and the faulting instruction can be restarted: `Some(record)` if this
/// fault mapped it, `None` if another CPU faulting on the same page did
/// (then only that CPU's fault is counted as resolved, and this one as
/// raced: the counts stay one per mapped page).
pub fn resolve(
    address: u64,
    error: PageFaultErrorCode,
    rip: u64,
) -> Result<Option<FaultRecord>, Refusal> {
    let start = tsc::ticks();
    let (window_index, window) = WINDOWS
        .iter()
        .enumerate()
        .find(|(_, w)| w.contains(address))
        .ok_or(Refusal::OutsideHeapWindows)?;
    if error.contains(PageFaultErrorCode::MALFORMED_TABLE) {
        return Err(Refusal::MalformedTable);
    }
    if error.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
        return Err(Refusal::InstructionFetch);
    }
    if error.contains(PageFaultErrorCode::PROTECTION_VIOLATION) {
        return Err(Refusal::ProtectionViolation);
    }
    if !window.is_reserved(address) {
        return Err(Refusal::NotInALiveRun(window.name));
    }

    let page = Page::containing_address(VirtAddr::new(address));
    // SAFETY: the page belongs to a live run of a window, whose commitment
    // covers its frame and tables.
    let (frame, entry) = match unsafe { paging::map_fresh(page) } {
        Ok(Fresh::Mapped { frame, entry }) => (frame, entry),
        // Another CPU faulted on the same page and mapped it first: the
        // access can simply be restarted. No frame was taken.
        Ok(Fresh::AlreadyMapped) => {
            this_cpu().faults_raced.fetch_add(1, Ordering::AcqRel);
            return Ok(None);
        }
        Err(MapToError::FrameAllocationFailed) => return Err(Refusal::CommitmentBroken),
        Err(_) => return Err(Refusal::MappingFailed),
    };
    this_cpu().faults_mapped.fetch_add(1, Ordering::AcqRel);
    window.faults.fetch_add(1, Ordering::AcqRel);
    window.resident.fetch_add(1, Ordering::AcqRel);
    let mut record = FaultRecord {
        seq: 0,
        address,
        error_code: error.bits(),
        rip,
        frame: frame.start_address().as_u64(),
        entry,
        free_frames_after: FRAMES.free_frames() as u64,
        window: window_index as u64,
        cpu: this_cpu().index as u64,
    };
    record.seq = FAULT_LOG.record(record);
    window
        .fault_ticks
        .fetch_add(tsc::ticks() - start, Ordering::AcqRel);
    Ok(Some(record))
}

/// Where `addr` is backed in RAM, if it is mapped (for tests and the trace).
pub fn backing_frame(addr: u64) -> Option<PhysAddr> {
    paging::translate(VirtAddr::new(addr))
}
