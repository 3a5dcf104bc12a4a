/* Prints the key of the heap's free mark (src/free_mark.rs): a freed
 * 32-byte block sits in the thread's cache with `address ^ key` in its
 * second word. Reading it after free is the test's business, not a
 * program's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    uintptr_t *p = malloc(32);
    free(p);
    printf("%#jx\n", (uintmax_t)(((volatile uintptr_t *)p)[1] ^ (uintptr_t)p));
    return 0;
}
