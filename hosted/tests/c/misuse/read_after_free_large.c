/* Misuse: a read of a 1 MiB block after it was freed. */
#include "misuse.h"

int main(void) {
    char *p = malloc(1 << 20);
    strcpy(p + 4096, "secret");
    free(p);
    say("misuse");
    say(memcmp(p + 4096, "secret", 7) == 0 ? "stale" : "clean");
    heap_intact();
    return 0;
}
