//! The page tables.
//!
//! The boot code built a 4-level hierarchy that identity-maps the first GiB
//! with 2 MiB pages; that map is how the kernel reaches every physical frame
//! (frame at physical `N` is read and written at virtual `N`). Heap windows
//! get 4 KiB pages, one at a time, as the page-fault handler maps them, and
//! lose them when the heap gives a run back. The `x86_64` crate's
//! `OffsetPageTable` (with offset 0: the identity map) does the table walks.

use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{CleanUp, MapToError, TranslateResult};
use x86_64::structures::paging::page::PageRange;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PageTableIndex, PhysFrame, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::frames::{CommittedFrames, FRAMES};

/// A heap page: present, writable, and never executed.
pub const HEAP_PAGE_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE);

/// Where the kernel reads and writes physical address `addr`.
pub fn phys_to_virt(addr: PhysAddr) -> *mut u8 {
    addr.as_u64() as *mut u8
}

/// The active page tables.
///
/// # Safety
///
/// No other `OffsetPageTable` over them may be alive. Callers hold it for one
/// operation, in code that touches no demand-paged memory, so no page fault
/// (whose handler makes its own) can occur meanwhile; the kernel runs on one
/// CPU with interrupts disabled, so nothing else can run either.
unsafe fn active_tables() -> OffsetPageTable<'static> {
    let (pml4, _) = Cr3::read();
    let pml4 = phys_to_virt(pml4.start_address()).cast::<PageTable>();
    // SAFETY: CR3 names a valid PML4 inside the identity map; exclusivity is
    // the caller's contract.
    unsafe { OffsetPageTable::new(&mut *pml4, VirtAddr::zero()) }
}

/// Maps `page` to `frame` with `flags`, creating missing page tables from
/// frames the caller committed, and flushes the page's TLB entry. Returns the
/// page-table entry written.
///
/// # Safety
///
/// `page` must not be mapped, must lie in a demand-paged window (never in the
/// identity map), and `frame` must be owned by the caller, who hands it over
/// to the mapping. The caller must have committed enough frames for the page
/// tables the mapping may need. Contract of `active_tables` too.
pub unsafe fn map(
    page: Page,
    frame: PhysFrame,
    flags: PageTableFlags,
) -> Result<u64, MapToError<x86_64::structures::paging::Size4KiB>> {
    // SAFETY: the caller's contract; nothing else aliases the new mapping.
    unsafe {
        let mut tables = active_tables();
        tables
            .map_to(page, frame, flags, &mut CommittedFrames)?
            .flush();
    }
    Ok(leaf_entry(page.start_address()).unwrap_or(0))
}

/// Unmaps every mapped page of `pages`, flushing each TLB entry, returns the
/// frames to the frame pool and frees the page tables left empty. Returns the
/// number of pages that were mapped.
///
/// # Safety
///
/// Nothing may use the pages afterwards; they must lie in a demand-paged
/// window. Contract of `active_tables` too.
pub unsafe fn unmap_range(pages: PageRange) -> usize {
    let mut unmapped = 0;
    // SAFETY: the caller's contract.
    let mut tables = unsafe { active_tables() };
    for page in pages {
        if let Ok((frame, flush)) = tables.unmap(page) {
            flush.flush();
            FRAMES.give_back(frame);
            unmapped += 1;
        }
    }
    if unmapped > 0 {
        // SAFETY: the window's page tables map nothing but window pages, each
        // used by this hierarchy only, so an empty one can be freed.
        unsafe {
            tables.clean_up_addr_range(
                Page::range_inclusive(pages.start, pages.end - 1),
                &mut CommittedFrames,
            )
        };
        // INVLPG also drops the paging-structure caches, which may still hold
        // the tables just freed.
        x86_64::instructions::tlb::flush(pages.start.start_address());
    }
    unmapped
}

/// Moves the mapping of `from` (if any) to `to`, frame and all: the data
/// moves without being copied. Returns whether `from` was mapped.
///
/// # Safety
///
/// As for [`map`] (for `to`) and [`unmap_range`] (for `from`).
pub unsafe fn move_mapping(
    from: Page,
    to: Page,
) -> Result<bool, MapToError<x86_64::structures::paging::Size4KiB>> {
    // SAFETY: the caller's contract.
    let mut tables = unsafe { active_tables() };
    let Ok((frame, flush)) = tables.unmap(from) else {
        return Ok(false);
    };
    flush.flush();
    // SAFETY: `to` is unmapped (caller) and `frame` was just unmapped from
    // `from`, so the mapping owns it alone.
    unsafe {
        tables
            .map_to(to, frame, HEAP_PAGE_FLAGS, &mut CommittedFrames)?
            .flush()
    };
    Ok(true)
}

/// Frees the page tables left empty in `pages` (after [`move_mapping`]).
///
/// # Safety
///
/// As for [`unmap_range`].
pub unsafe fn free_empty_tables(pages: PageRange) {
    if pages.is_empty() {
        return;
    }
    // SAFETY: as in `unmap_range`.
    unsafe {
        active_tables().clean_up_addr_range(
            Page::range_inclusive(pages.start, pages.end - 1),
            &mut CommittedFrames,
        )
    };
    x86_64::instructions::tlb::flush(pages.start.start_address());
}

/// The physical address `addr` maps to, if it is mapped.
pub fn translate(addr: VirtAddr) -> Option<PhysAddr> {
    // SAFETY: a read-only walk that touches only page tables.
    let tables = unsafe { active_tables() };
    tables.translate_addr(addr)
}

/// The raw leaf entry (4 KiB page) mapping `addr`, if present.
pub fn leaf_entry(addr: VirtAddr) -> Option<u64> {
    // SAFETY: as in `translate`.
    let tables = unsafe { active_tables() };
    match tables.translate(addr) {
        TranslateResult::Mapped { .. } => walk(addr).entries[3],
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
