//! Freeing: find the owner in the page map, validate, then return the block.
//!
//! Nothing about a pointer is trusted before the page map vouches for it:
//! an address no zone or LARGE run registered is refused without being
//! read. Inside a zone the offset must land exactly on a carved block whose
//! live bit is set; a LARGE pointer must be its run's user pointer.

use core::ptr::NonNull;

use lock_api::{MutexGuard, RawMutex};

use crate::canary;
use crate::error::HeapError;
use crate::free_mark;
use crate::heap::{ClassState, EMPTY_ZONES_KEPT, Heap, ZONE_RESET_MIN_BYTES, own};
use crate::heap_cache::{FastFree, NO_STACK};
use crate::page_map::Owner;
use crate::provider::PageProvider;
use crate::size_class::SizeClass;
use crate::span;
use crate::zone::{self, ZoneHeader};

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Frees the block at `ptr`.
    ///
    /// A pointer this heap did not hand out (never allocated, interior,
    /// misaligned, foreign) or a block already freed is refused with an
    /// error and changes nothing.
    ///
    /// # Safety
    ///
    /// If `ptr` is a live block of this heap, nothing may use it afterwards.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>) -> Result<(), HeapError> {
        // The heap's own stack first (`heap_cache.rs`), in a path kept
        // small; anything it does not take goes on in calls made last (so
        // this path saves no register of its own).
        let seen = self.page_map.releases();
        if let Some((base, class)) = self.page_map.lookup_zone(ptr.as_ptr().addr()) {
            let ptr = own(base, ptr);
            let zone = base.cast();
            // The lock is kept on every way: one acquisition per free
            // (`IrqSpinLock` saves and restores the interrupt flag once).
            let mut state = self.class(class);
            // SAFETY: the map named this zone of `class`, whose lock is held.
            return match unsafe { self.free_checked_fast(&mut state, zone, class, ptr, seen) } {
                FastFree::Stacked => Ok(()),
                // Checked and claimed; the stack is full or not open.
                FastFree::Claimed(index) => {
                    // SAFETY: as the variant says, under the lock held.
                    unsafe { self.free_claimed(state, zone, class, index, ptr) };
                    Ok(())
                }
                FastFree::Doubt => self.free_small_again(state, class, ptr),
            };
        }
        self.deallocate_slow(ptr)
    }

    /// A block [`free_checked_fast`](Self::free_checked_fast) checked and
    /// claimed, whose class's stack is full or not open: back to its zone,
    /// with no second round of checks. The class's first free opens its
    /// stack (`open_stack`) and the block goes there instead.
    ///
    /// # Safety
    ///
    /// `ptr` is block `index` of `zone`, a live zone of `class` whose lock
    /// is held (`state`), checked and claimed by `free_checked_fast`.
    #[inline(never)]
    unsafe fn free_claimed(
        &self,
        mut state: MutexGuard<'_, R, ClassState>,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        index: usize,
        ptr: NonNull<u8>,
    ) {
        if state.stack_len == NO_STACK {
            // Out of line, so that this path keeps no value across a call
            // but the lock (one saved register, not six).
            // SAFETY: per the contract.
            return unsafe { self.free_claimed_opening(state, zone, class, index, ptr) };
        }
        // SAFETY: per the contract: checked, claimed (the zone's push marks
        // it again), lock held.
        unsafe { self.free_validated(&mut state, zone, index, ptr) };
    }

    /// [`free_claimed`](Self::free_claimed) for a class whose stack is not
    /// open: its first free opens it and stacks the block.
    ///
    /// # Safety
    ///
    /// As for `free_claimed`.
    #[cold]
    #[inline(never)]
    unsafe fn free_claimed_opening(
        &self,
        mut state: MutexGuard<'_, R, ClassState>,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        index: usize,
        ptr: NonNull<u8>,
    ) {
        if self.open_stack(&mut state, class) {
            // SAFETY: per the contract; the stack was just opened, empty.
            unsafe { self.push_claimed_slow(&mut state, zone, class, index, ptr) };
            return;
        }
        // SAFETY: per the contract.
        unsafe { self.free_validated(&mut state, zone, index, ptr) };
    }

    /// What the heap's stack did not take for a doubt its checks found,
    /// under the class lock already held: the whole way, its error counted. The zone is looked up again
    /// (so that the fast path keeps no register for the lookup's results):
    /// under the class lock, a zone of this class that the map names stays
    /// alive. One the map no longer names (released since the first lookup)
    /// makes the pointer invalid, as `validate_small` would find.
    #[inline(never)]
    fn free_small_again(
        &self,
        state: MutexGuard<'_, R, ClassState>,
        class: SizeClass,
        ptr: NonNull<u8>,
    ) -> Result<(), HeapError> {
        let seen = self.page_map.releases();
        let result = match self.page_map.lookup_zone(ptr.as_ptr().addr()) {
            Some((base, found)) if found == class => {
                self.free_small_locked(state, base.cast(), class, ptr, seen)
            }
            _ => Err(HeapError::InvalidPointer),
        };
        result.map_err(|e| self.count_error(e))
    }

    /// [`free_small`](Self::free_small) under the lock already held: what
    /// the heap's stack did not take. Opens the class's stack if it has
    /// none yet (its first free does).
    #[inline(always)]
    pub(crate) fn free_small_locked(
        &self,
        mut state: MutexGuard<'_, R, ClassState>,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
    ) -> Result<(), HeapError> {
        // The class's first free opens its stack, and the block goes there
        // as any later one would.
        if state.stack_len == NO_STACK
            && self.open_stack(&mut state, class)
            // SAFETY: per this function's caller, as for the stack's path.
            && unsafe { self.free_to_heap_cache(&mut state, zone, class, ptr, seen) }
        {
            return Ok(());
        }
        let index = self.validate_small(zone, class, ptr, seen)?;
        // SAFETY: validated live block of a live zone; lock held.
        unsafe {
            let sizes = check_canary(zone, index, ptr)?;
            self.free_checked(&mut state, zone, index, ptr, sizes)
        }
    }

    /// [`deallocate`](Self::deallocate) for what the heap's stack did not
    /// take.
    #[inline(never)]
    fn deallocate_slow(&self, ptr: NonNull<u8>) -> Result<(), HeapError> {
        let (owner, seen, ptr) = self.find_block(ptr);
        let result = match (owner, seen) {
            (Some(Owner::Zone { base, class }), seen) => {
                self.free_small(base.cast(), class, ptr, seen)
            }
            (Some(Owner::Large { base }), _) => self.free_large(base, ptr),
            (Some(Owner::Pool { base }), _) => self.pool_free(base, ptr),
            (Some(Owner::Bare { base }), _) => self.bare_free(base, ptr),
            (None, _) => Err(HeapError::InvalidPointer),
        };
        result.map_err(|e| self.count_error(e))
    }

    #[inline(always)]
    pub(crate) fn free_small(
        &self,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
    ) -> Result<(), HeapError> {
        let mut state = self.class(class);
        let index = self.validate_small(zone, class, ptr, seen)?;
        // SAFETY: validated live block of a live zone; lock held.
        unsafe {
            let sizes = check_canary(zone, index, ptr)?;
            self.free_checked(&mut state, zone, index, ptr, sizes)
        }
    }

    /// Returns a block validated and checked by `check_canary`, which read
    /// its requested size; a span (a size above the block size) is checked
    /// as one first.
    ///
    /// # Safety
    ///
    /// As for [`free_validated`](Self::free_validated).
    #[inline(always)]
    pub(crate) unsafe fn free_checked(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        index: usize,
        ptr: NonNull<u8>,
        (requested, block_size): (usize, usize),
    ) -> Result<(), HeapError> {
        // SAFETY: per the contract.
        unsafe {
            if requested > block_size {
                // Spans are freed under the class lock only: no claim.
                return self.free_span(state, zone, index, ptr, requested);
            }
            // The class lock does not keep a front cache's free of the same
            // block out: the claim decides (`free_mark.rs`).
            if !free_mark::claim(ptr, free_mark::value(ptr)) {
                return Err(HeapError::DoubleFree);
            }
            self.free_validated(state, zone, index, ptr);
        }
        Ok(())
    }

    /// Checks that `ptr` is a live block of `zone`, found by
    /// [`find`](Self::find) (which also returned `seen`) before the lock of
    /// `class` was taken. The caller holds that lock.
    #[inline(always)]
    pub(crate) fn validate_small(
        &self,
        zone: NonNull<ZoneHeader>,
        class: SizeClass,
        ptr: NonNull<u8>,
        seen: usize,
    ) -> Result<usize, HeapError> {
        // Zones of this class are only unregistered (and then released)
        // under its lock, which we hold. If nothing at all was unregistered
        // since the lookup, the zone found then is alive; otherwise look
        // again: if the map still names the zone now, it is alive until we
        // unlock. (If the zone was released and another of this class now
        // stands at the same address, the block is checked against the new
        // one: the checks below are complete, so that is safe.)
        if self.page_map.releases() != seen
            && self.page_map.lookup(ptr.as_ptr().addr())
                != Some(Owner::Zone {
                    base: zone.cast(),
                    class,
                })
        {
            return Err(HeapError::InvalidPointer);
        }
        // SAFETY: a live zone (see above).
        if !unsafe { zone::guard_ok(zone) } {
            return Err(HeapError::Corrupted);
        }
        // SAFETY: live zone, lock held.
        let index = unsafe { zone::block_index(zone, ptr) }?;
        // A block the zone lent out may sit in a front cache: freed already.
        // SAFETY: a carved block of a live zone.
        if unsafe { free_mark::is_set(ptr) } {
            return Err(HeapError::DoubleFree);
        }
        Ok(index)
    }

    /// Returns a validated block and keeps the zone lists right.
    ///
    /// # Safety
    ///
    /// `index`/`ptr` were validated by `validate_small` under the lock
    /// held through `state`.
    #[inline]
    pub(crate) unsafe fn free_validated(
        &self,
        state: &mut ClassState,
        zone: NonNull<ZoneHeader>,
        index: usize,
        ptr: NonNull<u8>,
    ) {
        // SAFETY: per the contract.
        unsafe {
            zone::push(zone, index, ptr);
            self.after_free(state, zone);
        }
    }

    /// Lists a zone that has room again, and handles it if it is empty.
    ///
    /// # Safety
    ///
    /// `zone` is live, of the class locked through `state`, and a block of
    /// it was just pushed back.
    #[inline(always)]
    pub(crate) unsafe fn after_free(&self, state: &mut ClassState, zone: NonNull<ZoneHeader>) {
        // SAFETY: per the contract.
        unsafe {
            if !zone::state(zone).listed {
                state.link_front(zone);
            }
            if zone::state(zone).live == 0 {
                self.zone_emptied(state, zone);
            } else {
                let block_size = zone::state(zone).class.block_size();
                self.note_block_freed(state, zone, block_size);
            }
        }
    }

    /// A zone just lost its last block: keep it for reuse, or give it back
    /// if the class already keeps enough empty zones.
    ///
    /// # Safety
    ///
    /// `zone` is live, empty, of the class locked through `state`.
    #[cold]
    #[inline(never)]
    unsafe fn zone_emptied(&self, state: &mut ClassState, zone: NonNull<ZoneHeader>) {
        if state.empty_zones < EMPTY_ZONES_KEPT {
            state.empty_zones += 1;
            // A kept zone that had many pages in use gives their frames back
            // (if the provider can decommit) and starts carving afresh; a
            // zone that only served a malloc/free loop keeps its few pages.
            // SAFETY: per the contract.
            if unsafe { zone::carved_bytes(zone) } >= ZONE_RESET_MIN_BYTES {
                // SAFETY: per the contract.
                unsafe { self.reset_and_decommit(zone) };
            }
        } else {
            // SAFETY: per the contract.
            unsafe { self.release_zone(state, zone) };
        }
    }

    /// Makes an empty zone carve afresh and gives its block pages' frames
    /// back (if the provider can decommit).
    ///
    /// # Safety
    ///
    /// `zone` is live and empty, and its class lock is held.
    pub(crate) unsafe fn reset_and_decommit(&self, zone: NonNull<ZoneHeader>) {
        // SAFETY: per the contract.
        if let Some((start, len)) = unsafe { zone::reset(zone, self.page_size()) } {
            // SAFETY: block pages of a live zone, holding nothing.
            unsafe { self.provider.decommit(start, len) };
        }
    }

    /// Frees a batch of blocks of one class under one lock acquisition (the
    /// other half of [`refill`](Self::refill)). Invalid pointers are skipped;
    /// the first error is returned after every valid block is freed.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate), for every pointer.
    pub unsafe fn flush(&self, class: SizeClass, blocks: &[*mut u8]) -> Result<(), HeapError> {
        let mut first_error = Ok(());
        let mut state = self.class(class);
        for &block in blocks {
            let Some(ptr) = NonNull::new(block) else {
                continue;
            };
            let (owner, seen, ptr) = self.find_block(ptr);
            let result = match (owner, seen) {
                (Some(Owner::Zone { base, class: c }), seen) if c == class => {
                    self.validate_small(base.cast(), class, ptr, seen)
                        .and_then(|i| {
                            // SAFETY: just validated under the lock.
                            unsafe { check_canary(base.cast(), i, ptr) }.map(|sizes| (i, sizes))
                        })
                        .and_then(|(i, sizes)| {
                            // SAFETY: just validated and checked under the lock.
                            unsafe { self.free_checked(&mut state, base.cast(), i, ptr, sizes) }
                        })
                }
                _ => Err(HeapError::InvalidPointer),
            };
            if let Err(e) = result {
                let e = self.count_error(e);
                if first_error.is_ok() {
                    first_error = Err(e);
                }
            }
        }
        first_error
    }

    /// How many bytes the block at `ptr` may hold: what was asked for a
    /// TINY or SMALL block (the byte after it is the slack canary's, see
    /// `canary.rs`), the whole run after the pointer for a LARGE one.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, HeapError> {
        let (owner, seen, ptr) = self.find_block(ptr);
        match (owner, seen) {
            (Some(Owner::Zone { base, class }), seen) => {
                let _state = self.class(class);
                let index = self.validate_small(base.cast(), class, ptr, seen)?;
                // SAFETY: a validated block of a live zone, lock held.
                let requested = unsafe { zone::requested(base.cast(), index) };
                if requested > class.block_size() {
                    // SAFETY: as above.
                    unsafe { span::check_head(base.cast(), index, requested) }?;
                }
                Ok(requested)
            }
            (Some(Owner::Large { base }), _) => {
                let _state = self.large.lock();
                Ok(self.large_block(base, ptr)?.usable())
            }
            (Some(Owner::Pool { base }), _) => self.pool_usable(base, ptr),
            (Some(Owner::Bare { base }), _) => self.bare_usable(base, ptr),
            (None, _) => Err(HeapError::InvalidPointer),
        }
    }
}

/// Refuses to free (or resize) a block whose slack canary was overwritten;
/// else returns the block's requested size and its zone's block size (read
/// for the check, so a free or resize need not read them again).
///
/// A size above the block size is a span's head or follower, which this
/// check passes unchecked (so the common path has no call in it): the
/// caller hands it to `span::check_span` before it frees or moves it.
///
/// # Safety
///
/// `index`/`ptr` were validated by `validate_small` under the class lock,
/// which is still held.
#[inline(always)]
pub(crate) unsafe fn check_canary(
    zone: NonNull<ZoneHeader>,
    index: usize,
    ptr: NonNull<u8>,
) -> Result<(usize, usize), HeapError> {
    // SAFETY: per the contract: a live block of a live zone (its layout
    // read once), its size slot written when it was handed out and
    // written by no one else meanwhile (the caller frees or resizes it).
    let (requested, block_size, intact) = unsafe {
        let g = zone::layout_of(zone);
        let requested = zone::load_own_size(zone::size_slot_in(zone, g, index), g.size_width);
        (
            requested,
            g.block_size,
            canary::intact(ptr, requested, g.block_size),
        )
    };
    if intact {
        Ok((requested, block_size))
    // A racing free's mark may be what broke it (`free_mark.rs`).
    // SAFETY: a carved block of a live zone.
    } else if unsafe { free_mark::is_set(ptr) } {
        Err(HeapError::DoubleFree)
    } else {
        Err(HeapError::Overflow)
    }
}
