/* Consecutive mallocs of one size, after as many were freed: prints how
 * many of the 255 consecutive pairs are near neighbours (at most two
 * 64-byte slots apart). In the order a cache hands blocks out, nearly all
 * are; picked at random among the cached ones, few are. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	enum { N = 256, SIZE = 48, NEAR = 128 };
	static char *p[N];
	int near = 0;

	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++)
			p[i] = malloc(SIZE);
		if (round == 0)
			for (int i = 0; i < N; i++)
				free(p[i]);
	}
	for (int i = 1; i < N; i++) {
		intptr_t d = p[i] - p[i - 1];
		near += d >= -NEAR && d <= NEAR;
	}
	printf("%d\n", near);
	for (int i = 0; i < N; i++)
		free(p[i]);
	return 0;
}
