/* The subject's test2: as test1, but every block is freed at once, so the
 * same memory is reused: at most 3 minor page faults above the baseline. */
#include <stdlib.h>

int main(void)
{
	int i = 0;
	char *addr;

	while (i < 1024) {
		addr = (char *)malloc(1024);
		if (addr == NULL)
			return (1);
		addr[0] = 42;
		free(addr);
		i++;
	}
	return (0);
}
