//! A zone: one run of pages holding blocks of a single size class.
//!
//! ```text
//! zone start
//! | ZoneHeader | live bitmap | requested sizes | pad | block 0 | block 1 | ... |
//! ```
//!
//! Blocks are *carved* lazily: `carved` counts the blocks ever handed out by
//! bumping, so pages past the last carved block are never written. Freed
//! blocks go on an intrusive free list (the link lives in the free block).
//! The live bitmap says which carved blocks are allocated; it is what turns a
//! double free into an error instead of a corrupted list.
//!
//! Everything here works on raw zone pointers and is called with the lock of
//! the zone's class held.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::error::HeapError;
use crate::free_mark;
use crate::size_class::{SizeClass, ZoneGeometry};

mod boundary;
mod carve;
mod free_pages;
mod owner;
mod runs;
mod sizes;
pub(crate) use boundary::Boundary;
pub(crate) use carve::carve_run;
pub(crate) use free_pages::{for_each_free_tail, free_blocks, has_free_pages};
pub(crate) use owner::{owner, set_owner};
pub(crate) use runs::{find_free_run, take_run};
pub(crate) use sizes::{
    cached_size, layout_of, load_own_size, requested, set_requested, size_slot, size_slot_in,
    store_cached, store_size,
};

/// Bytes reserved for [`ZoneHeader`] at the start of every zone.
pub const ZONE_HEADER_SIZE: usize = 96;

/// Mixed into every header's guard word; a header whose guard does not match
/// its own address was overwritten (or is not a header at all). A 32-bit
/// value sign-extended (all its high bits set, so it still flips every high
/// bit of the address on 64-bit targets): x86_64 compares with it as an
/// immediate, with no 64-bit constant to load on every `free`.
const GUARD_KEY: usize = 0xc0de_b10c_u32 as i32 as isize as usize;

/// The first bytes of every zone.
///
/// Two parts, because front caches read some fields *without* the class
/// lock (`cache/depot.rs`): the first three are set when the zone is made
/// (the carved count only grows while the zone has a lent block) and are
/// never covered by a `&mut` to the header, which the memory model would
/// count as a write racing those reads. The owner (a front cache's home,
/// `owner.rs`) sits in the padding after them. Everything else is
/// [`ZoneState`], reached only under the class lock through [`state`] and
/// [`state_mut`].
#[repr(C)]
pub(crate) struct ZoneHeader {
    /// `zone address ^ GUARD_KEY`.
    guard: usize,
    /// The class's full or scarce layout (`size_class`): where the bitmap,
    /// the sizes and block 0 are, the block size and its exact division.
    geometry: &'static ZoneGeometry,
    /// Blocks handed out by bumping so far; blocks at or past it were never
    /// used. Written under the class lock; a front cache reads it without
    /// the lock (see `carved_hint`), hence atomic.
    carved: AtomicU32,
    /// The front cache whose refills this zone serves first (its id,
    /// `cache/affinity.rs`), or 0. Written and read under the class lock;
    /// an atomic because it lies outside `state`, beside the fields read
    /// without the lock (no `&mut` may cover it). In the padding after
    /// `carved`: it makes the header no bigger.
    owner: AtomicU32,
    /// What the lock-free check of a freed pointer reads, worked out from
    /// the geometry and the zone's address once, when the zone is made.
    check: Boundary,
    /// The rest, under the class lock.
    state: ZoneState,
}

/// What only the class lock's holder reads or writes.
pub(crate) struct ZoneState {
    /// Head of the free list (blocks freed and not yet reused), as a
    /// [`FreeLink`]: the head's index + 1, or 0 for an empty list.
    free: u32,
    /// Neighbours in the class's list of zones that have room.
    pub(crate) prev: *mut ZoneHeader,
    pub(crate) next: *mut ZoneHeader,
    /// Length of the run the provider gave (zone bytes rounded to its page;
    /// a zone is at most a few MiB).
    run_len: u32,
    /// Blocks this zone may carve: the geometry's capacity, or fewer once
    /// `trim` gave the never-used tail back to the provider.
    capacity: u32,
    /// Allocated blocks (handed out or lent to a front cache).
    pub(crate) live: u32,
    pub(crate) class: SizeClass,
    /// Whether the zone is on its class's list of zones with room.
    pub(crate) listed: bool,
    /// Whether never-carved blocks read as zero (the provider zeroes pages).
    fresh_is_zero: bool,
    /// `purge.rs`'s marks on the free list, a stack counted from its
    /// bottom: the blocks below `purged_free` gave their pages back; none
    /// below `purge_low` has been taken since the last check (both are
    /// lowered as frees find the list shorter).
    pub(crate) purged_free: u16,
    pub(crate) purge_low: u16,
    /// How many times purged blocks were taken again: each doubles the
    /// interval of this zone's checks (`purge.rs`).
    pub(crate) purge_patience: u8,
}

const _: () = assert!(core::mem::size_of::<ZoneHeader>() <= ZONE_HEADER_SIZE);

impl ZoneState {
    /// Length of the zone's run in bytes.
    #[inline]
    pub(crate) fn run_len(&self) -> usize {
        self.run_len as usize
    }
}

/// The locked part of a zone's header.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds, and no `&mut`
/// to the same state is alive.
#[inline(always)]
pub(crate) unsafe fn state<'a>(zone: NonNull<ZoneHeader>) -> &'a ZoneState {
    // SAFETY: per the contract; a reference to the field only, not to the
    // whole header (whose first fields others read without the lock).
    unsafe { &(*zone.as_ptr()).state }
}

/// The locked part of a zone's header, to change it.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds, and no other
/// reference to its state is alive.
#[inline(always)]
pub(crate) unsafe fn state_mut<'a>(zone: NonNull<ZoneHeader>) -> &'a mut ZoneState {
    // SAFETY: as in `state`.
    unsafe { &mut (*zone.as_ptr()).state }
}

/// Blocks carved so far (any thread; see the header's fields).
///
/// # Safety
///
/// `zone` is a mapped zone.
#[inline(always)]
unsafe fn carved_count(zone: NonNull<ZoneHeader>) -> u32 {
    // SAFETY: per the contract; a reference to the atomic field only.
    unsafe { (*zone.as_ptr()).carved.load(Ordering::Relaxed) }
}

/// Sets the carved count; the caller holds the class lock.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds.
#[inline(always)]
unsafe fn set_carved(zone: NonNull<ZoneHeader>, carved: u32) {
    // SAFETY: per the contract.
    unsafe { (*zone.as_ptr()).carved.store(carved, Ordering::Relaxed) }
}

/// The link a free block holds in its first word: the next free block's
/// index + 1, or 0 at the end of the list. An index needs no division to
/// check or follow (a pointer would, to prove it a block boundary), and a
/// pointer written over it by mistake (`*(void **)p = p`) is refused as
/// past the carved blocks: no zone has more than
/// [`MAX_ZONE_BLOCKS`](crate::size_class::MAX_ZONE_BLOCKS) blocks, and no
/// block lies in the first page of the address space.
type FreeLink = usize;

/// A block handed out by [`pop`]: its index and address, whether its bytes
/// are known to be zero, whether it was carved just now (never used
/// before), and whether the free-list link it held was corrupt (the list
/// was cut there; the caller reports it).
pub(crate) struct Popped {
    pub(crate) zone: NonNull<ZoneHeader>,
    pub(crate) index: usize,
    pub(crate) ptr: NonNull<u8>,
    pub(crate) zeroed: bool,
    pub(crate) carved: bool,
    pub(crate) link_cut: bool,
}

/// Writes a fresh header at `base`, a run of `run_len` bytes for `class`
/// laid out as `g` (one of the class's geometries).
///
/// # Safety
///
/// `base` must be a run of at least `g.zone_bytes` writable bytes, aligned
/// to a page, owned by the caller.
pub(crate) unsafe fn init(
    base: NonNull<u8>,
    class: SizeClass,
    g: &'static ZoneGeometry,
    run_len: usize,
    zeroed: bool,
) -> NonNull<ZoneHeader> {
    debug_assert_eq!(g.block_size, class.block_size());
    let zone = base.cast::<ZoneHeader>();
    // SAFETY: the run is ours, writable and large enough for header and
    // bitmap (the geometry puts both before block 0).
    unsafe {
        zone.write(ZoneHeader {
            guard: base.as_ptr().addr() ^ GUARD_KEY,
            geometry: g,
            carved: AtomicU32::new(0),
            owner: AtomicU32::new(0),
            check: Boundary::new(base.as_ptr().addr(), g),
            state: ZoneState {
                free: 0,
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
                run_len: run_len as u32,
                capacity: g.capacity as u32,
                live: 0,
                class,
                listed: false,
                fresh_is_zero: zeroed,
                purged_free: 0,
                purge_low: 0,
                purge_patience: 0,
            },
        });
        if !zeroed {
            ptr::write_bytes(
                base.as_ptr().add(g.bitmap_offset),
                0,
                g.sizes_offset - g.bitmap_offset,
            );
        }
    }
    zone
}

/// Whether the header at `zone` is intact.
///
/// # Safety
///
/// `zone` must point to readable memory of at least a header.
#[inline(always)]
pub(crate) unsafe fn guard_ok(zone: NonNull<ZoneHeader>) -> bool {
    // SAFETY: readable per the contract.
    unsafe { (*zone.as_ptr()).guard == zone.as_ptr().addr() ^ GUARD_KEY }
}

/// The zone's precomputed boundary check (any thread; set when the zone is
/// made).
///
/// # Safety
///
/// `zone` is a mapped zone, its guard checked; `'a` does not outlive it.
#[inline(always)]
pub(crate) unsafe fn boundary<'a>(zone: NonNull<ZoneHeader>) -> &'a Boundary {
    // SAFETY: per the contract; a reference to that field only, which
    // nothing writes after `init`.
    unsafe { &(*zone.as_ptr()).check }
}

/// The zone's layout (any thread; set when the zone is made).
///
/// # Safety
///
/// `zone` is a mapped zone.
#[inline(always)]
unsafe fn geometry(zone: NonNull<ZoneHeader>) -> &'static ZoneGeometry {
    // SAFETY: per the contract; a read of that field only.
    unsafe { (*zone.as_ptr()).geometry }
}

#[inline(always)]
fn blocks_start(zone: NonNull<ZoneHeader>, g: &ZoneGeometry) -> *mut u8 {
    // The offset stays inside the zone run: provenance and bounds hold.
    zone.as_ptr().cast::<u8>().wrapping_add(g.blocks_offset)
}

// Every layout puts the bitmap right after the header: `bitmap_word` uses
// the constant (a field less to load on the free path).
const _: () = {
    use crate::size_class::{GEOMETRY, NUM_CLASSES, SCARCE_GEOMETRY};
    let mut i = 0;
    while i < NUM_CLASSES {
        assert!(GEOMETRY[i].bitmap_offset == ZONE_HEADER_SIZE);
        assert!(SCARCE_GEOMETRY[i].bitmap_offset == ZONE_HEADER_SIZE);
        i += 1;
    }
};

/// The bitmap word holding block `index`'s live bit (at
/// [`ZONE_HEADER_SIZE`] in every layout, checked above).
#[inline(always)]
fn bitmap_word(zone: NonNull<ZoneHeader>, _g: &ZoneGeometry, index: usize) -> *mut u64 {
    zone.as_ptr()
        .cast::<u8>()
        .wrapping_add(ZONE_HEADER_SIZE)
        .cast::<u64>()
        .wrapping_add(index / 64)
}

/// Whether block `index` is allocated.
///
/// # Safety
///
/// `zone` is a live zone and `index < capacity`.
#[inline]
pub(crate) unsafe fn is_live(zone: NonNull<ZoneHeader>, index: usize) -> bool {
    // SAFETY: live zone header is readable.
    let g = unsafe { geometry(zone) };
    // SAFETY: per the contract.
    unsafe { bit_is_set(zone, g, index) }
}

/// Reads a live bit without touching the header (callers may hold a
/// mutable reference to it).
///
/// # Safety
///
/// `zone` is a live zone of geometry `g`, `index < capacity`.
#[inline(always)]
unsafe fn bit_is_set(zone: NonNull<ZoneHeader>, g: &ZoneGeometry, index: usize) -> bool {
    // SAFETY: the bitmap covers `capacity` bits inside the zone.
    unsafe { *bitmap_word(zone, g, index) & (1 << (index % 64)) != 0 }
}

/// Takes a block: from the free list if it has one, otherwise the next
/// uncarved block. `None` if the zone is full.
///
/// The block is marked live *before* the link it holds is checked, so the
/// check refuses a link to any block that is handed out, this one included:
/// a free list overwritten after a free (`*(void **)p = p`, a link to a live
/// block or past the carved ones) can never make the zone hand out a block
/// twice. The list is cut at a bad link instead of followed (the
/// blocks after it leak, the heap stays consistent) and `link_cut` says so.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds.
#[inline(always)]
pub(crate) unsafe fn pop(zone: NonNull<ZoneHeader>) -> Option<Popped> {
    // SAFETY: the caller holds the lock, so the header is ours to change.
    let z = unsafe { state_mut(zone) };
    // SAFETY: a live zone.
    let g = unsafe { geometry(zone) };
    let popped = if z.free != 0 {
        // The head was checked when it was linked (by `block_index`) or
        // when it was read as its predecessor's link (by `link_ok`).
        let index = z.free as usize - 1;
        // SAFETY: `index < carved <= capacity`: the bitmap word is inside the zone.
        unsafe { *bitmap_word(zone, g, index) |= 1 << (index % 64) };
        let block = blocks_start(zone, g).wrapping_add(index * g.block_size);
        // SAFETY: `block` is a carved block of this zone, free until now.
        let next = unsafe { block.cast::<FreeLink>().read() };
        // SAFETY: `zone` is live.
        let next_ok = next == 0 || unsafe { link_ok(zone, g, next) };
        z.free = if next_ok { next as u32 } else { 0 };
        Popped {
            zone,
            index,
            // SAFETY: a block inside the zone run, never null.
            ptr: unsafe { NonNull::new_unchecked(block) },
            zeroed: false,
            carved: false,
            link_cut: !next_ok,
        }
    } else if unsafe { carved_count(zone) } < z.capacity {
        let index = unsafe { carved_count(zone) } as usize;
        // SAFETY: lock held.
        unsafe { set_carved(zone, index as u32 + 1) };
        // SAFETY: `index < capacity`: the bitmap word is inside the zone.
        unsafe { *bitmap_word(zone, g, index) |= 1 << (index % 64) };
        let block = blocks_start(zone, g).wrapping_add(index * g.block_size);
        Popped {
            zone,
            index,
            // SAFETY: a block inside the zone run, never null.
            ptr: unsafe { NonNull::new_unchecked(block) },
            zeroed: z.fresh_is_zero,
            carved: true,
            link_cut: false,
        }
    } else {
        return None;
    };
    z.live += 1;
    Some(popped)
}

/// Whether `next` (index + 1, not 0), read from a free block, names a free
/// carved block of `zone` (free: its live bit is clear, which also refuses
/// the block being popped).
///
/// # Safety
///
/// `zone` is a live zone.
#[inline]
unsafe fn link_ok(zone: NonNull<ZoneHeader>, g: &ZoneGeometry, next: FreeLink) -> bool {
    // SAFETY: the bitmap read is guarded by `index < carved <= capacity`.
    next <= unsafe { carved_count(zone) } as usize && !unsafe { bit_is_set(zone, g, next - 1) }
}

/// The index of the block that starts exactly at `ptr`, or why there is none.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds.
#[inline]
pub(crate) unsafe fn block_index(
    zone: NonNull<ZoneHeader>,
    ptr: NonNull<u8>,
) -> Result<usize, HeapError> {
    // Wrapping: a pointer below block 0 is no block boundary, which
    // `exact_index` maps above any count. The header's precomputed check:
    // no load of the layout's address.
    // SAFETY: live zone, lock held.
    let index = unsafe { boundary(zone) }.exact_index(ptr.as_ptr().addr());
    if index >= u64::from(unsafe { carved_count(zone) }) {
        return Err(HeapError::InvalidPointer);
    }
    let index = index as usize;
    // SAFETY: index < carved <= capacity.
    if unsafe { is_live(zone, index) } {
        Ok(index)
    } else {
        Err(HeapError::DoubleFree)
    }
}

/// Returns block `index` (at `ptr`) to the zone.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds, and `index` was
/// validated by [`block_index`] (the block is live and starts at `ptr`).
#[inline]
pub(crate) unsafe fn push(zone: NonNull<ZoneHeader>, index: usize, ptr: NonNull<u8>) {
    // SAFETY: lock held: the header is ours.
    let z = unsafe { state_mut(zone) };
    // SAFETY: a live zone.
    let g = unsafe { geometry(zone) };
    // SAFETY: index < capacity: the bitmap word is inside the zone.
    unsafe { *bitmap_word(zone, g, index) &= !(1 << (index % 64)) };
    // SAFETY: the block is ours again, at least 16 bytes, 16-aligned.
    unsafe {
        ptr.as_ptr().cast::<FreeLink>().write(z.free as FreeLink);
        free_mark::set(ptr);
    }
    z.free = index as u32 + 1;
    z.live -= 1;
}

/// Blocks carved so far, read without the class lock (by a front cache
/// checking a pointer before it keeps it). Carving only grows while the
/// zone has a live block, so a stale value is too small, never too large:
/// the caller then takes the locked path.
///
/// # Safety
///
/// `zone` is a registered zone that holds a live block (so it cannot be
/// released meanwhile); for a pointer that turns out invalid this read can
/// race with the zone's release, see INTERNALS.md ("Front caches").
#[inline(always)]
pub(crate) unsafe fn carved_hint(zone: NonNull<ZoneHeader>) -> usize {
    // SAFETY: per the contract, the header is mapped.
    unsafe { carved_count(zone) as usize }
}

/// Whether every carved block is in use and none is left to carve.
///
/// # Safety
///
/// `zone` is live, its lock held.
#[inline]
pub(crate) unsafe fn is_full(zone: NonNull<ZoneHeader>) -> bool {
    // SAFETY: live zone.
    let z = unsafe { state(zone) };
    z.free == 0 && unsafe { carved_count(zone) } == z.capacity
}

/// Caps the zone at the pages holding the blocks it has carved (and the
/// blocks those pages have room for), so the never-used pages after them
/// can go back to the provider. Returns the zone's new length (a
/// multiple of `page`), or `None` if there is nothing to give back.
///
/// The caller must then shrink the run to the returned length and record
/// it, or undo, both with [`set_run_len`].
///
/// # Safety
///
/// `zone` is live, its lock held.
pub(crate) unsafe fn cap_at_carved(zone: NonNull<ZoneHeader>, page: usize) -> Option<usize> {
    // SAFETY: live zone, lock held.
    let z = unsafe { state_mut(zone) };
    // SAFETY: a live zone.
    let g = unsafe { geometry(zone) };
    // SAFETY: live zone.
    let carved = unsafe { carved_count(zone) };
    let used = (g.blocks_offset + carved as usize * g.block_size).next_multiple_of(page);
    if used >= z.run_len() {
        return None;
    }
    // The last kept page may have room for more blocks than were carved
    // (a scarce 1536-byte zone cut to one page still holds two): keep them.
    z.capacity = ((used - g.blocks_offset) / g.block_size).min(g.capacity) as u32;
    Some(used)
}

/// Records the zone's new length after [`cap_at_carved`], or restores the
/// capacity if the provider could not shrink the run.
///
/// # Safety
///
/// As for [`cap_at_carved`].
pub(crate) unsafe fn set_run_len(zone: NonNull<ZoneHeader>, run_len: Option<usize>) {
    // SAFETY: live zone, lock held.
    let z = unsafe { state_mut(zone) };
    match run_len {
        Some(len) => z.run_len = len as u32,
        // SAFETY: live zone.
        None => z.capacity = unsafe { geometry(zone) }.capacity as u32,
    }
}

/// Forgets every block of an empty zone (they become uncarved again) and
/// returns the page-aligned range of block pages that held data, for the
/// provider to decommit; `None` if that range is empty.
///
/// # Safety
///
/// `zone` is live and empty, its lock held.
pub(crate) unsafe fn reset(zone: NonNull<ZoneHeader>, page: usize) -> Option<(NonNull<u8>, usize)> {
    // SAFETY: live zone, lock held.
    let z = unsafe { state_mut(zone) };
    debug_assert_eq!(z.live, 0);
    // SAFETY: live zone, lock held.
    let (g, carved) = unsafe { (geometry(zone), carved_count(zone)) };
    let base = zone.as_ptr().cast::<u8>();
    let start = (g.blocks_offset).next_multiple_of(page);
    let end = (g.blocks_offset + carved as usize * g.block_size).next_multiple_of(page);
    // SAFETY: lock held. (An empty zone lends no block: no front cache reads
    // its count now.)
    unsafe { set_carved(zone, 0) };
    z.free = 0;
    z.purged_free = 0;
    z.purge_low = 0;
    // Decommitted pages may read back as zero or as they were.
    z.fresh_is_zero = false;
    // The live bitmap is all clear already: the zone is empty.
    (end > start).then(|| {
        (
            NonNull::new(base.wrapping_add(start)).expect("inside the zone"),
            end - start,
        )
    })
}

/// Bytes of blocks carved so far.
///
/// # Safety
///
/// `zone` is live, its lock held.
pub(crate) unsafe fn carved_bytes(zone: NonNull<ZoneHeader>) -> usize {
    // SAFETY: live zone.
    unsafe { carved_count(zone) as usize * geometry(zone).block_size }
}

/// Blocks the zone may hold.
///
/// # Safety
///
/// `zone` is live, its lock held.
pub(crate) unsafe fn capacity(zone: NonNull<ZoneHeader>) -> usize {
    // SAFETY: live zone.
    unsafe { state(zone).capacity as usize }
}

/// Blocks carved so far.
///
/// # Safety
///
/// `zone` is live, its lock held.
pub(crate) unsafe fn carved(zone: NonNull<ZoneHeader>) -> usize {
    // SAFETY: live zone.
    unsafe { carved_count(zone) as usize }
}

/// Address of block `index`.
///
/// # Safety
///
/// `zone` is live, its lock held.
pub(crate) unsafe fn block_addr(zone: NonNull<ZoneHeader>, index: usize) -> usize {
    // SAFETY: live zone.
    let g = unsafe { geometry(zone) };
    zone.as_ptr().addr() + g.blocks_offset + index * g.block_size
}

/// Block `index` of the zone, as a pointer (with the zone's provenance).
///
/// # Safety
///
/// `zone` is a mapped zone.
pub(crate) unsafe fn block_ptr(zone: NonNull<ZoneHeader>, index: usize) -> NonNull<u8> {
    // SAFETY: per the contract.
    let g = unsafe { geometry(zone) };
    let block = zone
        .as_ptr()
        .cast::<u8>()
        .wrapping_add(g.blocks_offset + index * g.block_size);
    // SAFETY: an address inside the zone's run, not null.
    unsafe { NonNull::new_unchecked(block) }
}

/// Calls `f(index)` for every live block, in increasing address order.
///
/// # Safety
///
/// `zone` is live, its lock held.
pub(crate) unsafe fn for_each_live(zone: NonNull<ZoneHeader>, mut f: impl FnMut(usize)) {
    // SAFETY: live zone.
    let (g, carved) = unsafe { (geometry(zone), carved_count(zone) as usize) };
    for w in 0..carved.div_ceil(64) {
        // SAFETY: w < capacity / 64 rounded up: inside the bitmap.
        let mut bits = unsafe { *bitmap_word(zone, g, w * 64) };
        while bits != 0 {
            let index = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(index);
        }
    }
}
