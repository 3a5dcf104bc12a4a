/* Misuse: a write of 4 bytes just past a 20-byte block (into its slack:
 * every allocator here rounds 20 up), then free. */
#include "misuse.h"

int main(void) {
    char *p = malloc(20);
    say("misuse");
    memcpy(p + 20, "XXXX", 4);
    free(p);
    heap_intact();
    return 0;
}
