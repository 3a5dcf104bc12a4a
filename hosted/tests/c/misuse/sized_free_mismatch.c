/* Misuse: free_sized told 200 bytes for a 100-byte block. glibc 2.36 has
 * no free_sized: the program then says so and stops. */
#include "misuse.h"

void free_sized(void *ptr, size_t size) __attribute__((weak));

int main(void) {
    if (!free_sized) {
        say("no free_sized");
        return 0;
    }
    char *p = malloc(100);
    say("misuse");
    free_sized(p, 200);
    heap_intact();
    return 0;
}
