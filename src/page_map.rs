//! The page map: from any address to the zone or LARGE run that owns it, in
//! O(1), without touching the address itself.
//!
//! A three-level radix tree over 4 KiB granules of the 48-bit address space
//! (12 + 12 + 12 bits of granule number). Every granule of a zone maps to the
//! zone's start; a LARGE run maps only the granule holding its user pointer,
//! the only address `free` may legitimately be given. An address nobody
//! registered finds an empty slot, which is how invalid pointers are caught
//! before any metadata is read.
//!
//! Slots hold tagged pointers: the owner's start (granule aligned) with the
//! owner's kind in the low 12 bits ([`Owner`]). Readers are lock-free (the
//! free path looks up before it knows which lock to take); writers hold the
//! lock of the class or of LARGE that owns the range. Nodes are allocated
//! from the provider on first use, published with a compare-exchange, and
//! kept until the heap is dropped, so a lock-free reader never sees a node go
//! away.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::provider::{MIN_PAGE_SIZE, PageProvider};
use crate::size_class::SizeClass;

/// log2 of the granule the map tracks.
pub(crate) const GRANULE_SHIFT: u32 = MIN_PAGE_SIZE.trailing_zeros();
const LEVEL_BITS: u32 = 12;
const FANOUT: usize = 1 << LEVEL_BITS;
/// Bits of address the map distinguishes; higher bits must match exactly.
const ADDRESS_BITS: u32 = GRANULE_SHIFT + 3 * LEVEL_BITS;
const TAG_MASK: usize = (1 << GRANULE_SHIFT) - 1;
const TAG_LARGE: usize = TAG_MASK;
/// Bytes of one node (8 pages).
pub(crate) const NODE_BYTES: usize = FANOUT * core::mem::size_of::<usize>();

/// One level of the tree: 4096 slots.
#[repr(C)]
struct Node {
    slots: [AtomicPtr<u8>; FANOUT],
}

/// Who owns a granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A zone of this class, starting at `base`.
    Zone { base: NonNull<u8>, class: SizeClass },
    /// A LARGE run starting at `base`.
    Large { base: NonNull<u8> },
}

impl Owner {
    fn encode(self) -> *mut u8 {
        match self {
            Owner::Zone { base, class } => base.as_ptr().map_addr(|a| a | (class.index() + 1)),
            Owner::Large { base } => base.as_ptr().map_addr(|a| a | TAG_LARGE),
        }
    }

    fn decode(slot: *mut u8) -> Option<Owner> {
        let tag = slot.addr() & TAG_MASK;
        let base = NonNull::new(slot.map_addr(|a| a & !TAG_MASK))?;
        if tag == TAG_LARGE {
            Some(Owner::Large { base })
        } else {
            let class = SizeClass::from_index(tag.checked_sub(1)?)?;
            Some(Owner::Zone { base, class })
        }
    }

    pub(crate) fn base(self) -> NonNull<u8> {
        match self {
            Owner::Zone { base, .. } | Owner::Large { base } => base,
        }
    }
}

/// The radix tree. The root lives inline (32 KiB), deeper nodes come from the
/// provider.
pub(crate) struct PageMap {
    root: [AtomicPtr<u8>; FANOUT],
    /// Nodes mapped ahead of need, used when the provider refuses one. A
    /// LARGE run moved by the provider must be registered at its new place
    /// or be lost, so such a move first makes sure these exist.
    spares: [AtomicPtr<u8>; SPARES],
}

/// A registration creates at most a middle node and a leaf.
const SPARES: usize = 2;

#[inline]
fn indices(addr: usize) -> [usize; 3] {
    let granule = addr >> GRANULE_SHIFT;
    [
        (granule >> (2 * LEVEL_BITS)) & (FANOUT - 1),
        (granule >> LEVEL_BITS) & (FANOUT - 1),
        granule & (FANOUT - 1),
    ]
}

impl PageMap {
    pub(crate) const fn new() -> Self {
        PageMap {
            root: [const { AtomicPtr::new(ptr::null_mut()) }; FANOUT],
            spares: [const { AtomicPtr::new(ptr::null_mut()) }; SPARES],
        }
    }

    /// The owner registered for the granule holding `addr`, if any.
    #[inline]
    pub(crate) fn lookup(&self, addr: usize) -> Option<Owner> {
        let [i0, i1, i2] = indices(addr);
        let mid = self.root[i0].load(Ordering::Acquire).cast::<Node>();
        if mid.is_null() {
            return None;
        }
        // SAFETY: published nodes are valid, zero-initialised `Node`s that are
        // never freed while the map is alive.
        let leaf = unsafe { (*mid).slots[i1].load(Ordering::Acquire) }.cast::<Node>();
        if leaf.is_null() {
            return None;
        }
        // SAFETY: as above.
        let slot = unsafe { (*leaf).slots[i2].load(Ordering::Acquire) };
        let owner = Owner::decode(slot)?;
        // Addresses that differ above bit 48 share slots; only an exact
        // match of the high bits is the same owner.
        if (owner.base().as_ptr().addr() ^ addr) >> ADDRESS_BITS != 0 {
            return None;
        }
        Some(owner)
    }

    /// Registers `owner` for every granule of `[start, start + len)`.
    /// Returns `false`, with nothing registered, if a node could not be
    /// allocated.
    pub(crate) fn register<P: PageProvider>(
        &self,
        provider: &P,
        start: usize,
        len: usize,
        owner: Owner,
        metadata_bytes: &AtomicUsize,
    ) -> bool {
        let value = owner.encode();
        let first = start >> GRANULE_SHIFT;
        let last = (start + len - 1) >> GRANULE_SHIFT;
        // Create every node first so failure leaves nothing half-registered.
        let mut g = first;
        while g <= last {
            if self
                .leaf_for(provider, g << GRANULE_SHIFT, metadata_bytes)
                .is_none()
            {
                return false;
            }
            g = (g | (FANOUT - 1)) + 1;
        }
        self.store_range(first, last, value);
        true
    }

    /// Clears every granule of `[start, start + len)`.
    pub(crate) fn unregister(&self, start: usize, len: usize) {
        let first = start >> GRANULE_SHIFT;
        let last = (start + len - 1) >> GRANULE_SHIFT;
        self.store_range(first, last, ptr::null_mut());
    }

    fn store_range(&self, first: usize, last: usize, value: *mut u8) {
        for g in first..=last {
            let [i0, i1, i2] = indices(g << GRANULE_SHIFT);
            let mid = self.root[i0].load(Ordering::Acquire).cast::<Node>();
            debug_assert!(!mid.is_null());
            // SAFETY: `register` created every node on the path before the
            // range was stored, and nodes live as long as the map.
            let leaf = unsafe { (*mid).slots[i1].load(Ordering::Acquire) }.cast::<Node>();
            debug_assert!(!leaf.is_null());
            // SAFETY: as above.
            unsafe { (*leaf).slots[i2].store(value, Ordering::Release) };
        }
    }

    /// The leaf node covering `addr`, created if missing.
    fn leaf_for<P: PageProvider>(
        &self,
        provider: &P,
        addr: usize,
        metadata_bytes: &AtomicUsize,
    ) -> Option<NonNull<Node>> {
        let [i0, i1, _] = indices(addr);
        let mid = self.child(&self.root[i0], provider, metadata_bytes)?;
        // SAFETY: `mid` is a live, published node.
        let slot = unsafe { &(*mid.as_ptr()).slots[i1] };
        self.child(slot, provider, metadata_bytes)
    }

    /// A zeroed node from the provider.
    fn new_node<P: PageProvider>(
        provider: &P,
        metadata_bytes: &AtomicUsize,
    ) -> Option<NonNull<u8>> {
        let fresh = provider.map(NODE_BYTES, MIN_PAGE_SIZE)?;
        metadata_bytes.fetch_add(NODE_BYTES, Ordering::Relaxed);
        if !provider.zeroed_on_map() {
            // SAFETY: the provider handed us NODE_BYTES writable bytes.
            unsafe { ptr::write_bytes(fresh.as_ptr(), 0, NODE_BYTES) };
        }
        Some(fresh)
    }

    fn take_spare(&self) -> Option<NonNull<u8>> {
        self.spares
            .iter()
            .find_map(|s| NonNull::new(s.swap(ptr::null_mut(), Ordering::AcqRel)))
    }

    /// Makes sure enough spare nodes exist for one more registration to
    /// succeed whatever the provider says then. Returns `false` if the
    /// provider refused.
    pub(crate) fn reserve_spares<P: PageProvider>(
        &self,
        provider: &P,
        metadata_bytes: &AtomicUsize,
    ) -> bool {
        for spare in &self.spares {
            if !spare.load(Ordering::Acquire).is_null() {
                continue;
            }
            let Some(fresh) = Self::new_node(provider, metadata_bytes) else {
                return false;
            };
            if spare
                .compare_exchange(
                    ptr::null_mut(),
                    fresh.as_ptr(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                // SAFETY: our fresh node was never published.
                unsafe { provider.unmap(fresh, NODE_BYTES) };
                metadata_bytes.fetch_sub(NODE_BYTES, Ordering::Relaxed);
            }
        }
        true
    }

    fn child<P: PageProvider>(
        &self,
        slot: &AtomicPtr<u8>,
        provider: &P,
        metadata_bytes: &AtomicUsize,
    ) -> Option<NonNull<Node>> {
        if let Some(node) = NonNull::new(slot.load(Ordering::Acquire)) {
            return Some(node.cast());
        }
        let fresh = match Self::new_node(provider, metadata_bytes) {
            Some(fresh) => fresh,
            None => self.take_spare()?,
        };
        match slot.compare_exchange(
            ptr::null_mut(),
            fresh.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Some(fresh.cast()),
            Err(winner) => {
                // Another class published the node first; ours was never seen.
                // SAFETY: `fresh` is a zeroed node nobody else refers to.
                unsafe { provider.unmap(fresh, NODE_BYTES) };
                metadata_bytes.fetch_sub(NODE_BYTES, Ordering::Relaxed);
                NonNull::new(winner.cast())
            }
        }
    }

    /// Calls `f` with every registered granule's address and owner, in
    /// increasing address order (of the 48-bit granule index).
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, Owner)) {
        for (i0, mid) in self.root.iter().enumerate() {
            let mid = mid.load(Ordering::Acquire).cast::<Node>();
            if mid.is_null() {
                continue;
            }
            for i1 in 0..FANOUT {
                // SAFETY: published nodes live as long as the map.
                let leaf = unsafe { (*mid).slots[i1].load(Ordering::Acquire) }.cast::<Node>();
                if leaf.is_null() {
                    continue;
                }
                for i2 in 0..FANOUT {
                    // SAFETY: as above.
                    let slot = unsafe { (*leaf).slots[i2].load(Ordering::Acquire) };
                    if let Some(owner) = Owner::decode(slot) {
                        let granule = (i0 << (2 * LEVEL_BITS)) | (i1 << LEVEL_BITS) | i2;
                        let high = owner.base().as_ptr().addr() & !((1 << ADDRESS_BITS) - 1);
                        f(high | (granule << GRANULE_SHIFT), owner);
                    }
                }
            }
        }
    }

    /// Gives every node back to the provider.
    ///
    /// # Safety
    ///
    /// No other thread may use the map, now or later.
    pub(crate) unsafe fn release_nodes<P: PageProvider>(&mut self, provider: &P) {
        while let Some(spare) = self.take_spare() {
            // SAFETY: spares are NODE_BYTES runs from `provider`, unpublished.
            unsafe { provider.unmap(spare, NODE_BYTES) };
        }
        for mid in self.root.iter() {
            let mid = mid.swap(ptr::null_mut(), Ordering::Relaxed).cast::<Node>();
            let Some(mid) = NonNull::new(mid) else {
                continue;
            };
            for i1 in 0..FANOUT {
                // SAFETY: `mid` is a live node that only we can see now.
                let leaf = unsafe { (*mid.as_ptr()).slots[i1].load(Ordering::Relaxed) };
                if let Some(leaf) = NonNull::new(leaf) {
                    // SAFETY: every node is a NODE_BYTES run from `provider`.
                    unsafe { provider.unmap(leaf, NODE_BYTES) };
                }
            }
            // SAFETY: as above.
            unsafe { provider.unmap(mid.cast(), NODE_BYTES) };
        }
    }
}
