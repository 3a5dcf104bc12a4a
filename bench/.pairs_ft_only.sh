#!/usr/bin/env bash
# Instructions per malloc+free pair of libft_malloc.so and the C allocators
# it competes with, exact, with callgrind (hosted/bench/pairs.c).
#
# Each (allocator, size) runs the pairs program twice, with R and 2R rounds
# of 1000 pairs; the difference of the two totals divided by R*1000 is the
# cost of one malloc+free pair, with process start-up and the loop's first
# round cancelled out. Sizes: "mix" (32..88 bytes), 512, 4096.
#
# Usage: bench/pairs_callgrind.sh [LIB] [ROUNDS]
#   LIB: the libft_malloc.so to measure (default ./libft_malloc.so)
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(realpath "${1:-libft_malloc.so}")
rounds=${2:-20}
command -v valgrind >/dev/null || { echo "pairs_callgrind.sh: valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/pairs" hosted/bench/pairs.c

source bench/callgrind_peers.sh; order=(ft_malloc)

total() { # LIB SIZE ROUNDS -> instructions of the whole run
    callgrind_total "$1" "$work/pairs" "$2" "$3"
}

echo "Instructions per malloc+free pair (callgrind; $rounds vs $((2 * rounds)) rounds of 1000 pairs)"
printf '| %-10s |' allocator
for size in mix 512 4096; do printf ' %6s |' "$size"; done
printf '\n|------------|--------|--------|--------|\n'
for name in "${order[@]}"; do
    so=${libs[$name]}
    if [[ -n "$so" && ! -e "$so" ]]; then continue; fi
    printf '| %-10s |' "$name"
    for size in 0 512 4096; do
        a=$(total "$so" "$size" "$rounds")
        b=$(total "$so" "$size" $((2 * rounds)))
        printf ' %6s |' "$(( (b - a) / (rounds * 1000) ))"
    done
    echo
done
