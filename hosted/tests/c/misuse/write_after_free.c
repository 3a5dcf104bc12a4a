/* Misuse: a write into a small block after it was freed, then 2000 more
 * blocks of its size allocated and freed (more than any quarantine holds). */
#include "misuse.h"

int main(void) {
    char *p = malloc(64);
    free(p);
    say("misuse");
    p[32] = 'X';
    for (int i = 0; i < 2000; i++)
        free(malloc(64));
    heap_intact();
    return 0;
}
