#!/usr/bin/env bash
# Wall time of the hosted C workloads, default vs hardened mode, interleaved:
# every round runs every (workload, library, mode) once, in an order that
# rotates from round to round; prints the medians (ms) and the ratios.
#
# Usage: bench/hardened_wall.sh RUNS LARGE_STEPS LIB...
#   e.g. bench/hardened_wall.sh 5 40000 ./libft_malloc.so
#   Several LIBs (say, before and after a change) are measured side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:?RUNS}; large_steps=${2:?LARGE_STEPS}; shift 2
libs=()
for lib in "$@"; do libs+=("$(realpath "$lib")"); done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for w in small_churn large_churn realloc_strings; do
    gcc -O2 -o "$work/$w" "hosted/bench/$w.c"
done
gcc -O2 -pthread -o "$work/threads" hosted/tests/c/threads.c
declare -A args=([small_churn]="" [large_churn]="$large_steps" [realloc_strings]="" [threads]="")
workloads=(small_churn large_churn realloc_strings threads)
modes=(default hardened)
cases=()
for l in "${!libs[@]}"; do for m in "${modes[@]}"; do cases+=("$l:$m"); done; done
for ((r = 0; r < runs; r++)); do
    for w in "${workloads[@]}"; do
        n=${#cases[@]}
        for ((k = 0; k < n; k++)); do
            c=${cases[$(((k + r) % n))]}
            l=${c%%:*} m=${c#*:}
            env=(env LD_PRELOAD="${libs[$l]}")
            [[ $m == hardened ]] && env+=(FT_MALLOC_HARDENED=1)
            start=$(date +%s%N)
            # shellcheck disable=SC2086
            "${env[@]}" "$work/$w" ${args[$w]} >/dev/null
            echo $((($(date +%s%N) - start) / 1000000)) >>"$work/$w.$l.$m"
        done
    done
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
printf '| workload |'
for l in "${!libs[@]}"; do printf ' lib %s default | lib %s hardened | hardened / default |' "$l" "$l"; done
echo
for w in "${workloads[@]}"; do
    printf '| %s |' "$w"
    for l in "${!libs[@]}"; do
        d=$(median "$work/$w.$l.default") h=$(median "$work/$w.$l.hardened")
        printf ' %s ms | %s ms | %s |' "$d" "$h" "$(awk -v h="$h" -v d="$d" 'BEGIN { printf "%.1f", h / d }')"
    done
    echo
done
for l in "${!libs[@]}"; do echo "lib $l: ${libs[$l]}"; done
