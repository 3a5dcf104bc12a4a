//! C++ `operator new` and `operator delete`, every form the standard
//! library defines (plain, array, `nothrow`, sized, `align_val_t`), under
//! their Itanium-mangled names, as mimalloc, tcmalloc and jemalloc export
//! them. Without them a C++ program under `LD_PRELOAD` goes through
//! libstdc++'s wrappers around `malloc`: one more call and a loop per
//! allocation, and sized deletes whose size is thrown away.
//!
//! # A failed `new` is libstdc++'s business
//!
//! A throwing `new` that finds no memory must call the installed
//! `std::new_handler` until it finds memory, and throw `std::bad_alloc`
//! when there is no handler; the handler itself may throw. An exception must
//! not unwind through a Rust frame: this workspace builds with
//! `panic = "abort"`, and a foreign exception entering such a frame aborts
//! the process (checked with a `extern "C-unwind"` prototype). So no Rust
//! frame may be on the stack when C++ code runs. Each `new` is therefore a
//! tiny assembly trampoline (a naked function, x86_64):
//!
//! 1. it calls the Rust allocation (`malloc` or `aligned_alloc`, which
//!    never unwinds) and returns its block;
//! 2. on failure it *jumps* (a tail call: its frame is gone) to the same
//!    operator of the next library, found once with
//!    `dlsym(RTLD_NEXT, name)`: libstdc++'s (or libc++'s). That one calls
//!    `malloc`, which is ours again, runs the new-handler loop and throws
//!    `bad_alloc`, exactly as the standard and the C++ runtime in use want;
//!    its `nothrow` forms catch and return NULL.
//!
//! The fast path is the allocation plus a few instructions; only a failure
//! pays for libstdc++'s retry. With no C++ runtime in the process (a C
//! program calling `_Znwm` by hand), a throwing `new` that fails reports and
//! aborts (mimalloc's C build does the same), and a `nothrow` one returns
//! NULL. We rejected a C++ shim compiled by a build script: it would need a
//! C++ compiler for every build and link libstdc++ into C programs, and
//! rustc's version script would hide its symbols anyway.
//!
//! Other architectures export only the `delete` forms: libstdc++'s `new`
//! calls our `malloc`, which is correct, only slower.
//!
//! # Deletes
//!
//! `delete` never throws: plain Rust. The sized forms go through
//! `free_sized`'s path: with `FT_MALLOC_SIZED_CHECK` (hardened mode) a size
//! the block cannot have is reported as misuse and the block kept;
//! otherwise they cost what `free` costs.

use core::ffi::c_void;

use super::alloc::free_plain;
use super::sized::free_with_size;

// ---------------------------------------------------------------------------
// operator delete: 12 forms.

/// Frees a block from any `operator new`.
///
/// # Safety
///
/// As [`free`].
#[inline(always)]
unsafe fn delete(ptr: *mut c_void) {
    // `free`'s gate tells "plain" too: a declined pointer under settings
    // goes to `free`'s settings path.
    free_plain("operator delete", ptr);
}

/// Defines exported `delete` forms that ignore their extra arguments.
macro_rules! plain_deletes {
    ($($symbol:literal => $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        /// `operator delete` (see the module documentation).
        ///
        /// # Safety
        ///
        /// As `free`.
        #[unsafe(export_name = $symbol)]
        pub unsafe extern "C" fn $name(ptr: *mut c_void, $($arg: $ty),*) {
            $(let _ = $arg;)*
            // SAFETY: per the contract.
            unsafe { delete(ptr) }
        }
    )*};
}

plain_deletes! {
    "_ZdlPv" => operator_delete();
    "_ZdaPv" => operator_delete_array();
    "_ZdlPvRKSt9nothrow_t" => operator_delete_nothrow(nothrow: *const c_void);
    "_ZdaPvRKSt9nothrow_t" => operator_delete_array_nothrow(nothrow: *const c_void);
    "_ZdlPvSt11align_val_t" => operator_delete_aligned(align: usize);
    "_ZdaPvSt11align_val_t" => operator_delete_array_aligned(align: usize);
    "_ZdlPvSt11align_val_tRKSt9nothrow_t" =>
        operator_delete_aligned_nothrow(align: usize, nothrow: *const c_void);
    "_ZdaPvSt11align_val_tRKSt9nothrow_t" =>
        operator_delete_array_aligned_nothrow(align: usize, nothrow: *const c_void);
}

/// `operator delete(void*, size_t)`.
///
/// # Safety
///
/// As `free`.
#[unsafe(export_name = "_ZdlPvm")]
pub unsafe extern "C" fn operator_delete_sized(ptr: *mut c_void, size: usize) {
    free_with_size("operator delete", ptr, size);
}

/// `operator delete[](void*, size_t)`.
///
/// # Safety
///
/// As `free`.
#[unsafe(export_name = "_ZdaPvm")]
pub unsafe extern "C" fn operator_delete_array_sized(ptr: *mut c_void, size: usize) {
    free_with_size("operator delete[]", ptr, size);
}

/// `operator delete(void*, size_t, std::align_val_t)`.
///
/// # Safety
///
/// As `free`.
#[unsafe(export_name = "_ZdlPvmSt11align_val_t")]
pub unsafe extern "C" fn operator_delete_sized_aligned(
    ptr: *mut c_void,
    size: usize,
    align: usize,
) {
    let _ = align;
    free_with_size("operator delete", ptr, size);
}

/// `operator delete[](void*, size_t, std::align_val_t)`.
///
/// # Safety
///
/// As `free`.
#[unsafe(export_name = "_ZdaPvmSt11align_val_t")]
pub unsafe extern "C" fn operator_delete_array_sized_aligned(
    ptr: *mut c_void,
    size: usize,
    align: usize,
) {
    let _ = align;
    free_with_size("operator delete[]", ptr, size);
}

// ---------------------------------------------------------------------------
// operator new: 8 forms, x86_64 only (see the module documentation).

#[cfg(target_arch = "x86_64")]
pub use new::*;

#[cfg(target_arch = "x86_64")]
mod new {
    use core::ffi::{CStr, c_void};
    use core::ptr;
    use core::sync::atomic::{AtomicPtr, Ordering};

    use super::super::aligned::aligned_alloc;
    use super::super::alloc::malloc;
    use super::super::{DEFAULT_ALIGN, c_layout, or_enomem};
    use crate::{config, os, report, thread_cache};

    /// `new(size)` without a failure path: our `malloc` (its plain path
    /// inlined, one call less).
    extern "C" fn allocate(size: usize) -> *mut c_void {
        if config::plain() {
            return or_enomem(c_layout(size, DEFAULT_ALIGN).and_then(thread_cache::allocate));
        }
        // SAFETY: `malloc` has no precondition.
        unsafe { malloc(size) }
    }

    /// `new(size, align)` without a failure path: our `aligned_alloc`
    /// (`align` is a power of two, the standard's precondition; anything
    /// else fails and goes to the next library's operator).
    extern "C" fn allocate_aligned(size: usize, align: usize) -> *mut c_void {
        // SAFETY: `aligned_alloc` has no precondition.
        unsafe { aligned_alloc(align, size) }
    }

    /// Where a failed `new` goes: the next library's operator of one name.
    struct Fallback {
        /// The mangled name, for `dlsym`.
        symbol: &'static CStr,
        /// What `dlsym(RTLD_NEXT, symbol)` found; null until looked up.
        next: AtomicPtr<c_void>,
        /// Whether the form is `nothrow` (returns NULL with no runtime).
        nothrow: bool,
    }

    impl Fallback {
        const fn new(symbol: &'static CStr, nothrow: bool) -> Self {
            Fallback {
                symbol,
                next: AtomicPtr::new(ptr::null_mut()),
                nothrow,
            }
        }

        /// The function a failed `new` jumps to, with its own arguments.
        fn target(&self) -> *const c_void {
            let mut next = self.next.load(Ordering::Acquire);
            if next.is_null() {
                // SAFETY: a NUL-terminated name; RTLD_NEXT searches the
                // libraries loaded after this one (the caller of `dlsym`).
                // Two racing threads find the same function.
                next = unsafe { libc::dlsym(libc::RTLD_NEXT, self.symbol.as_ptr()) };
                self.next.store(next, Ordering::Release);
            }
            if !next.is_null() {
                next.cast_const()
            } else if self.nothrow {
                nothrow_without_runtime as *const c_void
            } else {
                throwing_without_runtime as *const c_void
            }
        }
    }

    /// A failed `nothrow` new in a process with no C++ runtime: NULL.
    extern "C" fn nothrow_without_runtime() -> *mut c_void {
        ptr::null_mut()
    }

    /// A failed throwing new in a process with no C++ runtime to throw
    /// `std::bad_alloc`: report and abort.
    extern "C" fn throwing_without_runtime() -> ! {
        report::misuse_line(
            "operator new",
            "out of memory, and no C++ runtime to throw std::bad_alloc",
            ptr::null(),
        );
        os::abort()
    }

    /// Defines one exported `operator new`: a trampoline that returns what
    /// `$fast` (a Rust function that never unwinds) allocates, or else
    /// tail-jumps to the next library's operator of the same name with the
    /// original arguments: `rdi` only for the one-argument forms, `rdi`,
    /// `rsi` and `rdx` for the others (an odd number of pushes keeps the
    /// stack 16-byte aligned for the calls). The frame is described to the
    /// unwinder (`.cfi_*`) so that debuggers and profilers walk through it;
    /// no exception ever does.
    macro_rules! operator_new {
        (@save 1) => { concat!("push rdi\n", ".cfi_def_cfa_offset 16\n") };
        (@restore 1) => { concat!("pop rdi\n", ".cfi_def_cfa_offset 8\n") };
        (@save 3) => {
            concat!(
                "push rdi\n", ".cfi_def_cfa_offset 16\n",
                "push rsi\n", ".cfi_def_cfa_offset 24\n",
                "push rdx\n", ".cfi_def_cfa_offset 32\n",
            )
        };
        (@restore 3) => {
            concat!(
                "pop rdx\n", ".cfi_def_cfa_offset 24\n",
                "pop rsi\n", ".cfi_def_cfa_offset 16\n",
                "pop rdi\n", ".cfi_def_cfa_offset 8\n",
            )
        };
        (
            $symbol:literal,
            $name:ident($($arg:ident: $ty:ty),*),
            saves $saves:tt,
            $fast:path,
            nothrow: $nothrow:literal
        ) => {
            /// `operator new` (see the module documentation).
            ///
            /// # Safety
            ///
            /// None beyond C++'s: the result is uninitialised memory.
            #[unsafe(naked)]
            #[unsafe(export_name = $symbol)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> *mut c_void {
                static FALLBACK: Fallback = Fallback::new(
                    // SAFETY: the literal has no NUL inside.
                    unsafe {
                        CStr::from_bytes_with_nul_unchecked(concat!($symbol, "\0").as_bytes())
                    },
                    $nothrow,
                );
                extern "C" fn fallback() -> *const c_void {
                    FALLBACK.target()
                }
                core::arch::naked_asm!(
                    ".cfi_startproc",
                    operator_new!(@save $saves),
                    "call {fast}",
                    operator_new!(@restore $saves),
                    "test rax, rax",
                    "jz 2f",
                    "ret",
                    "2:",
                    operator_new!(@save $saves),
                    "call {fallback}",
                    operator_new!(@restore $saves),
                    "jmp rax",
                    ".cfi_endproc",
                    fast = sym $fast,
                    fallback = sym fallback,
                )
            }
        };
    }

    operator_new!("_Znwm", operator_new(size: usize), saves 1, allocate, nothrow: false);
    operator_new!("_Znam", operator_new_array(size: usize), saves 1, allocate, nothrow: false);
    operator_new!(
        "_ZnwmRKSt9nothrow_t",
        operator_new_nothrow(size: usize, nothrow: *const c_void),
        saves 3,
        allocate,
        nothrow: true
    );
    operator_new!(
        "_ZnamRKSt9nothrow_t",
        operator_new_array_nothrow(size: usize, nothrow: *const c_void),
        saves 3,
        allocate,
        nothrow: true
    );
    operator_new!(
        "_ZnwmSt11align_val_t",
        operator_new_aligned(size: usize, align: usize),
        saves 3,
        allocate_aligned,
        nothrow: false
    );
    operator_new!(
        "_ZnamSt11align_val_t",
        operator_new_array_aligned(size: usize, align: usize),
        saves 3,
        allocate_aligned,
        nothrow: false
    );
    operator_new!(
        "_ZnwmSt11align_val_tRKSt9nothrow_t",
        operator_new_aligned_nothrow(size: usize, align: usize, nothrow: *const c_void),
        saves 3,
        allocate_aligned,
        nothrow: true
    );
    operator_new!(
        "_ZnamSt11align_val_tRKSt9nothrow_t",
        operator_new_array_aligned_nothrow(size: usize, align: usize, nothrow: *const c_void),
        saves 3,
        allocate_aligned,
        nothrow: true
    );
}
