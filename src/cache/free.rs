//! A front cache's free: the lock-free check of the pointer, the claim of
//! its free mark, and the push onto the class's loaded magazine (the slow
//! side, a full magazine, exchanges with the depot). The rules (what the
//! check reads without a lock, why the zone cannot go) are in `mod.rs`.

use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use super::depot::{Checked, slot_width};
use super::{Entry, FrontCache};
use crate::error::HeapError;
use crate::free_mark;
use crate::heap::Heap;
use crate::page_map::{MappedFlat, PageMap};
use crate::provider::PageProvider;
use crate::size_class::SizeClass;
use crate::zone;

impl FrontCache {
    /// Frees like [`Heap::deallocate`]: a valid TINY or SMALL block goes
    /// into this cache without a lock. A double free is refused without a
    /// lock, even when another owner's cache (or a depot) holds the block,
    /// or another thread frees it at the same instant (`free_mark.rs`);
    /// anything else the lock-free check cannot vouch for goes through the
    /// heap, which refuses what it did not hand out.
    ///
    /// # Safety
    ///
    /// If `ptr` is a live block of `heap`, nothing may use it afterwards.
    #[inline(always)]
    pub unsafe fn deallocate<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
    ) -> Result<(), HeapError> {
        // SAFETY: per the contract.
        unsafe {
            match self.try_deallocate(heap, ptr) {
                Some(result) => result,
                None => heap.deallocate(ptr),
            }
        }
    }

    /// The lock-free part of [`deallocate`](Self::deallocate): the block
    /// kept in this cache (`Some(Ok)`), a double free or an overflow
    /// refused and counted (`Some(Err)`), or `None` when the lock-free
    /// check cannot vouch for the pointer (LARGE, a span, anything
    /// invalid): the caller then frees it with [`Heap::deallocate`], which
    /// decides and reports. Nothing was changed in that case. Its only
    /// call is the rare exchange of a full magazine, after which it
    /// returns: a caller can tail-call its slow paths.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate).
    #[inline(always)]
    pub unsafe fn try_deallocate<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: NonNull<u8>,
    ) -> Option<Result<(), HeapError>> {
        // SAFETY: per the contract; a reference is a valid pointer.
        unsafe { Self::keep_checked_in::<P, R, 0>(self, heap, heap.check_for_cache::<false>(ptr)) }
    }

    /// [`try_deallocate`](Self::try_deallocate) for a pointer that may be
    /// null (C's `free`), in its shortest form: it vouches only for blocks
    /// in the provider's mapped flat array (`libft_malloc.so`'s window; any
    /// heap whose span is larger than the page map's inline array), and
    /// declines (`None`) anything else, null included, with no test of its
    /// own for it: the caller then goes to [`deallocate`](Self::deallocate),
    /// whose lock-free check looks everywhere. Nothing was changed when it
    /// declines.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate).
    #[inline(always)]
    pub unsafe fn try_deallocate_raw<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        ptr: *mut u8,
    ) -> Option<Result<(), HeapError>> {
        // SAFETY: per the contract; a reference is a valid pointer.
        unsafe { Self::try_deallocate_raw_in(self, heap, ptr) }
    }

    /// [`try_deallocate_raw`](Self::try_deallocate_raw) through a raw
    /// pointer, which may be to an [`inert`](Self::inert) cache: that one
    /// declines every pointer (`None`), after its claim, so the free's mark
    /// word is then cleared: the caller frees the block through its full
    /// path, which claims it again (a racing double free meanwhile is
    /// refused by either claim).
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate); `this` is a valid cache:
    /// the caller's own, or an inert one.
    #[inline(always)]
    pub unsafe fn try_deallocate_raw_in<P: PageProvider, R: RawMutex>(
        this: *mut Self,
        heap: &Heap<P, R>,
        ptr: *mut u8,
    ) -> Option<Result<(), HeapError>> {
        // SAFETY: per the contract.
        unsafe { Self::keep_checked_in::<P, R, 0>(this, heap, heap.check_mapped_for_cache(ptr)?) }
    }

    /// [`try_deallocate_raw_in`](Self::try_deallocate_raw_in) with the
    /// heap's flat page map given: `flat` is what
    /// [`Heap::mapped_flat`] returned, or
    /// [`NO_MAPPED_FLAT`](crate::cache::NO_MAPPED_FLAT), which declines
    /// every pointer. A caller that keeps it in a word of its own can make
    /// that word its gate too (`libft_malloc.so` holds the sentinel there
    /// while its settings ask more of `free`): one load for both. `key`
    /// is [`current_key`](crate::current_key), which such a caller keeps
    /// in a word of its own too (one load, where this crate's own static
    /// is two in a shared library: its address from the GOT first).
    ///
    /// # Safety
    ///
    /// As for [`try_deallocate_raw_in`](Self::try_deallocate_raw_in);
    /// `flat` is `heap.mapped_flat()` (read at any time) or the sentinel;
    /// unless `flat` is the sentinel, `key` is
    /// [`current_key`](crate::current_key) (a wrong key would refuse
    /// valid frees as overflows, or miss double frees).
    #[inline(always)]
    pub unsafe fn try_deallocate_flat_in<P: PageProvider, R: RawMutex>(
        this: *mut Self,
        heap: &Heap<P, R>,
        flat: *const MappedFlat,
        key: usize,
        ptr: *mut u8,
    ) -> Option<Result<(), HeapError>> {
        debug_assert!(
            ptr::eq(flat, &crate::page_map::NO_MAPPED_FLAT) || key == free_mark::key(),
            "a stale key"
        );
        // SAFETY: per the contract.
        let slot = unsafe { PageMap::mapped_slot_in(flat, ptr.addr()) }?;
        let (base, class) = PageMap::zone_of(slot)?;
        // The slot's width, tested once: each width has its own copy of
        // the check and the keep (no second test for the "cached" store).
        // SAFETY: per the contract.
        unsafe {
            if class.size_width() == 1 {
                Self::keep_checked_in::<P, R, 1>(
                    this,
                    heap,
                    heap.check_in_zone::<false, 1>(ptr, base, class, key),
                )
            } else {
                Self::keep_checked_in::<P, R, 2>(
                    this,
                    heap,
                    heap.check_in_zone::<false, 2>(ptr, base, class, key),
                )
            }
        }
    }

    /// The free once the lock-free check has spoken: claim and keep a
    /// checked block, count a refusal, or decline.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate); `checked` is this call's
    /// check of the pointer, with the `false` mark-first setting; `this`
    /// as for [`try_deallocate_raw_in`](Self::try_deallocate_raw_in);
    /// `WIDTH` as for the check (`Heap::check_in_zone`).
    #[inline(always)]
    unsafe fn keep_checked_in<P: PageProvider, R: RawMutex, const WIDTH: usize>(
        this: *mut Self,
        heap: &Heap<P, R>,
        checked: Checked,
    ) -> Option<Result<(), HeapError>> {
        match checked {
            Checked::Keep(class, entry, mark, _) => {
                // SAFETY: a checked block of a zone that lends it (so the
                // zone stays); its mark. Of two frees racing for it, one
                // takes it (`free_mark.rs`). Through the heap's pointer to
                // the block (`heap::own`), not the caller's.
                let replaced = unsafe { free_mark::claim_over(entry.block, mark) };
                if replaced == mark {
                    return Some(Err(heap.count_error(HeapError::DoubleFree)));
                }
                // SAFETY: per the contract.
                if !unsafe { Self::push_in(this, class, entry) } {
                    // SAFETY: per the contract; read by place, no borrow.
                    if unsafe { (*this).inert } {
                        // SAFETY: the block this call claimed, still held.
                        unsafe { free_mark::unclaim(entry.block, replaced) };
                        return None;
                    }
                    // SAFETY: the slot of the block this free just took;
                    // from now on introspection counts it cached
                    // (`zone/sizes.rs`).
                    unsafe { zone::store_cached(entry.size_slot, slot_width::<WIDTH>(class)) };
                    // SAFETY: not inert: the caller's own cache.
                    unsafe { (*this).push_slow(heap, class, entry, replaced) };
                    return Some(Ok(()));
                }
                // SAFETY: as above; the block is in this cache's magazine,
                // which only this cache pops.
                unsafe { zone::store_cached(entry.size_slot, slot_width::<WIDTH>(class)) };
                Some(Ok(()))
            }
            Checked::Locked => None,
            Checked::DoubleFree => Some(Err(heap.count_error(HeapError::DoubleFree))),
            Checked::Overflow => Some(Err(heap.count_error(HeapError::Overflow))),
        }
    }

    /// The loaded magazine is full (or missing): swap in the previous one if
    /// it is empty, or else hand the previous (full) one to the depot for an
    /// empty one; then keep `entry`, whose claim replaced `replaced` (put
    /// back if the block must go to its zone instead).
    #[cold]
    #[inline(never)]
    pub(super) fn push_slow<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        class: SizeClass,
        entry: Entry,
        replaced: usize,
    ) {
        debug_assert!(!self.inert, "an inert cache used as one");
        let i = class.index();
        self.tick(heap, i);
        let loaded = self.unload(i);
        // SAFETY: non-null magazines are the cache's, valid.
        let previous = unsafe { self.previous[i].as_ref() };
        if previous.is_some_and(|m| m.len == 0) {
            let previous = core::mem::replace(&mut self.previous[i], loaded);
            self.load(i, previous);
        } else {
            self.decay.hold(i);
            // The previous (full) one goes to the depot; an empty one comes
            // from the spares, or the pool (or is the full one, drained
            // into the zones when the depot holds all it may). With no
            // memory for a new one, a full one comes back out of the depot,
            // drained: the cache keeps a magazine to work with.
            let drained =
                NonNull::new(self.previous[i]).and_then(|full| heap.deposit_full(class, full));
            let empty = drained
                .or_else(|| self.take_spare())
                .or_else(|| heap.empty_magazine())
                .or_else(|| heap.drained_from_depot(class));
            self.previous[i] = loaded;
            self.load(i, empty.map_or(ptr::null_mut(), NonNull::as_ptr));
        }
        if !self.push(class, entry) {
            // No magazine could be had (no memory): the block goes back to
            // its zone. It was checked and claimed: the locked path claims
            // it again, so undo the claim first, restoring the word it
            // replaced (a cleared word would break the slack canary of a
            // request under 16 bytes: `free_mark::unclaim`). (A double free
            // racing in between is refused by either claim.)
            // SAFETY: the block is the caller's freed block. Its slot says
            // cached: the locked path reads a full block (no canary: the
            // check that kept it passed it).
            unsafe {
                zone::store_size(entry.size_slot, class.size_width(), class.block_size());
                free_mark::unclaim(entry.block, replaced);
            }
            // SAFETY: as for `deallocate`.
            let _ = unsafe { heap.deallocate(entry.block) };
        }
    }
}
