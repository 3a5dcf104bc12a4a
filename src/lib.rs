//! `ft_malloc`: a `no_std` TINY/SMALL/LARGE zone allocator.
//!
//! Requests are sorted into three kinds, as in the ft_malloc project:
//!
//! - **TINY** (up to 128 bytes) and **SMALL** (up to 32 KiB) requests are
//!   rounded up to a size class and served from *zones*: runs of pages
//!   reserved ahead of time, each holding at least 100 blocks of one class,
//!   carved lazily and reused until full.
//! - **LARGE** requests get a page run of their own, returned on free.
//!
//! All memory comes from a [`PageProvider`]: `mmap` in a hosted program,
//! demand-paged frames in a kernel, or a fixed region through
//! [`ArenaProvider`]. The heap never touches memory it does not own: every
//! pointer given to [`Heap::deallocate`] is looked up in a page map before any
//! metadata is trusted, so a bad or double free is reported, not obeyed.
//!
//! # Example
//!
//! ```
//! use core::alloc::Layout;
//! use core::mem::MaybeUninit;
//! use ft_malloc::{ArenaProvider, Heap};
//!
//! static mut REGION: [MaybeUninit<u8>; 1 << 20] = [MaybeUninit::uninit(); 1 << 20];
//!
//! // SAFETY: REGION is used by nothing else.
//! let provider = unsafe { ArenaProvider::new((&raw mut REGION).cast(), 1 << 20) };
//! let heap: Heap<ArenaProvider> = Heap::new(provider);
//!
//! let block = heap.allocate(Layout::from_size_align(100, 16).unwrap()).unwrap();
//! assert_eq!(heap.stats().live_bytes, 100);
//! // SAFETY: `block` came from `heap` and is not used afterwards.
//! unsafe { heap.deallocate(block).unwrap() };
//! // A second free is caught, not obeyed.
//! assert!(unsafe { heap.deallocate(block) }.is_err());
//! ```
//!
//! As a global allocator (`examples/arena_global.rs` runs this), with any
//! [`lock_api::RawMutex`] as the second parameter (a kernel picks one that
//! disables interrupts, such as `IrqSpinLock`):
//!
//! ```no_run
//! use core::mem::MaybeUninit;
//! use ft_malloc::{ArenaProvider, Heap};
//!
//! static mut REGION: [MaybeUninit<u8>; 1 << 20] = [MaybeUninit::uninit(); 1 << 20];
//!
//! #[global_allocator]
//! // SAFETY: REGION is used by nothing but this heap.
//! static HEAP: Heap<ArenaProvider> =
//!     Heap::new(unsafe { ArenaProvider::new((&raw mut REGION).cast(), 1 << 20) });
//! # fn main() {}
//! ```
//!
//! A kernel implements [`PageProvider`] over its frame allocator and page
//! tables (`examples/kernel_provider.rs` is a skeleton over the `x86_64`
//! crate's types). When memory runs out, a handler set with
//! [`Heap::set_oom_handler`] may find more and have the request retried.
//!
//! # Features
//!
//! | feature | adds |
//! |---|---|
//! | `x86_64` | `IrqSpinLock`, a spin lock that keeps interrupts off while held (x86_64, ring 0) |
//! | `allocator-api2` | `allocator_api2::alloc::Allocator` for `Heap` (and `&Heap`), for `allocator_api2::vec::Vec::new_in(&heap)` |
//!
//! None is on by default; without them the crate depends on `spin` and
//! `lock_api` only.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod alloc;
#[cfg(feature = "allocator-api2")]
mod allocator_api;
mod arena;
pub mod cache;
mod canary;
mod error;
mod free;
mod free_mark;
mod global;
mod heap;
mod heap_cache;
mod introspect;
#[cfg(all(feature = "x86_64", target_arch = "x86_64"))]
mod irq_lock;
mod large;
mod oom;
mod page_map;
mod provider;
mod realloc;
mod size_class;
mod span;
mod zone;

pub use arena::ArenaProvider;
pub use cache::FrontCache;
pub use error::{HeapError, ReallocError};
pub use free_mark::{DEFAULT_KEY, set_key};
pub use heap::{CorruptionHandler, Heap};
pub use introspect::{BlockInfo, HeapVisitor, Stats, ZoneInfo};
#[cfg(all(feature = "x86_64", target_arch = "x86_64"))]
pub use irq_lock::IrqSpinLock;
pub use oom::OomHandler;
pub use provider::{MIN_PAGE_SIZE, PageProvider};
pub use size_class::{DEFAULT_ALIGN, Kind, NUM_CLASSES, SMALL_MAX, SizeClass, TINY_MAX};

/// The lock API the heap's `R` parameter comes from, re-exported so a
/// custom lock implements the very `RawMutex` this crate was built with.
pub use lock_api;
