/* Shared by the misuse programs (hosted/tests/misuse.rs): markers written
 * with write(2), so they are out before an abort or a fault, and a heap
 * check run after the misuse. Each program prints "misuse" just before the
 * misuse, then "survived" once the heap check passed. */
#ifndef MISUSE_H
#define MISUSE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void say(const char *line) {
    if (write(1, line, strlen(line)) < 0 || write(1, "\n", 1) < 0)
        _exit(3);
}

/* Blocks of many sizes, each filled with its own pattern, checked, freed:
 * exits 2 if any block came back overlapping another or changed. */
static inline void heap_intact(void) {
    enum { N = 2000 };
    static unsigned char *blocks[N];
    for (int i = 0; i < N; i++) {
        size_t size = 1 + (size_t)i * 37 % 9000;
        blocks[i] = malloc(size);
        if (!blocks[i])
            _exit(2);
        memset(blocks[i], i & 0xFF, size);
    }
    for (int i = 0; i < N; i++) {
        size_t size = 1 + (size_t)i * 37 % 9000;
        for (size_t k = 0; k < size; k++)
            if (blocks[i][k] != (i & 0xFF)) {
                say("heap damaged");
                _exit(2);
            }
        free(blocks[i]);
    }
    say("survived");
}

#endif
