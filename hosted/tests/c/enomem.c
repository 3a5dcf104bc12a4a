/* Out of memory under an address-space limit (what `ulimit -v` sets): a
 * request the kernel cannot map fails with NULL + ENOMEM, the heap keeps
 * working, and smaller requests still succeed, also once the limit is
 * nearly exhausted. Exit status = failures. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MIB (1024UL * 1024UL)

static int failures;

static void check(const char *name, int ok)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", name);
	failures += !ok;
}

static size_t mapped_now(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	if (f) {
		if (fscanf(f, "%lu", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	return pages * 4096;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	/* Leave 96 MiB of address space above what is mapped now. */
	struct rlimit limit;
	limit.rlim_cur = limit.rlim_max = mapped_now() + 96 * MIB;
	if (setrlimit(RLIMIT_AS, &limit) != 0)
		return (perror("setrlimit"), 100);

	errno = 0;
	void *huge = malloc(1024 * MIB);
	check("malloc(1 GiB) NULL + ENOMEM", huge == NULL && errno == ENOMEM);
	errno = 0;
	huge = calloc(256, 4 * MIB);
	check("calloc(1 GiB) NULL + ENOMEM", huge == NULL && errno == ENOMEM);
	char *keep = malloc(100);
	strcpy(keep, "kept");
	errno = 0;
	char *grown = realloc(keep, 512 * MIB);
	check("realloc to 512 MiB NULL + ENOMEM, block kept",
	      grown == NULL && errno == ENOMEM && strcmp(keep, "kept") == 0);
	/* Every allocating entry point sets errno = ENOMEM when it fails (glibc
	 * does; tst-malloc-thread-fail checks it after posix_memalign), even
	 * posix_memalign, which also returns the code. */
	void *aligned = (void *)1;
	errno = 0;
	int code = posix_memalign(&aligned, 64, 1024 * MIB);
	check("posix_memalign(1 GiB) ENOMEM, errno ENOMEM, *out untouched",
	      code == ENOMEM && errno == ENOMEM && aligned == (void *)1);
	errno = 0;
	aligned = memalign(4096, 1024 * MIB);
	check("memalign(1 GiB) NULL + ENOMEM", aligned == NULL && errno == ENOMEM);
	errno = 0;
	aligned = aligned_alloc(64, 1024 * MIB);
	check("aligned_alloc(1 GiB) NULL + ENOMEM", aligned == NULL && errno == ENOMEM);
	errno = 0;
	aligned = valloc(1024 * MIB);
	check("valloc(1 GiB) NULL + ENOMEM", aligned == NULL && errno == ENOMEM);
	errno = 0;
	aligned = pvalloc(1024 * MIB);
	check("pvalloc(1 GiB) NULL + ENOMEM", aligned == NULL && errno == ENOMEM);
	errno = 0;
	grown = reallocarray(keep, 512, MIB);
	check("reallocarray to 512 MiB NULL + ENOMEM, block kept",
	      grown == NULL && errno == ENOMEM && strcmp(keep, "kept") == 0);
	void *small = malloc(1024), *medium = malloc(20000), *tiny = malloc(16);
	check("smaller requests still succeed", small && medium && tiny);

	/* Exhaust the space with 1 MiB blocks. */
	void *blocks[200];
	int n = 0;
	while (n < 200 && (blocks[n] = malloc(MIB)) != NULL) {
		memset(blocks[n], 1, 4096);
		n++;
	}
	check("1 MiB blocks run out before 200", n > 10 && n < 200);
	int tiny_ok = 1;
	for (size_t size = 1; size <= 32768; size = size * 2 + 3) {
		void *p = malloc(size);
		tiny_ok &= p != NULL;
	}
	check("every TINY and SMALL class still allocates when 1 MiB does not", tiny_ok);
	for (int i = 0; i < n; i += 2)
		free(blocks[i]);
	void *again = malloc(MIB);
	check("freed space is usable again", again != NULL);
	printf("%d blocks of 1 MiB fitted\n", n);
	return (failures);
}
