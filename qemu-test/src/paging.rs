//! The page tables.
//!
//! The boot code built a 4-level hierarchy that identity-maps the first GiB
//! with 2 MiB pages; that map is how the kernel reaches every physical frame
//! (frame at physical `N` is read and written at virtual `N`). Heap windows
//! get 4 KiB pages, one at a time, as the page-fault handler maps them, and
//! lose them when the heap gives a run back. The `x86_64` crate's
//! `OffsetPageTable` (with offset 0: the identity map) does the table walks.
//!
//! # Concurrency protocol
//!
//! Every CPU uses the same tables. [`PAGE_TABLES`] serializes every walk
//! and every change of them: two CPUs faulting on the same page, or on two
//! pages needing the same new page table, map it once. It is an
//! [`IrqSpinLock`] (interrupts off while held), taken by the page-fault
//! handler, so the code holding it touches no demand-paged memory (only
//! tables and frames, in the identity map) and cannot fault. Lock order:
//! a heap's locks, then its provider's lock, then `PAGE_TABLES`, then the
//! shootdown lock (`smp::shootdown`).
//!
//! A frame (or page table) that leaves a mapping is *retired*, not freed:
//! other CPUs may still hold the old translation in their TLB (or the
//! table in their paging-structure caches). [`RetiredFrames`] keeps it
//! until one TLB shootdown for the whole range (one IPI per CPU, not one
//! per page) has been acknowledged by every CPU; only then does it go back
//! to the pool, where another mapping can reuse it.

use ft_malloc::IrqSpinLock;
use lock_api::Mutex;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{CleanUp, MapToError, TranslateResult};
use x86_64::structures::paging::page::PageRange;
use x86_64::structures::paging::{
    FrameAllocator, FrameDeallocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags,
    PageTableIndex, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::frames::{CommittedFrames, FRAMES};
use crate::smp::shootdown;

/// A heap page: present, writable, and never executed.
pub const HEAP_PAGE_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE);

/// Frames a [`RetiredFrames`] holds before it shoots down and releases
/// them (a run longer than this takes one shootdown per this many pages).
const RETIRED_BATCH: usize = 256;

/// The lock over the page tables (see the module documentation).
static PAGE_TABLES: Mutex<IrqSpinLock, ()> = Mutex::new(());

/// Where the kernel reads and writes physical address `addr`.
pub fn phys_to_virt(addr: PhysAddr) -> *mut u8 {
    addr.as_u64() as *mut u8
}

/// Runs `f` on the active page tables, holding [`PAGE_TABLES`].
///
/// `f` must touch no demand-paged memory (it would fault with the lock
/// held, and the fault handler takes it).
fn with_tables<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    let _guard = PAGE_TABLES.lock();
    let (pml4, _) = Cr3::read();
    let pml4 = phys_to_virt(pml4.start_address()).cast::<PageTable>();
    // SAFETY: CR3 names a valid PML4 inside the identity map; the lock makes
    // this the only `OffsetPageTable` over it while `f` runs.
    let mut tables = unsafe { OffsetPageTable::new(&mut *pml4, VirtAddr::zero()) };
    f(&mut tables)
}

/// Frames taken out of mappings, held until every CPU has dropped the old
/// translations (see the module documentation).
struct RetiredFrames {
    frames: [Option<PhysFrame>; RETIRED_BATCH],
    len: usize,
    /// The pages whose translations must go (those the frames left).
    range: PageRange,
    /// Pages that lost their frame (tables not counted).
    unmapped: usize,
}

impl RetiredFrames {
    fn new(range: PageRange) -> Self {
        RetiredFrames {
            frames: [None; RETIRED_BATCH],
            len: 0,
            range,
            unmapped: 0,
        }
    }

    fn retire(&mut self, frame: PhysFrame) {
        if self.len == RETIRED_BATCH {
            self.release();
        }
        self.frames[self.len] = Some(frame);
        self.len += 1;
    }

    /// Shoots the range down on the other CPUs, then frees the frames.
    fn release(&mut self) {
        if self.len == 0 {
            return;
        }
        shootdown::shoot_down(self.range);
        for frame in self.frames[..self.len].iter_mut().filter_map(Option::take) {
            FRAMES.give_back(frame);
        }
        self.len = 0;
    }
}

impl Drop for RetiredFrames {
    fn drop(&mut self) {
        self.release();
    }
}

/// Page tables freed by `clean_up` are retired too.
impl FrameDeallocator<Size4KiB> for RetiredFrames {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame) {
        self.retire(frame);
    }
}

/// What [`map_fresh`] did.
pub enum Fresh {
    /// The page got the frame; the page-table entry written.
    Mapped {
        /// The frame now behind the page.
        frame: PhysFrame,
        /// The leaf entry.
        entry: u64,
    },
    /// Another CPU mapped the page first (both faulted on it): nothing taken.
    AlreadyMapped,
}

/// Maps `page` to a fresh zeroed frame taken from the caller's commitment,
/// unless it is mapped already (another CPU resolved the same fault first).
/// Page tables are created from the commitment too.
///
/// # Safety
///
/// `page` must lie in a demand-paged window, in a live run whose commitment
/// covers the page and its tables.
pub unsafe fn map_fresh(page: Page) -> Result<Fresh, MapToError<Size4KiB>> {
    with_tables(|tables| {
        if tables.translate_page(page).is_ok() {
            return Ok(Fresh::AlreadyMapped);
        }
        let frame = CommittedFrames
            .allocate_frame()
            .ok_or(MapToError::FrameAllocationFailed)?;
        // SAFETY: the frame was just taken from the pool, so nothing else
        // uses it; it lies in the identity map. Zeroed because the provider
        // promises the heap that fresh pages read as zero.
        unsafe { phys_to_virt(frame.start_address()).write_bytes(0, 4096) };
        // SAFETY: the page is unmapped (checked under the lock) and in a
        // window; the frame is ours; the commitment covers the tables.
        match unsafe { tables.map_to(page, frame, HEAP_PAGE_FLAGS, &mut CommittedFrames) } {
            Ok(flush) => flush.flush(),
            Err(error) => {
                FRAMES.give_back(frame);
                return Err(error);
            }
        }
        let entry = leaf_entry_in(tables, page.start_address()).unwrap_or(0);
        Ok(Fresh::Mapped { frame, entry })
    })
}

/// Maps `page` to `frame` with `flags`, creating missing page tables from
/// frames the caller committed, and flushes the page's TLB entry. Returns the
/// page-table entry written.
///
/// # Safety
///
/// `page` must not be mapped, must lie outside the identity map, and
/// `frame` must be owned by the caller, who hands it over to the mapping.
/// The caller must have committed enough frames for the page tables the
/// mapping may need.
pub unsafe fn map(
    page: Page,
    frame: PhysFrame,
    flags: PageTableFlags,
) -> Result<u64, MapToError<Size4KiB>> {
    with_tables(|tables| {
        // SAFETY: the caller's contract; nothing else aliases the new mapping.
        unsafe { tables.map_to(page, frame, flags, &mut CommittedFrames)? }.flush();
        Ok(leaf_entry_in(tables, page.start_address()).unwrap_or(0))
    })
}

/// Unmaps every mapped page of `pages`, frees the page tables left empty,
/// and, once every CPU has dropped the old translations (one shootdown for
/// the run), returns the frames to the pool. Returns the number of pages
/// that were mapped.
///
/// # Safety
///
/// Nothing may use the pages afterwards; they must lie in a demand-paged
/// window.
pub unsafe fn unmap_range(pages: PageRange) -> usize {
    if pages.is_empty() {
        return 0;
    }
    with_tables(|tables| {
        let mut retired = RetiredFrames::new(pages);
        for page in pages {
            if let Ok((frame, flush)) = tables.unmap(page) {
                flush.flush();
                retired.retire(frame);
                retired.unmapped += 1;
            }
        }
        if retired.unmapped > 0 {
            // SAFETY: the window's page tables map nothing but window pages,
            // each used by this hierarchy only, so an empty one can be freed
            // (retired, like the pages' frames).
            unsafe {
                tables.clean_up_addr_range(
                    Page::range_inclusive(pages.start, pages.end - 1),
                    &mut retired,
                )
            };
            // INVLPG also drops the paging-structure caches, which may still
            // hold the tables just freed.
            x86_64::instructions::tlb::flush(pages.start.start_address());
        }
        retired.unmapped
        // `retired` drops here: shootdown, then the frames go back.
    })
}

/// Moves the mappings of `from` (those that exist) to the pages starting at
/// `to`, frames and all: the data moves without being copied. Then frees
/// the tables `from` no longer needs, after one shootdown of `from` on the
/// other CPUs.
///
/// # Safety
///
/// As for [`map`] (for the destination pages, which must be unmapped) and
/// [`unmap_range`] (for `from`).
pub unsafe fn move_range(from: PageRange, to: Page) -> Result<(), MapToError<Size4KiB>> {
    if from.is_empty() {
        return Ok(());
    }
    with_tables(|tables| {
        for (i, old_page) in from.enumerate() {
            let Ok((frame, flush)) = tables.unmap(old_page) else {
                continue;
            };
            flush.flush();
            // SAFETY: the destination is unmapped (caller) and `frame` was
            // just unmapped from `old_page`, so the mapping owns it alone.
            unsafe {
                tables
                    .map_to(to + i as u64, frame, HEAP_PAGE_FLAGS, &mut CommittedFrames)?
                    .flush()
            };
        }
        let mut retired = RetiredFrames::new(from);
        // SAFETY: as in `unmap_range`.
        unsafe {
            tables.clean_up_addr_range(
                Page::range_inclusive(from.start, from.end - 1),
                &mut retired,
            )
        };
        x86_64::instructions::tlb::flush(from.start.start_address());
        // The old pages' translations name frames that now live elsewhere:
        // shoot them down even if no table was freed.
        shootdown::shoot_down(from);
        Ok(())
    })
}

/// The physical address `addr` maps to, if it is mapped.
pub fn translate(addr: VirtAddr) -> Option<PhysAddr> {
    with_tables(|tables| tables.translate_addr(addr))
}

/// The raw leaf entry (4 KiB page) mapping `addr`, if present.
fn leaf_entry_in(tables: &OffsetPageTable, addr: VirtAddr) -> Option<u64> {
    match tables.translate(addr) {
        TranslateResult::Mapped { .. } => walk_unlocked(addr).entries[3],
        _ => None,
    }
}

/// The four table entries the MMU reads to translate an address, as the
/// trace prints them.
pub struct Walk {
    /// Index into the PML4, PDPT, PD and PT.
    pub indices: [PageTableIndex; 4],
    /// Each level's entry, `None` from the first level that is not present.
    pub entries: [Option<u64>; 4],
}

/// Walks the tables for `addr` the way the MMU does (4 KiB pages only).
pub fn walk(addr: VirtAddr) -> Walk {
    with_tables(|_| walk_unlocked(addr))
}

/// [`walk`], for a caller holding [`PAGE_TABLES`].
fn walk_unlocked(addr: VirtAddr) -> Walk {
    let indices = [
        addr.p4_index(),
        addr.p3_index(),
        addr.p2_index(),
        addr.p1_index(),
    ];
    let mut entries = [None; 4];
    let mut table = Cr3::read().0.start_address();
    for (level, index) in indices.iter().enumerate() {
        // SAFETY: `table` is a page table in the identity map (CR3, or the
        // address in a present non-huge entry above it); this only reads it.
        let level_table: &PageTable = unsafe { &*phys_to_virt(table).cast::<PageTable>() };
        let entry = &level_table[*index];
        if !entry.flags().contains(PageTableFlags::PRESENT) {
            break;
        }
        entries[level] = Some(entry.flags().bits() | entry.addr().as_u64());
        if entry.flags().contains(PageTableFlags::HUGE_PAGE) {
            break;
        }
        table = entry.addr();
    }
    Walk { indices, entries }
}

/// What one PML4 slot's hierarchy holds, counted from the tables themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Page-table frames (the PDPT, PDs and PTs below the slot).
    pub tables: usize,
    /// Mapped 4 KiB pages.
    pub pages: usize,
}

/// Counts the tables and mapped pages under the PML4 entry covering `addr`
/// (each window and the kernel stack have a PML4 slot of their own, mapped
/// with 4 KiB pages only).
pub fn census(addr: VirtAddr) -> Census {
    with_tables(|_| census_unlocked(addr))
}

/// [`census`], for a caller holding [`PAGE_TABLES`].
fn census_unlocked(addr: VirtAddr) -> Census {
    /// The table a present, non-huge entry points to.
    fn child(
        entry: &x86_64::structures::paging::page_table::PageTableEntry,
    ) -> Option<&'static PageTable> {
        let flags = entry.flags();
        if !flags.contains(PageTableFlags::PRESENT) || flags.contains(PageTableFlags::HUGE_PAGE) {
            return None;
        }
        // SAFETY: a present non-huge entry names a page table in the
        // identity map; this only reads it.
        Some(unsafe { &*phys_to_virt(entry.addr()).cast::<PageTable>() })
    }
    let (pml4, _) = Cr3::read();
    // SAFETY: CR3 names the PML4, in the identity map; read only.
    let pml4: &PageTable = unsafe { &*phys_to_virt(pml4.start_address()).cast::<PageTable>() };
    let mut census = Census::default();
    let Some(pdpt) = child(&pml4[addr.p4_index()]) else {
        return census;
    };
    census.tables += 1;
    for pd in pdpt.iter().filter_map(child) {
        census.tables += 1;
        for pt in pd.iter().filter_map(child) {
            census.tables += 1;
            census.pages += pt
                .iter()
                .filter(|e| e.flags().contains(PageTableFlags::PRESENT))
                .count();
        }
    }
    census
}
