/* Threads fill the address space to ENOMEM and free it again (defect 2):
 * under RLIMIT_AS a NULL from malloc makes the heap trim(), which shrinks
 * zones, while the other threads keep mapping zones and asking
 * malloc_usable_size about their live blocks. No live block may ever be
 * refused: under FT_MALLOC_CHECK=abort a refused pointer aborts.
 * Usage: rlimit_trim [seconds] [threads]. Exit status 0 if nothing broke. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <malloc.h>

#define MIB (1024UL * 1024UL)
enum { SLOTS = 20000 };

static atomic_int stop;
static atomic_long enomems, rounds, broken;
static pthread_barrier_t start;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec + t.tv_nsec / 1e9);
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

static size_t pick(uint64_t r)
{
	unsigned shape = (unsigned)(r % 100);
	if (shape < 60)
		return 1 + (r >> 8) % 128;
	if (shape < 97)
		return 129 + (r >> 8) % 32640;
	return 32769 + (r >> 8) % (2 * MIB);
}

/* Each thread's live blocks (static: nothing to allocate under the limit). */
static unsigned char *slots[16][SLOTS];
static size_t lens[16][SLOTS];

static void *filler(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t r = 0x9E3779B97F4A7C15ULL * (uint64_t)(id + 1);
	unsigned char **slot = slots[id];
	size_t *len = lens[id];

	pthread_barrier_wait(&start);
	while (!atomic_load(&stop)) {
		int n = 0;
		/* Fill until the address space runs out (or the slots do). */
		while (n < SLOTS && !atomic_load(&stop)) {
			r = r * 6364136223846793005ULL + 1442695040888963407ULL;
			size_t size = pick(r >> 16);
			unsigned char *p = malloc(size);
			if (p == NULL) {
				atomic_fetch_add(&enomems, 1);
				break;
			}
			p[0] = (unsigned char)size;
			slot[n] = p;
			len[n++] = size;
			/* Ask about an older live block. */
			int k = (int)((r >> 40) % (uint64_t)n);
			if (malloc_usable_size(slot[k]) < len[k] ||
			    slot[k][0] != (unsigned char)len[k])
				atomic_fetch_add(&broken, 1);
		}
		for (int i = 0; i < n; i++) {
			if (malloc_usable_size(slot[i]) < len[i] ||
			    slot[i][0] != (unsigned char)len[i])
				atomic_fetch_add(&broken, 1);
			free(slot[i]);
		}
		atomic_fetch_add(&rounds, 1);
	}
	return (NULL);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 4;
	int nthreads = argc > 2 ? atoi(argv[2]) : 4;
	pthread_t tid[16];

	if (nthreads < 1 || nthreads > 16)
		nthreads = 4;
	pthread_barrier_init(&start, NULL, nthreads + 1);
	for (int t = 0; t < nthreads; t++)
		pthread_create(&tid[t], NULL, filler, (void *)(intptr_t)t);
	/* The thread stacks are mapped now: leave 64 MiB above them. */
	struct rlimit limit;
	limit.rlim_cur = limit.rlim_max = mapped_now() + 64 * MIB;
	if (setrlimit(RLIMIT_AS, &limit) != 0)
		return (perror("setrlimit"), 100);
	pthread_barrier_wait(&start);
	for (double end = now() + seconds; now() < end;)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	atomic_store(&stop, 1);
	for (int t = 0; t < nthreads; t++)
		pthread_join(tid[t], NULL);
	printf("%d threads, %ld fill rounds, %ld ENOMEMs: %ld broken\n", nthreads,
	       atomic_load(&rounds), atomic_load(&enomems), atomic_load(&broken));
	return (atomic_load(&broken) != 0 || atomic_load(&enomems) == 0);
}
