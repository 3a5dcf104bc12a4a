//! Multi-threaded stress: the heap as this test binary's
//! `#[global_allocator]` (so the test harness itself runs on it), with
//! blocks handed between threads and freed where they did not come from.

mod common;

use std::sync::mpsc;
use std::thread;

use common::Mmap;
use ft_malloc::{Heap, SizeClass};

#[global_allocator]
static GLOBAL: Heap<Mmap> = Heap::new(Mmap);

const THREADS: usize = 8;
const ROUNDS: usize = 10_000;

/// A tiny xorshift so each thread has its own reproducible sizes.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn size_for(r: u64) -> usize {
    match r % 100 {
        0..=59 => (r >> 8) as usize % 129,
        60..=94 => 129 + (r >> 8) as usize % 8000,
        _ => 32 * 1024 + (r >> 8) as usize % 200_000,
    }
}

#[test]
fn threads_allocate_and_free_each_others_blocks() {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Vec<u8>>()).unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let to_next = senders[(t + 1) % THREADS].clone();
            thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let mut mine: Vec<Vec<u8>> = Vec::new();
                for round in 0..ROUNDS {
                    let r = next(&mut rng);
                    let tag = (r >> 56) as u8;
                    let mut v = vec![tag; size_for(r)];
                    if r.is_multiple_of(3) {
                        v.resize(size_for(next(&mut rng)), tag);
                    }
                    if round % 2 == 0 {
                        let _ = to_next.send(v);
                    } else {
                        mine.push(v);
                    }
                    if mine.len() > 64 {
                        let v = mine.swap_remove(r as usize % mine.len());
                        assert!(v.iter().all(|b| *b == v.first().copied().unwrap_or(0)));
                    }
                    while let Ok(v) = rx.try_recv() {
                        let first = v.first().copied().unwrap_or(0);
                        assert!(
                            v.iter().all(|b| *b == first),
                            "block from another thread corrupted"
                        );
                    }
                }
                drop(to_next);
                mine.len()
            })
        })
        .collect();
    drop(senders);
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(GLOBAL.stats().errors, 0);
}

#[test]
fn batch_refill_and_flush_across_threads() {
    static HEAP: Heap<Mmap> = Heap::new(Mmap);
    let class = SizeClass::for_size(96).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                let mut batch = [std::ptr::null_mut(); 32];
                for i in 0..2_000 {
                    let n = HEAP.refill(class, &mut batch);
                    assert_eq!(n, batch.len());
                    for p in &batch {
                        unsafe { p.write_bytes((t * 31 + i) as u8, 96) };
                    }
                    unsafe { HEAP.flush(class, &batch) }.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = HEAP.stats();
    assert_eq!((s.live_blocks, s.live_bytes, s.errors), (0, 0, 0));
}
