/* Hot malloc/free pairs for exact instruction counts (bench/pairs_callgrind.sh).
 * Usage: pairs SIZE ROUNDS. Each round allocates a batch of 1000 blocks and
 * frees them all; SIZE 0 means sizes cycling through 32..88 bytes, as small
 * objects in real programs do. The script runs it twice with different
 * ROUNDS and divides the difference, so start-up costs cancel out. */
#include <stdlib.h>

enum { BATCH = 1000 };

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? (size_t)atol(argv[1]) : 0;
	long rounds = argc > 2 ? atol(argv[2]) : 1000;
	static void *batch[BATCH];
	unsigned long sum = 0;

	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < BATCH; i++) {
			size_t n = size ? size : 32 + (size_t)(i * 8) % 57;
			batch[i] = malloc(n);
			sum += (unsigned long)batch[i] & 1;
		}
		for (int i = 0; i < BATCH; i++)
			free(batch[i]);
	}
	return sum == 42; /* keep the loop */
}
