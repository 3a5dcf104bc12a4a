//! Links the kernel the way the PVH boot path needs, and only for the kernel
//! target (the host build of this package is a plain program).
//!
//! - `--no-pie`: the 32-bit entry code in `src/boot/entry.s` uses absolute
//!   32-bit addresses, which a position-independent executable cannot hold.
//!   Set here, not in RUSTFLAGS, so a CI that sets its own RUSTFLAGS cannot
//!   drop it.
//! - `linker.ld`: puts the image at 1 MiB physical and defines the symbols
//!   the kernel uses to find its own extent and its `.bss`.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    // `bench-kernel` prints the level it was built at (`make bench-kernel`
    // runs it at 3 and at 0).
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=KERNEL_OPT_LEVEL={opt_level}");
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-T{manifest_dir}/linker.ld");
    }
}
