/* LARGE churn across threads and sizes (mstress's shape): each thread keeps
 * a few blocks of random sizes between 32 KiB and 1 MiB and replaces a
 * random one per step, touching its first and last pages. A freed run
 * should serve a later request of another size or thread instead of an
 * munmap now and an mmap next.
 *
 *   large_threads THREADS STEPS_PER_THREAD
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define KEPT 8
#define MIN_SIZE (32u << 10)
#define MAX_SIZE (1u << 20)

static unsigned long steps;

static void *churn(void *arg) {
    unsigned seed = (unsigned)(unsigned long)arg * 2654435761u;
    char *kept[KEPT] = {0};
    for (unsigned long i = 0; i < steps; i++) {
        seed = seed * 1664525u + 1013904223u;
        unsigned slot = (seed >> 8) % KEPT;
        seed = seed * 1664525u + 1013904223u;
        size_t size = MIN_SIZE + (seed >> 4) % (MAX_SIZE - MIN_SIZE);
        free(kept[slot]);
        kept[slot] = malloc(size);
        if (kept[slot] == NULL) {
            abort();
        }
        kept[slot][0] = (char)i;
        kept[slot][size - 1] = (char)i;
    }
    for (unsigned i = 0; i < KEPT; i++) {
        free(kept[i]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
    steps = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    if (threads < 1 || threads > 64) {
        return 2;
    }
    pthread_t ids[64];
    for (unsigned long t = 0; t < threads; t++) {
        pthread_create(&ids[t], NULL, churn, (void *)(t + 1));
    }
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
    }
    printf("done\n");
    return 0;
}
