/* What a read after free sees in a held TINY or SMALL block (hosted/README,
 * "What reads after free see"): for blocks of several sizes filled with
 * 0xAB and freed, every byte past the first word is zero and the first word
 * (the quarantine's tag) is neither the old bytes nor zero. Prints "zeros but the
 * tag", or the first byte that differs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	static const size_t sizes[] = {8, 24, 64, 200, 1000, 4000, 30000};

	for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) {
		size_t n = sizes[s];
		unsigned char *p = malloc(n);
		uint64_t tag;

		if (!p)
			return 2;
		memset(p, 0xAB, n);
		free(p);
		memcpy(&tag, p, 8);
		if (tag == 0xABABABABABABABABull || tag == 0) {
			printf("size %zu: first word %#llx\n", n, (unsigned long long)tag);
			return 0;
		}
		for (size_t i = 8; i < n; i++)
			if (p[i] != 0) {
				printf("size %zu: byte %zu is %#x\n", n, i, p[i]);
				return 0;
			}
	}
	puts("zeros but the tag");
	return 0;
}
