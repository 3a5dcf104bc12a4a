/* 16 LARGE blocks of 16 MiB, each filled and then shrunk by realloc to
 * 1 MiB, its contents checked: prints the resident MiB afterwards
 * (/proc/self/statm). A shrunk block gives its tail pages back: about
 * 16 MiB stay resident, not 256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BLOCKS = 16, BIG = 16 << 20, SMALL = 1 << 20 };

static long resident_mib(void)
{
	long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2)
		return -1;
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE) >> 20;
}

int main(void)
{
	static unsigned char *blocks[BLOCKS];

	for (int i = 0; i < BLOCKS; i++) {
		unsigned char *p = malloc(BIG);
		if (!p)
			return 2;
		memset(p, i + 1, BIG);
		blocks[i] = realloc(p, SMALL);
		if (!blocks[i])
			return 2;
	}
	for (int i = 0; i < BLOCKS; i++)
		for (size_t j = 0; j < SMALL; j += 512)
			if (blocks[i][j] != i + 1)
				return 3;
	printf("%ld\n", resident_mib());
	for (int i = 0; i < BLOCKS; i++)
		free(blocks[i]);
	return 0;
}
