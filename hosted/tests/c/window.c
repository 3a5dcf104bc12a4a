/* Where the heap's runs lie, and that the heap works there: allocates TINY,
 * SMALL and LARGE blocks (malloc, calloc, realloc growing a SMALL block into
 * a LARGE one and a LARGE one by 8x), checks their bytes, calls
 * show_alloc_mem, frees everything. Prints "blocks <n> in_window <k>"
 * (blocks in [1 TiB, 32 TiB), where libft_malloc.so places its address
 * window when it has one: window.rs), "rss_kib <r>" (resident memory after
 * the allocations: the page map's array over the window must not be
 * touched up front) and "done". Exit status = failures.
 *
 * Usage: window [fill]. With "fill", 1 GiB blocks (never touched) are
 * allocated first until one lies outside the window, which is then full:
 * prints "big_in <i> big_out <o>", and the big blocks are shrunk by realloc
 * (in place: growing them would copy a GiB), listed and freed with the
 * rest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void show_alloc_mem(void);

#define N 64

static int failures;

static int in_window(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return a >= (1UL << 40) && a < (1UL << 45);
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, resident = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * 4;
}

int main(int argc, char **argv)
{
	enum { BIG = 1 << 30, MAX_BIG = 16 };
	unsigned char *big[MAX_BIG];
	int nbig = 0, big_in = 0;

	if (argc > 1 && strcmp(argv[1], "fill") == 0) {
		while (nbig < MAX_BIG && (big[nbig] = malloc(BIG)) != NULL) {
			big[nbig][0] = 1;
			big[nbig][BIG - 1] = 2;
			if (!in_window(big[nbig++]))
				break;
			big_in++;
		}
		printf("big_in %d big_out %d\n", big_in, nbig - big_in);
		for (int i = 0; i < nbig; i++) {
			unsigned char *q = realloc(big[i], BIG / 2);
			if (!q)
				return (printf("FAIL realloc big\n"), 1);
			failures += q != big[i] || q[0] != 1;
			big[i] = q;
		}
	}
	static const size_t sizes[] = { 16, 100, 3000, 20000, 200000, 1 << 20 };
	unsigned char *blocks[N];
	size_t lens[N];
	int in = 0;

	for (int i = 0; i < N; i++) {
		lens[i] = sizes[i % 6] + i;
		blocks[i] = i % 3 ? malloc(lens[i]) : calloc(1, lens[i]);
		if (!blocks[i])
			return (printf("FAIL malloc %zu\n", lens[i]), 1);
		memset(blocks[i], i, lens[i]);
	}
	/* A SMALL block grown into a LARGE one, and a LARGE one grown 8x. */
	for (int i = 2; i < N; i += 6) {
		size_t n = lens[i] * 8;
		unsigned char *q = realloc(blocks[i], n);
		if (!q)
			return (printf("FAIL realloc %zu\n", n), 1);
		for (size_t k = 0; k < lens[i]; k += 61)
			failures += q[k] != (unsigned char)i;
		memset(q, i, n);
		blocks[i] = q;
		lens[i] = n;
	}
	for (int i = 0; i < N; i++) {
		in += in_window(blocks[i]);
		for (size_t k = 0; k < lens[i]; k += 97)
			failures += blocks[i][k] != (unsigned char)i;
	}
	printf("blocks %d in_window %d\n", N, in);
	printf("rss_kib %ld\n", rss_kib());
	fflush(stdout);
	show_alloc_mem();
	for (int i = 0; i < N; i++)
		free(blocks[i]);
	for (int i = 0; i < nbig; i++)
		free(big[i]);
	printf("done\n");
	return failures;
}
