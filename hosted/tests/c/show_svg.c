/* show_alloc_mem_svg: builds a heap of every kind (partly freed TINY and
 * SMALL zones, LARGE runs of three sizes), writes its SVG picture to the
 * file argv[1], then, with a second argument, prints show_alloc_mem_ex()
 * so a test can compare the two. `make pictures` draws docs/heap.svg with it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int show_alloc_mem_svg(int fd);
void show_alloc_mem_ex(void);

static void *keep[1000];

int main(int argc, char **argv)
{
	int n = 0;

	if (argc < 2)
		return (2);
	/* TINY: 300 blocks of 24 B, every third freed. */
	for (int i = 0; i < 300; i++)
		keep[n++] = malloc(24);
	for (int i = 0; i < 300; i += 3)
		free(keep[i]);
	/* TINY: 120 blocks of 100 B, all kept. */
	for (int i = 0; i < 120; i++)
		keep[n++] = malloc(100);
	/* SMALL: 200 blocks of 500 B, the second half freed. */
	for (int i = 0; i < 200; i++)
		keep[n++] = malloc(500);
	for (int i = 100; i < 200; i++)
		free(keep[n - 200 + i]);
	/* SMALL: 40 blocks of 20000 B (one slot per cell: 40 live cells). */
	for (int i = 0; i < 40; i++)
		memset(keep[n++] = malloc(20000), 'S', 20000);
	/* LARGE: three runs, drawn to one scale. */
	keep[n++] = malloc(100000);
	keep[n++] = malloc(1 << 20);
	keep[n++] = malloc(4 << 20);

	if (show_alloc_mem_svg(-1) != -1 || errno != EBADF)
		return (3);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || show_alloc_mem_svg(fd) != 0 || close(fd) != 0)
		return (4);
	if (argc > 2)
		show_alloc_mem_ex();
	return (0);
}
