/* The subject's test5: one block of each kind (TINY 1 KiB is SMALL here:
 * TINY stops at 128 B), then show_alloc_mem. */
#include <stdlib.h>

void show_alloc_mem(void);

int main(void)
{
	malloc(1024);
	malloc(1024 * 32);
	malloc(1024 * 1024);
	malloc(1024 * 1024 * 16);
	malloc(1024 * 1024 * 128);
	show_alloc_mem();
	return (0);
}
