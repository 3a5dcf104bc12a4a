//! Where the core's arena goes when a heap-efficiency round ends
//! (`--breakdown`): the same rounds as `heap_efficiency.rs` on the core, and
//! at each refused request a walk of the heap through its public
//! introspection (`Heap::visit`, `Heap::stats`, the arena's counters) that
//! puts every byte of the 128 MiB in one bucket. The table gives the mean
//! over the rounds, as a share of the arena.

use fastrand::Rng;
use ft_malloc::{BlockInfo, HeapVisitor, Kind, ZoneInfo};

use crate::arena;
use crate::blocks::LiveBlocks;
use crate::heap_efficiency::{Refused, step};
use crate::peers::{CoreHeap, core_heap};
use crate::spec::ARENA_SIZE;

/// The buckets, in table order.
const BUCKETS: [&str; Bucket::COUNT] = [
    "live requested bytes (the score)",
    "TINY class rounding (block - request)",
    "SMALL class rounding (block - request)",
    "zone headers and metadata (bitmap, sizes, padding)",
    "zone tails (after the last block)",
    "free TINY blocks in zones with live blocks",
    "free SMALL blocks in zones with live blocks",
    "never-carved blocks in zones with live blocks",
    "kept empty zones",
    "LARGE headers (user offset)",
    "LARGE page rounding (usable - request)",
    "LARGE cache (freed runs kept)",
    "page map nodes and other core metadata",
    "arena bitmap",
    "free arena pages (not mapped)",
];

#[derive(Clone, Copy)]
enum Bucket {
    Live,
    TinyRounding,
    SmallRounding,
    ZoneHeaders,
    ZoneTails,
    FreeTiny,
    FreeSmall,
    Uncarved,
    EmptyZones,
    LargeHeaders,
    LargeRounding,
    LargeCache,
    Metadata,
    ArenaBitmap,
    FreePages,
}

impl Bucket {
    const COUNT: usize = 15;
}

/// Bytes per bucket at one moment.
#[derive(Default)]
struct Tally {
    bytes: [usize; Bucket::COUNT],
    /// Offset of block 0 in the zone being walked (known once a block is seen).
    zone_header: Option<usize>,
}

impl Tally {
    fn add(&mut self, bucket: Bucket, bytes: usize) {
        self.bytes[bucket as usize] += bytes;
    }

    /// Closes the zone last reported: its header and tail, known from its
    /// first live block.
    fn close_zone(&mut self, zone: Option<&ZoneInfo>) {
        let (Some(zone), Some(header)) = (zone, self.zone_header.take()) else {
            return;
        };
        self.add(Bucket::ZoneHeaders, header);
        let blocks_end = header + zone.capacity * zone.block_size;
        self.add(Bucket::ZoneTails, zone.len.saturating_sub(blocks_end));
    }
}

/// Walks the heap once.
struct Walk {
    tally: Tally,
    current: Option<ZoneInfo>,
}

impl HeapVisitor for Walk {
    fn zone(&mut self, zone: &ZoneInfo) {
        self.tally.close_zone(self.current.as_ref());
        self.current = Some(*zone);
        match zone.kind {
            Kind::Large => {
                self.tally
                    .add(Bucket::LargeHeaders, zone.len - zone.block_size);
            }
            _ if zone.live == 0 => self.tally.add(Bucket::EmptyZones, zone.len),
            kind => {
                let free = (zone.carved - zone.live) * zone.block_size;
                let bucket = if kind == Kind::Tiny {
                    Bucket::FreeTiny
                } else {
                    Bucket::FreeSmall
                };
                self.tally.add(bucket, free);
                let uncarved = (zone.capacity - zone.carved) * zone.block_size;
                self.tally.add(Bucket::Uncarved, uncarved);
            }
        }
    }

    fn block(&mut self, zone: &ZoneInfo, block: &BlockInfo) {
        self.tally.add(Bucket::Live, block.requested);
        let rounding = block.usable - block.requested;
        match zone.kind {
            Kind::Large => self.tally.add(Bucket::LargeRounding, rounding),
            kind => {
                let bucket = if kind == Kind::Tiny {
                    Bucket::TinyRounding
                } else {
                    Bucket::SmallRounding
                };
                self.tally.add(bucket, rounding);
                if self.tally.zone_header.is_none() {
                    let offset = block.start - zone.start - block.index * zone.block_size;
                    self.tally.zone_header = Some(offset);
                }
            }
        }
    }
}

/// What the rounds add up to.
pub struct Breakdown {
    rounds: usize,
    sums: [f64; Bucket::COUNT],
    /// Bytes no bucket explains (should be 0).
    unexplained: f64,
    refused_allocs: usize,
    refused_reallocs: usize,
    refused_large: usize,
    refused_size_sum: usize,
}

/// Runs `rounds` heap-efficiency rounds on a fresh core heap and tallies
/// the arena at each round's end.
pub fn run(rounds: usize, seed: u64) -> Breakdown {
    let start = arena::start();
    // SAFETY: no allocator lives on the arena outside `Peer::run_fresh_in`,
    // which is not running; this heap is dropped at the end of this function.
    let heap = unsafe {
        arena::scrub(ARENA_SIZE);
        core_heap(start, ARENA_SIZE)
    };
    let mut result = Breakdown {
        rounds,
        sums: [0.0; Bucket::COUNT],
        unexplained: 0.0,
        refused_allocs: 0,
        refused_reallocs: 0,
        refused_large: 0,
        refused_size_sum: 0,
    };
    {
        let mut blocks = LiveBlocks::new(&*heap, "ft_malloc");
        let mut rng = Rng::with_seed(seed);
        for _ in 0..rounds {
            let refused = loop {
                if let Err(refused) = step(&mut blocks, &mut rng) {
                    break refused;
                }
            };
            result.add(&heap, refused);
            blocks.free_all();
        }
    }
    result
}

impl Breakdown {
    fn add(&mut self, heap: &CoreHeap, refused: Refused) {
        let mut walk = Walk {
            tally: Tally::default(),
            current: None,
        };
        heap.visit(&mut walk);
        let current = walk.current.take();
        walk.tally.close_zone(current.as_ref());
        let mut tally = walk.tally;
        let stats = heap.stats();
        let arena = heap.provider();
        tally.add(Bucket::LargeCache, stats.large_cached_bytes);
        let mapped_or_meta = arena.used_bytes();
        // What the arena handed out beyond zones and LARGE runs is metadata.
        tally.add(
            Bucket::Metadata,
            mapped_or_meta.saturating_sub(stats.mapped_bytes),
        );
        tally.add(Bucket::ArenaBitmap, ARENA_SIZE - arena.capacity_bytes());
        tally.add(
            Bucket::FreePages,
            arena.capacity_bytes() - arena.used_bytes(),
        );
        let explained: usize = tally.bytes.iter().sum();
        for (sum, bytes) in self.sums.iter_mut().zip(tally.bytes) {
            *sum += bytes as f64;
        }
        self.unexplained += ARENA_SIZE as f64 - explained as f64;
        if refused.realloc {
            self.refused_reallocs += 1;
        } else {
            self.refused_allocs += 1;
        }
        if refused.size > ft_malloc::SMALL_MAX {
            self.refused_large += 1;
        }
        self.refused_size_sum += refused.size;
    }

    /// The Markdown table and a line about the refused requests.
    pub fn table(&self) -> String {
        let share = |bytes: f64| 100.0 * bytes / self.rounds.max(1) as f64 / ARENA_SIZE as f64;
        let mut out = format!(
            "Where the 128 MiB go when a round ends (ft_malloc, mean of {} rounds)\n\n\
             | bucket | share of the arena |\n|---|---:|\n",
            self.rounds
        );
        for (name, &sum) in BUCKETS.iter().zip(&self.sums) {
            out += &format!("| {name} | {:.2}% |\n", share(sum));
        }
        out += &format!("| unexplained | {:.2}% |\n", share(self.unexplained));
        out += &format!(
            "\nRefused requests: {} allocations, {} reallocations; {} above 32 KiB; mean size {} B\n",
            self.refused_allocs,
            self.refused_reallocs,
            self.refused_large,
            self.refused_size_sum / self.rounds.max(1)
        );
        out
    }
}
