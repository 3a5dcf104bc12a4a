//! The free-mark claim of `src/free_mark.rs`, model-checked with loom.
//!
//! One block, its mark's word, and two frees of it at once, every
//! interleaving. Each free checks the block first (the lock-free check of
//! a front cache, or the zone path's validation under the class lock),
//! then claims it, then keeps it (a magazine, or the zone's free list).
//! The model checks that exactly one free keeps the block and that the
//! loser leaves the word as the winner wrote it.
//!
//! A third model races a double free with the hand-out of the same free
//! block by the cache that holds it (`free_mark::take`): the double free
//! may only win if the block was handed out first (then, as far as the
//! heap can tell, it frees the new holder's block).
//!
//! The old protocol (a plain load, then a plain store after the checks) is
//! modelled too, and loom must find the interleaving where both frees keep
//! the block. This is a model of the protocol, not the code itself: the
//! real word lives in a block that loom cannot track; the core's `tests/double_free_race.rs`
//! races the real code.

use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::Relaxed;
use loom::sync::{Arc, Mutex};
use loom::thread;

/// The block's mark (its address mixed with the key).
const MARK: usize = 0xf4ee;
/// What the program left in the mark's word of a handed-out block.
const PROGRAM_BYTES: usize = 0x5a5a;

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    /// Check, then claim with one swap (the fix).
    Claim,
    /// Check with a load, then mark with a store (the old code).
    LoadThenStore,
}

struct Block {
    word: AtomicUsize,
    /// The zone path's class lock (a cache's free takes none).
    class_lock: Mutex<()>,
    /// How many frees kept the block.
    kept: AtomicUsize,
}

impl Block {
    fn new(word: usize) -> Self {
        Block {
            word: AtomicUsize::new(word),
            class_lock: Mutex::new(()),
            kept: AtomicUsize::new(0),
        }
    }

    /// A free: the early check, the claim, then keeping the block. Returns
    /// whether it was accepted.
    fn free(&self, protocol: Protocol, locked: bool) -> bool {
        let _lock = locked.then(|| self.class_lock.lock().unwrap());
        if self.word.load(Relaxed) == MARK {
            return false; // a plain double free, refused early
        }
        let won = match protocol {
            Protocol::Claim => self.word.swap(MARK, Relaxed) != MARK,
            Protocol::LoadThenStore => {
                self.word.store(MARK, Relaxed);
                true
            }
        };
        if won {
            self.kept.fetch_add(1, Relaxed);
        }
        won
    }
}

fn two_frees(protocol: Protocol, second_locked: bool) {
    loom::model(move || {
        let block = Arc::new(Block::new(PROGRAM_BYTES));
        let other = {
            let block = block.clone();
            thread::spawn(move || block.free(protocol, second_locked))
        };
        let first = block.free(protocol, false);
        let second = other.join().unwrap();
        assert!(
            first != second,
            "both racing frees were accepted (or neither)"
        );
        assert_eq!(block.kept.load(Relaxed), 1);
        assert_eq!(block.word.load(Relaxed), MARK, "the loser changed the word");
    });
}

#[test]
fn two_lock_free_frees_accept_exactly_one() {
    two_frees(Protocol::Claim, false);
}

#[test]
fn a_lock_free_and_a_locked_free_accept_exactly_one() {
    two_frees(Protocol::Claim, true);
}

#[test]
#[should_panic(expected = "both racing frees were accepted")]
fn the_old_load_then_store_is_caught_by_the_model() {
    two_frees(Protocol::LoadThenStore, false);
}

#[test]
fn a_double_free_racing_the_hand_out_wins_only_after_it() {
    loom::model(|| {
        // Free, in its holder's cache: the word holds the mark.
        let block = Arc::new(Block::new(MARK));
        let holder = {
            let block = block.clone();
            thread::spawn(move || {
                // `free_mark::take`: a load and a store, then the program
                // owns the block.
                let mark = block.word.load(Relaxed);
                block.word.store(0, Relaxed);
                mark
            })
        };
        let double_free_won = block.free(Protocol::Claim, false);
        let taken = holder.join().unwrap();
        assert_eq!(taken, MARK, "the holder handed out a block it did not hold");
        if double_free_won {
            // The block was handed out first, then freed (by its new
            // holder, as far as the heap can tell): marked, kept once.
            assert_eq!(block.word.load(Relaxed), MARK);
            assert_eq!(block.kept.load(Relaxed), 1);
        } else {
            assert_eq!(block.kept.load(Relaxed), 0);
        }
    });
}
