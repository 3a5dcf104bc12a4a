/* Growing buffers the way string builders do: 2000 buffers appended to in
 * random order by 1..64 bytes via realloc, to 4 KiB .. 1 MiB each, then
 * freed. Usage: realloc_strings [rounds]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	enum { BUFFERS = 2000 };
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	static char *buf[BUFFERS];
	static size_t len[BUFFERS];
	uint64_t r = 1;

	for (int round = 0; round < rounds; round++) {
		for (long step = 0; step < 3000000; step++) {
			r = r * 6364136223846793005ULL + 1442695040888963407ULL;
			unsigned i = (unsigned)((r >> 33) % BUFFERS);
			size_t add = 1 + (r >> 20) % 64;
			size_t limit = i % 10 == 0 ? (1u << 20) : 4096;
			if (len[i] + add > limit)
				len[i] = 0;
			buf[i] = realloc(buf[i], len[i] + add);
			memset(buf[i] + len[i], 'a' + i % 26, add);
			len[i] += add;
		}
		for (int i = 0; i < BUFFERS; i++) {
			free(buf[i]);
			buf[i] = NULL;
			len[i] = 0;
		}
	}
	return (0);
}
