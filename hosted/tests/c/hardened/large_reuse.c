/* LARGE blocks freed and allocated again, every page touched: prints the
 * page faults per cycle (getrusage), after a warm-up longer than any
 * quarantine. A freed run unmapped at once faults all its pages in again
 * on its next use (256 per cycle here); one that is reused does not. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

enum { SIZE = 1 << 20, WARM = 32, CYCLES = 64 };

static void cycle(void)
{
	char *p = malloc(SIZE);
	for (int i = 0; i < SIZE; i += 4096)
		p[i] = (char)i;
	free(p);
}

int main(void)
{
	struct rusage before, after;

	for (int i = 0; i < WARM; i++)
		cycle();
	getrusage(RUSAGE_SELF, &before);
	for (int i = 0; i < CYCLES; i++)
		cycle();
	getrusage(RUSAGE_SELF, &after);
	printf("%ld\n", (after.ru_minflt - before.ru_minflt) / CYCLES);
	return 0;
}
