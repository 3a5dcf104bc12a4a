/* show_alloc_mem_ex: a few recognisable blocks, then the detailed listing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void show_alloc_mem_ex(void);

int main(void)
{
	char *hello = malloc(40);
	strcpy(hello, "Hello, ft_malloc! 0123456789abcdefghij");
	void *blocks[10];
	for (int i = 0; i < 10; i++)
		blocks[i] = malloc(40);
	free(blocks[3]);
	char *big = malloc(100000);
	memset(big, 'Z', 100000);
	fflush(stdout);
	show_alloc_mem_ex();
	return (0);
}
