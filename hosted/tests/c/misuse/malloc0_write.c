/* Misuse: 8 bytes written through malloc(0)'s pointer, then free. The bytes
 * are even: the default slack canary byte is always odd, so an odd first
 * byte would match it once in 128 runs and go unseen. */
#include "misuse.h"

int main(void) {
    char *p = malloc(0);
    say("misuse");
    memcpy(p, "02468024", 8);
    free(p);
    heap_intact();
    return 0;
}
