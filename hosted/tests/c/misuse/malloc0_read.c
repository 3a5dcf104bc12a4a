/* A read through malloc(0)'s pointer: in the hardened mode (guard pages) the
 * pointer lies in an inaccessible region, so the read faults at once. */
#include "misuse.h"

int main(void) {
    char *p = malloc(0);
    say("misuse");
    volatile char c = *(volatile char *)p;
    (void)c;
    free(p);
    heap_intact();
    return 0;
}
