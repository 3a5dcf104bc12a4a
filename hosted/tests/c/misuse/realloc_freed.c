/* Misuse: realloc of a freed block. */
#include "misuse.h"

int main(void) {
    char *p = malloc(64);
    free(p);
    say("misuse");
    char *q = realloc(p, 128);
    (void)q;
    heap_intact();
    return 0;
}
