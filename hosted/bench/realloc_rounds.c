/* A string builder's reallocs: a block grown by realloc in +50% steps from
 * 16 B to 4 KiB, then freed; ROUNDS times. bench/realloc_callgrind.sh
 * counts the instructions of one round with callgrind.
 *
 *   realloc_rounds ROUNDS
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000;
    unsigned long sum = 0;
    for (long r = 0; r < rounds; r++) {
        size_t size = 16;
        char *p = malloc(size);
        p[0] = 1;
        while (size < 4096) {
            size = size * 3 / 2;
            if (size > 4096) {
                size = 4096;
            }
            p = realloc(p, size);
            if (p == NULL) {
                return 1;
            }
            p[size - 1] = (char)size;
        }
        sum += (unsigned char)p[0];
        free(p);
    }
    printf("%lu\n", sum);
    return 0;
}
