/* Misuse: a block freed twice. */
#include "misuse.h"

int main(void) {
    char *p = malloc(24);
    free(p);
    say("misuse");
    free(p);
    heap_intact();
    return 0;
}
