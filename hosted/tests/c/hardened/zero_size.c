/* Zero-size blocks: 3000 malloc(0) pointers (more than fit in one bitmap
 * word, fewer than the region's slots) are distinct and non-NULL,
 * malloc_usable_size says 0, every one can be freed, realloc from one gives
 * a usable block, and calloc(0, n) and aligned_alloc(16, 0) behave alike.
 * Prints "ok". With an argument, then frees one zero-size block twice. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 3000 };

static int by_address(const void *a, const void *b)
{
	char *x = *(char *const *)a, *y = *(char *const *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static char *p[N], *sorted[N];

	for (int i = 0; i < N; i++) {
		p[i] = i % 3 == 0 ? malloc(0) : i % 3 == 1 ? calloc(0, 8) : aligned_alloc(16, 0);
		if (!p[i] || malloc_usable_size(p[i]) != 0)
			return 2;
	}
	memcpy(sorted, p, sizeof(p));
	qsort(sorted, N, sizeof(*sorted), by_address);
	for (int i = 1; i < N; i++)
		if (sorted[i] == sorted[i - 1])
			return 3;
	char *q = realloc(p[0], 100);
	if (!q)
		return 4;
	memset(q, 'x', 100);
	for (int i = 1; i < N; i++)
		free(p[i]);
	q = realloc(q, 0);
	char *z = malloc(0);
	if (!z)
		return 5;
	free(z);
	if (argc > 1) {
		fflush(stdout);
		free(z);
	}
	puts("ok");
	return 0;
}
