//! Shadow-model property test: long random sequences of allocate / aligned
//! allocate / zeroed / realloc (any size, or doubling, as a vector grows) /
//! free / invalid free / double free / realloc of a freed block, checked
//! against a model of the live ranges, over the arena provider and real
//! `mmap`.

// The core's test helpers (real `mmap`, counting providers).
#[path = "../../tests/common/mod.rs"]
mod common;

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;

use common::{Counting, Mmap};
use ft_malloc::{ArenaProvider, Heap, PageProvider};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_log: u32,
        zeroed: bool,
    },
    Realloc {
        pick: usize,
        size: usize,
    },
    /// A realloc to twice the block's size (a vector growing).
    Double {
        pick: usize,
    },
    /// A realloc of a block freed since: refused, nothing changed.
    StaleRealloc {
        pick: usize,
        size: usize,
    },
    Free {
        pick: usize,
    },
    InteriorFree {
        pick: usize,
        offset: usize,
    },
    DoubleFree {
        pick: usize,
    },
    ForeignFree {
        addr: usize,
    },
}

fn size() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![
        6 => 0usize..=128,
        5 => 129usize..=4096,
        2 => 4097usize..=32768,
        1 => 32769usize..=300_000,
    ]
}

/// Sizes for a heap of a few pages: mostly SMALL, so it fills, and its
/// full classes take spans of smaller blocks (`src/span.rs`).
fn small_heap_size() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![
        3 => 0usize..=128,
        6 => 129usize..=2048,
        1 => 2049usize..=8192,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    op_of(size())
}

fn op_of(size: impl Strategy<Value = usize> + Clone) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (size.clone(), prop_oneof![4 => Just(0u32), 1 => 0u32..=13], any::<bool>())
            .prop_map(|(size, align_log, zeroed)| Op::Alloc { size, align_log, zeroed }),
        3 => (any::<usize>(), size.clone()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
        2 => any::<usize>().prop_map(|pick| Op::Double { pick }),
        1 => (any::<usize>(), size).prop_map(|(pick, size)| Op::StaleRealloc { pick, size }),
        6 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => (any::<usize>(), 1usize..4096).prop_map(|(pick, offset)| Op::InteriorFree { pick, offset }),
        1 => any::<usize>().prop_map(|pick| Op::DoubleFree { pick }),
        1 => any::<usize>().prop_map(|addr| Op::ForeignFree { addr }),
    ]
}

struct Live {
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
    seed: u8,
}

/// The model: live blocks, and blocks freed since (not handed out again).
struct Model {
    live: Vec<Live>,
    ranges: BTreeMap<usize, usize>,
    freed: Vec<NonNull<u8>>,
    seed: u8,
}

impl Model {
    fn insert(&mut self, ptr: NonNull<u8>, size: usize, align: usize) -> u8 {
        let start = ptr.as_ptr().addr();
        let end = start + size.max(1);
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(
                e <= start || s >= end,
                "overlap: [{start:#x},{end:#x}) with [{s:#x},{e:#x})"
            );
        }
        self.ranges.insert(start, end);
        self.freed.retain(|p| *p != ptr);
        self.seed = self.seed.wrapping_add(1);
        self.live.push(Live {
            ptr,
            size,
            align,
            seed: self.seed,
        });
        self.seed
    }

    fn remove(&mut self, i: usize) -> Live {
        let l = self.live.swap_remove(i);
        self.ranges.remove(&l.ptr.as_ptr().addr());
        l
    }

    fn bytes(&self) -> usize {
        self.live.iter().map(|l| l.size).sum()
    }
}

fn fill(p: NonNull<u8>, len: usize, seed: u8) {
    for i in (0..len).step_by(61).chain(len.checked_sub(1)) {
        unsafe { p.as_ptr().add(i).write(seed ^ (i as u8)) };
    }
}

/// Whether the first `keep` bytes still hold what `fill(p, written, seed)` wrote.
fn intact(p: NonNull<u8>, keep: usize, written: usize, seed: u8) -> bool {
    (0..written)
        .step_by(61)
        .chain(written.checked_sub(1))
        .filter(|&i| i < keep)
        .all(|i| unsafe { p.as_ptr().add(i).read() } == seed ^ (i as u8))
}

fn run<P: PageProvider>(heap: &Heap<&Counting<P>>, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model {
        live: Vec::new(),
        ranges: BTreeMap::new(),
        freed: Vec::new(),
        seed: 0,
    };
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Alloc {
                size,
                align_log,
                zeroed,
            } => {
                let align = 1usize << align_log;
                let l = Layout::from_size_align(size, align).unwrap();
                let p = if zeroed {
                    heap.allocate_zeroed(l)
                } else {
                    heap.allocate(l)
                };
                let Some(p) = p else { continue }; // exhaustion is allowed
                prop_assert_eq!(p.as_ptr().addr() % align.max(16), 0);
                prop_assert!(heap.usable_size(p).unwrap() >= size);
                if zeroed {
                    let step = if cfg!(miri) { 61 } else { 1 };
                    prop_assert!(
                        (0..size)
                            .step_by(step)
                            .all(|i| unsafe { p.as_ptr().add(i).read() } == 0),
                        "zeroed block not zero"
                    );
                }
                let seed = m.insert(p, size, align);
                fill(p, size, seed);
            }
            Op::Realloc { .. } | Op::Double { .. } => {
                if m.live.is_empty() {
                    continue;
                }
                let (pick, size) = match *op {
                    Op::Realloc { pick, size } => (pick, size),
                    Op::Double { pick } => {
                        let size = m.live[pick % m.live.len()].size;
                        (pick, (size * 2).clamp(1, 300_000))
                    }
                    _ => unreachable!(),
                };
                let i = pick % m.live.len();
                let (old, old_size, align, seed) = (
                    m.live[i].ptr,
                    m.live[i].size,
                    m.live[i].align,
                    m.live[i].seed,
                );
                let l = Layout::from_size_align(size, align).unwrap();
                match unsafe { heap.reallocate(old, l) } {
                    Ok(new) => {
                        m.remove(i);
                        prop_assert_eq!(new.as_ptr().addr() % align.max(16), 0);
                        prop_assert!(heap.usable_size(new).unwrap() >= size);
                        let keep = old_size.min(size);
                        prop_assert!(
                            intact(new, keep, old_size, seed),
                            "contents lost in realloc"
                        );
                        if new != old {
                            m.freed.push(old);
                        }
                        let seed = m.insert(new, size, align);
                        fill(new, size, seed);
                    }
                    Err(e) => {
                        prop_assert_eq!(e, ft_malloc::ReallocError::OutOfMemory);
                        prop_assert!(
                            intact(old, old_size, old_size, seed),
                            "failed realloc touched the block"
                        );
                    }
                }
            }
            Op::Free { pick } => {
                if m.live.is_empty() {
                    continue;
                }
                let l = m.remove(pick % m.live.len());
                prop_assert!(
                    intact(l.ptr, l.size, l.size, l.seed),
                    "block changed while live"
                );
                prop_assert_eq!(unsafe { heap.deallocate(l.ptr) }, Ok(()));
                m.freed.push(l.ptr);
            }
            Op::InteriorFree { pick, offset } => {
                if m.live.is_empty() {
                    continue;
                }
                let l = &m.live[pick % m.live.len()];
                let usable = heap.usable_size(l.ptr).unwrap();
                let p = unsafe { l.ptr.add(offset % usable.max(1)) };
                if p == l.ptr {
                    continue;
                }
                let before = heap.stats();
                prop_assert!(
                    unsafe { heap.deallocate(p) }.is_err(),
                    "interior free accepted"
                );
                prop_assert!(
                    unsafe { heap.reallocate(p, Layout::new::<u64>()) }.is_err(),
                    "interior realloc accepted"
                );
                let after = heap.stats();
                prop_assert_eq!(
                    (before.live_blocks, before.live_bytes),
                    (after.live_blocks, after.live_bytes)
                );
            }
            Op::DoubleFree { pick } => {
                if m.freed.is_empty() {
                    continue;
                }
                let p = m.freed[pick % m.freed.len()];
                let before = heap.stats();
                prop_assert!(
                    unsafe { heap.deallocate(p) }.is_err(),
                    "double free accepted"
                );
                let after = heap.stats();
                prop_assert_eq!(
                    (before.live_blocks, before.live_bytes),
                    (after.live_blocks, after.live_bytes)
                );
            }
            Op::StaleRealloc { pick, size } => {
                if m.freed.is_empty() {
                    continue;
                }
                let p = m.freed[pick % m.freed.len()];
                // A freed LARGE run's pages may hold a new block: only a
                // pointer outside every live block is stale for sure.
                if m.ranges
                    .range(..=p.as_ptr().addr())
                    .next_back()
                    .is_some_and(|(_, &e)| e > p.as_ptr().addr())
                {
                    continue;
                }
                let before = heap.stats();
                prop_assert!(
                    matches!(
                        unsafe { heap.reallocate(p, Layout::from_size_align(size, 8).unwrap()) },
                        Err(ft_malloc::ReallocError::Invalid(_))
                    ),
                    "realloc of a freed block accepted"
                );
                let after = heap.stats();
                prop_assert_eq!(
                    (before.live_blocks, before.live_bytes),
                    (after.live_blocks, after.live_bytes)
                );
            }
            Op::ForeignFree { addr } => {
                let mut local = [0u8; 64];
                let p = if addr % 2 == 0 {
                    NonNull::from(&mut local[addr % 48])
                } else {
                    match NonNull::new(std::ptr::without_provenance_mut(addr & !15)) {
                        Some(p) => p,
                        None => continue,
                    }
                };
                if m.ranges
                    .range(..=p.as_ptr().addr())
                    .next_back()
                    .is_some_and(|(_, &e)| e > p.as_ptr().addr())
                {
                    continue;
                }
                prop_assert!(
                    unsafe { heap.deallocate(p) }.is_err(),
                    "foreign free accepted"
                );
            }
        }
        // `stats` walks the whole heap: check it every few operations.
        if step % 8 == 0 {
            let s = heap.stats();
            prop_assert_eq!(s.live_blocks, m.live.len());
            prop_assert_eq!(s.live_bytes, m.bytes());
        }
    }
    for l in std::mem::take(&mut m.live) {
        prop_assert!(
            intact(l.ptr, l.size, l.size, l.seed),
            "block changed while live"
        );
        prop_assert_eq!(unsafe { heap.deallocate(l.ptr) }, Ok(()));
    }
    heap.trim();
    let s = heap.stats();
    prop_assert_eq!(s.mapped_bytes, 0);
    prop_assert_eq!(
        heap.provider().held(),
        s.metadata_bytes,
        "only the page map remains"
    );
    Ok(())
}

fn config() -> ProptestConfig {
    if cfg!(miri) {
        ProptestConfig {
            cases: 3,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    } else {
        ProptestConfig {
            cases: 256,
            ..ProptestConfig::default()
        }
    }
}

const OPS: usize = if cfg!(miri) { 60 } else { 600 };

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arena_heap_matches_the_model(ops in prop::collection::vec(op(), 1..OPS)) {
        let mut region = vec![0u8; if cfg!(miri) { 8 << 20 } else { 64 << 20 }];
        // SAFETY: `region` outlives the provider and the heap below.
        let provider = Counting::new(unsafe { ArenaProvider::new(region.as_mut_ptr(), region.len()) });
        {
            let heap = Heap::new(&provider);
            run(&heap, &ops)?;
        }
        prop_assert_eq!(provider.held(), 0, "dropping the heap returns every page");
        drop(region);
    }

    /// 96 KiB: full after a few dozen blocks, then churning at the edge
    /// (refusals, spans, LARGE runs of small requests).
    #[test]
    fn small_arena_heap_matches_the_model(ops in prop::collection::vec(op_of(small_heap_size()), 1..OPS)) {
        let mut region = vec![0u8; 96 << 10];
        // SAFETY: `region` outlives the provider and the heap below.
        let provider = Counting::new(unsafe { ArenaProvider::new(region.as_mut_ptr(), region.len()) });
        {
            let heap = Heap::new(&provider);
            run(&heap, &ops)?;
        }
        prop_assert_eq!(provider.held(), 0, "dropping the heap returns every page");
        drop(region);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn mmap_heap_matches_the_model(ops in prop::collection::vec(op(), 1..OPS)) {
        let provider = Counting::new(Mmap);
        {
            let heap = Heap::new(&provider);
            run(&heap, &ops)?;
        }
        prop_assert_eq!(provider.held(), 0, "dropping the heap returns every page");
    }
}
