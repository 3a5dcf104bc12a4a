#!/usr/bin/env bash
# Exact instruction counts per operation of every allocator, with callgrind.
#
# Each (allocator, max size) pair runs alone in its own process: `--ops N`
# fixed actions (the same seeded sequence for every allocator), and callgrind
# collects only inside the three functions through which the benchmark calls
# an allocator (blocks.rs: call_alloc, call_dealloc, call_realloc). So the
# count is the allocator's own instructions, lock and memcpy included,
# the harness excluded.
#
# Usage: bench/callgrind.sh [OPS] [SIZES] [ALLOCATORS]
#   defaults: 100000 actions, 200,1000,3000,10000,30000, all five allocators.
# BIN=path overrides the binary (otherwise it is built with cargo).
set -euo pipefail

ops=${1:-100000}
sizes=${2:-200,1000,3000,10000,30000}
allocators=${3:-ft_malloc,talc,rlsf,linked_list,buddy}

if [[ -z "${BIN:-}" ]]; then
    cd "$(dirname "$0")/.."
    cargo build --release -p ft_malloc_bench >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/ft_malloc_bench"
fi
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "Instructions per completed operation (callgrind, $ops actions per run, allocator calls only)"
printf '| %8s |' "max size"
IFS=, read -ra peers <<<"$allocators"
for peer in "${peers[@]}"; do printf ' %11s |' "$peer"; done
printf '\n|----------|'
for _ in "${peers[@]}"; do printf -- '-------------|'; done
echo
IFS=, read -ra size_list <<<"$sizes"
for size in "${size_list[@]}"; do
    printf '| %8s |' "$size"
    for peer in "${peers[@]}"; do
        log="$out/$peer-$size.log"
        valgrind --tool=callgrind --callgrind-out-file="$out/$peer-$size.cg" \
            --toggle-collect='ft_malloc_bench::blocks::call_*' \
            "$BIN" --csv --ops "$ops" --trials 1 --he-rounds 0 \
            --sizes "$size" --allocators "$peer" >"$out/$peer-$size.csv" 2>"$log"
        collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log")
        completed=$(awk -F, 'NR == 2 { print $3 }' "$out/$peer-$size.csv")
        printf ' %11s |' "$(awk -v c="$collected" -v n="$completed" 'BEGIN { printf "%.0f", c / n }')"
    done
    echo
done
