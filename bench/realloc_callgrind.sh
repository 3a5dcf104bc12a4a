#!/usr/bin/env bash
# Instructions per string-builder round of libft_malloc.so and the C
# allocators it competes with, exact, with callgrind
# (hosted/bench/realloc_rounds.c: malloc(16), realloc in +50% steps to
# 4 KiB, free).
#
# Each allocator runs the program twice, with R and 2R rounds; the
# difference of the two totals divided by R is the cost of one round, with
# process start-up cancelled out.
#
# Usage: bench/realloc_callgrind.sh [LIB] [ROUNDS]
#   LIB: the libft_malloc.so to measure (default ./libft_malloc.so)
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(realpath "${1:-libft_malloc.so}")
rounds=${2:-2000}
command -v valgrind >/dev/null || { echo "realloc_callgrind.sh: valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/realloc_rounds" hosted/bench/realloc_rounds.c

source bench/callgrind_peers.sh

total() { # LIB ROUNDS -> instructions of the whole run
    callgrind_total "$1" "$work/realloc_rounds" "$2"
}

echo "Instructions per round (16 B -> 4 KiB in +50% steps; callgrind, $rounds vs $((2 * rounds)) rounds)"
echo '| allocator | per round |'
echo '|---|---:|'
for name in "${order[@]}"; do
    so=${libs[$name]}
    if [[ -n "$so" && ! -e "$so" ]]; then continue; fi
    a=$(total "$so" "$rounds")
    b=$(total "$so" $((2 * rounds)))
    echo "| $name | $(( (b - a) / rounds )) |"
done
