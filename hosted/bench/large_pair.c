/* Time of one LARGE malloc+free pair, the block's first byte written:
 * usage large_pair SIZE PAIRS; prints nanoseconds of CPU time (user +
 * system: on a shared machine, wall time mostly measures the others) per
 * pair, after a warm-up of 64 pairs (longer than any quarantine). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? (size_t)atol(argv[1]) : 40000;
	long pairs = argc > 2 ? atol(argv[2]) : 10000;
	volatile char sink = 0;

	for (int i = 0; i < 64; i++) {
		char *p = malloc(size);
		p[0] = 1;
		free(p);
	}
	long long start = now_ns();
	for (long i = 0; i < pairs; i++) {
		char *p = malloc(size);
		p[0] = (char)i;
		sink += p[0];
		free(p);
	}
	printf("%.0f\n", (double)(now_ns() - start) / pairs);
	return sink == 42;
}
