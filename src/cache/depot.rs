//! The heap's side of the front cache: the lock-free check of a block a
//! cache is about to keep, and the batches that move blocks between a bin
//! and the zones under one acquisition of the class lock.

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use lock_api::RawMutex;

use super::Entry;
use crate::error::HeapError;
use crate::free_mark;
use crate::heap::Heap;
use crate::page_map::Owner;
use crate::provider::PageProvider;
use crate::size_class::SizeClass;
use crate::zone::{self, ZoneHeader};

/// What the lock-free check says about a pointer given to a cache.
pub(crate) enum Checked {
    /// A handed-out block of this class: keep it.
    Keep(SizeClass, Entry),
    /// A block that is free already.
    DoubleFree,
    /// Not something the check can vouch for (LARGE, not a block boundary,
    /// beyond the carved blocks as far as the check can see, a bad header):
    /// the locked path decides, and reports.
    Locked,
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Checks, without a lock, that `ptr` is a TINY or SMALL block this heap
    /// handed out (see the front cache's module documentation).
    #[inline(always)]
    pub(crate) fn check_for_cache(&self, ptr: NonNull<u8>) -> Checked {
        let addr = ptr.as_ptr().addr();
        let Some(Owner::Zone { base, class }) = self.page_map.lookup(addr) else {
            return Checked::Locked;
        };
        let zone = base.cast::<ZoneHeader>();
        let g = class.geometry();
        let Some(offset) = addr.checked_sub(base.as_ptr().addr() + g.blocks_offset) else {
            return Checked::Locked;
        };
        let index = zone::div_block(offset, g);
        // SAFETY: the zone is registered; if `ptr` is one of its handed-out
        // blocks the zone cannot be released meanwhile (the module docs say
        // what an invalid pointer risks here).
        let carved = unsafe { zone::carved_hint(zone) };
        // SAFETY: as above.
        if index * g.block_size != offset || index >= carved || !unsafe { zone::guard_ok(zone) } {
            return Checked::Locked;
        }
        // SAFETY: a carved block of a mapped zone.
        if unsafe { free_mark::is_set(ptr) } {
            return Checked::DoubleFree;
        }
        let size_slot = zone::size_slot(zone, class, index);
        Checked::Keep(
            class,
            Entry {
                block: ptr,
                size_slot,
            },
        )
    }

    /// Lends up to `out.len()` blocks of `class` to a front cache, under one
    /// acquisition of the class lock; returns how many. The blocks carry
    /// the free mark: they are free, held by the cache.
    pub(crate) fn refill_bin(&self, class: SizeClass, out: &mut [MaybeUninit<Entry>]) -> usize {
        let g = class.geometry();
        let mut cut_at = None;
        let mut filled = 0;
        {
            let mut state = self.class(class);
            while filled < out.len() {
                let Some(popped) = self.take_block(&mut state, class, g.block_size) else {
                    break;
                };
                if popped.link_cut {
                    cut_at = Some(popped.ptr);
                }
                // The zone starts this far before its block `index`.
                let back = g.blocks_offset + popped.index * g.block_size;
                let zone = popped.ptr.as_ptr().wrapping_sub(back).cast::<ZoneHeader>();
                // SAFETY: the block is the cache's from now on; free, so marked.
                unsafe { free_mark::set(popped.ptr) };
                out[filled] = MaybeUninit::new(Entry {
                    block: popped.ptr,
                    // SAFETY: `zone` is the block's zone: not null.
                    size_slot: zone::size_slot(
                        unsafe { NonNull::new_unchecked(zone) },
                        class,
                        popped.index,
                    ),
                });
                filled += 1;
            }
        }
        if let Some(at) = cut_at {
            self.report_corruption(at);
        }
        filled
    }

    /// Takes back blocks a front cache holds (its bin of `class`), under one
    /// acquisition of the class lock.
    pub(crate) fn take_back(&self, class: SizeClass, entries: &[Entry]) {
        let mut state = self.class(class);
        for entry in entries {
            let ptr = entry.block;
            let owner = self.page_map.lookup(ptr.as_ptr().addr());
            let index = match owner {
                // The zone lent this block out, so it is alive; the block is
                // one of its carved blocks, live (lent) in its bitmap.
                Some(Owner::Zone { base, class: c }) if c == class => {
                    // SAFETY: a live zone of this class, lock held.
                    unsafe { zone::block_index(base.cast(), ptr) }.map(|i| (base.cast(), i))
                }
                _ => Err(HeapError::InvalidPointer),
            };
            match index {
                // SAFETY: a lent block of a live zone, lock held.
                Ok((zone, index)) => unsafe { self.free_validated(&mut state, zone, index, ptr) },
                // A cache only holds blocks it checked: this is corruption
                // of the cache itself. Leak the block rather than guess.
                Err(_) => {
                    drop(state);
                    self.report_corruption(ptr);
                    state = self.class(class);
                }
            }
        }
    }
}
