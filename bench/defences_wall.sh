#!/usr/bin/env bash
# CPU time (user + system) of the hosted C workloads under each hardened-mode
# defence alone, all of them, and none, for one or more libraries (say,
# before and after a change), interleaved: every round runs every (workload,
# library, mode) once, in an order that rotates from round to round. Prints
# the medians (ms; LARGE pairs in ns per malloc+free pair) as a markdown
# table. CPU time, not wall time: on a machine shared with other jobs the
# wall time of a run mostly measures them (a load average of 12 on 2 cores
# made the same run vary 3x); `threads` sums its threads' CPU time.
#
# Usage: bench/defences_wall.sh RUNS LIB...
#   e.g. bench/defences_wall.sh 3 BEFORE.so ./libft_malloc.so
# Workloads: small_churn 5,000,000 steps, large_churn 4,000 steps,
# realloc_strings, threads, and hosted/bench/large_pair.c at 40 KB, 200 KB
# and 2 MiB (one block malloc'ed, its first byte written, freed).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:?RUNS}; shift
libs=()
for lib in "$@"; do libs+=("$(realpath "$lib")"); done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for w in small_churn large_churn realloc_strings large_pair; do
    gcc -O2 -o "$work/$w" "hosted/bench/$w.c"
done
gcc -O2 -pthread -o "$work/threads" hosted/tests/c/threads.c
workloads=(small_churn large_churn realloc_strings threads pair_40k pair_200k pair_2m)
declare -A cmd=(
    [small_churn]="small_churn 5000000" [large_churn]="large_churn 4000"
    [realloc_strings]="realloc_strings" [threads]="threads"
    [pair_40k]="large_pair 40000 2000" [pair_200k]="large_pair 200000 2000"
    [pair_2m]="large_pair 2097152 500"
)
modes=(default CANARY QUARANTINE GUARD_PAGES ZERO_ON_FREE RANDOM_SLOTS SIZED_CHECK HARDENED)
cases=()
for l in "${!libs[@]}"; do for m in "${modes[@]}"; do cases+=("$l:$m"); done; done
for ((r = 0; r < runs; r++)); do
    for w in "${workloads[@]}"; do
        n=${#cases[@]}
        for ((k = 0; k < n; k++)); do
            c=${cases[$(((k + r) % n))]}
            l=${c%%:*} m=${c#*:}
            env=(env LD_PRELOAD="${libs[$l]}")
            [[ $m != default ]] && env+=("FT_MALLOC_$m=1")
            # shellcheck disable=SC2086
            set -- ${cmd[$w]}
            prog=$1; shift
            if [[ $w == pair_* ]]; then
                "${env[@]}" "$work/$prog" "$@" >>"$work/$w.$l.$m"
            else
                /usr/bin/time -f '%U %S' -o "$work/time" "${env[@]}" "$work/$prog" "$@" >/dev/null
                awk '{ printf "%d\n", ($1 + $2) * 1000 }' "$work/time" >>"$work/$w.$l.$m"
            fi
        done
    done
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '| lib | mode |'
for w in "${workloads[@]}"; do printf ' %s |' "$w"; done
echo
for l in "${!libs[@]}"; do
    for m in "${modes[@]}"; do
        printf '| %s | %s |' "$l" "$m"
        for w in "${workloads[@]}"; do printf ' %s |' "$(median "$work/$w.$l.$m")"; done
        echo
    done
done
for l in "${!libs[@]}"; do echo "lib $l: ${libs[$l]}"; done
