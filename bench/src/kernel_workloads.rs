//! A small kernel's everyday work (issue 19): six workloads that blog_os's
//! heap tests and a hobby kernel's first subsystems do, each on a fresh
//! allocator over a 4 MiB region, through `GlobalAlloc`.
//!
//! | name        | what one operation is                                        |
//! |-------------|---------------------------------------------------------------|
//! | `boxes`     | allocate and free one 8-byte box (blog_os `many_boxes`)       |
//! | `long_lived`| the same with one box kept live throughout (`many_boxes_long_lived`) |
//! | `vec`       | one realloc of a vector doubled 16 B -> 16 KiB, then dropped (`large_vec`); the first allocation and the final free are counted too |
//! | `fifo64`    | free the oldest of 64 live blocks of 16..1024 B, allocate one |
//! | `random64`  | free a random one of 64 live blocks of 16..1024 B, allocate one |
//! | `random4096`| the same among 4096 live blocks of 16..256 B                  |
//! | `in_place`  | not one of the six: one realloc of a 16000-byte block to 9000 bytes or back, which ft_malloc and talc do in place |
//!
//! The calls go through `blocks::call_*`, so `workloads_callgrind.sh` counts
//! the allocator's instructions alone. The live set is filled before the
//! operations start (that filling is counted too, and amortised over
//! `--ops` operations). Every block gets its first and last byte written
//! and checked, as in `blocks.rs`, so an allocator handing out overlapping
//! blocks is caught.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::VecDeque;

use fastrand::Rng;

use crate::blocks::{call_alloc, call_dealloc, call_realloc};
use crate::peers::Workload;

/// The region every allocator gets, as in the issue.
pub const REGION: usize = 4 << 20;

/// The workloads, by name.
pub const NAMES: [&str; 7] = [
    "boxes",
    "long_lived",
    "vec",
    "fifo64",
    "random64",
    "random4096",
    "in_place",
];

/// One workload, run for `ops` operations.
pub struct KernelWorkload {
    pub name: &'static str,
    pub ops: usize,
    pub seed: u64,
}

/// A live block: where, how big, its tag byte.
#[derive(Clone, Copy)]
struct Live {
    ptr: *mut u8,
    layout: Layout,
    tag: u8,
}

fn alloc<A: GlobalAlloc>(a: &A, name: &str, size: usize, tag: u8) -> Live {
    let layout = Layout::from_size_align(size, 8).expect("valid");
    // SAFETY: size >= 1.
    let ptr = unsafe { call_alloc(a, layout) };
    assert!(!ptr.is_null(), "{name}: out of memory for {size} bytes");
    assert!(ptr.addr().is_multiple_of(8), "{name}: misaligned {ptr:p}");
    // SAFETY: `size >= 1` bytes at `ptr` are ours.
    unsafe {
        ptr.write(tag);
        ptr.add(size - 1).write(tag);
    }
    Live { ptr, layout, tag }
}

fn check(name: &str, b: &Live) {
    // SAFETY: a live block of at least one byte.
    let ok = unsafe { b.ptr.read() == b.tag && b.ptr.add(b.layout.size() - 1).read() == b.tag };
    assert!(ok, "{name}: block {:p} {:?} clobbered", b.ptr, b.layout);
}

fn free<A: GlobalAlloc>(a: &A, name: &str, b: Live) {
    check(name, &b);
    // SAFETY: live, from `a`, with this layout, freed once.
    unsafe { call_dealloc(a, b.ptr, b.layout) };
}

impl Workload for KernelWorkload {
    /// Operations done.
    type Output = usize;

    fn run<A: GlobalAlloc>(&mut self, a: &A, name: &'static str) -> usize {
        let mut rng = Rng::with_seed(self.seed);
        let ops = self.ops;
        match self.name {
            "boxes" | "long_lived" => {
                let kept = (self.name == "long_lived").then(|| alloc(a, name, 8, 1));
                for i in 0..ops {
                    let b = alloc(a, name, 8, (i % 255) as u8 + 1);
                    free(a, name, b);
                }
                if let Some(kept) = kept {
                    free(a, name, kept);
                }
                ops
            }
            "vec" => {
                let rounds = ops.div_ceil(10);
                for _ in 0..rounds {
                    let mut b = alloc(a, name, 16, 7);
                    while b.layout.size() < 16 << 10 {
                        check(name, &b);
                        let new_size = b.layout.size() * 2;
                        // SAFETY: live block of `a`, new size valid.
                        let ptr = unsafe { call_realloc(a, b.ptr, b.layout, new_size) };
                        assert!(!ptr.is_null(), "{name}: realloc to {new_size} failed");
                        // SAFETY: the first byte survived, the new last is ours.
                        unsafe {
                            assert_eq!(ptr.read(), b.tag, "{name}: realloc lost the contents");
                            ptr.add(new_size - 1).write(b.tag);
                        }
                        b.ptr = ptr;
                        b.layout = Layout::from_size_align(new_size, 8).expect("valid");
                    }
                    free(a, name, b);
                }
                rounds * 10
            }
            "fifo64" => {
                let mut live: VecDeque<Live> = (0..64)
                    .map(|i| alloc(a, name, rng.usize(16..=1024), i as u8 + 1))
                    .collect();
                for i in 0..ops {
                    let b = live.pop_front().expect("64 live");
                    free(a, name, b);
                    live.push_back(alloc(a, name, rng.usize(16..=1024), (i % 255) as u8 + 1));
                }
                live.drain(..).for_each(|b| free(a, name, b));
                ops
            }
            "random64" | "random4096" => {
                let (count, max) = if self.name == "random64" {
                    (64, 1024)
                } else {
                    (4096, 256)
                };
                let mut live: Vec<Live> = (0..count)
                    .map(|i| alloc(a, name, rng.usize(16..=max), (i % 255) as u8 + 1))
                    .collect();
                for i in 0..ops {
                    let at = rng.usize(..count);
                    free(a, name, live[at]);
                    live[at] = alloc(a, name, rng.usize(16..=max), (i % 255) as u8 + 1);
                }
                live.drain(..).for_each(|b| free(a, name, b));
                ops
            }
            "in_place" => {
                // Not one of the six: the cost of a realloc that ft_malloc
                // and talc do where the block is (a 16000-byte block
                // resized to 9000 bytes and back).
                let mut b = alloc(a, name, 16000, 7);
                for i in 0..ops {
                    check(name, &b);
                    let new_size = if i % 2 == 0 { 9000 } else { 16000 };
                    // SAFETY: live block of `a`, new size valid.
                    let ptr = unsafe { call_realloc(a, b.ptr, b.layout, new_size) };
                    assert!(!ptr.is_null(), "{name}: realloc to {new_size} failed");
                    // SAFETY: the first byte survived, the new last is ours.
                    unsafe {
                        assert_eq!(ptr.read(), b.tag, "{name}: realloc lost the contents");
                        ptr.add(new_size - 1).write(b.tag);
                    }
                    b.ptr = ptr;
                    b.layout = Layout::from_size_align(new_size, 8).expect("valid");
                }
                free(a, name, b);
                ops
            }
            other => panic!("no workload {other}"),
        }
    }
}
