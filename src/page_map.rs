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
//! owner's kind in the low 12 bits ([`Owner`]).
//!
//! # Protocol (see also INTERNALS.md, "Concurrency")
//!
//! - **Readers** never lock: `free` looks a pointer up before it knows which
//!   lock to take. A slot read without a lock is only a *hint*; the reader
//!   proves it still holds by taking the owner's lock and checking
//!   [`releases`](PageMap::releases) (unchanged since the lookup) or by
//!   looking again.
//! - **Writers** hold the lock of the class, or of LARGE, that owns the range.
//! - **Register before use, unregister before release.** A run is
//!   registered before any block of it is handed out, and unregistered
//!   before its pages go back to the provider or shrink: between the two, no
//!   other run can be at these addresses, so an entry always names a run
//!   that is mapped.
//! - **Never overwrite, never erase another run's entry.** `register` fills
//!   only empty slots and `unregister` clears only slots that still hold the
//!   owner it names (both by compare-exchange). A late or duplicated
//!   unregistration is harmless by construction.
//! - **Every unregistration bumps `releases`** after clearing its slots and
//!   before the pages go back: a reader that saw the same count before its
//!   lookup and after taking the owner's lock knows no run was released in
//!   between, so the owner it found is alive.
//! - **Nodes** come from the provider on first use, are published with a
//!   compare-exchange and kept until the heap is dropped, so a lock-free
//!   reader never sees one vanish. A registration that must not fail (a LARGE
//!   run that the provider moved) draws on a [`NodeReserve`] that its owner
//!   filled beforehand and nobody else can take from.

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
    /// Unregistrations so far (see the module's protocol).
    releases: AtomicUsize,
}

/// A registration of one granule creates at most a middle node and a leaf.
const RESERVE_NODES: usize = 2;

/// Nodes set aside by one owner (the LARGE state, under its lock) so that
/// registering one granule later cannot fail, whatever the provider says
/// then. Nobody else draws on it: a class that runs out of nodes cannot
/// take what a LARGE move counted on.
pub(crate) struct NodeReserve {
    nodes: [Option<NonNull<u8>>; RESERVE_NODES],
}

// SAFETY: the reserved nodes are provider memory owned by the reserve.
unsafe impl Send for NodeReserve {}

impl NodeReserve {
    pub(crate) const fn new() -> Self {
        NodeReserve {
            nodes: [None; RESERVE_NODES],
        }
    }

    /// Maps the missing nodes. Returns `false` if the provider refused (the
    /// reserve keeps what it has).
    pub(crate) fn fill<P: PageProvider>(&mut self, provider: &P, metadata: &AtomicUsize) -> bool {
        for node in &mut self.nodes {
            if node.is_none() {
                *node = Some(match PageMap::new_node(provider, metadata) {
                    Some(fresh) => fresh,
                    None => return false,
                });
            }
        }
        true
    }

    fn take(&mut self) -> Option<NonNull<u8>> {
        self.nodes.iter_mut().find_map(Option::take)
    }

    /// Keeps an unpublished node for later; `false` if the reserve is full.
    fn put(&mut self, node: NonNull<u8>) -> bool {
        match self.nodes.iter_mut().find(|n| n.is_none()) {
            Some(slot) => {
                *slot = Some(node);
                true
            }
            None => false,
        }
    }

    /// Gives every reserved node back to the provider.
    pub(crate) fn release<P: PageProvider>(&mut self, provider: &P, metadata: &AtomicUsize) {
        while let Some(node) = self.take() {
            // SAFETY: reserved nodes are unpublished NODE_BYTES runs from `provider`.
            unsafe { provider.unmap(node, NODE_BYTES) };
            metadata.fetch_sub(NODE_BYTES, Ordering::Relaxed);
        }
    }
}

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
            releases: AtomicUsize::new(0),
        }
    }

    /// How many unregistrations have happened. Read it *before* a lock-free
    /// lookup; if it is unchanged once the owner's lock is held, the owner
    /// found is still registered (owners are only unregistered under their
    /// own lock).
    #[inline]
    pub(crate) fn releases(&self) -> usize {
        self.releases.load(Ordering::Acquire)
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

    /// The zone registered for the granule holding `addr`, if a zone (not a
    /// LARGE run) is: [`lookup`](Self::lookup) trimmed for the front
    /// cache's free path.
    #[inline(always)]
    pub(crate) fn lookup_zone(&self, addr: usize) -> Option<(NonNull<u8>, SizeClass)> {
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
        // Zone tags are class index + 1; empty slots (0) and LARGE tags wrap
        // or land past the last class.
        let class = (slot.addr() & TAG_MASK).wrapping_sub(1);
        if class >= crate::size_class::NUM_CLASSES || (slot.addr() ^ addr) >> ADDRESS_BITS != 0 {
            return None;
        }
        let base = slot.map_addr(|a| a & !TAG_MASK);
        // SAFETY: a registered zone's start is never null; `class` was just
        // checked against the class count.
        unsafe {
            Some((
                NonNull::new_unchecked(base),
                SizeClass::from_index_unchecked(class),
            ))
        }
    }

    /// Registers `owner` for every granule of `[start, start + len)`, which
    /// must be empty (see the protocol). Nodes that are missing come from the
    /// provider, or else from `reserve`. Returns `false`, with nothing
    /// registered, if a node could not be had.
    pub(crate) fn register<P: PageProvider>(
        &self,
        provider: &P,
        start: usize,
        len: usize,
        owner: Owner,
        metadata_bytes: &AtomicUsize,
        mut reserve: Option<&mut NodeReserve>,
    ) -> bool {
        let value = owner.encode();
        let first = start >> GRANULE_SHIFT;
        let last = (start + len - 1) >> GRANULE_SHIFT;
        // Create every node first so failure leaves nothing half-registered.
        let mut g = first;
        while g <= last {
            if self
                .leaf_for(
                    provider,
                    g << GRANULE_SHIFT,
                    metadata_bytes,
                    reserve.as_deref_mut(),
                )
                .is_none()
            {
                return false;
            }
            g = (g | (FANOUT - 1)) + 1;
        }
        self.for_each_slot(first, last, |slot| {
            let swapped =
                slot.compare_exchange(ptr::null_mut(), value, Ordering::Release, Ordering::Relaxed);
            // A filled slot would be a run registered over another live one:
            // a broken protocol, not something input can cause.
            debug_assert!(swapped.is_ok(), "a granule registered twice");
        });
        true
    }

    /// Clears the granules of `[start, start + len)` that still name
    /// `owner` (a slot another run owns now is left alone), then counts one
    /// release. Call it before the range's pages go back to the provider.
    pub(crate) fn unregister(&self, start: usize, len: usize, owner: Owner) {
        let value = owner.encode();
        let first = start >> GRANULE_SHIFT;
        let last = (start + len - 1) >> GRANULE_SHIFT;
        self.for_each_slot(first, last, |slot| {
            let _ =
                slot.compare_exchange(value, ptr::null_mut(), Ordering::Release, Ordering::Relaxed);
        });
        self.releases.fetch_add(1, Ordering::Release);
    }

    /// Calls `f` with the slot of every granule from `first` to `last`,
    /// whose nodes `register` created; one node walk per leaf.
    fn for_each_slot(&self, first: usize, last: usize, mut f: impl FnMut(&AtomicPtr<u8>)) {
        let mut g = first;
        while g <= last {
            let [i0, i1, i2] = indices(g << GRANULE_SHIFT);
            let mid = self.root[i0].load(Ordering::Acquire).cast::<Node>();
            assert!(!mid.is_null(), "granule {g:#x} has no node");
            // SAFETY: published nodes are valid and live as long as the map.
            let leaf = unsafe { (*mid).slots[i1].load(Ordering::Acquire) }.cast::<Node>();
            assert!(!leaf.is_null(), "granule {g:#x} has no node");
            let in_leaf = (FANOUT - i2).min(last - g + 1);
            for i in i2..i2 + in_leaf {
                // SAFETY: as above.
                f(unsafe { &(*leaf).slots[i] });
            }
            g += in_leaf;
        }
    }

    /// The leaf node covering `addr`, created if missing.
    fn leaf_for<P: PageProvider>(
        &self,
        provider: &P,
        addr: usize,
        metadata_bytes: &AtomicUsize,
        mut reserve: Option<&mut NodeReserve>,
    ) -> Option<NonNull<Node>> {
        let [i0, i1, _] = indices(addr);
        let mid = self.child(
            &self.root[i0],
            provider,
            metadata_bytes,
            reserve.as_deref_mut(),
        )?;
        // SAFETY: `mid` is a live, published node.
        let slot = unsafe { &(*mid.as_ptr()).slots[i1] };
        self.child(slot, provider, metadata_bytes, reserve)
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

    fn child<P: PageProvider>(
        &self,
        slot: &AtomicPtr<u8>,
        provider: &P,
        metadata_bytes: &AtomicUsize,
        reserve: Option<&mut NodeReserve>,
    ) -> Option<NonNull<Node>> {
        if let Some(node) = NonNull::new(slot.load(Ordering::Acquire)) {
            return Some(node.cast());
        }
        let (fresh, reserve) = match Self::new_node(provider, metadata_bytes) {
            Some(fresh) => (fresh, reserve),
            None => {
                let reserve = reserve?;
                (reserve.take()?, Some(reserve))
            }
        };
        match slot.compare_exchange(
            ptr::null_mut(),
            fresh.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Some(fresh.cast()),
            Err(winner) => {
                // Another owner published the node first; ours was never
                // seen. Keep it in the reserve if there is one with room.
                if !reserve.is_some_and(|r| r.put(fresh)) {
                    // SAFETY: `fresh` is a zeroed node nobody else refers to.
                    unsafe { provider.unmap(fresh, NODE_BYTES) };
                    metadata_bytes.fetch_sub(NODE_BYTES, Ordering::Relaxed);
                }
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
