/* A 16 MiB block grown to 128 MiB by realloc keeps its contents, both when
 * the mapping can grow in place and when something sits right after it so
 * that it must move. Prints one line per case; exit status 0 if all hold. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 64)
		p[i] = (unsigned char)(i / 64 * 31 + 7);
	p[n - 1] = 0x5A;
}

static int intact(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 64)
		if (p[i] != (unsigned char)(i / 64 * 31 + 7))
			return (0);
	return (p[n - 1] == 0x5A);
}

/* Grows a 16 MiB block to 128 MiB; if `block_after`, first maps a page right
 * after the block's pages so that growing in place is impossible. */
static int grow(int block_after)
{
	size_t old = 16 * MIB, new = 128 * MIB;
	unsigned char *p = malloc(old);
	void *guard = NULL;
	long page = sysconf(_SC_PAGESIZE);

	if (p == NULL)
		return (printf("FAIL malloc(16 MiB)\n"), 1);
	fill(p, old);
	if (block_after) {
		/* The block's pages end at the first page boundary after p + old. */
		uintptr_t end = ((uintptr_t)p + old + page - 1) & ~(uintptr_t)(page - 1);
		guard = mmap((void *)end, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (guard == MAP_FAILED)
			guard = NULL; /* something is already there: it must move anyway */
	}
	unsigned char *q = realloc(p, new);
	if (q == NULL)
		return (printf("FAIL realloc to 128 MiB returned NULL\n"), 1);
	int ok = intact(q, old);
	memset(q + old, 0xC3, new - old);
	ok = ok && q[new - 1] == 0xC3 && intact(q, old);
	printf("%s %s: %s\n", ok ? "ok" : "FAIL", block_after ? "blocked" : "free-after",
	       q == p ? "grew in place" : "moved");
	if (block_after && q == p)
		return (printf("FAIL block did not move although the next page was taken\n"), 1);
	free(q);
	if (guard)
		munmap(guard, page);
	return (!ok);
}

int main(void)
{
	int failures = grow(0) + grow(1);

	/* And back down: shrinking keeps the prefix. */
	unsigned char *p = malloc(128 * MIB);
	fill(p, 16 * MIB);
	p = realloc(p, 16 * MIB);
	int ok = p != NULL && intact(p, 16 * MIB);
	printf("%s shrink 128 MiB -> 16 MiB\n", ok ? "ok" : "FAIL");
	free(p);
	return (failures + !ok);
}
