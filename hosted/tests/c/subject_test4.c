/* The subject's test4, error management: free(NULL), then free and realloc
 * of a pointer 5 bytes into a block. Nothing was damaged (the pointer was
 * never handed out), so the library refuses both calls and the program goes
 * on: it prints "Bonjours" and exits 0, with no setting. */
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
	char *addr;

	addr = malloc(16);
	free(NULL);
	free((void *)addr + 5);
	if (realloc((void *)addr + 5, 10) == NULL)
		write(1, "Bonjours\n", 9);
	return (0);
}
