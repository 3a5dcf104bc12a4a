//! The page map: from any address to the zone or LARGE run that owns it, in
//! O(1), without touching the address itself.
//!
//! One slot per 4 KiB granule, in one of two layouts chosen on first use:
//!
//! - **flat**: the provider knows its [`span`](PageProvider::span) (an
//!   arena, or `libft_malloc.so`'s address window): one array of slots over
//!   the span, `slot[(addr - start) >> 12]`. It costs one pointer per page of
//!   the span (1/512 of it on 64-bit targets), committed by the provider as
//!   slots are first written. A span of at most [`INLINE_SLOTS`] granules
//!   uses the array inside the map itself (so inside the `Heap`): a 16 KiB
//!   region keeps all its pages for blocks. A larger span's array comes from
//!   the provider. A run the provider places *outside* its span (allowed once
//!   the span is full: see [`PageProvider::span`]) goes to a tree beside the
//!   array, made on first such run: lookups inside the span never see it,
//!   lookups outside it pay the tree's walk.
//! - **tree**: anywhere in the address space (`mmap`): a radix tree over the
//!   granules of the 48-bit (64-bit targets: 3 levels of 4096 slots) or
//!   32-bit (2 levels of 1024 slots) address space.
//!
//! Otherwise the top (the flat array or the tree's root) comes from the
//! provider on first use, so a `static` heap holds only the inline array. Every
//! granule of a zone maps to the zone's start; a LARGE run maps only the granule holding its user pointer,
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
const GRANULE: usize = 1 << GRANULE_SHIFT;
/// Bits of address the tree distinguishes: the 48 bits of a 64-bit target's
/// virtual addresses, or all of a 32-bit one's. Higher bits must match
/// exactly.
const ADDRESS_BITS: u32 = if usize::BITS > 48 { 48 } else { usize::BITS };
/// Address bits above [`ADDRESS_BITS`] (none on 32-bit targets).
const HIGH_MASK: usize = if ADDRESS_BITS < usize::BITS {
    !0 << ADDRESS_BITS
} else {
    0
};

/// Whether `a` and `b` agree above [`ADDRESS_BITS`] (always, on 32-bit
/// targets, where the mask is zero: clippy's `bad_bit_mask` sees a test
/// that is constant there, which is the point).
#[inline(always)]
#[allow(clippy::bad_bit_mask)]
const fn same_high_bits(a: usize, b: usize) -> bool {
    (a ^ b) & HIGH_MASK == 0
}
/// log2 of a tree node's slot count: 32 KiB nodes in 3 levels on 64-bit
/// targets, 4 KiB nodes in 2 levels on 32-bit ones.
const NODE_BITS: u32 = if usize::BITS > 32 { 12 } else { 10 };
const LEVELS: u32 = (ADDRESS_BITS - GRANULE_SHIFT) / NODE_BITS;
const _: () = assert!(LEVELS * NODE_BITS == ADDRESS_BITS - GRANULE_SHIFT);
const FANOUT: usize = 1 << NODE_BITS;
const SLOT_BYTES: usize = core::mem::size_of::<usize>();
/// Bytes of one tree node.
const NODE_BYTES: usize = FANOUT * SLOT_BYTES;
const TAG_MASK: usize = GRANULE - 1;
/// Granules of the largest span whose flat array lives inside the map (a
/// 352 KiB span: 704 bytes of slots on 64-bit targets). Sized so that a
/// `static Heap<ArenaProvider>` stays within a page (`tests/small_heaps.rs`)
/// with the small-region pool, the arena's four region slots and the heap
/// stacks' per-class pointers (`heap_cache.rs`, 110 slots before them), and
/// still covers blog_os's 100 KiB heap and the benchmark's smallest
/// mixed-load regions (320-336 KiB).
pub(crate) const INLINE_SLOTS: usize = 88;
/// Tags: a zone's is its class index plus [`ZONE_TAG_BASE`], so that zone
/// tags fill the top of the low byte's range and anything else (an empty
/// slot's 0, the small tags below) lies under it: one compare of the low
/// byte decides "a zone", and the byte is the class's index into a
/// cache's per-class arrays with the base folded into the address's
/// displacement (`zone_of`, on every `free`: no flip, no mask).
const TAG_LARGE: usize = 1;
/// A segment of the small-region pool (`coalesce/`).
const TAG_POOL: usize = 2;
/// A bare page run of the small-region pool (`coalesce/bare.rs`).
const TAG_BARE: usize = 3;
/// A zone's tag less its class index: the classes take the top of a byte.
pub(crate) const ZONE_TAG_BASE: usize = 0x100 - crate::size_class::NUM_CLASSES;
const _: () = assert!(TAG_MASK >= 0xFF && TAG_BARE < ZONE_TAG_BASE);

/// Who owns a granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A zone of this class, starting at `base`.
    Zone { base: NonNull<u8>, class: SizeClass },
    /// A LARGE run starting at `base`.
    Large { base: NonNull<u8> },
    /// A segment of the small-region pool starting at `base` (every
    /// granule of it is registered).
    Pool { base: NonNull<u8> },
    /// A bare page run of the small-region pool starting at `base`, which is
    /// also its block (every granule of it is registered).
    Bare { base: NonNull<u8> },
}

impl Owner {
    fn encode(self) -> *mut u8 {
        match self {
            Owner::Zone { base, class } => base
                .as_ptr()
                .map_addr(|a| a | (ZONE_TAG_BASE + class.index())),
            Owner::Large { base } => base.as_ptr().map_addr(|a| a | TAG_LARGE),
            Owner::Pool { base } => base.as_ptr().map_addr(|a| a | TAG_POOL),
            Owner::Bare { base } => base.as_ptr().map_addr(|a| a | TAG_BARE),
        }
    }

    fn decode(slot: *mut u8) -> Option<Owner> {
        let tag = slot.addr() & TAG_MASK;
        let base = NonNull::new(slot.map_addr(|a| a & !TAG_MASK))?;
        if tag == TAG_LARGE {
            Some(Owner::Large { base })
        } else if tag == TAG_POOL {
            Some(Owner::Pool { base })
        } else if tag == TAG_BARE {
            Some(Owner::Bare { base })
        } else {
            let class = SizeClass::from_index(tag.checked_sub(ZONE_TAG_BASE)?)?;
            Some(Owner::Zone { base, class })
        }
    }

    pub(crate) fn base(self) -> NonNull<u8> {
        match self {
            Owner::Zone { base, .. }
            | Owner::Large { base }
            | Owner::Pool { base }
            | Owner::Bare { base } => base,
        }
    }
}

/// The flat layout's extent for `provider`: the first granule's address
/// and the granule count, or `None` for the tree. The one place that
/// chooses the layout.
fn flat_extent<P: PageProvider>(provider: &P) -> Option<(usize, usize)> {
    let (start, end) = provider.span()?;
    let start = start & !TAG_MASK;
    (end > start).then(|| (start, (end - start).div_ceil(GRANULE)))
}

/// `bytes` rounded up to whole pages of `provider`.
fn run_len<P: PageProvider>(provider: &P, bytes: usize) -> usize {
    bytes.next_multiple_of(provider.page_size())
}

/// The header of a flat array in a provider's run, right before its slots:
/// the span it covers, written before the array is published and never
/// after. Opaque: a caller holds its address
/// ([`Heap::mapped_flat`](crate::Heap::mapped_flat), or [`NO_MAPPED_FLAT`])
/// to hand back to [`FrontCache::try_deallocate_flat_in`](crate::FrontCache::try_deallocate_flat_in).
#[repr(C)]
pub struct MappedFlat {
    /// Address of granule 0.
    start: usize,
    /// Slots.
    len: usize,
}

/// Bytes of [`MappedFlat`] before the slots (two slots' worth).
const MAPPED_HEADER: usize = core::mem::size_of::<MappedFlat>();
const _: () = assert!(MAPPED_HEADER == 2 * SLOT_BYTES);

/// What `PageMap::mapped` points to without a provider's flat array: a
/// span of no granule, which no lookup falls in.
pub static NO_MAPPED_FLAT: MappedFlat = MappedFlat { start: 0, len: 0 };

/// The map: its flat array, its tree and the release counter.
pub(crate) struct PageMap {
    /// The provider-mapped flat slot array; null until the first
    /// registration maps it, for an inline flat map, and for a tree.
    root: AtomicPtr<u8>,
    /// Flat layout: address of granule 0 and the slot count; 0 slots means
    /// the tree (or nothing yet). `flat_len` is published last (Release),
    /// after `flat_start` and `root`, so a reader that sees it sees them
    /// (every writer stores the same values: they follow from the provider's
    /// fixed span).
    flat_start: AtomicUsize,
    flat_len: AtomicUsize,
    /// The header of the provider's run holding the flat array (`root`
    /// is its slots, right after it), or [`NO_MAPPED_FLAT`] (an inline
    /// array, a tree, nothing yet): the free path's lookup reads the span
    /// from it and indexes its slots, with no select between the two
    /// arrays, and with plain loads (the header never changes once
    /// published), which fold into the arithmetic. Published (Release)
    /// after `root` and the header.
    mapped: AtomicPtr<MappedFlat>,
    /// Flat layout: one past the highest slot ever registered, so that
    /// [`for_each`](Self::for_each) reads only the part of a large span the
    /// provider has used, not the whole array (untouched pages stay so).
    flat_used: AtomicUsize,
    /// The tree's root: of the whole map without a span, of the runs
    /// outside the span with one (null until the first such run). One field
    /// for both, so that a lookup the flat array does not cover goes to
    /// the tree without asking which layout it is in.
    tree: AtomicPtr<u8>,
    /// Unregistrations so far (see the module's protocol).
    releases: AtomicUsize,
    /// The flat array of a span of at most [`INLINE_SLOTS`] granules.
    /// Addressed through `&self` on each lookup (never by a stored
    /// pointer), so a heap may still be moved after use.
    inline: [AtomicPtr<u8>; INLINE_SLOTS],
}

mod lookup;
mod reserve;
mod walk;
pub(crate) use reserve::NodeReserve;

/// Slot `i` of the node or flat array at `node`.
///
/// # Safety
///
/// `node` is a published node (or flat array) with more than `i` slots; the
/// map never frees it while it lives, which bounds `'a`.
#[inline(always)]
unsafe fn slot_at<'a>(node: *mut u8, i: usize) -> &'a AtomicPtr<u8> {
    // SAFETY: per the contract; nodes are zero-initialised arrays of slots.
    unsafe { &*node.cast::<AtomicPtr<u8>>().add(i) }
}

/// The index, in a tree node at `level` (0 = leaf), of granule `g`.
#[inline(always)]
fn tree_index(g: usize, level: u32) -> usize {
    (g >> (level * NODE_BITS)) & (FANOUT - 1)
}

impl PageMap {
    pub(crate) const fn new() -> Self {
        PageMap {
            root: AtomicPtr::new(ptr::null_mut()),
            flat_start: AtomicUsize::new(0),
            flat_len: AtomicUsize::new(0),
            mapped: AtomicPtr::new((&raw const NO_MAPPED_FLAT).cast_mut()),
            flat_used: AtomicUsize::new(0),
            tree: AtomicPtr::new(ptr::null_mut()),
            releases: AtomicUsize::new(0),
            inline: [const { AtomicPtr::new(ptr::null_mut()) }; INLINE_SLOTS],
        }
    }

    /// The array of a published flat map: the provider's run in `root`, or
    /// the inline one (`root` stays null for it). A select, not a branch,
    /// and both arms are non-null, so the lookup tests nothing more.
    #[inline(always)]
    fn flat_array(&self) -> *mut u8 {
        let inline = self.inline.as_ptr().cast_mut().cast::<u8>();
        let root = self.root.load(Ordering::Relaxed);
        if root.is_null() { inline } else { root }
    }

    /// How many unregistrations have happened. Read it *before* a lock-free
    /// lookup; if it is unchanged once the owner's lock is held, the owner
    /// found is still registered (owners are only unregistered under their
    /// own lock).
    #[inline(always)]
    pub(crate) fn releases(&self) -> usize {
        self.releases.load(Ordering::Acquire)
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
        // A run inside a flat array already made (every LARGE run, which
        // registers only its user pointer's granule, and every zone of an
        // arena): its slots, with no node to make (a LARGE allocation of
        // the random actions paid 123 instructions here).
        if let (Ok(g), Ok(g_last)) = (self.flat_index(start), self.flat_index(start + len - 1)) {
            // `flat_used` only grows: a look first saves the atomic
            // read-modify-write.
            if self.flat_used.load(Ordering::Relaxed) <= g_last {
                self.flat_used.fetch_max(g_last + 1, Ordering::Relaxed);
            }
            let array = self.flat_array();
            for g in g..=g_last {
                // SAFETY: `flat_index` checked `g_last` against the array's
                // length; the array lives as long as the map.
                let slot = unsafe { slot_at(array, g) };
                let swapped = slot.compare_exchange(
                    ptr::null_mut(),
                    value,
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                debug_assert!(swapped.is_ok(), "a granule registered twice");
            }
            return true;
        }
        let Some(root) = self.top_for(provider, metadata_bytes) else {
            return false;
        };
        // Create every node first so failure leaves nothing half-registered.
        let flat_len = self.flat_len.load(Ordering::Relaxed);
        let (in_span, tree) = if flat_len == 0 {
            (false, Some(root))
        } else {
            let flat_start = self.flat_start.load(Ordering::Relaxed);
            let inside = |a: usize| (a.wrapping_sub(flat_start) >> GRANULE_SHIFT) < flat_len;
            match (inside(start), inside(start + len - 1)) {
                (true, true) => (true, None),
                // Outside the span (the provider's span is full): the tree.
                (false, false) => match self.tree_root(provider, metadata_bytes) {
                    Some(tree) => (false, Some(tree)),
                    None => return false,
                },
                // A run across the span's edge breaks the provider's
                // contract: refuse it rather than split it.
                _ => return false,
            }
        };
        if let Some(root) = tree {
            let mut g = first;
            while g <= last {
                if Self::leaf_for(provider, root, g, metadata_bytes, reserve.as_deref_mut())
                    .is_none()
                {
                    return false;
                }
                g = (g | (FANOUT - 1)) + 1;
            }
        }
        if in_span {
            let used =
                ((start + len - 1 - self.flat_start.load(Ordering::Relaxed)) >> GRANULE_SHIFT) + 1;
            self.flat_used.fetch_max(used, Ordering::Relaxed);
        }
        for g in first..=last {
            let slot = self
                .existing_slot(g << GRANULE_SHIFT)
                .expect("checked or made above");
            let swapped =
                slot.compare_exchange(ptr::null_mut(), value, Ordering::Release, Ordering::Relaxed);
            // A filled slot would be a run registered over another live one:
            // a broken protocol, not something input can cause.
            debug_assert!(swapped.is_ok(), "a granule registered twice");
        }
        true
    }

    /// Clears the granules of `[start, start + len)` that still name
    /// `owner` (a slot another run owns now is left alone), then counts one
    /// release. Call it before the range's pages go back to the provider.
    pub(crate) fn unregister(&self, start: usize, len: usize, owner: Owner) {
        let value = owner.encode();
        let first = start >> GRANULE_SHIFT;
        let last = (start + len - 1) >> GRANULE_SHIFT;
        for g in first..=last {
            if let Some(slot) = self.existing_slot(g << GRANULE_SHIFT) {
                let _ = slot.compare_exchange(
                    value,
                    ptr::null_mut(),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
        }
        self.releases.fetch_add(1, Ordering::Release);
    }

    /// Maps the map's top if it is missing; `false` if the provider refused.
    #[inline]
    pub(crate) fn prepare<P: PageProvider>(&self, provider: &P, metadata: &AtomicUsize) -> bool {
        self.flat_len.load(Ordering::Acquire) != 0
            || !self.tree.load(Ordering::Acquire).is_null()
            || self.top_for(provider, metadata).is_some()
    }

    /// The map's top (flat array or tree root), set up and published if
    /// missing: the inline array for a small span, else a run from the
    /// provider. It never draws on a reserve: a registration that must not
    /// fail follows an earlier one, which made it.
    fn top_for<P: PageProvider>(&self, provider: &P, metadata: &AtomicUsize) -> Option<*mut u8> {
        let flat_len = self.flat_len.load(Ordering::Acquire);
        if flat_len != 0 {
            return Some(self.flat_array());
        }
        let Some((start, slots)) = flat_extent(provider) else {
            return self.tree_root(provider, metadata);
        };
        if slots > INLINE_SLOTS && self.root.load(Ordering::Acquire).is_null() {
            let bytes = MAPPED_HEADER + slots * SLOT_BYTES;
            let fresh = Self::new_run(provider, bytes, metadata)?;
            // SAFETY: a fresh run of ours, word aligned, with room for the
            // header before the slots.
            unsafe {
                fresh
                    .cast::<MappedFlat>()
                    .write(MappedFlat { start, len: slots })
            };
            if self
                .root
                .compare_exchange(
                    ptr::null_mut(),
                    fresh.as_ptr().wrapping_add(MAPPED_HEADER),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                let len = run_len(provider, bytes);
                // SAFETY: `fresh` is a zeroed run nobody else refers to.
                unsafe { provider.unmap(fresh, len) };
                metadata.fetch_sub(len, Ordering::Relaxed);
            }
        }
        // Published after the array (Release), by every thread that gets
        // here (the winner may not have yet): a reader that sees the slot
        // count sees the array and its start.
        self.flat_start.store(start, Ordering::Relaxed);
        self.flat_len.store(slots, Ordering::Release);
        if slots > INLINE_SLOTS {
            // The winner's header, before its slots.
            let header = self
                .root
                .load(Ordering::Acquire)
                .wrapping_sub(MAPPED_HEADER);
            self.mapped.store(header.cast(), Ordering::Release);
        }
        Some(self.flat_array())
    }

    /// The tree's root, made and published if missing (compare-exchange, as
    /// every node).
    fn tree_root<P: PageProvider>(&self, provider: &P, metadata: &AtomicUsize) -> Option<*mut u8> {
        Self::child(&self.tree, provider, metadata, None)
    }

    /// The tree leaf covering granule `g`, created if missing.
    fn leaf_for<P: PageProvider>(
        provider: &P,
        root: *mut u8,
        g: usize,
        metadata_bytes: &AtomicUsize,
        mut reserve: Option<&mut NodeReserve>,
    ) -> Option<*mut u8> {
        let mut node = root;
        let mut level = LEVELS - 1;
        while level > 0 {
            // SAFETY: `node` is a live, published tree node.
            let slot = unsafe { slot_at(node, tree_index(g, level)) };
            node = Self::child(slot, provider, metadata_bytes, reserve.as_deref_mut())?;
            level -= 1;
        }
        Some(node)
    }

    /// A zeroed run of `bytes` (rounded to pages) from the provider.
    fn new_run<P: PageProvider>(
        provider: &P,
        bytes: usize,
        metadata_bytes: &AtomicUsize,
    ) -> Option<NonNull<u8>> {
        let len = run_len(provider, bytes);
        let fresh = provider.map(len, MIN_PAGE_SIZE)?;
        metadata_bytes.fetch_add(len, Ordering::Relaxed);
        if !provider.zeroed_on_map() {
            // SAFETY: the provider handed us `len >= bytes` writable bytes.
            unsafe { ptr::write_bytes(fresh.as_ptr(), 0, bytes) };
        }
        Some(fresh)
    }

    fn child<P: PageProvider>(
        slot: &AtomicPtr<u8>,
        provider: &P,
        metadata_bytes: &AtomicUsize,
        reserve: Option<&mut NodeReserve>,
    ) -> Option<*mut u8> {
        let node = slot.load(Ordering::Acquire);
        if !node.is_null() {
            return Some(node);
        }
        let (fresh, reserve) = match Self::new_run(provider, NODE_BYTES, metadata_bytes) {
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
            Ok(_) => Some(fresh.as_ptr()),
            Err(winner) => {
                // Another owner published the node first; ours was never
                // seen. Keep it in the reserve if there is one with room.
                if !reserve.is_some_and(|r| r.put(fresh)) {
                    let len = run_len(provider, NODE_BYTES);
                    // SAFETY: `fresh` is a zeroed node nobody else refers to.
                    unsafe { provider.unmap(fresh, len) };
                    metadata_bytes.fetch_sub(len, Ordering::Relaxed);
                }
                Some(winner)
            }
        }
    }

    /// Gives every node back to the provider.
    ///
    /// # Safety
    ///
    /// No other thread may use the map, now or later.
    pub(crate) unsafe fn release_nodes<P: PageProvider>(&mut self, provider: &P) {
        let root = self.root.swap(ptr::null_mut(), Ordering::Relaxed);
        let tree = self.tree.swap(ptr::null_mut(), Ordering::Relaxed);
        let flat_len = self.flat_len.swap(0, Ordering::Relaxed);
        self.mapped
            .store((&raw const NO_MAPPED_FLAT).cast_mut(), Ordering::Relaxed);
        self.flat_used.store(0, Ordering::Relaxed);
        // SAFETY: the tree, if any, is ours alone now.
        unsafe { walk::release_tree(provider, tree) };
        // An inline array (null `root`) has nothing of the provider's.
        if let Some(array) = NonNull::new(root) {
            let run = array.as_ptr().wrapping_sub(MAPPED_HEADER);
            let len = run_len(provider, MAPPED_HEADER + flat_len * SLOT_BYTES);
            // SAFETY: the array's run (its header, then `flat_len` slots,
            // page-rounded) came from `provider`, which only we can see now.
            unsafe { provider.unmap(NonNull::new_unchecked(run), len) };
        }
    }
}
