/* How long an impossible request takes to fail, with a populated heap
 * (200,000 small blocks allocated, every other one freed): 200 calls per
 * size, nanoseconds per call. BENCHMARKS.md, "Impossible requests". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define LIVE 200000
#define CALLS 200

static void *live[LIVE];

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
    for (int i = 0; i < LIVE; i++)
        live[i] = malloc(16 + (i % 64) * 16);
    for (int i = 0; i < LIVE; i += 2)
        free(live[i]);
    const size_t sizes[] = {PTRDIFF_MAX - 4096, (size_t)1 << 47, (size_t)1 << 46,
                            (size_t)1 << 44, (size_t)1 << 40};
    for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        double start = now_ns();
        int failed = 0;
        for (int k = 0; k < CALLS; k++) {
            void *p = malloc(sizes[i]);
            failed += p == NULL;
            free(p);
        }
        printf("%#zx %.0f ns %d/%d failed\n", sizes[i], (now_ns() - start) / CALLS, failed, CALLS);
    }
    return 0;
}
