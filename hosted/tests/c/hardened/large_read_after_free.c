/* A read of a freed LARGE block of SIZE bytes (argv[1]), through its first
 * and its last page: with guard pages, both fault while the block is held
 * (protected in place below 256 KiB, its pages moved aside from 256 KiB).
 * Prints "misuse" just before the first read, and "survived" if neither
 * faulted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? (size_t)atol(argv[1]) : 40000;
	int last = argc > 2;
	volatile char *p = malloc(size);

	if (!p)
		return 2;
	memset((char *)p, 7, size);
	free((char *)p);
	puts("misuse");
	fflush(stdout);
	char c = last ? p[size - 1] : p[0];
	printf("survived %d\n", c);
	return 0;
}
