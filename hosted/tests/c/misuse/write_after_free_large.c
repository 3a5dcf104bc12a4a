/* Misuse: a write into a 1 MiB block after it was freed. */
#include "misuse.h"

int main(void) {
    char *p = malloc(1 << 20);
    free(p);
    say("misuse");
    p[4096] = 'X';
    heap_intact();
    return 0;
}
