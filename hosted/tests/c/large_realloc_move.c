/* A LARGE realloc that moves, racing zone creation (defect 1): one thread
 * grows a block by doubling up to 16 MiB (mremap moves it), while other
 * threads map and release TINY zones (batches of malloc(128), then free).
 * A zone mapped at the address the moved run just left must stay known to
 * the heap: under FT_MALLOC_CHECK=abort a refused free aborts.
 * Usage: large_realloc_move [seconds] [churn threads].
 * Exit status 0 if every byte survived. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Tuned to fail in under 2 s (of the 4 the test runs) on the unfixed heap:
 * big batches map and release several zones each, and a 16 MiB top keeps
 * the moves frequent. */
enum { BATCH = 6000, TOP = 16 << 20 };

static atomic_int stop;
static atomic_long moves, batches, broken;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec + t.tv_nsec / 1e9);
}

static void *grower(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		size_t size = 64 << 10;
		unsigned char *p = malloc(size);
		if (p == NULL)
			continue;
		p[0] = 0xA5;
		while (size < TOP) {
			size *= 2;
			unsigned char *q = realloc(p, size);
			if (q == NULL)
				break;
			if (q[0] != 0xA5)
				atomic_fetch_add(&broken, 1);
			atomic_fetch_add(&moves, q != p);
			p = q;
			p[size - 1] = 1;
		}
		free(p);
	}
	return (NULL);
}

static void *churn(void *arg)
{
	static __thread void *block[BATCH];
	(void)arg;
	while (!atomic_load(&stop)) {
		for (int i = 0; i < BATCH; i++) {
			block[i] = malloc(128);
			if (block[i])
				*(long *)block[i] = i;
		}
		for (int i = 0; i < BATCH; i++) {
			if (block[i] && *(long *)block[i] != i)
				atomic_fetch_add(&broken, 1);
			free(block[i]);
		}
		atomic_fetch_add(&batches, 1);
	}
	return (NULL);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 4;
	int nchurn = argc > 2 ? atoi(argv[2]) : 2;
	pthread_t tid[17];

	if (nchurn < 1 || nchurn > 16)
		nchurn = 2;
	pthread_create(&tid[0], NULL, grower, NULL);
	for (int t = 1; t <= nchurn; t++)
		pthread_create(&tid[t], NULL, churn, NULL);
	for (double end = now() + seconds; now() < end;)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	atomic_store(&stop, 1);
	for (int t = 0; t <= nchurn; t++)
		pthread_join(tid[t], NULL);
	printf("%ld moving reallocs, %ld batches: %ld broken\n", atomic_load(&moves),
	       atomic_load(&batches), atomic_load(&broken));
	return (atomic_load(&broken) != 0);
}
