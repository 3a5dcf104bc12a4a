/* Two LARGE buffers grown alternately by realloc, 1.5x a step, from 64 KiB to
 * 64 MiB (each in the other's way, so most steps move), their new bytes
 * written and every byte checked at the end. Prints "faults <n> pages <p>":
 * the minor page faults of the growth loop and the pages the program wrote.
 * A move that remaps pages (mremap) faults in only the new pages; a copy
 * faults in the whole destination again. Exit status = failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static long minor_faults(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_minflt;
}

int main(void)
{
	size_t n = 64 << 10, pages = 0;
	unsigned char *b[2];
	int failures = 0;

	for (int i = 0; i < 2; i++) {
		b[i] = malloc(n);
		memset(b[i], i + 1, n);
	}
	long before = minor_faults();
	while (n < (64u << 20)) {
		size_t m = n * 3 / 2;
		for (int i = 0; i < 2; i++) {
			unsigned char *q = realloc(b[i], m);
			if (!q)
				return (printf("FAIL realloc %zu\n", m), 1);
			memset(q + n, i + 1, m - n);
			b[i] = q;
		}
		pages += 2 * ((m - n) / 4096 + 1);
		n = m;
	}
	long faults = minor_faults() - before;
	for (int i = 0; i < 2; i++)
		for (size_t k = 0; k < n; k += 4093)
			failures += b[i][k] != i + 1;
	printf("faults %ld pages %zu\n", faults, pages);
	free(b[0]);
	free(b[1]);
	return failures;
}
