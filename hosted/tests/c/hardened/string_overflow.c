/* Blocks of 1 to 300 bytes and one LARGE block, each filled with non-NUL
 * bytes and no terminator, read with strlen: prints the most bytes read past
 * a request. With the hardened canary the byte right after the request is
 * zero (as hardened_malloc's), so an unterminated string stops there: 0.
 * (Not malloc(0): with guard pages its pointer cannot be read at all.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t overrun(size_t n)
{
	char *p = malloc(n);
	size_t over;

	if (!p)
		exit(2);
	memset(p, 'A', n);
	over = strlen(p) - n;
	free(p);
	return over;
}

int main(void)
{
	size_t most = 0;

	for (size_t n = 1; n <= 300; n++)
		if (overrun(n) > most)
			most = overrun(n);
	if (overrun(200000) > most)
		most = overrun(200000);
	printf("%zu\n", most);
	return 0;
}
