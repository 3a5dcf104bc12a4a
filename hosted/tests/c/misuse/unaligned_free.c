/* Misuse: free of a pointer one byte into a live block. */
#include "misuse.h"

int main(void) {
    char *p = malloc(64);
    say("misuse");
    free(p + 1);
    heap_intact();
    free(p);
    return 0;
}
