//! The region protocol of `src/arena.rs` (`ArenaProvider::add_region`),
//! model-checked with loom.
//!
//! Two threads add a region each while a third maps (under the provider's
//! lock) from whatever regions are ready. In every interleaving: the two
//! adders claim different slots, a mapper that sees a slot's ready bit reads
//! the bitmap its adder wrote (loom checks the read against the write for a
//! data race), and once all is done both regions are ready. Publishing the
//! ready bit *before* writing the bitmap (the order the protocol forbids)
//! must be caught.
//!
//! This is a model of the protocol, not the code itself: the provider's
//! slots hold whole bitmaps behind `UnsafeCell`s that loom cannot
//! instrument. It proves the order of operations `arena.rs` follows.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use loom::thread;

const SLOTS: usize = 2;
/// As in `arena.rs`: the claimed count from this bit up, ready bits below.
const CLAIMED_SHIFT: u32 = 8;

struct Provider {
    slots: AtomicUsize,
    /// A region's "bitmap": its id, written by its adder.
    pages: [UnsafeCell<usize>; SLOTS],
}

#[derive(Clone, Copy)]
enum Order {
    /// Write the bitmap, then set the ready bit with Release.
    Protocol,
    /// Set the ready bit first: a mapper may read a bitmap being written.
    ReadyFirst,
}

impl Provider {
    fn new() -> Self {
        Provider {
            slots: AtomicUsize::new(0),
            pages: [UnsafeCell::new(0), UnsafeCell::new(0)],
        }
    }

    fn add_region(&self, id: usize, how: Order) -> usize {
        // The real claim is a `fetch_update` that refuses past the last
        // slot; with as many adders as slots it is this increment.
        let slot = self.slots.fetch_add(1 << CLAIMED_SHIFT, Relaxed) >> CLAIMED_SHIFT;
        match how {
            Order::Protocol => {
                self.pages[slot].with_mut(|p| unsafe { *p = id });
                self.slots.fetch_or(1 << slot, Release);
            }
            Order::ReadyFirst => {
                self.slots.fetch_or(1 << slot, Release);
                self.pages[slot].with_mut(|p| unsafe { *p = id });
            }
        }
        slot
    }

    /// What `map` does: read the bitmap of every ready slot. (The real one
    /// holds the provider's lock, which orders mappers among themselves;
    /// with one mapper here it would only slow the model down.)
    fn map(&self) -> Vec<usize> {
        let ready = self.slots.load(Acquire);
        (0..SLOTS)
            .filter(|i| ready & (1 << i) != 0)
            .map(|i| self.pages[i].with(|p| unsafe { *p }))
            .collect()
    }
}

fn check(how: Order) {
    // Bounded at 3 preemptions: 2 s. Unbounded, both tests also pass (and
    // the broken order is also caught), in 23 s on the shared 2-core machine.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let provider = Arc::new(Provider::new());
        let adders: Vec<_> = [1, 2]
            .into_iter()
            .map(|id| {
                let provider = provider.clone();
                thread::spawn(move || provider.add_region(id, how))
            })
            .collect();
        let mapper = {
            let provider = provider.clone();
            thread::spawn(move || {
                for id in provider.map() {
                    assert!(id == 1 || id == 2, "a ready slot without its bitmap");
                }
            })
        };
        let slots: Vec<usize> = adders.into_iter().map(|a| a.join().unwrap()).collect();
        mapper.join().unwrap();
        assert_ne!(slots[0], slots[1], "two regions in one slot");
        let mut ids = provider.map();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2], "a region added but never ready");
    });
}

#[test]
fn regions_added_concurrently_are_seen_whole() {
    check(Order::Protocol);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn publishing_before_writing_is_caught_by_the_model() {
    check(Order::ReadyFirst);
}
