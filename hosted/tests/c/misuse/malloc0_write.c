/* Misuse: 8 bytes written through malloc(0)'s pointer, then free. */
#include "misuse.h"

int main(void) {
    char *p = malloc(0);
    say("misuse");
    memcpy(p, "12345678", 8);
    free(p);
    heap_intact();
    return 0;
}
