//! What the features put in the library: with default features a Rust
//! program gets the global allocator and nothing else (no C symbol, no
//! load-time constructor); with `c-abi` (the build these tests use, see the
//! dev-dependency in Cargo.toml) the C functions are exported.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The C functions `c-abi` exports.
const C_SYMBOLS: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "reallocf",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "cfree",
    "show_alloc_mem",
    "show_alloc_mem_ex",
    "mallinfo",
    "mallinfo2",
    "malloc_stats",
    "malloc_info",
    "malloc_trim",
    "mallopt",
    "free_sized",
    "free_aligned_sized",
    // C++ operator delete, every form (c_api/cxx.rs).
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
    // C++ operator new, every form (x86_64).
    #[cfg(target_arch = "x86_64")]
    "_Znwm",
    #[cfg(target_arch = "x86_64")]
    "_Znam",
    #[cfg(target_arch = "x86_64")]
    "_ZnwmRKSt9nothrow_t",
    #[cfg(target_arch = "x86_64")]
    "_ZnamRKSt9nothrow_t",
    #[cfg(target_arch = "x86_64")]
    "_ZnwmSt11align_val_t",
    #[cfg(target_arch = "x86_64")]
    "_ZnamSt11align_val_t",
    #[cfg(target_arch = "x86_64")]
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    #[cfg(target_arch = "x86_64")]
    "_ZnamSt11align_val_tRKSt9nothrow_t",
];

/// The defined dynamic symbols of a shared library (`nm -D --defined-only`).
fn exported(lib: &Path) -> Vec<String> {
    symbols(lib, &["-D", "--defined-only"])
}

/// Every symbol name of `lib` (`nm`), mangled.
fn symbols(lib: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("nm")
        .args(args)
        .arg(lib)
        .output()
        .expect("nm runs (binutils)");
    assert!(out.status.success(), "nm {}: {out:?}", lib.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().last().map(str::to_owned))
        .collect()
}

/// Whether the load-time constructor (`c_api::hooks::on_load`, placed in
/// `.init_array`) is in the library.
fn has_load_hook(lib: &Path) -> bool {
    symbols(lib, &[])
        .iter()
        .any(|s| s.contains("hooks") && s.contains("on_load"))
}

/// Builds the cdylib with default features in a target directory of its
/// own (this test run's build uses `c-abi`).
fn default_feature_library() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("default-features");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--lib", "-p", "ft_malloc_hosted"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build of the default features failed"
    );
    target.join("debug/libft_malloc_hosted.so")
}

#[test]
fn default_features_export_no_c_symbol_and_no_load_hook() {
    let lib = default_feature_library();
    let exported = exported(&lib);
    let leaked: Vec<_> = C_SYMBOLS
        .iter()
        .filter(|name| exported.iter().any(|e| e == *name))
        .collect();
    assert!(leaked.is_empty(), "default build exports {leaked:?}");
    assert!(!has_load_hook(&lib), "default build has the load-time hook");
}

#[test]
fn c_abi_exports_every_c_function_and_the_load_hook() {
    let lib = common::library();
    let exported = exported(&lib);
    for name in C_SYMBOLS {
        assert!(
            exported.iter().any(|e| e == name),
            "{name} missing from {}",
            lib.display()
        );
    }
    assert!(has_load_hook(&lib));
}
