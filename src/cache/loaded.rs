//! A front cache's loaded magazines and its spares: the per-class state
//! that `malloc` and `free` touch on their fast paths.
//!
//! The loaded magazine of a class is three pointers into its entries
//! (`top`, `base`, `end`), so a pop compares `top` with `base` and a push
//! `top` with `end`, with no length or capacity to load and scale. Without
//! a loaded magazine the three are null: empty and full at once, so both
//! go to the slow path. The magazine's `len` is stale while it is loaded,
//! written back when it is unloaded. The spares are empty magazines kept
//! for the next exchanges with the depots (`bins::SPARES_MAX`).

use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use super::bins::{self, BOUNDS};
use super::{Entry, FrontCache, Magazine};
use crate::heap::Heap;
use crate::provider::PageProvider;
use crate::size_class::SizeClass;

impl FrontCache {
    /// Blocks the two magazines of class `i` hold.
    pub(super) fn held_blocks(&self, i: usize) -> usize {
        // SAFETY: a non-null previous magazine is the cache's, valid.
        self.loaded_len(i) + unsafe { self.previous[i].as_ref() }.map_or(0, |m| m.len)
    }

    /// Blocks the loaded magazine of class `i` holds (0 without one).
    #[inline(always)]
    pub(super) fn loaded_len(&self, i: usize) -> usize {
        (self.top[i].addr() - self.base[i].addr()) / core::mem::size_of::<Entry>()
    }

    /// Takes the loaded magazine of class `i` out (null if none), its
    /// length written back.
    pub(super) fn unload(&mut self, i: usize) -> *mut Magazine {
        let len = self.loaded_len(i);
        let base = core::mem::replace(&mut self.base[i], ptr::null_mut());
        self.top[i] = ptr::null_mut();
        self.end[i] = ptr::null_mut();
        if base.is_null() {
            return ptr::null_mut();
        }
        // The entries are the magazine's last field (`repr(C)`): step back
        // to its start.
        let magazine = base
            .cast::<u8>()
            .wrapping_sub(core::mem::offset_of!(Magazine, entries))
            .cast::<Magazine>();
        // SAFETY: the loaded magazine is the cache's, valid.
        unsafe { (*magazine).len = len };
        magazine
    }

    /// Loads `magazine` (null: none) as class `i`'s loaded one, which
    /// must have been unloaded.
    pub(super) fn load(&mut self, i: usize, magazine: *mut Magazine) {
        debug_assert!(self.base[i].is_null());
        if magazine.is_null() {
            return;
        }
        // SAFETY: a non-null magazine handed to the cache is valid; its
        // first `len` entries are initialised, and the class's capacity is
        // at most `MAGAZINE_ENTRIES`. The entries' pointer is projected
        // from the magazine's raw pointer, not through a reference to the
        // field, so it keeps the whole magazine's provenance (`unload`
        // steps back from it to the header).
        let (base, len) = unsafe {
            (
                (&raw mut (*magazine).entries).cast::<Entry>(),
                (*magazine).len,
            )
        };
        self.base[i] = base;
        self.top[i] = base.wrapping_add(len);
        self.end[i] = base.wrapping_add(usize::from(BOUNDS.magazine[i]));
    }

    /// An empty magazine from the spares, if any.
    pub(super) fn take_spare(&mut self) -> Option<NonNull<Magazine>> {
        let spare = NonNull::new(self.spares)?;
        // SAFETY: spares are the cache's, valid and empty.
        self.spares = unsafe { core::mem::replace(&mut (*spare.as_ptr()).next, ptr::null_mut()) };
        self.spare_count -= 1;
        Some(spare)
    }

    /// Keeps the empty `magazine` among the spares, or gives it back to the
    /// heap if there are enough.
    pub(super) fn keep_spare<P: PageProvider, R: RawMutex>(
        &mut self,
        heap: &Heap<P, R>,
        magazine: NonNull<Magazine>,
    ) {
        if usize::from(self.spare_count) >= bins::SPARES_MAX {
            return heap.return_empty(magazine);
        }
        // SAFETY: an empty magazine the cache holds and no longer loads.
        unsafe {
            (*magazine.as_ptr()).len = 0;
            (*magazine.as_ptr()).next = self.spares;
        }
        self.spares = magazine.as_ptr();
        self.spare_count += 1;
    }

    #[inline(always)]
    pub(super) fn pop(&mut self, class: SizeClass) -> Option<Entry> {
        // SAFETY: a reference is a valid pointer.
        unsafe { Self::pop_in(self, class) }
    }

    /// [`pop`](Self::pop) through a raw pointer: an inert cache
    /// (`FrontCache::inert`) shared by threads is only read (its loaded
    /// magazines are all empty), never borrowed.
    ///
    /// # Safety
    ///
    /// `this` is a valid cache, this thread's own or an inert one.
    #[inline(always)]
    pub(super) unsafe fn pop_in(this: *mut Self, class: SizeClass) -> Option<Entry> {
        let i = class.index();
        // SAFETY: a class index is below `NUM_CLASSES`, the arrays' length;
        // fields are reached by place, with no reference made.
        unsafe {
            let top_slot = (&raw mut (*this).top).cast::<*mut Entry>().add(i);
            let (top, base) = (
                top_slot.read(),
                (&raw const (*this).base).cast::<*mut Entry>().add(i).read(),
            );
            if top == base {
                return None;
            }
            // `base < top`: the entry below `top` is in the loaded
            // magazine, initialised (and the cache is not inert: an inert
            // one has no magazine).
            let top = top.sub(1);
            top_slot.write(top);
            Some(top.read())
        }
    }

    /// Pushes unless the loaded magazine is full (or missing).
    #[inline(always)]
    pub(super) fn push(&mut self, class: SizeClass, entry: Entry) -> bool {
        // SAFETY: a reference is a valid pointer.
        unsafe { Self::push_in(self, class, entry) }
    }

    /// [`push`](Self::push) through a raw pointer, as [`pop_in`](Self::pop_in).
    ///
    /// # Safety
    ///
    /// As for [`pop_in`](Self::pop_in).
    #[inline(always)]
    pub(super) unsafe fn push_in(this: *mut Self, class: SizeClass, entry: Entry) -> bool {
        let i = class.index();
        // SAFETY: as in `pop_in`.
        unsafe {
            let top_slot = (&raw mut (*this).top).cast::<*mut Entry>().add(i);
            let (top, end) = (
                top_slot.read(),
                (&raw const (*this).end).cast::<*mut Entry>().add(i).read(),
            );
            if top == end {
                return false;
            }
            // `top < end`, inside the loaded magazine's capacity (and the
            // cache is not inert).
            top.write(entry);
            top_slot.write(top.add(1));
        }
        true
    }
}
