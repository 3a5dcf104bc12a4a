/* Two threads free the same block at the same instant, ROUNDS times (the
 * first argument; 20000 by default). Each round thread 0 allocates a block
 * (TINY and SMALL in turn, or LARGE with "large" as the second argument) and writes it, both threads wait at a spin
 * barrier, both free it, and once both frees are over each allocates a
 * block of the same size and keeps it. Exactly one of the two frees may be accepted: the other is
 * a double free, reported (and survived under FT_MALLOC_CHECK=warn).
 *
 * A block accepted twice sits in both threads' caches, most recently
 * freed: the two mallocs right after return the same address. The program
 * checks that each round, and at the end that no two kept blocks (all
 * live) share an address. It prints "aliased N" (N > 0: exit 1), or
 * "clean ROUNDS". It writes with write(2) only: its stderr holds the
 * library's reports alone. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rounds = 20000;
/* "large" as the second argument: LARGE blocks (40 KB and 100 KB in turn),
 * which the hardened mode's guard pages hold in their own quarantine. */
static int large;
static void *volatile shared;
static atomic_uint arrived;
static void **kept[2];
static long aliased_at_once;

static void say(const char *text)
{
	if (write(1, text, strlen(text)) < 0)
		_exit(3);
}

/* Crossing n (1, 2, ...) waits until both threads arrived n times. Spins
 * (both threads stay on their cores, so the frees after it start
 * together), yielding now and then on a busy machine. */
static void cross(unsigned n)
{
	unsigned spins = 0;

	atomic_fetch_add(&arrived, 1);
	while (atomic_load(&arrived) < 2 * n)
		if (++spins % 4096 == 0)
			sched_yield();
}

static size_t size_of_round(int r)
{
	if (large)
		return r % 2 ? 40000 : 100000;
	return r % 2 ? 48 : 200;
}

static void race(int me)
{
	for (int r = 0; r < rounds; r++) {
		size_t size = size_of_round(r);

		if (me == 0) {
			void *p = malloc(size);

			memset(p, 0x5a, size);
			shared = p;
		}
		cross(3 * r + 1);
		free(shared);
		/* Both frees are over before either thread allocates: a block
		 * freed, handed out again, then freed by the other thread would
		 * be a valid free of the new block. */
		cross(3 * r + 2);
		kept[me][r] = malloc(size);
		memset(kept[me][r], me + 1, size);
		cross(3 * r + 3);
		if (me == 0 && kept[0][r] == kept[1][r])
			aliased_at_once++;
	}
}

static void *second(void *arg)
{
	(void)arg;
	race(1);
	return NULL;
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	pthread_t thread;
	char line[64];
	long aliased = 0;

	if (argc > 1)
		rounds = atoi(argv[1]);
	large = argc > 2 && strcmp(argv[2], "large") == 0;
	kept[0] = malloc(sizeof(void *) * rounds);
	kept[1] = malloc(sizeof(void *) * rounds);
	if (!kept[0] || !kept[1] || pthread_create(&thread, NULL, second, NULL))
		return 2;
	race(0);
	pthread_join(thread, NULL);
	/* Every kept block is live: no two may share an address. */
	void **all = malloc(sizeof(void *) * 2 * rounds);
	if (!all)
		return 2;
	memcpy(all, kept[0], sizeof(void *) * rounds);
	memcpy(all + rounds, kept[1], sizeof(void *) * rounds);
	qsort(all, 2 * (size_t)rounds, sizeof(void *), by_address);
	for (long i = 1; i < 2L * rounds; i++)
		aliased += all[i] == all[i - 1];
	if (aliased || aliased_at_once) {
		snprintf(line, sizeof(line), "aliased %ld (%ld at once)\n", aliased,
			 aliased_at_once);
		say(line);
		return 1;
	}
	snprintf(line, sizeof(line), "clean %d\n", rounds);
	say(line);
	return 0;
}
