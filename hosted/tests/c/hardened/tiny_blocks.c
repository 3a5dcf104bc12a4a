/* Blocks of 0 to 16 bytes freed into the quarantine and pushed out by 2000
 * more; with an argument, one byte written into a freed 4-byte block
 * first (a write after free the quarantine must catch). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	char *p[17];

	for (int i = 0; i <= 16; i++)
		p[i] = malloc((size_t)i);
	for (int i = 0; i <= 16; i++)
		free(p[i]);
	if (argc > 1)
		p[4][1] = 'X';
	for (int i = 0; i < 2000; i++)
		free(malloc((size_t)(i % 17)));
	puts("survived");
	return 0;
}
