/* A program that stops using most of its memory must not keep it resident
 * (tests/decay.rs). Phase 1: two threads each build and free a working set
 * of mixed sizes (16 B .. 8 KiB, about 24 MiB each), then exit (their
 * caches go to the shared depots). Phase 2: the main thread keeps working,
 * lightly, in one class only. Prints the resident set after each phase:
 *   "work KIB" (after phase 1) and "idle KIB" (after phase 2).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCKS 12000

static long resident_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        abort();
    }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *work(void *arg) {
    unsigned seed = (unsigned)(unsigned long)arg;
    static __thread void *set[BLOCKS];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            seed = seed * 1664525u + 1013904223u;
            size_t size = 16 + (seed >> 8) % 4096;
            if ((seed >> 4) % 4 == 0) {
                size *= 2;
            }
            set[i] = malloc(size);
            memset(set[i], 1, size);
        }
        for (int i = 0; i < BLOCKS; i++) {
            free(set[i]);
        }
    }
    return NULL;
}

int main(void) {
    pthread_t t[2];
    for (long i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, work, (void *)(i + 7));
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    printf("work %ld\n", resident_kib());
    /* Light work in one class: batches bigger than a cache's magazines,
     * so the cache takes its slow paths now and then (its clock). */
    void *batch[200];
    for (int round = 0; round < 3000; round++) {
        for (int i = 0; i < 200; i++) {
            batch[i] = malloc(64);
        }
        for (int i = 0; i < 200; i++) {
            free(batch[i]);
        }
    }
    printf("idle %ld\n", resident_kib());
    return 0;
}
