/* Misuse: free of a stack address. */
#include "misuse.h"

int main(void) {
    long on_stack[4] = {0};
    say("misuse");
    free(&on_stack[2]);
    heap_intact();
    return 0;
}
