/* 100,000 strings grown by realloc in +50% steps from 16 B to a random
 * final size of 100..4000 B, all kept, then freed: the slack that a
 * realloc growth rule leaves at rest shows in the peak RSS
 * (`/usr/bin/time -v env LD_PRELOAD=$LIB ./realloc_kept`, BENCHMARKS.md). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    enum { N = 100000 };
    static char *s[N];
    uint64_t r = 1;
    for (int i = 0; i < N; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t final = 100 + (r >> 33) % 3900, size = 16;
        char *p = malloc(size);
        memset(p, 'a', size);
        while (size < final) {
            size_t n = size * 3 / 2;
            if (n > final) n = final;
            p = realloc(p, n);
            memset(p + size, 'b', n - size);
            size = n;
        }
        s[i] = p;
    }
    for (int i = 0; i < N; i++) free(s[i]);
    return 0;
}
