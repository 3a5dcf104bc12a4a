/* FT_MALLOC_SCRIBBLE: new blocks read 0xAA, freed blocks 0x55 (past the first
 * 16 bytes, where the allocator may keep its free-list link), calloc memory
 * still reads 0. Prints one line per check; exit status = failures. */
#include <stdio.h>
#include <stdlib.h>

static int all(const unsigned char *p, unsigned char v, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (p[i] != v)
			return (0);
	return (1);
}

int main(void)
{
	int failures = 0;
	static const size_t sizes[] = { 64, 1000, 20000 };

	for (int i = 0; i < 3; i++) {
		size_t n = sizes[i];
		unsigned char *p = malloc(n);
		int fresh = all(p, 0xAA, 0, n);
		/* A live neighbour keeps the zone alive, so the freed block's
		 * memory stays mapped and readable. */
		void *neighbour = malloc(n);
		free(p);
		int freed = all(p, 0x55, 16, n);
		unsigned char *z = calloc(1, n);
		int zero = all(z, 0, 0, n);
		printf("%s %zu: new 0xAA %d, freed 0x55 %d, calloc 0 %d\n",
		       fresh && freed && zero ? "ok" : "FAIL", n, fresh, freed, zero);
		failures += !(fresh && freed && zero);
		free(z);
		free(neighbour);
	}
	return (failures);
}
