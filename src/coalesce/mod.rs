//! The small-region pool: SMALL requests of a heap whose span is too small
//! for full SMALL zones ([`POOL_SPAN_MAX`]) are served from page runs
//! ("segments") cut into blocks of any size, with boundary tags, so that
//! freed neighbours join and a free block of any size serves any request
//! it fits (INTERNALS.md, "Small regions: the pool").
//!
//! A zone serves one size class: in 100 KiB the blocks one class frees
//! cannot serve another, and a mixed load stops at 65-70% of the region.
//! The pool stops where talc and linked_list_allocator do (90% and more);
//! TINY requests keep their zones (a 16-byte block costs 16 bytes there,
//! 32 here). A heap with room keeps the zone model for every class.
//!
//! - `block.rs`: the header before each block, the footer of a free one;
//! - `segment.rs`: a segment's header and its bitmap of live blocks, which
//!   alone decides whether a pointer is a live block;
//! - `bins.rs`: the free lists;
//! - `bare.rs`: whole pages at page alignment, in runs of their own that
//!   only the page map records (a page-aligned page costs one page);
//! - `visit.rs`: what `Heap::visit` reports of a segment.
//!
//! # Protocol
//!
//! Everything here happens under the pool lock (`Heap::pool`), a leaf
//! taken with no class or LARGE lock held: segments and bare runs are
//! registered, unregistered and released under it, so a pointer looked up
//! in the page map is checked again once it is held. Only `trim` and
//! `visit` take it along with other locks (`lock_all`'s order).

mod bare;
mod bins;
mod block;
mod segment;
#[cfg(test)]
mod tests;
mod visit;

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::canary;
use crate::error::{HeapError, ReallocError};
use crate::free_mark;
use crate::heap::Heap;
use crate::page_map::Owner;
use crate::provider::PageProvider;
use crate::size_class::{Kind, SizeClass, ZONE_SPAN_SHARE};
use bins::Bins;
use block::{GRAIN, HEADER, MIN_BLOCK, NONE};

/// A provider span shorter than this sends SMALL requests to the pool: it
/// is the span below which the smallest SMALL class would get no full zone
/// (`SizeClass::prefers_full_zone`), so every SMALL class would carve
/// scarce zones of a few pages each (2 MiB).
pub(crate) const POOL_SPAN_MAX: usize = ZONE_SPAN_SHARE * first_small_zone_bytes();

const fn first_small_zone_bytes() -> usize {
    match SizeClass::for_size(crate::size_class::TINY_MAX + 1) {
        Some(class) => class.geometry().zone_bytes,
        None => unreachable!(),
    }
}

/// A new segment is at least this share of the span (or what the request
/// needs, if more): few segments, so few boundaries that no block crosses.
const SEGMENT_SPAN_DIVISOR: usize = 2;

/// The pool's state, under the pool lock.
pub(crate) struct PoolState {
    bins: Bins,
    /// The provider span's start: free-list links are offsets from it.
    origin: usize,
    /// An empty segment kept for reuse (at most one), or null.
    kept_empty: *mut u8,
    /// Segments and bare runs mapped.
    pub(crate) segments: u32,
}

// SAFETY: the pointers are only followed under the pool lock.
unsafe impl Send for PoolState {}

impl PoolState {
    pub(crate) const fn new() -> Self {
        PoolState {
            bins: Bins::new(),
            origin: 0,
            kept_empty: ptr::null_mut(),
            segments: 0,
        }
    }
}

/// Bytes of the block serving `size` bytes.
fn block_bytes(size: usize) -> usize {
    HEADER + size.max(1).next_multiple_of(GRAIN)
}

/// Where a block of `need` bytes at alignment `align` goes in the free
/// block `[h, h + size)`: the gap before its header (0, or a free block of
/// its own), if it fits.
fn placement(h: usize, size: usize, need: usize, align: usize) -> Option<usize> {
    let mut gap = (h + HEADER).next_multiple_of(align) - HEADER - h;
    if gap != 0 && gap < MIN_BLOCK {
        gap += align.max(MIN_BLOCK).next_multiple_of(align);
    }
    (gap + need <= size).then_some(gap)
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Whether this heap has a pool: its provider's span is shorter than
    /// [`POOL_SPAN_MAX`].
    #[inline]
    fn has_pool(&self) -> bool {
        self.span_bytes().is_some_and(|s| s < POOL_SPAN_MAX)
    }

    /// Whether the pool serves every request of `class` in this heap:
    /// SMALL classes, in a heap with a pool.
    #[inline]
    pub(crate) fn pool_serves(&self, class: SizeClass) -> bool {
        class.kind() == Kind::Small && self.has_pool()
    }

    /// The pool's answer for a request of `class` that found no zone block
    /// (`alloc_small_slow`), or `None` if the zones are to serve it: every
    /// SMALL request of a heap with a pool, and a TINY one once the pool
    /// has a segment (rather than a page for a TINY zone that would mostly
    /// stay empty). A heap of TINY blocks alone keeps them in zones, where
    /// a 16-byte block costs 16 bytes (32 in the pool).
    pub(crate) fn pool_route(
        &self,
        class: SizeClass,
        layout: Layout,
        zeroed: bool,
    ) -> Option<Option<NonNull<u8>>> {
        if !self.has_pool() {
            return None;
        }
        if class.kind() == Kind::Small {
            return Some(self.pool_alloc(layout, zeroed, true));
        }
        if self.pool.lock().segments == 0 {
            return None;
        }
        self.pool_alloc(layout, zeroed, true).map(Some)
    }

    /// The header pointer of the free block at `addr` (a link turned back
    /// into an address): the page map holds its segment's pointer. A link
    /// that is not an intact free block's means a free block's header was
    /// overwritten (by an overflow past the canary): the heap stops rather
    /// than hand out a live block twice, as glibc does on a corrupt list.
    fn pool_at(&self, addr: usize) -> *mut u8 {
        if let Some(Owner::Pool { base }) = self.page_map.lookup(addr)
            && addr.is_multiple_of(GRAIN)
            // SAFETY: a registered segment, under the pool lock (every
            // caller holds it); `addr` is 16-aligned inside it.
            && let Some(len) = unsafe { segment::len(base) }
            && addr >= base.as_ptr().addr() + segment::blocks_offset(len)
        {
            let h = base.as_ptr().with_addr(addr);
            // SAFETY: as above.
            if unsafe { block::intact(h, base.as_ptr().addr() + len) }
                .is_some_and(|hd| !hd.is_live())
            {
                return h;
            }
        }
        panic!(
            "ft_malloc: the pool's free list is corrupted (a free block's header was overwritten)"
        );
    }

    /// A block for `layout` from the pool (a new segment if no free block
    /// fits and `may_map`); `None` when the provider has no room.
    fn pool_alloc(&self, layout: Layout, zeroed: bool, may_map: bool) -> Option<NonNull<u8>> {
        let page = self.page_size();
        if layout.align() >= page && layout.size().is_multiple_of(page) && layout.size() != 0 {
            return self.bare_alloc(layout, zeroed);
        }
        let user = self.pool_take(layout, may_map).or_else(|| {
            // Empty zones and cached runs hold pages a segment could use.
            (may_map && self.trim() > 0)
                .then(|| self.pool_take(layout, may_map))
                .flatten()
        })?;
        if zeroed {
            // SAFETY: a block of at least `layout.size()` bytes, ours.
            unsafe { ptr::write_bytes(user.as_ptr(), 0, layout.size()) };
        }
        Some(user)
    }

    fn pool_take(&self, layout: Layout, may_map: bool) -> Option<NonNull<u8>> {
        let need = block_bytes(layout.size());
        let align = layout.align().max(GRAIN);
        let mut pool = self.pool.lock();
        let mut found = self.pool_find(&pool, need, align);
        if found.is_none() && may_map {
            drop(pool);
            self.new_segment(need, align)?;
            pool = self.pool.lock();
            found = self.pool_find(&pool, need, align);
        }
        let (off, h) = found?;
        // SAFETY: a listed free block of a live segment that fits, lock held.
        Some(unsafe { self.carve(&mut pool, off, h, need, align, layout.size()) })
    }

    /// The first listed free block that holds `need` bytes at `align`.
    fn pool_find(&self, pool: &PoolState, need: usize, align: usize) -> Option<(u32, *mut u8)> {
        let origin = pool.origin;
        // SAFETY: the caller holds the lock (`pool`); listed blocks are free
        // blocks of live segments.
        unsafe {
            pool.bins.find(
                need,
                |off| self.pool_at(origin + off as usize),
                |h| placement(h.addr(), block::read(h).size as usize, need, align).is_some(),
            )
        }
    }

    /// Cuts a live block for `requested` bytes out of the free block `h`.
    ///
    /// # Safety
    ///
    /// `h` (offset `off`) is a listed free block in which the block fits
    /// ([`placement`]); the pool lock is held through `pool`.
    unsafe fn carve(
        &self,
        pool: &mut PoolState,
        off: u32,
        h: *mut u8,
        need: usize,
        align: usize,
        requested: usize,
    ) -> NonNull<u8> {
        let origin = pool.origin;
        let at = |off: u32| self.pool_at(origin + off as usize);
        let Some(Owner::Pool { base }) = self.page_map.lookup(h.addr()) else {
            unreachable!("a listed block is in a segment");
        };
        // SAFETY: per the contract; the segment is live (its block is listed).
        unsafe {
            let end = base.as_ptr().addr() + segment::len(base).unwrap_or(0);
            let size = block::read(h).size as usize;
            let gap = placement(h.addr(), size, need, align).unwrap_or(0);
            pool.bins.remove(h, off, at);
            if pool.kept_empty == base.as_ptr() {
                pool.kept_empty = ptr::null_mut();
            }
            if gap != 0 {
                block::write_free(h, gap, false, NONE, NONE);
                pool.bins.insert(h, off, at);
            }
            let live = h.add(gap);
            let rest = size - gap - need;
            let live_size = if rest >= MIN_BLOCK {
                let r = live.add(need);
                // The block after `r` already knows its neighbour is free.
                block::write_free(r, rest, false, NONE, NONE);
                pool.bins.insert(r, (r.addr() - origin) as u32, at);
                need
            } else {
                let next = live.add(size - gap);
                if next.addr() < end {
                    block::set_prev_free(next, false);
                }
                size - gap
            };
            block::write_live(live, live_size, gap != 0, requested);
            let user = NonNull::new_unchecked(live.add(HEADER));
            segment::set_live(base, user.as_ptr().addr(), true);
            // No free mark from the pages' past reaches the program; the
            // canary goes after it (it may lie in the mark's word).
            free_mark::clear(user);
            canary::arm(user, requested, live_size - HEADER);
            user
        }
    }

    /// Maps a segment that holds a block of `need` bytes at `align`: a
    /// [`SEGMENT_SPAN_DIVISOR`]th of the span if the provider has it, else
    /// halves down to the least that fits. Lists its one free block.
    fn new_segment(&self, need: usize, align: usize) -> Option<()> {
        let page = self.page_size();
        let fits = |len: usize| {
            let first = segment::blocks_offset(len);
            first < len && placement(first, len - first, need, align).is_some()
        };
        let mut least = (need + HEADER).next_multiple_of(page);
        while !fits(least) {
            least += page;
        }
        let (span_start, span_end) = self.provider.span()?;
        let mut len = ((span_end - span_start) / SEGMENT_SPAN_DIVISOR)
            .next_multiple_of(page)
            .max(least);
        let mut pool = self.pool.lock();
        // The first segment fixes the origin of the links (0: none yet).
        if pool.origin == 0 {
            pool.origin = span_start;
        }
        let origin = pool.origin;
        let base = loop {
            if let Some(base) = self.map_run(len, page, 0, len, |base| Owner::Pool { base }) {
                // Links are 32-bit offsets from the origin: a provider whose
                // span moved (it breaks its contract) gets no segment there.
                let start = base.as_ptr().addr();
                if start < origin || start + len - origin > NONE as usize {
                    // SAFETY: just mapped and registered, nothing in it.
                    unsafe { self.unmap_run(base, len, 0, len, Owner::Pool { base }) };
                    return None;
                }
                break base;
            }
            if len == least {
                return None;
            }
            len = (len / 2).next_multiple_of(page).max(least);
        };
        pool.segments += 1;
        // SAFETY: a fresh run of `len` bytes (under `POOL_SPAN_MAX`, so it
        // fits a `u32`), registered, ours; the lock is held.
        unsafe {
            let h = segment::init(base, len);
            let size = base.as_ptr().addr() + len - h.addr();
            block::write_free(h, size, false, NONE, NONE);
            pool.bins.insert(h, (h.addr() - origin) as u32, |off| {
                self.pool_at(origin + off as usize)
            });
        }
        Some(())
    }

    /// Checks that `ptr` is a live block of the segment at `base` (found in
    /// the page map before the lock was taken): returns the segment's end
    /// and the block's header. The pool lock is held.
    fn pool_validate(
        &self,
        base: NonNull<u8>,
        ptr: NonNull<u8>,
    ) -> Result<(usize, *mut u8, block::Header), HeapError> {
        let addr = ptr.as_ptr().addr();
        // Segments are released only under the pool lock: what the map says
        // now holds until we unlock.
        if self.page_map.lookup(addr) != Some(Owner::Pool { base }) {
            return Err(HeapError::InvalidPointer);
        }
        // SAFETY: a live segment, lock held.
        let len = unsafe { segment::len(base) }.ok_or(HeapError::Corrupted)?;
        let start = base.as_ptr().addr();
        let first_user = start + segment::blocks_offset(len) + HEADER;
        if !addr.is_multiple_of(GRAIN) || addr < first_user {
            return Err(HeapError::InvalidPointer);
        }
        let h = ptr.as_ptr().wrapping_sub(HEADER);
        // SAFETY: `addr` is 16-aligned and inside the segment (the map says
        // so); the header before it is inside too.
        unsafe {
            if !segment::is_live(base, addr) {
                // A free block's intact header there: it was freed already.
                return match block::intact(h, start + len) {
                    Some(hd) if !hd.is_live() => Err(HeapError::DoubleFree),
                    _ => Err(HeapError::InvalidPointer),
                };
            }
            let hd = block::intact(h, start + len).ok_or(HeapError::Corrupted)?;
            if !hd.is_live() {
                return Err(HeapError::Corrupted);
            }
            Ok((start + len, h, hd))
        }
    }

    /// Frees the pool block at `ptr` of the segment at `base`.
    pub(crate) fn pool_free(&self, base: NonNull<u8>, ptr: NonNull<u8>) -> Result<(), HeapError> {
        let mut pool = self.pool.lock();
        let (end, h, hd) = self.pool_validate(base, ptr)?;
        let size = hd.size as usize;
        // SAFETY: a validated live block, lock held.
        if !unsafe { canary::intact(ptr, hd.requested(), size - HEADER) } {
            return Err(HeapError::Overflow);
        }
        let origin = pool.origin;
        let at = |off: u32| self.pool_at(origin + off as usize);
        let first = base.as_ptr().addr() + segment::blocks_offset(end - base.as_ptr().addr());
        // Check both neighbours before anything changes.
        // SAFETY: headers and footers inside the live segment, lock held.
        let (next, prev) = unsafe {
            let next_h = h.add(size);
            let next = if next_h.addr() < end {
                let n = block::intact(next_h, end).ok_or(HeapError::Corrupted)?;
                (!n.is_live()).then_some((next_h, n.size as usize))
            } else {
                None
            };
            let prev = if hd.prev_free() {
                let psize = block::footer_before(h);
                let p = h.wrapping_sub(psize);
                match (p.addr() >= first).then(|| block::intact(p, end)).flatten() {
                    Some(ph) if !ph.is_live() && ph.size as usize == psize => Some((p, psize)),
                    _ => return Err(HeapError::Corrupted),
                }
            } else {
                None
            };
            (next, prev)
        };
        // SAFETY: validated above, lock held.
        unsafe {
            segment::set_live(base, ptr.as_ptr().addr(), false);
            let (mut start, mut total) = (h, size);
            if let Some((n, nsize)) = next {
                pool.bins.remove(n, (n.addr() - origin) as u32, at);
                total += nsize;
            }
            if let Some((p, psize)) = prev {
                pool.bins.remove(p, (p.addr() - origin) as u32, at);
                start = p;
                total += psize;
            }
            block::write_free(start, total, false, NONE, NONE);
            let after = start.add(total);
            if after.addr() < end {
                block::set_prev_free(after, true);
            }
            pool.bins.insert(start, (start.addr() - origin) as u32, at);
            if start.addr() == first && after.addr() == end {
                self.segment_emptied(&mut pool, base, start);
            }
        }
        Ok(())
    }

    /// A segment lost its last block: keep it if none is kept, else give it
    /// back.
    ///
    /// # Safety
    ///
    /// `base` is a live empty segment whose one free block `h` is listed;
    /// the pool lock is held.
    unsafe fn segment_emptied(&self, pool: &mut PoolState, base: NonNull<u8>, h: *mut u8) {
        if pool.kept_empty.is_null() {
            pool.kept_empty = base.as_ptr();
        } else if pool.kept_empty != base.as_ptr() {
            // SAFETY: per the contract.
            unsafe { self.release_segment(pool, base, Some(h)) };
        }
    }

    /// Unlists (if `h` is its listed free block), unregisters and unmaps a
    /// segment.
    ///
    /// # Safety
    ///
    /// `base` is a live segment nothing will use again; the pool lock is
    /// held.
    unsafe fn release_segment(&self, pool: &mut PoolState, base: NonNull<u8>, h: Option<*mut u8>) {
        let origin = pool.origin;
        // SAFETY: per the contract.
        unsafe {
            if let Some(h) = h {
                pool.bins.remove(h, (h.addr() - origin) as u32, |off| {
                    self.pool_at(origin + off as usize)
                });
            }
            let len = segment::len(base).unwrap_or(0);
            self.unmap_run(base, len, 0, len, Owner::Pool { base });
        }
        pool.segments -= 1;
        if pool.kept_empty == base.as_ptr() {
            pool.kept_empty = ptr::null_mut();
        }
    }

    /// Gives the kept empty segment back; returns its bytes.
    pub(crate) fn trim_pool(&self) -> usize {
        let mut pool = self.pool.lock();
        let Some(base) = NonNull::new(pool.kept_empty) else {
            return 0;
        };
        // SAFETY: the kept segment is live and empty, lock held: its one
        // free block is listed right after its bitmap.
        unsafe {
            let len = segment::len(base).unwrap_or(0);
            let h = base.as_ptr().add(segment::blocks_offset(len));
            self.release_segment(&mut pool, base, Some(h));
            len
        }
    }

    /// Releases a segment or bare run met in `Drop`'s walk.
    ///
    /// # Safety
    ///
    /// The heap is being dropped; `owner` is a registered pool owner.
    pub(crate) unsafe fn release_pool_owner(&self, owner: Owner) {
        let mut pool = self.pool.lock();
        match owner {
            // SAFETY: per the contract (free lists die with the heap).
            Owner::Pool { base } => unsafe { self.release_segment(&mut pool, base, None) },
            // SAFETY: per the contract.
            Owner::Bare { base } => unsafe { self.release_bare(&mut pool, base) },
            _ => {}
        }
    }

    /// The requested size of the pool block at `ptr`.
    pub(crate) fn pool_usable(
        &self,
        base: NonNull<u8>,
        ptr: NonNull<u8>,
    ) -> Result<usize, HeapError> {
        let _pool = self.pool.lock();
        Ok(self.pool_validate(base, ptr)?.2.requested())
    }

    /// Reallocates a pool block: in place if the new size fits its block
    /// and would not leave more than half of it idle, else by copy.
    pub(crate) fn pool_realloc(
        &self,
        base: NonNull<u8>,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, ReallocError> {
        let new_size = new_layout.size();
        let old_size = {
            let _pool = self.pool.lock();
            let (_, h, hd) = self
                .pool_validate(base, ptr)
                .map_err(ReallocError::Invalid)?;
            let payload = hd.size as usize - HEADER;
            // SAFETY: a validated live block, lock held.
            if !unsafe { canary::intact(ptr, hd.requested(), payload) } {
                return Err(ReallocError::Invalid(HeapError::Overflow));
            }
            // Any TINY or SMALL request may stay: the pool serves both.
            let not_large = SizeClass::for_layout(new_size, new_layout.align()).is_some();
            if not_large
                && ptr.as_ptr().addr().is_multiple_of(new_layout.align())
                && new_size <= payload
                && block_bytes(new_size) * 2 >= hd.size as usize
            {
                // SAFETY: as above; the new size fits the block.
                unsafe {
                    block::write_live(h, hd.size as usize, hd.prev_free(), new_size);
                    canary::arm(ptr, new_size, payload);
                }
                return Ok(ptr);
            }
            hd.requested()
        };
        let new = self.allocate(new_layout).ok_or(ReallocError::OutOfMemory)?;
        // SAFETY: both blocks are live, distinct, and hold the copied length;
        // the old one was validated (a failure to free it now means the
        // caller freed it concurrently: their bug, the new block is theirs).
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size));
            let _ = self.deallocate(ptr);
        }
        Ok(new)
    }
}
