//! `ft_malloc` for Linux programs.
//!
//! This crate puts the core [`ft_malloc::Heap`] in a process:
//!
//! - [`MmapProvider`] gets page runs from the kernel (`mmap`, `munmap`,
//!   `mremap`, `madvise`);
//! - [`FutexMutex`] is the lock: a brief spin, then sleep in `futex(2)`;
//! - [`HEAP`] is the one heap of the process, a `const` static that works
//!   before any constructor has run;
//! - with the `c-abi` feature, the C ABI (`malloc`, `free`, `calloc`,
//!   `realloc`, `reallocarray`, `reallocf`, `posix_memalign`,
//!   `aligned_alloc`, `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`,
//!   `cfree`, `free_sized`, `free_aligned_sized`, glibc's `mallinfo`,
//!   `mallinfo2`, `malloc_stats`, `malloc_info`, `malloc_trim`, `mallopt`,
//!   `show_alloc_mem`, `show_alloc_mem_ex`, `show_alloc_mem_svg`)
//!   makes the `cdylib` a drop-in malloc: `LD_PRELOAD=libft_malloc.so program`, or
//!   `gcc main.c -L. -lft_malloc` (the root Makefile builds it so);
//! - [`FtMalloc`] makes the same heap Rust's global allocator. This is all
//!   the default features give: a Rust program that depends on this crate
//!   gets no C symbol and no load-time constructor, only its own heap (made
//!   fork safe with `pthread_atfork` at the first allocation):
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: ft_malloc_hosted::FtMalloc = ft_malloc_hosted::FtMalloc;
//! ```
//!
//! Rules every module keeps, because this code runs *as* `malloc`: nothing
//! on an allocation path allocates, uses stdio, `dlsym`, Rust's std, or a
//! thread-local with a destructor; nothing unwinds (`panic = "abort"`); every
//! system call leaves `errno` as it was. The crate is `no_std` to make the
//! last-but-one rule visible: std is linked (below) only so that the `cdylib`
//! gets a panic handler, and not even that with `own-panic-handler`. See
//! `hosted/README.md` for the C semantics and the debug environment
//! variables.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// The `cdylib` is a final artifact and needs a panic handler: std's, or with
// `own-panic-handler` the library's (`panic_handler.rs` says why). No module
// below uses `std::` outside its unit tests, except the thread-local slot on
// other architectures than x86_64, where the feature therefore does nothing.
#[cfg(any(test, not(feature = "own-panic-handler"), not(target_arch = "x86_64")))]
extern crate std;

#[cfg(all(feature = "own-panic-handler", target_arch = "x86_64", not(test)))]
mod panic_handler;

// std is what names libc to the linker (the `libc` crate does not); without
// it the library would have no `NEEDED libc.so.6`, and its references to libc
// no symbol versions.
#[cfg(all(feature = "own-panic-handler", target_arch = "x86_64", not(test)))]
#[link(name = "c")]
unsafe extern "C" {}

#[cfg(feature = "c-abi")]
pub mod c_api;
mod config;
mod fd_writer;
mod futex_mutex;
mod global;
mod guard_pages;
#[cfg(feature = "c-abi")]
mod hardened;
#[cfg(feature = "c-abi")]
mod layout;
mod lifecycle;
mod map_limits;
mod os;
mod policy;
mod provider;
mod report;
mod thread_cache;
mod window;

pub use futex_mutex::FutexMutex;
pub use global::FtMalloc;
pub use provider::MmapProvider;

/// The process heap, shared by the C functions and [`FtMalloc`].
pub static HEAP: ft_malloc::Heap<MmapProvider, FutexMutex> =
    ft_malloc::Heap::new(MmapProvider::new());
