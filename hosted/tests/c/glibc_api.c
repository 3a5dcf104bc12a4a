/* glibc's malloc API beyond the standard (mallinfo, mallinfo2,
 * malloc_stats, malloc_info, malloc_trim, mallopt), checked for the shapes
 * glibc gives: run once on glibc and once preloaded, the two stdouts must be
 * identical, and the stderr of malloc_stats identical but for the numbers.
 *
 * `glibc_api check_action` and `glibc_api sized` test what glibc 2.36 lacks
 * (M_CHECK_ACTION is ignored there; free_sized is C23): preloaded only. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mallinfo is deprecated (its int fields overflow), and still tested. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

void free_sized(void *ptr, size_t size) __attribute__((weak));
void free_aligned_sized(void *ptr, size_t align, size_t size) __attribute__((weak));

static int failures;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

#define SMALL_BLOCKS 100
#define TRIM_BLOCKS 20000

static void test_mallinfo(void) {
    struct mallinfo2 before = mallinfo2();
    void *blocks[SMALL_BLOCKS];
    for (int i = 0; i < SMALL_BLOCKS; i++)
        blocks[i] = malloc(100);
    struct mallinfo2 small = mallinfo2();
    /* Before any printf: stdio's first buffer comes from malloc. */
    struct mallinfo old = mallinfo();
    check(small.uordblks >= before.uordblks + SMALL_BLOCKS * 100,
          "mallinfo2: uordblks counts live small blocks");
    check(small.arena >= small.uordblks, "mallinfo2: arena holds uordblks");
    check(small.arena == small.uordblks + small.fordblks,
          "mallinfo2: arena = uordblks + fordblks");
    check(small.usmblks == 0, "mallinfo2: usmblks is 0");
    check(old.arena == (int)small.arena && old.uordblks == (int)small.uordblks,
          "mallinfo: mallinfo2 as int");
    char *big = malloc(4 << 20);
    big[0] = 1;
    struct mallinfo2 with_big = mallinfo2();
    check(with_big.hblks == small.hblks + 1, "mallinfo2: a big block is one more hblk");
    check(with_big.hblkhd >= small.hblkhd + (4 << 20),
          "mallinfo2: hblkhd counts its bytes");
    free(big);
    struct mallinfo2 after_big = mallinfo2();
    check(after_big.hblks == small.hblks, "mallinfo2: its hblk goes when freed");
    for (int i = 0; i < SMALL_BLOCKS; i++)
        free(blocks[i]);
    struct mallinfo2 after = mallinfo2();
    check(after.uordblks < small.uordblks, "mallinfo2: freeing lowers uordblks");
}

static void test_malloc_info(void) {
    char *big = malloc(4 << 20);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    check(malloc_info(0, f) == 0, "malloc_info: 0 on success");
    fclose(f);
    check(strncmp(text, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", 42) == 0,
          "malloc_info: opens with <malloc version=\"1\"><heap nr=\"0\"><sizes>");
    check(len > 10 && strcmp(text + len - 10, "</malloc>\n") == 0,
          "malloc_info: ends with </malloc>");
    const char *tags[] = {"</sizes>\n<total type=\"fast\" count=\"", "<total type=\"rest\" count=\"",
                          "<total type=\"mmap\" count=\"", "<system type=\"current\" size=\"",
                          "<system type=\"max\" size=\"", "<aspace type=\"total\" size=\"",
                          "<aspace type=\"mprotect\" size=\"", "</heap>\n"};
    for (unsigned i = 0; i < sizeof tags / sizeof *tags; i++) {
        char what[128];
        snprintf(what, sizeof what, "malloc_info: has %.40s", tags[i]);
        check(strstr(text, tags[i]) != NULL, what);
    }
    free(text);
    free(big);
    f = fopen("/dev/null", "w");
    check(malloc_info(1, f) == EINVAL, "malloc_info: options other than 0 are EINVAL");
    fclose(f);
}

static void test_malloc_trim(void) {
    static void *blocks[TRIM_BLOCKS];
    for (int i = 0; i < TRIM_BLOCKS; i++)
        blocks[i] = malloc(200);
    for (int i = 0; i < TRIM_BLOCKS; i++)
        free(blocks[i]);
    check(malloc_trim(0) == 1, "malloc_trim: 1 after freeing 4 MB of small blocks");
}

static void test_mallopt(void) {
    int params[] = {M_MXFAST, 2, 3, 4, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD,
                    M_MMAP_MAX, M_ARENA_TEST, M_ARENA_MAX, 99, -99};
    int values[] = {0, 1, 64, 160, 161, 1000, -1, 1 << 25, (1 << 25) + 1};
    for (unsigned i = 0; i < sizeof params / sizeof *params; i++) {
        printf("mallopt(%d, ...):", params[i]);
        for (unsigned j = 0; j < sizeof values / sizeof *values; j++)
            printf(" %d", mallopt(params[i], values[j]));
        printf("\n");
    }
    /* M_PERTURB 0x55: new blocks read 0x55 ^ 0xff = 0xAA (glibc and the
     * library's scribble agree on this value). */
    check(mallopt(M_PERTURB, 0x55) == 1, "mallopt: M_PERTURB accepted");
    unsigned char *p = malloc(64);
    int all = 1;
    for (int i = 16; i < 64; i++)
        all &= p[i] == 0xAA;
    check(all, "mallopt: M_PERTURB 0x55 fills new blocks with 0xAA");
    free(p);
    mallopt(M_PERTURB, 0);
    check(mallopt(M_CHECK_ACTION, 3) == 1, "mallopt: M_CHECK_ACTION accepted");
}

/* M_CHECK_ACTION 1: print and go on (glibc 2.36 ignores it). */
static int check_action(void) {
    int on_stack;
    mallopt(M_CHECK_ACTION, 1);
    free(&on_stack);
    mallopt(M_CHECK_ACTION, 0);
    free(&on_stack + 1);
    printf("survived\n");
    return 0;
}

static int sized(void) {
    if (!free_sized || !free_aligned_sized) {
        printf("FAIL free_sized missing\n");
        return 1;
    }
    struct mallinfo2 before = mallinfo2();
    for (int round = 0; round < 1000; round++) {
        size_t size = 1 + round * 37 % 5000;
        char *p = malloc(size);
        memset(p, 1, size);
        free_sized(p, size);
        char *q = aligned_alloc(64, size);
        memset(q, 2, size);
        free_aligned_sized(q, 64, size);
    }
    struct mallinfo2 after = mallinfo2();
    check(after.hblks == before.hblks, "free_sized: no big block left");
    char *p = malloc(100);
    free_sized(p, 100);
    char *q = malloc(100);
    check(q == p, "free_sized: the block is free again");
    free(q);
    return failures != 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "check_action") == 0)
        return check_action();
    if (argc > 1 && strcmp(argv[1], "sized") == 0)
        return sized();
    test_mallinfo();
    test_malloc_info();
    test_malloc_trim();
    test_mallopt();
    fflush(stdout);
    malloc_stats();
    return failures != 0;
}
