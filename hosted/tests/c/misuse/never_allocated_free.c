/* Misuse: free of a 16-aligned address malloc never returned (a global). */
#include "misuse.h"

static char global[256] __attribute__((aligned(64)));

int main(void) {
    say("misuse");
    free(global + 64);
    heap_intact();
    return 0;
}
