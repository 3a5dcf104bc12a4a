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
use x86_64::{PhysAddr, VirtAddr};

use crate::bitmap::AtomicBits;
use crate::frames::FRAMES;
use crate::layout::{self, PAGE_SIZE, WindowLayout};
use crate::paging::{self, HEAP_PAGE_FLAGS};
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
    /// Runs of the tests' own ft_malloc heap.
    TEST_HEAP, "test heap", layout::TEST_HEAP_WINDOW
);
window!(
    /// Runs of the benchmark's ft_malloc heap.
    BENCH_CORE, "bench ft_malloc", layout::BENCH_CORE_WINDOW
);
window!(
    /// The benchmark's linked_list_allocator region.
    BENCH_LLA, "bench linked_list_allocator", layout::BENCH_LLA_WINDOW
);

/// Every window the page-fault handler serves.
pub static WINDOWS: [&Window; 4] = [&KERNEL_HEAP, &TEST_HEAP, &BENCH_CORE, &BENCH_LLA];

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
}

/// The last few resolved faults, written by the handler and read by the
/// trace: a ring of atomic words, no lock.
struct FaultLog {
    resolved: AtomicU64,
    slots: [[AtomicU64; 8]; FAULT_LOG_SLOTS],
}

const FAULT_LOG_SLOTS: usize = 8;

static FAULT_LOG: FaultLog = FaultLog {
    resolved: AtomicU64::new(0),
    slots: [const { [const { AtomicU64::new(0) }; 8] }; FAULT_LOG_SLOTS],
};

impl FaultLog {
    fn record(&self, r: FaultRecord) {
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
        ];
        for (cell, word) in slot.iter().zip(words) {
            cell.store(word, Ordering::Release);
        }
        self.resolved.store(r.seq + 1, Ordering::Release);
    }
}

/// Page faults resolved so far, in every window.
pub fn faults_resolved() -> u64 {
    FAULT_LOG.resolved.load(Ordering::Acquire)
}

/// The resolved fault number `seq` (counting from 0), if still in the log.
pub fn fault_record(seq: u64) -> Option<FaultRecord> {
    let slot = &FAULT_LOG.slots[(seq % FAULT_LOG_SLOTS as u64) as usize];
    let w: [u64; 8] = core::array::from_fn(|i| slot[i].load(Ordering::Acquire));
    (w[0] == seq && seq < faults_resolved()).then_some(FaultRecord {
        seq: w[0],
        address: w[1],
        error_code: w[2],
        rip: w[3],
        frame: w[4],
        entry: w[5],
        free_frames_after: w[6],
        window: w[7],
    })
}

/// Resolves a page fault at `address`, or says why it cannot be.
///
/// On success the page holding `address` is mapped to a fresh zeroed frame
/// and the faulting instruction can be restarted.
pub fn resolve(address: u64, error: PageFaultErrorCode, rip: u64) -> Result<FaultRecord, Refusal> {
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

    let frame = FRAMES.take_committed().ok_or(Refusal::CommitmentBroken)?;
    // SAFETY: the frame was just taken from the pool, so nothing else uses
    // it; it lies in the identity map. Zeroed because the provider promises
    // the heap that fresh pages read as zero.
    unsafe { paging::phys_to_virt(frame.start_address()).write_bytes(0, PAGE_SIZE as usize) };
    let page = Page::containing_address(VirtAddr::new(address));
    // SAFETY: the page belongs to a live run of a window and is not present
    // (error code); the frame is ours to hand over; the run's commitment
    // covers the page tables.
    let entry = match unsafe { paging::map(page, frame, HEAP_PAGE_FLAGS) } {
        Ok(entry) => entry,
        Err(_) => {
            FRAMES.give_back(frame);
            return Err(Refusal::MappingFailed);
        }
    };
    window.faults.fetch_add(1, Ordering::AcqRel);
    window.resident.fetch_add(1, Ordering::AcqRel);
    let record = FaultRecord {
        seq: faults_resolved(),
        address,
        error_code: error.bits(),
        rip,
        frame: frame.start_address().as_u64(),
        entry,
        free_frames_after: FRAMES.free_frames() as u64,
        window: window_index as u64,
    };
    FAULT_LOG.record(record);
    window
        .fault_ticks
        .fetch_add(tsc::ticks() - start, Ordering::AcqRel);
    Ok(record)
}

/// Where `addr` is backed in RAM, if it is mapped (for tests and the trace).
pub fn backing_frame(addr: u64) -> Option<PhysAddr> {
    paging::translate(VirtAddr::new(addr))
}
