/* The demo of the seed's README: build with
 *     gcc main.c -L. -lft_malloc -o main
 * and run with
 *     LD_LIBRARY_PATH=$PWD LD_PRELOAD=$PWD/libft_malloc.so ./main
 * It allocates one block of each kind, uses them, frees one, and prints the
 * heap with show_alloc_mem(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void show_alloc_mem(void);

int main(void)
{
	char *tiny = malloc(42);
	char *small = malloc(3725);
	char *large = malloc(48847);
	char *gone = malloc(100);

	if (!tiny || !small || !large || !gone)
		return (1);
	strcpy(tiny, "hello from a TINY block");
	memset(small, 's', 3724);
	small[3724] = '\0';
	memset(large, 'L', 48846);
	large[48846] = '\0';
	free(gone);
	tiny = realloc(tiny, 64);
	printf("%s; SMALL holds %zu bytes, LARGE %zu\n", tiny, strlen(small), strlen(large));
	fflush(stdout);
	show_alloc_mem();
	free(tiny);
	free(small);
	free(large);
	return (0);
}
