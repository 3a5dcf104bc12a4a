/* Misuse: a write 16 bytes past a 24-byte block, into what follows it,
 * then both blocks freed (the overflowed one first). The byte written is
 * even: the default mode's slack canary byte is always odd, so an odd byte
 * ('A') matched it in one run of 128 and the overflow went unseen. */
#include "misuse.h"

int main(void) {
    char *p = malloc(24);
    char *q = malloc(24);
    say("misuse");
    memset(p, 'B', 24 + 16);
    free(p);
    free(q);
    heap_intact();
    return 0;
}
