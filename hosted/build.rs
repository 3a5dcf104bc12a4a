//! Links `libft_malloc.so` with its hot functions first (`hot_text.ld`,
//! written by `scripts/hot_text.py`): the kernel maps a library's text 64
//! KiB around each page fault, so functions that every program runs, kept
//! together, leave the rest of the text out of each process's resident set
//! (INTERNALS.md, "The library's own resident pages"). A linker that takes
//! no linker script (mold) links without it when
//! `FT_MALLOC_NO_HOT_TEXT` is set: the same library, laid out as compiled.

fn main() {
    println!("cargo:rerun-if-changed=hot_text.ld");
    println!("cargo:rerun-if-env-changed=FT_MALLOC_NO_HOT_TEXT");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" && std::env::var_os("FT_MALLOC_NO_HOT_TEXT").is_none() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        // A script of `INSERT` commands only adds to the linker's default
        // layout instead of replacing it (GNU ld and LLD alike).
        println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{dir}/hot_text.ld");
    }
}
