/* Misuse: a read of a small block after it was freed: prints "stale" if
 * the old contents are still there, "clean" if not. */
#include "misuse.h"

int main(void) {
    char *p = malloc(64);
    strcpy(p + 32, "secret");
    free(p);
    say("misuse");
    say(memcmp(p + 32, "secret", 7) == 0 ? "stale" : "clean");
    heap_intact();
    return 0;
}
