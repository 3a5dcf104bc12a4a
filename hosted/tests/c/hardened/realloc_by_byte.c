/* A buffer grown one byte at a time by realloc to 1 MiB, its contents
 * checked at each move: prints "<moves> <bytes copied>" (a move copies the
 * old size). A block with room, in its slack or its run, grows in place:
 * the moves are O(number of size classes + log(1 MiB)), not one per byte. */
#include <stdio.h>
#include <stdlib.h>

enum { TARGET = 1 << 20 };

int main(void)
{
	unsigned char *p = malloc(1);
	unsigned long moves = 0, copied = 0;

	if (!p)
		return 2;
	p[0] = 0;
	for (size_t n = 2; n <= TARGET; n++) {
		unsigned char *q = realloc(p, n);
		if (!q)
			return 2;
		if (q != p) {
			moves++;
			copied += n - 1;
			for (size_t i = 0; i < n - 1; i += 97)
				if (q[i] != (unsigned char)(i * 7))
					return 3;
		}
		q[n - 1] = (unsigned char)((n - 1) * 7);
		p = q;
	}
	for (size_t i = 0; i < TARGET; i++)
		if (p[i] != (unsigned char)(i * 7))
			return 3;
	free(p);
	printf("%lu %lu\n", moves, copied);
	return 0;
}
