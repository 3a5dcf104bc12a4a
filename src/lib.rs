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
//! As a global allocator, with any `lock_api::RawMutex` (a kernel would pick
//! one that disables interrupts):
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: Heap<MyProvider> = Heap::new(MyProvider::new());
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod alloc;
mod arena;
mod error;
mod free;
mod global;
mod heap;
mod introspect;
mod large;
mod page_map;
mod provider;
mod realloc;
pub mod size_class;
mod zone;

pub use arena::ArenaProvider;
pub use error::{HeapError, ReallocError};
pub use heap::{CorruptionHandler, Heap};
pub use introspect::{BlockInfo, HeapVisitor, Stats, ZoneInfo};
pub use provider::{MIN_PAGE_SIZE, PageProvider};
pub use size_class::{Kind, SizeClass};
