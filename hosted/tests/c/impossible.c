/* Impossible requests fail at once and leave the heap's caches alone: a
 * freed 8 MiB block stays cached (mallinfo2().keepcost) across requests no
 * trim could satisfy (beyond the address space, beyond RAM + swap under the
 * default overcommit heuristic, beyond RLIMIT_AS). Prints "ok ..." lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

static void impossible(size_t size, const char *what) {
    size_t kept = mallinfo2().keepcost;
    errno = 0;
    void *p = malloc(size);
    int failed = p == NULL && errno == ENOMEM;
    size_t still = mallinfo2().keepcost;
    free(p);
    char line[160];
    snprintf(line, sizeof line, "%s: ENOMEM, cached run kept (%zu -> %zu)", what, kept, still);
    check(failed && still == kept && kept >= (8u << 20), line);
}

int main(void) {
    /* Twice: the first free of a run this long is unmapped (and raises the
     * cache threshold, as glibc's mmap threshold), the second is cached. */
    free(malloc(8u << 20));
    free(malloc(8u << 20));
    impossible((size_t)1 << 47, "beyond the address space");
    impossible((size_t)1 << 46, "beyond RAM + swap");
    struct rlimit limit = {1u << 30, RLIM_INFINITY};
    setrlimit(RLIMIT_AS, &limit);
    impossible((size_t)2 << 30, "beyond RLIMIT_AS");
    return failures != 0;
}
