//! Bare runs: a pool request of whole pages at page alignment (a kernel's
//! page tables, DMA buffers) gets exactly its pages, with no header: a
//! header before a page-aligned block would cost the block a second page.
//!
//! The page map is the whole record: every granule of the run is
//! registered as `Owner::Bare` with the run's start, which is the block.
//! Its length is the number of consecutive granules naming it, and the
//! requested size is that length (only exact page multiples come here).
//! A free is valid only at the run's start; once freed the granules are
//! empty, so a second free is refused as an invalid pointer.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::coalesce::PoolState;
use crate::error::HeapError;
use crate::heap::Heap;
use crate::introspect::{BlockInfo, HeapVisitor, ZoneInfo};
use crate::page_map::{GRANULE_SHIFT, Owner};
use crate::provider::PageProvider;
use crate::size_class::Kind;

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// A bare run for `layout` (whole pages, page aligned).
    pub(crate) fn bare_alloc(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
        let len = layout.size();
        let map = || {
            let mut pool = self.pool.lock();
            let base = self.map_run(len, layout.align(), 0, len, |base| Owner::Bare { base })?;
            pool.segments += 1;
            Some(base)
        };
        let base = map().or_else(|| (self.trim() > 0).then(map).flatten())?;
        if zeroed && !self.provider.zeroed_on_map() {
            // SAFETY: a fresh run of `len` bytes, ours.
            unsafe { ptr::write_bytes(base.as_ptr(), 0, len) };
        }
        Some(base)
    }

    /// The length of the bare run at `base`: its registered granules.
    fn bare_len(&self, base: NonNull<u8>) -> usize {
        let start = base.as_ptr().addr();
        let mut len = 0;
        while self.page_map.lookup(start + len) == Some(Owner::Bare { base }) {
            len += 1 << GRANULE_SHIFT;
        }
        len
    }

    /// The bare run `ptr` starts, checked under the pool lock: its length.
    fn bare_validate(&self, base: NonNull<u8>, ptr: NonNull<u8>) -> Result<usize, HeapError> {
        if ptr != base || self.page_map.lookup(ptr.as_ptr().addr()) != Some(Owner::Bare { base }) {
            return Err(HeapError::InvalidPointer);
        }
        Ok(self.bare_len(base))
    }

    /// Frees the bare run at `ptr` (registered with start `base`).
    pub(crate) fn bare_free(&self, base: NonNull<u8>, ptr: NonNull<u8>) -> Result<(), HeapError> {
        let mut pool = self.pool.lock();
        self.bare_validate(base, ptr)?;
        // SAFETY: a live bare run, lock held; the caller gives it up.
        unsafe { self.release_bare(&mut pool, base) };
        Ok(())
    }

    /// The size of the bare run at `ptr`.
    pub(crate) fn bare_usable(
        &self,
        base: NonNull<u8>,
        ptr: NonNull<u8>,
    ) -> Result<usize, HeapError> {
        let _pool = self.pool.lock();
        self.bare_validate(base, ptr)
    }

    /// Moves the bare run at `ptr` to a block for `new_layout`.
    pub(crate) fn bare_realloc(
        &self,
        base: NonNull<u8>,
        ptr: NonNull<u8>,
        new_layout: Layout,
    ) -> Result<NonNull<u8>, crate::error::ReallocError> {
        let len = {
            let _pool = self.pool.lock();
            self.bare_validate(base, ptr)
                .map_err(crate::error::ReallocError::Invalid)?
        };
        let new = self
            .allocate(new_layout)
            .ok_or(crate::error::ReallocError::OutOfMemory)?;
        // SAFETY: both blocks are live and distinct; the old one was
        // validated (a failed free now is the caller's concurrent free).
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), len.min(new_layout.size()));
            let _ = self.deallocate(ptr);
        }
        Ok(new)
    }

    /// Unregisters and unmaps the bare run at `base`.
    ///
    /// # Safety
    ///
    /// `base` is a live bare run nothing will use again; the pool lock is
    /// held through `pool`.
    pub(crate) unsafe fn release_bare(&self, pool: &mut PoolState, base: NonNull<u8>) {
        let len = self.bare_len(base);
        // SAFETY: per the contract.
        unsafe { self.unmap_run(base, len, 0, len, Owner::Bare { base }) };
        pool.segments -= 1;
    }

    /// Reports a bare run as a one-block SMALL zone (`visit`).
    pub(crate) fn visit_bare(&self, base: NonNull<u8>, visitor: &mut impl HeapVisitor) {
        let len = self.bare_len(base);
        let start = base.as_ptr().addr();
        let info = ZoneInfo {
            kind: Kind::Small,
            start,
            len,
            block_size: len,
            capacity: 1,
            carved: 1,
            live: 1,
            cached: 0,
        };
        visitor.zone(&info);
        visitor.block(
            &info,
            &BlockInfo {
                start,
                requested: len,
                usable: len,
                index: 0,
            },
        );
    }
}
