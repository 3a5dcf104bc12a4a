//! The page-map protocol of `src/page_map.rs`, model-checked with loom.
//!
//! One granule of the map, three threads, every interleaving:
//! - a **releaser** gives back run Z1 (a zone released, shrunk, or a LARGE
//!   run moved away) under its class lock;
//! - a **mapper** gets the same address from the provider the moment it is
//!   free and registers run Z2 there under its own class lock;
//! - a **freer** looks the address up without a lock, takes the lock of the
//!   owner it found, and proves the owner alive with the `releases` count
//!   (or looks again) before it reads the owner's memory.
//!
//! The model checks that the freer never reads a run's memory after it was
//! given back (loom also checks those reads against the writes for data
//! races), that the mapper never finds the slot taken, and that once all is
//! done the slot names Z2 if it was placed. The old order of a LARGE move
//! (give the pages back first, clear the slot after) is modelled too, and
//! loom must find the interleaving where it erases Z2's entry.
//!
//! This is a model of the protocol, not the code itself: the map's real
//! atomics sit in 32 KiB nodes that loom cannot explore. What it proves is
//! the order of operations that `page_map.rs`, `heap.rs` and `realloc.rs`
//! follow, which the deterministic tests in `races.rs` pin on the real code.

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use loom::sync::{Arc, Mutex};
use loom::thread;

const EMPTY: usize = 0;
const Z1: usize = 1;
const Z2: usize = 2;

/// One run: its class, and whether its memory is mapped (what reading its
/// header needs). Only touched under its class lock.
struct Run {
    class: usize,
    mapped: UnsafeCell<bool>,
}

struct World {
    slot: AtomicUsize,
    releases: AtomicUsize,
    class_locks: [Mutex<()>; 2],
    /// The provider: whether the address is free to hand out.
    address_free: Mutex<bool>,
    runs: [Run; 3],
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// The protocol: clear the slot (only if it names Z1), count the
    /// release, then give the pages back.
    UnregisterFirst,
    /// The old LARGE move: the pages go back first, the slot is cleared
    /// after, unconditionally.
    UnregisterLate,
}

impl World {
    fn new(z2_class: usize) -> Self {
        World {
            slot: AtomicUsize::new(Z1),
            releases: AtomicUsize::new(0),
            class_locks: [Mutex::new(()), Mutex::new(())],
            address_free: Mutex::new(false),
            runs: [
                Run {
                    class: 0,
                    mapped: UnsafeCell::new(false),
                },
                Run {
                    class: 0,
                    mapped: UnsafeCell::new(true),
                },
                Run {
                    class: z2_class,
                    mapped: UnsafeCell::new(false),
                },
            ],
        }
    }

    fn give_back_pages(&self, run: usize) {
        self.runs[run].mapped.with_mut(|m| unsafe { *m = false });
        *self.address_free.lock().unwrap() = true;
    }

    fn release_z1(&self, how: Order) {
        let _class = self.class_locks[self.runs[Z1].class].lock().unwrap();
        match how {
            Order::UnregisterFirst => {
                let _ = self.slot.compare_exchange(Z1, EMPTY, Release, Relaxed);
                self.releases.fetch_add(1, Release);
                self.give_back_pages(Z1);
            }
            Order::UnregisterLate => {
                self.give_back_pages(Z1);
                self.slot.store(EMPTY, Release);
                self.releases.fetch_add(1, Release);
            }
        }
    }

    /// Returns whether Z2 was placed at the address. The old code stored
    /// over whatever the slot held; the protocol fills only an empty slot.
    fn map_z2(&self, how: Order) -> bool {
        let _class = self.class_locks[self.runs[Z2].class].lock().unwrap();
        let got = {
            let mut free = self.address_free.lock().unwrap();
            std::mem::replace(&mut *free, false)
        };
        if got {
            self.runs[Z2].mapped.with_mut(|m| unsafe { *m = true });
            if how == Order::UnregisterLate {
                self.slot.store(Z2, Release);
            } else {
                let registered = self.slot.compare_exchange(EMPTY, Z2, AcqRel, Relaxed);
                assert!(registered.is_ok(), "the slot still named a released run");
            }
        }
        got
    }

    /// A free of a pointer at the address: lookup without a lock, then
    /// prove the owner alive before reading its memory (unless `trusting`:
    /// a free that skips the proof, which the model must catch).
    fn free(&self, trusting: bool) {
        let seen = self.releases.load(Acquire);
        let owner = self.slot.load(Acquire);
        if owner == EMPTY {
            return; // refused: not a heap pointer now
        }
        let _class = self.class_locks[self.runs[owner].class].lock().unwrap();
        if !trusting && self.releases.load(Acquire) != seen && self.slot.load(Acquire) != owner {
            return; // refused: the owner went away since the lookup
        }
        let mapped = self.runs[owner].mapped.with(|m| unsafe { *m });
        assert!(
            mapped,
            "read the header of run {owner} after it was given back"
        );
    }
}

fn check(how: Order, z2_class: usize, trusting: bool) {
    loom::model(move || {
        let world = Arc::new(World::new(z2_class));
        let releaser = {
            let world = world.clone();
            thread::spawn(move || world.release_z1(how))
        };
        let mapper = {
            let world = world.clone();
            thread::spawn(move || world.map_z2(how))
        };
        world.free(trusting);
        releaser.join().unwrap();
        let placed = mapper.join().unwrap();
        let expected = if placed { Z2 } else { EMPTY };
        assert_eq!(
            world.slot.load(Relaxed),
            expected,
            "the slot lost the run now at the address"
        );
    });
}

#[test]
fn the_protocol_holds_when_the_new_run_is_of_another_class() {
    check(Order::UnregisterFirst, 1, false);
}

#[test]
fn the_protocol_holds_when_the_new_run_is_of_the_same_class() {
    check(Order::UnregisterFirst, 0, false);
}

#[test]
#[should_panic(expected = "the slot lost the run now at the address")]
fn the_old_late_unregistration_is_caught_by_the_model() {
    check(Order::UnregisterLate, 1, false);
}

#[test]
#[should_panic(expected = "after it was given back")]
fn a_free_that_trusts_its_lookup_is_caught_by_the_model() {
    check(Order::UnregisterFirst, 1, true);
}
