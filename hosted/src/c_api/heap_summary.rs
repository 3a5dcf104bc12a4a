//! One walk of the heap summed up the way glibc's `mallinfo` counts: what
//! `mallinfo`, `mallinfo2`, `malloc_stats` and `malloc_info` report.

use ft_malloc::{BlockInfo, HeapVisitor, Kind, NUM_CLASSES, ZoneInfo};

use crate::HEAP;

/// Free blocks of one block size, over every zone of that size.
#[derive(Clone, Copy, Default)]
pub(crate) struct FreeOfSize {
    pub(crate) block_size: usize,
    /// Blocks on the zones' free lists or never carved.
    pub(crate) free: usize,
    /// Blocks free in a front cache or a depot.
    pub(crate) cached: usize,
}

/// The heap, summed.
pub(crate) struct Summary {
    /// Bytes of TINY and SMALL zones mapped (glibc's `arena`).
    pub(crate) zone_bytes: usize,
    /// Usable bytes of live TINY and SMALL blocks (`uordblks`).
    pub(crate) zone_in_use: usize,
    /// Live LARGE runs (`hblks`) and their mapped bytes (`hblkhd`).
    pub(crate) large_runs: usize,
    pub(crate) large_bytes: usize,
    /// Usable bytes of live LARGE blocks.
    pub(crate) large_in_use: usize,
    /// Bytes of freed LARGE runs kept for reuse (`keepcost`: what
    /// `malloc_trim` can give back at once).
    pub(crate) large_cached_bytes: usize,
    /// Free blocks per block size, in size order.
    pub(crate) sizes: [FreeOfSize; NUM_CLASSES],
    pub(crate) size_count: usize,
}

impl Summary {
    /// Sums the heap now (every lock held for the walk).
    pub(crate) fn now() -> Summary {
        let mut summary = Summary {
            zone_bytes: 0,
            zone_in_use: 0,
            large_runs: 0,
            large_bytes: 0,
            large_in_use: 0,
            large_cached_bytes: 0,
            sizes: [FreeOfSize::default(); NUM_CLASSES],
            size_count: 0,
        };
        HEAP.visit(&mut summary);
        summary.large_cached_bytes = HEAP.stats().large_cached_bytes;
        summary.sizes[..summary.size_count].sort_unstable_by_key(|s| s.block_size);
        summary
    }

    /// Free TINY/SMALL blocks outside any cache (`ordblks`), and their bytes.
    pub(crate) fn free_blocks(&self) -> (usize, usize) {
        self.sizes[..self.size_count]
            .iter()
            .fold((0, 0), |(n, b), s| (n + s.free, b + s.free * s.block_size))
    }

    /// Free blocks held by caches (`smblks`, glibc's fastbins and tcache),
    /// and their bytes (`fsmblks`).
    pub(crate) fn cached_blocks(&self) -> (usize, usize) {
        self.sizes[..self.size_count]
            .iter()
            .fold((0, 0), |(n, b), s| {
                (n + s.cached, b + s.cached * s.block_size)
            })
    }

    fn entry(&mut self, block_size: usize) -> &mut FreeOfSize {
        let at = match self.sizes[..self.size_count]
            .iter()
            .position(|s| s.block_size == block_size)
        {
            Some(at) => at,
            None => {
                // One entry per class at most: a class has one block size.
                let at = self.size_count.min(NUM_CLASSES - 1);
                self.sizes[at] = FreeOfSize {
                    block_size,
                    ..FreeOfSize::default()
                };
                self.size_count = at + 1;
                at
            }
        };
        &mut self.sizes[at]
    }
}

impl HeapVisitor for Summary {
    fn zone(&mut self, zone: &ZoneInfo) {
        if zone.kind == Kind::Large {
            self.large_runs += 1;
            self.large_bytes += zone.len;
            self.large_in_use += zone.block_size;
            return;
        }
        self.zone_bytes += zone.len;
        let entry = self.entry(zone.block_size);
        entry.free += zone.capacity.saturating_sub(zone.live + zone.cached);
        entry.cached += zone.cached;
    }

    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        if zone.kind != Kind::Large {
            self.zone_in_use += block.usable;
        }
    }
}
