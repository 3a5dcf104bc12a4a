#!/usr/bin/env bash
# Instructions per operation of a small kernel's six everyday workloads
# (bench/src/kernel_workloads.rs, issue 19), exact, with callgrind: each
# (workload, allocator) pair runs alone, on a fresh allocator over a 4 MiB
# region, and callgrind collects only inside blocks.rs's call_alloc,
# call_dealloc and call_realloc (the allocator's instructions, lock included).
#
# Usage: bench/workloads_callgrind.sh [OPS] [WORKLOADS] [ALLOCATORS]
#   defaults: 100000 operations, all six workloads, ft_malloc,talc,linked_list.
#   A seventh, in_place (a realloc within its block), runs only when named.
# BIN=path overrides the binary; PROFILE=dev measures a debug build
# (opt-level 0, what a kernel's default dev profile builds dependencies at).
set -euo pipefail

ops=${1:-100000}
workloads=${2:-boxes,long_lived,vec,fifo64,random64,random4096}
allocators=${3:-ft_malloc,talc,linked_list}
profile=${PROFILE:-release}

if [[ -z "${BIN:-}" ]]; then
    cd "$(dirname "$0")/.."
    if [[ $profile == release ]]; then
        cargo build --release -p ft_malloc_bench >&2
        BIN="${CARGO_TARGET_DIR:-target}/release/ft_malloc_bench"
    else
        cargo build -p ft_malloc_bench >&2
        BIN="${CARGO_TARGET_DIR:-target}/debug/ft_malloc_bench"
    fi
fi
command -v valgrind >/dev/null || { echo "workloads_callgrind.sh: valgrind is not installed" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "Instructions per operation (callgrind, $ops operations, $profile build, allocator calls only)"
printf '| %-11s |' "workload"
IFS=, read -ra peers <<<"$allocators"
for peer in "${peers[@]}"; do printf ' %11s |' "$peer"; done
printf '\n|-------------|'
for _ in "${peers[@]}"; do printf -- '-------------|'; done
echo
IFS=, read -ra list <<<"$workloads"
for w in "${list[@]}"; do
    printf '| %-11s |' "$w"
    for peer in "${peers[@]}"; do
        log="$out/$peer-$w.log"
        valgrind --tool=callgrind --callgrind-out-file="$out/$peer-$w.cg" \
            --toggle-collect='ft_malloc_bench::blocks::call_*' \
            "$BIN" --kernel-workload "$w" --ops "$ops" --allocators "$peer" \
            >"$out/$peer-$w.csv" 2>"$log"
        collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log")
        done_ops=$(awk -F, '{ print $3 }' "$out/$peer-$w.csv")
        printf ' %11s |' "$(awk -v c="$collected" -v n="$done_ops" 'BEGIN { printf "%.0f", c / n }')"
        if [[ -n "${KEEP:-}" ]]; then cp "$out/$peer-$w.cg" "$KEEP/$peer-$w.cg"; fi
    done
    echo
done
