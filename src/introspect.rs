//! Looking at the heap without changing it: counters, and a walk over every
//! zone and live block in address order (what `show_alloc_mem` prints).
//! Neither allocates.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use lock_api::RawMutex;

use crate::heap::Heap;
use crate::page_map::{GRANULE_SHIFT, Owner};
use crate::provider::PageProvider;
use crate::size_class::{Kind, SizeClass};
use crate::zone::{self, ZoneHeader};

/// Counters of a heap at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes callers asked for, over all live blocks.
    pub live_bytes: usize,
    /// Live blocks (TINY, SMALL and LARGE).
    pub live_blocks: usize,
    /// TINY zones mapped (including kept empty ones).
    pub tiny_zones: usize,
    /// SMALL zones mapped (including kept empty ones).
    pub small_zones: usize,
    /// Live LARGE runs.
    pub large_runs: usize,
    /// Bytes of freed LARGE runs kept for reuse.
    pub large_cached_bytes: usize,
    /// Bytes of zones and LARGE runs (live or cached) mapped from the provider.
    pub mapped_bytes: usize,
    /// Bytes of the page map's nodes, kept until the heap is dropped.
    pub metadata_bytes: usize,
    /// Calls to the provider's `map`, `unmap` and `resize`.
    pub map_calls: usize,
    /// See `map_calls`.
    pub unmap_calls: usize,
    /// See `map_calls`.
    pub resize_calls: usize,
    /// Pointers refused (invalid, double free) and corruption detected.
    pub errors: usize,
}

/// A zone or LARGE run, as [`Heap::visit`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    /// TINY, SMALL or LARGE.
    pub kind: Kind,
    /// First byte of the zone or run.
    pub start: usize,
    /// Length of the zone or run.
    pub len: usize,
    /// Block size of the zone's class; for LARGE, the usable size.
    pub block_size: usize,
    /// Blocks the zone can hold (1 for LARGE).
    pub capacity: usize,
    /// Blocks carved so far (never-used blocks come after these).
    pub carved: usize,
    /// Live blocks.
    pub live: usize,
}

/// A live block, as [`Heap::visit`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Address handed to the caller.
    pub start: usize,
    /// Bytes the caller asked for.
    pub requested: usize,
    /// Bytes the block can hold.
    pub usable: usize,
    /// Position of the block in its zone (0 for LARGE).
    pub index: usize,
}

/// Sums the requested sizes of live blocks.
struct LiveBytes(usize);

impl HeapVisitor for LiveBytes {
    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        self.0 += block.requested;
    }
}

/// Receives the walk of [`Heap::visit`].
pub trait HeapVisitor {
    /// A zone or LARGE run, before its blocks.
    fn zone(&mut self, zone: &ZoneInfo) {
        let _ = zone;
    }
    /// A live block of the zone last reported.
    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        let _ = (zone, block);
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Current counters.
    ///
    /// `live_bytes` is summed over every live block's recorded size (kept
    /// out of the allocation fast path), under every lock: O(live blocks),
    /// and exact. The other counters are read class by class.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        let mut bytes = LiveBytes(0);
        self.visit(&mut bytes);
        s.live_bytes = bytes.0;
        for class in SizeClass::all() {
            let state = self.class(class);
            s.live_blocks += state.live_blocks;
            match class.kind() {
                Kind::Tiny => s.tiny_zones += state.zones as usize,
                _ => s.small_zones += state.zones as usize,
            }
        }
        let large = self.large.lock();
        s.live_blocks += large.runs;
        s.large_runs = large.runs;
        s.large_cached_bytes = large.cached_bytes;
        drop(large);
        let c = &self.counters;
        s.mapped_bytes = c.mapped_bytes.load(Ordering::Relaxed);
        s.metadata_bytes = c.metadata_bytes.load(Ordering::Relaxed);
        s.map_calls = c.map_calls.load(Ordering::Relaxed);
        s.unmap_calls = c.unmap_calls.load(Ordering::Relaxed);
        s.resize_calls = c.resize_calls.load(Ordering::Relaxed);
        s.errors = c.errors.load(Ordering::Relaxed);
        s
    }

    /// Walks every zone and LARGE run in increasing address order, and the
    /// live blocks of each in increasing address order.
    ///
    /// Every lock of the heap is held during the walk, so the picture is
    /// consistent. The visitor must not call into this heap (that would
    /// deadlock), so it must not allocate from it either.
    pub fn visit(&self, visitor: &mut impl HeapVisitor) {
        self.lock_all();
        self.page_map.for_each(|granule, owner| match owner {
            Owner::Zone { base, class } => {
                // A zone registers all its granules: report it at its first.
                if base.as_ptr().addr() >> GRANULE_SHIFT == granule >> GRANULE_SHIFT {
                    // SAFETY: registered zones are live; every lock is held.
                    unsafe { visit_zone(base.cast(), class, visitor) };
                }
            }
            Owner::Large { base } => self.visit_large(base, visitor),
        });
        // SAFETY: taken by `lock_all` above, on this thread.
        unsafe { self.unlock_all() };
    }

    fn visit_large(&self, base: NonNull<u8>, visitor: &mut impl HeapVisitor) {
        // The registered granule holds the user pointer; the header knows
        // its exact offset and `large_block` checks it against the map.
        let Ok(block) = self.large_block(base, self.large_user_of(base)) else {
            return;
        };
        let info = ZoneInfo {
            kind: Kind::Large,
            start: base.as_ptr().addr(),
            len: block.run_len,
            block_size: block.usable(),
            capacity: 1,
            carved: 1,
            live: 1,
        };
        visitor.zone(&info);
        visitor.block(
            &info,
            &BlockInfo {
                start: block.user().as_ptr().addr(),
                requested: block.requested,
                usable: block.usable(),
                index: 0,
            },
        );
    }
}

/// Reports one zone and its live blocks.
///
/// # Safety
///
/// `zone` is a live zone of `class` and its class lock is held.
unsafe fn visit_zone(zone: NonNull<ZoneHeader>, class: SizeClass, visitor: &mut impl HeapVisitor) {
    // SAFETY: per the contract.
    let (len, live, carved) = unsafe {
        (
            zone.as_ref().run_len,
            zone.as_ref().live,
            zone::carved(zone),
        )
    };
    let info = ZoneInfo {
        kind: class.kind(),
        start: zone.as_ptr().addr(),
        len,
        block_size: class.block_size(),
        // SAFETY: per the contract.
        capacity: unsafe { zone::capacity(zone) },
        carved,
        live: live as usize,
    };
    visitor.zone(&info);
    // SAFETY: per the contract.
    unsafe {
        zone::for_each_live(zone, |index| {
            let block = BlockInfo {
                start: zone::block_addr(zone, index),
                requested: zone::requested(zone, index),
                usable: class.block_size(),
                index,
            };
            visitor.block(&info, &block);
        })
    };
}
