/* The subject's test1: 1024 blocks of 1 KiB, each touched, none freed.
 * 1 MiB of data is 256 pages; the subject's best grade allows at most 272
 * minor page faults above the baseline (test0). */
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
		i++;
	}
	return (0);
}
