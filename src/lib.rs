#![doc = include_str!("../README.crate.md")]
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod alloc;
#[cfg(feature = "allocator-api2")]
mod allocator_api;
mod arena;
pub mod cache;
mod canary;
mod coalesce;
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
mod purge;
mod realloc;
mod size_class;
mod span;
mod zone;

pub use arena::{ArenaProvider, MAX_REGIONS, RegionError};
pub use cache::FrontCache;
pub use error::{HeapError, ReallocError};
pub use free_mark::{DEFAULT_KEY, current_key, set_key};
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
