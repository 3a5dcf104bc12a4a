/* Threads that never share a block: each keeps a working set of 1024
 * blocks and replaces a random one per step with a block of a random size
 * between 4 B and 32 KiB, small sizes far more likely than big ones (an
 * inverse-square law, the shape of glibc's bench-malloc-thread). Every
 * class is in steady use, most of them at a low rate: the load on which an
 * idle-class decay measured per event gives memory back and takes it again.
 *
 *   private_churn THREADS STEPS_PER_THREAD
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKING_SET 1024
#define SIZES 8192
#define MIN_SIZE 4.0
#define MAX_SIZE 32768.0

static unsigned sizes[SIZES];
static unsigned long steps;

static unsigned next_random(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void *churn(void *arg) {
    unsigned seed = (unsigned)(unsigned long)arg * 2654435761u;
    void *set[WORKING_SET];
    memset(set, 0, sizeof set);
    for (unsigned long i = 0; i < steps; i++) {
        unsigned slot = next_random(&seed) % WORKING_SET;
        unsigned size = sizes[next_random(&seed) % SIZES];
        free(set[slot]);
        set[slot] = malloc(size);
        if (set[slot] == NULL) {
            abort();
        }
        /* Touch it, as a program would. */
        ((char *)set[slot])[0] = (char)i;
        ((char *)set[slot])[size - 1] = (char)i;
    }
    for (unsigned i = 0; i < WORKING_SET; i++) {
        free(set[i]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    steps = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000000;
    if (threads < 1 || threads > 64) {
        return 2;
    }
    /* Inverse-square sizes: the inverse of the distribution's CDF. */
    unsigned state = 12345;
    double lo = 1.0 / MIN_SIZE, hi = 1.0 / MAX_SIZE;
    for (unsigned i = 0; i < SIZES; i++) {
        double u = (double)(next_random(&state) & 0xffffff) / 0x1000000;
        sizes[i] = (unsigned)(1.0 / (lo - u * (lo - hi)));
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
