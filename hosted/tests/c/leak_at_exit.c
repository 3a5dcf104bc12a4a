/* Leaves one 4242-byte block allocated at exit (for FT_MALLOC_SHOW_AT_EXIT),
 * frees an interior pointer (for FT_MALLOC_CHECK), and makes a few traced
 * calls (for FT_MALLOC_TRACE). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	char *leak = malloc(4242);
	char *other = calloc(3, 5);
	other = realloc(other, 77);
	free(other);
	printf("leak at %p\n", (void *)leak);
	fflush(stdout);
	free(leak + 16);
	printf("survived\n");
	return (0);
}
