#!/usr/bin/env bash
# What a debug kernel's allocator costs at opt-level 0, and which profile
# override makes it fast (issue 19; README, "Debug builds of your kernel").
#
# Builds, in a temporary workspace, a crate `kheap` that declares
# `#[global_allocator] static HEAP: Heap<ArenaProvider>` over a 4 MiB static
# region (as a hobby kernel does) and a program `app` that allocates and
# frees an 8-byte box 100,000 times, with the dev profile (opt-level 0),
# then with the overrides below; prints instructions per box (allocation
# plus free, callgrind, only inside `__rust_alloc`/`__rust_dealloc`).
#
# `Heap`'s methods are generic (over the provider and the lock): they are
# compiled in the crate that names the concrete type, here `kheap`, at that
# crate's opt-level, not at ft_malloc's.
#
# Usage: bench/o0_split.sh   (needs valgrind)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "o0_split.sh: valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/kheap/src" "$work/app/src"

cat >"$work/Cargo.toml" <<'TOML'
[workspace]
members = ["kheap", "app"]
resolver = "2"

[profile.dev]
panic = "abort"
TOML
cat >"$work/kheap/Cargo.toml" <<TOML
[package]
name = "kheap"
version = "0.1.0"
edition = "2024"

[dependencies]
ft_malloc = { path = "$root" }
TOML
cat >"$work/kheap/src/lib.rs" <<'RUST'
#![no_std]
use core::mem::MaybeUninit;
use ft_malloc::{ArenaProvider, Heap};

const SIZE: usize = 4 << 20;
#[repr(align(4096))]
struct Region(#[allow(dead_code)] [MaybeUninit<u8>; SIZE]);
static mut REGION: Region = Region([MaybeUninit::uninit(); SIZE]);

#[global_allocator]
// SAFETY: REGION is used by nothing but this heap.
static HEAP: Heap<ArenaProvider> =
    Heap::new(unsafe { ArenaProvider::new((&raw mut REGION).cast(), SIZE) });
RUST
cat >"$work/app/Cargo.toml" <<'TOML'
[package]
name = "app"
version = "0.1.0"
edition = "2024"

[dependencies]
kheap = { path = "../kheap" }
TOML
cat >"$work/app/src/main.rs" <<'RUST'
extern crate kheap;

fn main() {
    for _ in 0..100_000 {
        drop(std::hint::black_box(Box::new(1u64)));
    }
}
RUST

measure() {
    local name=$1
    shift
    (cd "$work" && CARGO_TARGET_DIR="$work/target-$name" cargo "$@" build -q -p app)
    valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg" \
        --toggle-collect='*::__rust_alloc' --toggle-collect='*::__rust_dealloc' \
        "$work/target-$name/debug/app" 2>"$work/$name.log"
    local collected
    collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/$name.log")
    printf '| %-62s | %6.0f |\n' "$name" "$(awk -v c="$collected" 'BEGIN { print c / 100000 }')"
}

echo "Instructions per 8-byte box allocated and freed (dev profile, callgrind)"
printf '| %-62s | %6s |\n' "overrides" "instr."
echo "|----------------------------------------------------------------|--------|"
measure "none (opt-level 0 everywhere)"
measure "ft_malloc at 3" --config 'profile.dev.package.ft_malloc.opt-level=3'
measure "every dependency at 3 (\"*\")" --config 'profile.dev.package."*".opt-level=3'
measure "ft_malloc and kheap (declares the heap) at 3" \
    --config 'profile.dev.package.ft_malloc.opt-level=3' \
    --config 'profile.dev.package.kheap.opt-level=3'
