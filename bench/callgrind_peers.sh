# Sourced by the hosted callgrind scripts (pairs_callgrind.sh,
# realloc_callgrind.sh): the allocators measured, in order, and the
# instruction count of one whole run of a program under one of them.
#
# Needs: $lib (the libft_malloc.so to measure) and $work (a scratch
# directory) set by the caller.

declare -A libs=(
    [ft_malloc]="$lib"
    [glibc]=""
    [jemalloc]=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
    [mimalloc]=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
    [tcmalloc]=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
)
order=(ft_malloc glibc jemalloc mimalloc tcmalloc)

# callgrind_total LIB PROGRAM ARGS... -> instructions of the whole run,
# preloading LIB (none: glibc's own malloc).
callgrind_total() {
    local so=$1 preload=() out="$work/cg.$RANDOM"
    shift
    [[ -n "$so" ]] && preload=(env LD_PRELOAD="$so")
    "${preload[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$@" >/dev/null 2>&1
    awk '/^summary:/ { print $2 }' "$out"
}
