//! Looking at the heap without changing it: counters, a walk over every
//! zone and live block in address order (what `show_alloc_mem` prints), and
//! pictures drawn from that walk (`introspect/`: `picture.rs` the rules,
//! `svg.rs` and `text_map.rs` the two drawings). None of them allocates.

mod picture;
mod svg;
mod text_map;

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use lock_api::RawMutex;

use crate::heap::Heap;
use crate::page_map::{GRANULE_SHIFT, Owner};
use crate::provider::PageProvider;
use crate::size_class::{Kind, SizeClass};
use crate::span;
use crate::zone::{self, ZoneHeader};

/// Counters of a heap at one moment.
///
/// More counters may come, hence `#[non_exhaustive]`: read the fields, start
/// from `Stats::default()` to build one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes callers asked for, over all live blocks.
    pub live_bytes: usize,
    /// Live blocks (TINY, SMALL and LARGE), handed out to the program.
    pub live_blocks: usize,
    /// Free TINY and SMALL blocks held by front caches, by the classes'
    /// depots of magazines and by the heap's own per-class stacks (`trim`
    /// gives the depots' and the stacks' back to the zones).
    pub cached_blocks: usize,
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

/// A zone or LARGE run, as [`Heap::visit`] reports it (more fields may
/// come, hence `#[non_exhaustive]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Live blocks (handed out to the program).
    pub live: usize,
    /// Blocks the zone lent to a front cache or a depot that holds them,
    /// free, for reuse: neither live nor on the zone's free list.
    pub cached: usize,
}

/// A live block, as [`Heap::visit`] reports it (more fields may come,
/// hence `#[non_exhaustive]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

/// Sums the requested sizes of live blocks, and counts cached ones.
#[derive(Default)]
struct LiveBytes {
    bytes: usize,
    blocks: usize,
    cached: usize,
}

impl HeapVisitor for LiveBytes {
    fn zone(&mut self, zone: &ZoneInfo) {
        self.cached += zone.cached;
    }
    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        self.bytes += block.requested;
        self.blocks += 1;
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
    /// `live_bytes`, `live_blocks` and `cached_blocks` come from one walk of
    /// every block under every lock: O(live blocks), and exact. The other
    /// counters are read class by class.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        let mut bytes = LiveBytes::default();
        self.visit(&mut bytes);
        s.live_bytes = bytes.bytes;
        s.live_blocks = bytes.blocks;
        s.cached_blocks = bytes.cached;
        for class in SizeClass::all() {
            let state = self.class(class);
            match class.kind() {
                Kind::Tiny => s.tiny_zones += state.zones as usize,
                _ => s.small_zones += state.zones as usize,
            }
        }
        // Pool segments and bare runs count as SMALL zones.
        s.small_zones += self.pool.lock().segments as usize;
        let large = self.large.lock();
        s.large_runs = large.runs;
        s.large_cached_bytes = large.cache.bytes;
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
        // SAFETY: every lock was just taken, and is released below.
        unsafe { self.walk(visitor) };
        // SAFETY: taken by `lock_all` above, on this thread.
        unsafe { self.unlock_all() };
    }

    /// Writes an SVG image of the heap into `out`: one row per zone (its
    /// slots as cells coloured live, partly live, free or never carved,
    /// several slots per cell in large zones) and one bar per LARGE run, to
    /// one scale for the picture. The image's legend states the rules.
    ///
    /// The heap's locks are held while `out` is written, as in
    /// [`visit`](Self::visit): `out` must not allocate from this heap (a
    /// `String` is fine for a heap that is not the global allocator; the
    /// hosted `show_alloc_mem_svg` writes to a file descriptor from the
    /// stack).
    pub fn write_svg(&self, out: &mut impl fmt::Write) -> fmt::Result {
        self.measure_then(|heap, extent| {
            let mut svg = svg::Svg::new(out, extent);
            svg.head()?;
            // SAFETY: `measure_then` holds every lock.
            unsafe { heap.walk(&mut svg) };
            svg.end()
        })
    }

    /// Writes the heap as text, one line per zone (64 cells: `#` live, `+`
    /// partly live, `.` free, `_` never carved) and per LARGE run (a bar to
    /// one scale), after a one-line legend. With `color`, cells also get
    /// ANSI background colours (for a terminal). Same rules for `out` as
    /// [`write_svg`](Self::write_svg).
    pub fn write_text_picture(&self, out: &mut impl fmt::Write, color: bool) -> fmt::Result {
        self.measure_then(|heap, extent| {
            let mut text = text_map::Text::new(out, extent, color);
            text.head()?;
            // SAFETY: `measure_then` holds every lock.
            unsafe { heap.walk(&mut text) };
            text.end()
        })
    }

    /// Under one hold of every lock, measures the heap (rows, scale) and
    /// hands the measure to `draw`, so the drawing sees the same heap.
    fn measure_then(
        &self,
        draw: impl FnOnce(&Self, &picture::Extent) -> fmt::Result,
    ) -> fmt::Result {
        self.lock_all();
        let mut extent = picture::Extent::default();
        // SAFETY: every lock was just taken.
        unsafe { self.walk(&mut extent) };
        let result = draw(self, &extent);
        // SAFETY: taken by `lock_all` above, on this thread.
        unsafe { self.unlock_all() };
        result
    }

    /// The walk of [`visit`](Self::visit), without taking the locks.
    ///
    /// # Safety
    ///
    /// The calling thread holds every lock of the heap (`lock_all`).
    unsafe fn walk(&self, visitor: &mut impl HeapVisitor) {
        self.page_map.for_each(|granule, owner| match owner {
            Owner::Zone { base, class } => {
                // A zone registers all its granules: report it at its first.
                if base.as_ptr().addr() >> GRANULE_SHIFT == granule >> GRANULE_SHIFT {
                    // SAFETY: registered zones are live; every lock is held.
                    unsafe { visit_zone(base.cast(), class, visitor) };
                }
            }
            Owner::Large { base } => self.visit_large(base, visitor),
            // Pool runs register every granule: report each at its first.
            Owner::Pool { base } | Owner::Bare { base }
                if base.as_ptr().addr() >> GRANULE_SHIFT == granule >> GRANULE_SHIFT =>
            {
                match owner {
                    Owner::Pool { .. } => self.visit_pool(base, visitor),
                    _ => self.visit_bare(base, visitor),
                }
            }
            Owner::Pool { .. } | Owner::Bare { .. } => {}
        });
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
            cached: 0,
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

/// A short summary from the heap's atomic counters: takes no lock, so it
/// never waits and is safe to print from a handler that may have
/// interrupted the heap (use [`Heap::stats`] for the full, locked picture).
impl<P: PageProvider, R: RawMutex> fmt::Debug for Heap<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        f.debug_struct("Heap")
            .field("mapped_bytes", &c.mapped_bytes.load(Ordering::Relaxed))
            .field("metadata_bytes", &c.metadata_bytes.load(Ordering::Relaxed))
            .field("map_calls", &c.map_calls.load(Ordering::Relaxed))
            .field("unmap_calls", &c.unmap_calls.load(Ordering::Relaxed))
            .field("resize_calls", &c.resize_calls.load(Ordering::Relaxed))
            .field("errors", &c.errors.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Reports one zone and its live blocks.
///
/// # Safety
///
/// `zone` is a live zone of `class` and its class lock is held.
unsafe fn visit_zone(zone: NonNull<ZoneHeader>, class: SizeClass, visitor: &mut impl HeapVisitor) {
    // SAFETY: per the contract.
    let (len, lent, carved) = unsafe {
        (
            zone::state(zone).run_len(),
            zone::state(zone).live,
            zone::carved(zone),
        )
    };
    // The zone counts the blocks it lent out; those a cache keeps say so in
    // their size slot. Only the slots are read, never a block: a held
    // block's bytes are its holder's (`zone/sizes.rs`).
    let cached_size = zone::cached_size(class.size_width());
    let mut cached = 0;
    // SAFETY: per the contract: the slots of a live zone's lent blocks.
    unsafe {
        zone::for_each_live(zone, |index| {
            cached += (zone::requested(zone, index) == cached_size) as usize;
        })
    };
    let info = ZoneInfo {
        kind: class.kind(),
        start: zone.as_ptr().addr(),
        len,
        block_size: class.block_size(),
        // SAFETY: per the contract.
        capacity: unsafe { zone::capacity(zone) },
        carved,
        live: lent as usize - cached,
        cached,
    };
    visitor.zone(&info);
    // SAFETY: per the contract.
    unsafe {
        zone::for_each_live(zone, |index| {
            let requested = zone::requested(zone, index);
            if requested == cached_size || requested == span::FOLLOWER {
                // Kept by a cache; or part of the span reported at its head.
                return;
            }
            let block_size = class.block_size();
            let block = BlockInfo {
                start: zone::block_addr(zone, index),
                requested,
                usable: span::blocks_for(requested, block_size) * block_size,
                index,
            };
            visitor.block(&info, &block);
        })
    };
}
