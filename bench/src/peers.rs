//! The allocators under test, each built fresh on the shared arena.
//!
//! | name          | crate                         | lock                                  |
//! |---------------|-------------------------------|---------------------------------------|
//! | `ft_malloc`   | this core, `Heap<ArenaProvider>` | its own (spin, per size class)     |
//! | `talc`        | talc 5, `TalcLock<_, Manual>` + `claim` | `spin::Mutex<()>`           |
//! | `rlsf`        | rlsf 0.2, `Tlsf` + `insert_free_block_ptr` | `spin::Mutex` (wrapper below) |
//! | `linked_list` | linked_list_allocator 0.10, `LockedHeap` | its own (`spinning_top`)   |
//! | `buddy`       | buddy_system_allocator 0.13, `LockedHeap<32>` | its own (`spin`)      |
//!
//! A workload is generic over `GlobalAlloc`, so each allocator gets its own
//! monomorphised copy of the same loop: no dynamic dispatch in anyone's path.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;

use crate::arena;
use crate::spec::ARENA_SIZE;

/// Something to run on one freshly built allocator.
pub trait Workload {
    /// What a run yields.
    type Output;
    /// Runs on `allocator`, which `name` identifies.
    fn run<A: GlobalAlloc>(&mut self, allocator: &A, name: &'static str) -> Self::Output;
}

/// One of the allocators under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// This project's core.
    FtMalloc,
    /// talc 5.
    Talc,
    /// rlsf 0.2 (TLSF).
    Rlsf,
    /// linked_list_allocator 0.10.
    LinkedList,
    /// buddy_system_allocator 0.13.
    Buddy,
}

impl Peer {
    /// All of them, the core first (the ratios are against it).
    pub const ALL: [Peer; 5] = [
        Peer::FtMalloc,
        Peer::Talc,
        Peer::Rlsf,
        Peer::LinkedList,
        Peer::Buddy,
    ];

    /// The name used in tables, CSV and `--allocators`.
    pub const fn name(self) -> &'static str {
        match self {
            Peer::FtMalloc => "ft_malloc",
            Peer::Talc => "talc",
            Peer::Rlsf => "rlsf",
            Peer::LinkedList => "linked_list",
            Peer::Buddy => "buddy",
        }
    }

    /// The peer called `name`, if any.
    pub fn from_name(name: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Zeroes the arena, builds this allocator on it, runs `workload`, and
    /// drops the allocator (nothing of it survives the call).
    pub fn run_fresh<W: Workload>(self, workload: &mut W) -> W::Output {
        self.run_fresh_in(ARENA_SIZE, workload)
    }

    /// As [`run_fresh`](Self::run_fresh), on the arena's first `len` bytes
    /// only (`len <= ARENA_SIZE`).
    pub fn run_fresh_in<W: Workload>(self, len: usize, workload: &mut W) -> W::Output {
        assert!(len <= ARENA_SIZE);
        let start = arena::start();
        // SAFETY: the allocator of the previous call was dropped at the end of
        // that call, and nothing keeps pointers into the arena across calls.
        unsafe { arena::scrub(len) };
        let name = self.name();
        // In every arm: the arena's first `len` bytes are writable that no one
        // else uses until the allocator built on it is dropped at the end of
        // the arm. Each allocator is boxed alike.
        match self {
            Peer::FtMalloc => {
                // SAFETY: the region is valid and exclusive for the heap's life (above).
                let heap = unsafe { core_heap(start, len) };
                workload.run(&*heap, name)
            }
            Peer::Talc => {
                let talc: Box<TalcPeer> = Box::new(talc::TalcLock::new(talc::source::Manual));
                // SAFETY: as above; `Manual` allows claiming by hand.
                // (A region too small for talc's metadata runs nothing.)
                if unsafe { talc.lock().claim(start.as_ptr(), len) }.is_none() {
                    return workload.run(&Refuse, name);
                }
                workload.run(&*talc, name)
            }
            Peer::Rlsf => {
                let rlsf = Box::new(RlsfPeer(spin::Mutex::new(rlsf::Tlsf::new())));
                let pool = NonNull::slice_from_raw_parts(start, len);
                // SAFETY: as above; the pool outlives the `Tlsf`, dropped in this arm.
                unsafe { rlsf.0.lock().insert_free_block_ptr(pool) }
                    .expect("rlsf takes a 128 MiB pool");
                workload.run(&*rlsf, name)
            }
            Peer::LinkedList => {
                let heap = Box::new(linked_list_allocator::LockedHeap::empty());
                // SAFETY: as above.
                unsafe { heap.lock().init(start.as_ptr(), len) };
                workload.run(&*heap, name)
            }
            Peer::Buddy => {
                let heap = Box::new(buddy_system_allocator::LockedHeap::<BUDDY_ORDER>::empty());
                // SAFETY: as above; the range was added to no other heap.
                unsafe { heap.lock().init(start.as_ptr().addr(), len) };
                workload.run(&*heap, name)
            }
        }
    }
}

/// The core on the arena's first `len` bytes.
///
/// # Safety
///
/// As in [`Peer::run_fresh_in`]: the bytes were scrubbed, no allocator built
/// on the arena is alive, and the heap is dropped before the next one is built.
pub unsafe fn core_heap(start: NonNull<u8>, len: usize) -> Box<CoreHeap> {
    // SAFETY: per the contract, the region is ours until the heap is dropped.
    let provider = unsafe { ft_malloc::ArenaProvider::new(start.as_ptr(), len) };
    Box::new(ft_malloc::Heap::new(provider))
}

/// The core as the benchmark builds it.
pub type CoreHeap = ft_malloc::Heap<ft_malloc::ArenaProvider>;

/// Refuses everything: what an allocator without a usable region is.
struct Refuse;

// SAFETY: never hands out memory.
unsafe impl GlobalAlloc for Refuse {
    unsafe fn alloc(&self, _: Layout) -> *mut u8 {
        std::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

/// talc behind the same spin lock the core uses by default.
type TalcPeer = talc::TalcLock<spin::Mutex<()>, talc::source::Manual>;

/// Buddy orders: blocks up to 2^31 bytes, more than the arena (the crate's
/// docs use 32 too).
const BUDDY_ORDER: usize = 32;

/// rlsf's bitmap configuration: the one rlsf's own `GlobalTlsf` uses on
/// 64-bit targets (`usize` bitmaps, 64 first-level and 64 second-level lists).
const RLSF_FL_LEN: usize = usize::BITS as usize;
const RLSF_SL_LEN: usize = usize::BITS as usize;

type Tlsf = rlsf::Tlsf<'static, usize, usize, RLSF_FL_LEN, RLSF_SL_LEN>;

/// rlsf has no lock of its own: a `spin::Mutex` around it, nothing more.
struct RlsfPeer(spin::Mutex<Tlsf>);

// SAFETY: every method forwards to rlsf under the lock; rlsf returns blocks
// that satisfy the layout or `None`, and `deallocate`/`reallocate` get the
// alignment the block was allocated with, as rlsf requires.
unsafe impl GlobalAlloc for RlsfPeer {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate(layout)
            .map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of this allocator (GlobalAlloc's
        // contract) allocated with `layout.align()`.
        unsafe {
            self.0
                .lock()
                .deallocate(NonNull::new_unchecked(ptr), layout.align())
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` with the old alignment is a
        // valid layout by GlobalAlloc's contract.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            self.0
                .lock()
                .reallocate(NonNull::new_unchecked(ptr), new_layout)
                .map_or(std::ptr::null_mut(), NonNull::as_ptr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap_efficiency::HeapEfficiency;
    use crate::random_actions::{Budget, RandomActions};

    /// Every peer runs both workloads, briefly, on the real arena. One test,
    /// because the arena is one static and tests run in parallel threads.
    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri")]
    fn every_peer_runs_both_workloads_on_the_arena() {
        for peer in Peer::ALL {
            for max_size in [200, 30000] {
                let mut workload = RandomActions {
                    max_size,
                    warmup: Budget::Actions(500),
                    budget: Budget::Actions(5000),
                    warmup_seed: 1,
                    seed: 2,
                };
                let result = peer.run_fresh(&mut workload);
                // Realloc draws with no live block are the only non-scoring actions,
                // and there are none: the first 300 actions all allocate or realloc.
                assert!(result.ops > 4900, "{peer:?} {max_size}: {result:?}");
                assert_eq!(
                    result.alloc_failures + result.realloc_failures,
                    0,
                    "{peer:?}"
                );
            }
            let efficiency = peer.run_fresh(&mut HeapEfficiency { rounds: 1, seed: 3 });
            // Buddy rounds to powers of two (about 2/3); the others do far better.
            assert!((0.5..1.0).contains(&efficiency), "{peer:?}: {efficiency}");
        }
    }
}
