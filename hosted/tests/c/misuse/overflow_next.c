/* Misuse: a write 16 bytes past a 24-byte block, into what follows it,
 * then both blocks freed (the overflowed one first). */
#include "misuse.h"

int main(void) {
    char *p = malloc(24);
    char *q = malloc(24);
    say("misuse");
    memset(p, 'A', 24 + 16);
    free(p);
    free(q);
    heap_intact();
    return 0;
}
