/* Single-threaded churn of small blocks: a working set of 4096 live blocks,
 * each step frees one at random and allocates a new one of 1..1024 bytes
 * (90% at most 128), writing its first and last byte. Usage: small_churn [steps]. */
#include <stdint.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	enum { LIVE = 4096 };
	long steps = argc > 1 ? atol(argv[1]) : 20000000;
	static unsigned char *slot[LIVE];
	uint64_t r = 88172645463325252ULL;
	unsigned long sum = 0;

	for (long s = 0; s < steps; s++) {
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		unsigned i = (unsigned)(r % LIVE);
		size_t size = (r >> 32) % 10 ? 1 + (r >> 40) % 128 : 1 + (r >> 40) % 1024;
		if (slot[i])
			sum += slot[i][0];
		free(slot[i]);
		slot[i] = malloc(size);
		slot[i][0] = (unsigned char)s;
		slot[i][size - 1] = 1;
	}
	for (int i = 0; i < LIVE; i++)
		free(slot[i]);
	return (sum == 42); /* keep the reads */
}
