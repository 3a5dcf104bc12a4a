/* LARGE blocks: 64 live blocks of 40 KiB .. 4 MiB, replaced at random and
 * touched every 4 KiB (what a program does with big buffers).
 * Usage: large_churn [steps]. */
#include <stdint.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	enum { LIVE = 64 };
	long steps = argc > 1 ? atol(argv[1]) : 40000;
	static unsigned char *slot[LIVE];
	uint64_t r = 0x9E3779B97F4A7C15ULL;

	for (long s = 0; s < steps; s++) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned i = (unsigned)((r >> 33) % LIVE);
		size_t size = 40960 + (r >> 20) % (4u << 20);
		free(slot[i]);
		slot[i] = malloc(size);
		for (size_t b = 0; b < size; b += 4096)
			slot[i][b] = (unsigned char)b;
	}
	for (int i = 0; i < LIVE; i++)
		free(slot[i]);
	return (0);
}
