/* The subject's show_alloc_mem check: blocks of 1 KiB, 32 KiB, 1 MiB, 16 MiB
 * and 128 MiB (plus a few TINY ones). The program announces its own blocks on
 * stderr as "mine <address> <size>", then calls show_alloc_mem (stdout). */
#include <stdio.h>
#include <stdlib.h>

void show_alloc_mem(void);

int main(void)
{
	static const size_t sizes[] = { 1, 42, 128, 1024, 32 * 1024, 1024 * 1024,
		16 * 1024 * 1024, 128 * 1024 * 1024 };
	void *blocks[sizeof(sizes) / sizeof(sizes[0])];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		blocks[i] = malloc(sizes[i]);
		if (blocks[i] == NULL)
			return (1);
		fprintf(stderr, "mine %p %zu\n", blocks[i], sizes[i]);
	}
	fflush(stdout);
	show_alloc_mem();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		free(blocks[i]);
	return (0);
}
