/* Every C-level promise of the library, one check per line:
 * "ok <name>" or "FAIL <name>: <detail>". Exit status = number of failures.
 * Run with FT_MALLOC_CHECK=quiet: the bad pointers below are deliberate. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *reallocf(void *ptr, size_t size);
void cfree(void *ptr);

static int failures;

#define CHECK(name, cond, ...)                                              \
	do {                                                                \
		if (cond) {                                                 \
			printf("ok %s\n", name);                            \
		} else {                                                    \
			failures++;                                         \
			printf("FAIL %s: ", name);                          \
			printf(__VA_ARGS__);                                \
			printf("\n");                                       \
		}                                                           \
	} while (0)

#define ALIGNED(p, a) (((uintptr_t)(p) & ((uintptr_t)(a) - 1)) == 0)
#define TOO_BIG ((size_t)PTRDIFF_MAX + 1)

static int all_bytes(const void *p, int value, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != (unsigned char)value)
			return (0);
	return (1);
}

static void check_malloc(void)
{
	void *a = malloc(0), *b = malloc(0);
	CHECK("malloc(0) unique", a && b && a != b, "%p %p", a, b);
	free(a);
	free(b);

	errno = 0;
	void *p = malloc(TOO_BIG);
	CHECK("malloc(PTRDIFF_MAX+1) ENOMEM", p == NULL && errno == ENOMEM, "%p errno %d", p, errno);
	errno = 0;
	p = malloc(SIZE_MAX);
	CHECK("malloc(SIZE_MAX) ENOMEM", p == NULL && errno == ENOMEM, "%p errno %d", p, errno);

	errno = 77;
	p = malloc(10);
	void *big = malloc(50 << 20);
	CHECK("malloc success keeps errno", p && big && errno == 77, "errno %d", errno);
	free(p);
	free(big);

	int misaligned = 0;
	void *keep[700];
	for (size_t i = 0; i < 700; i++) {
		keep[i] = malloc(i * 7);
		if (!ALIGNED(keep[i], 16))
			misaligned++;
		if (malloc_usable_size(keep[i]) < i * 7)
			misaligned++;
	}
	for (size_t i = 0; i < 700; i++)
		free(keep[i]);
	CHECK("default alignment 16 and usable >= size", misaligned == 0, "%d bad", misaligned);
	CHECK("malloc_usable_size(NULL) == 0", malloc_usable_size(NULL) == 0, "nonzero");
}

static void check_calloc(void)
{
	errno = 0;
	void *p = calloc(SIZE_MAX / 2, 3);
	CHECK("calloc overflow ENOMEM", p == NULL && errno == ENOMEM, "%p errno %d", p, errno);
	errno = 0;
	p = calloc(TOO_BIG, 1);
	CHECK("calloc(PTRDIFF_MAX+1) ENOMEM", p == NULL && errno == ENOMEM, "%p errno %d", p, errno);
	p = calloc(0, 0);
	CHECK("calloc(0, 0) unique pointer", p != NULL, "NULL");
	free(p);

	/* Dirty a block, free it, and ask calloc for the same class: reused
	 * memory must be cleared too, not only fresh pages. */
	int dirty_ok = 1;
	for (size_t size = 8; size <= 64 * 1024; size *= 2) {
		unsigned char *d = malloc(size);
		memset(d, 0xFF, size);
		free(d);
		unsigned char *z = calloc(1, size);
		dirty_ok &= z != NULL && all_bytes(z, 0, size);
		free(z);
	}
	CHECK("calloc zeroes reused blocks", dirty_ok, "non-zero byte");
	unsigned char *big = calloc(1 << 20, 8);
	CHECK("calloc 8 MiB zero", big && all_bytes(big, 0, 8 << 20), "non-zero");
	free(big);
}

static void check_realloc(void)
{
	char *p = realloc(NULL, 10);
	CHECK("realloc(NULL, n) allocates", p != NULL, "NULL");
	strcpy(p, "abcdefghi");

	errno = 0;
	char *q = realloc(p, SIZE_MAX / 2);
	CHECK("realloc huge: NULL ENOMEM", q == NULL && errno == ENOMEM, "%p errno %d", q, errno);
	CHECK("realloc failure keeps block", strcmp(p, "abcdefghi") == 0, "contents changed");
	errno = 0;
	q = realloc(p, TOO_BIG);
	CHECK("realloc(PTRDIFF_MAX+1) ENOMEM", q == NULL && errno == ENOMEM, "%p errno %d", q, errno);

	int kept = 1;
	for (size_t size = 11; size < (4u << 20); size = size * 3 + 1) {
		p = realloc(p, size);
		kept &= p != NULL && strcmp(p, "abcdefghi") == 0;
	}
	for (size_t size = 4u << 20; size > 10; size /= 3) {
		p = realloc(p, size);
		kept &= p != NULL && strcmp(p, "abcdefghi") == 0;
	}
	CHECK("realloc keeps contents through every kind", kept, "lost");

	q = realloc(p, 0);
	CHECK("realloc(p, 0) returns NULL", q == NULL, "%p", q);
	CHECK("realloc(p, 0) freed p", malloc_usable_size(p) == 0, "still live");

	p = malloc(100);
	q = reallocarray(p, 10, 20);
	CHECK("reallocarray(p, 10, 20)", q != NULL && malloc_usable_size(q) >= 200, "%p", q);
	p = q;
	errno = 0;
	q = reallocarray(p, SIZE_MAX / 4, 8);
	CHECK("reallocarray overflow: NULL ENOMEM, p kept", q == NULL && errno == ENOMEM && malloc_usable_size(p) >= 200,
	      "%p errno %d", q, errno);
	q = reallocf(p, 300);
	CHECK("reallocf grows", q != NULL, "NULL");
	p = q;
	errno = 0;
	q = reallocf(p, SIZE_MAX / 2);
	CHECK("reallocf failure frees p", q == NULL && errno == ENOMEM && malloc_usable_size(p) == 0, "%p errno %d", q,
	      errno);

	char stack[32];
	errno = 5;
	q = realloc(stack, 10);
	CHECK("realloc(bad pointer) NULL, errno kept", q == NULL && errno == 5, "%p errno %d", q, errno);
}

static void check_free(void)
{
	void *small = malloc(50), *large = malloc(10 << 20);
	errno = 1234;
	free(small);
	free(large);
	free(NULL);
	CHECK("free preserves errno", errno == 1234, "errno %d", errno);
	char stack[16];
	errno = 4321;
	free(stack);
	free(small); /* double free */
	CHECK("bad free preserves errno", errno == 4321, "errno %d", errno);
	void *c = malloc(64);
	cfree(c);
	CHECK("cfree frees", malloc_usable_size(c) == 0, "still live");
	CHECK("usable_size(bad) == 0", malloc_usable_size(stack) == 0, "nonzero");
}

static void check_aligned(void)
{
	void *sentinel = (void *)0x1234, *p = sentinel;
	errno = 99;
	int rc = posix_memalign(&p, 0, 8);
	CHECK("posix_memalign(0) EINVAL", rc == EINVAL && p == sentinel && errno == 99, "rc %d errno %d", rc, errno);
	rc = posix_memalign(&p, 4, 8);
	CHECK("posix_memalign(4) EINVAL", rc == EINVAL && p == sentinel, "rc %d", rc);
	rc = posix_memalign(&p, 24, 8);
	CHECK("posix_memalign(24) EINVAL", rc == EINVAL && p == sentinel, "rc %d", rc);
	rc = posix_memalign(&p, 64, SIZE_MAX / 2);
	/* glibc 2.36 sets errno = ENOMEM too, as every failing allocation does. */
	CHECK("posix_memalign huge ENOMEM, errno ENOMEM", rc == ENOMEM && p == sentinel && errno == ENOMEM,
	      "rc %d errno %d", rc, errno);
	errno = 99;
	int bad = 0;
	for (size_t align = sizeof(void *); align <= (4u << 20); align *= 2) {
		for (size_t size = 0; size < 70000; size = size * 5 + 3) {
			p = NULL;
			rc = posix_memalign(&p, align, size);
			if (rc != 0 || !ALIGNED(p, align) || malloc_usable_size(p) < size) {
				bad++;
				printf("  posix_memalign(%zu, %zu) = %d %p\n", align, size, rc, p);
			} else {
				memset(p, 1, size);
			}
			free(p);
		}
	}
	CHECK("posix_memalign aligns 8 B .. 4 MiB", bad == 0 && errno == 99, "%d bad, errno %d", bad, errno);

	errno = 0;
	p = aligned_alloc(0, 16);
	CHECK("aligned_alloc(0) EINVAL", p == NULL && errno == EINVAL, "%p errno %d", p, errno);
	errno = 0;
	p = aligned_alloc(48, 96);
	CHECK("aligned_alloc(48) EINVAL", p == NULL && errno == EINVAL, "%p errno %d", p, errno);
	p = aligned_alloc(1, 10);
	CHECK("aligned_alloc(1) ok", p != NULL, "NULL");
	free(p);
	p = aligned_alloc(256, 100); /* size not a multiple: glibc accepts */
	CHECK("aligned_alloc(256, 100)", p && ALIGNED(p, 256), "%p", p);
	free(p);

	p = memalign(0, 10);
	CHECK("memalign(0) is malloc", p && ALIGNED(p, 16), "%p", p);
	free(p);
	p = memalign(48, 100);
	CHECK("memalign(48) rounds to 64", p && ALIGNED(p, 64), "%p", p);
	free(p);
	errno = 0;
	p = memalign(SIZE_MAX / 2 + 2, 1);
	CHECK("memalign(> SIZE_MAX/2+1) EINVAL", p == NULL && errno == EINVAL, "%p errno %d", p, errno);
	errno = 0;
	p = memalign(64, TOO_BIG);
	CHECK("memalign huge ENOMEM", p == NULL && errno == ENOMEM, "%p errno %d", p, errno);

	long page = sysconf(_SC_PAGESIZE);
	p = valloc(10);
	CHECK("valloc page aligned", p && ALIGNED(p, page), "%p", p);
	free(p);
	p = pvalloc(10);
	CHECK("pvalloc page aligned, whole page", p && ALIGNED(p, page) && malloc_usable_size(p) >= (size_t)page, "%p",
	      p);
	free(p);
	errno = 0;
	p = pvalloc(SIZE_MAX);
	CHECK("pvalloc(SIZE_MAX) ENOMEM", p == NULL && errno == ENOMEM, "%p errno %d", p, errno);
}

/* Random malloc/realloc/free with a fill pattern checked before every
 * change: any overlap or lost byte shows up. */
static void check_integrity(void)
{
	enum { SLOTS = 512, ROUNDS = 60000 };
	static unsigned char *slot[SLOTS];
	static size_t len[SLOTS];
	unsigned long long seed = 0x9E3779B97F4A7C15ULL;
	int broken = 0;

	for (int round = 0; round < ROUNDS; round++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned i = (unsigned)(seed >> 33) % SLOTS;
		unsigned shape = (unsigned)(seed >> 20) % 100;
		size_t size = shape < 60 ? (seed >> 40) % 129 : shape < 95 ? (seed >> 40) % 32768 : (seed >> 40) % (1 << 21);
		if (slot[i]) {
			for (size_t b = 0; b < len[i]; b += 7)
				if (slot[i][b] != (unsigned char)(i + b))
					broken++;
		}
		if (slot[i] && shape % 3 == 0) {
			unsigned char *q = realloc(slot[i], size);
			if (size == 0) {
				slot[i] = NULL;
				continue;
			}
			if (q == NULL) {
				broken++;
				continue;
			}
			slot[i] = q;
			if (size < len[i])
				len[i] = size;
			for (size_t b = 0; b < len[i]; b += 7)
				if (q[b] != (unsigned char)(i + b))
					broken++;
		} else {
			free(slot[i]);
			slot[i] = malloc(size);
			if (slot[i] == NULL) {
				broken++;
				continue;
			}
		}
		len[i] = size;
		for (size_t b = 0; b < size; b += 7)
			slot[i][b] = (unsigned char)(i + b);
	}
	for (int i = 0; i < SLOTS; i++)
		free(slot[i]);
	CHECK("random malloc/realloc/free keeps every byte", broken == 0, "%d broken", broken);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	check_malloc();
	check_calloc();
	check_realloc();
	check_free();
	check_aligned();
	check_integrity();
	printf("%d failures\n", failures);
	return (failures);
}
