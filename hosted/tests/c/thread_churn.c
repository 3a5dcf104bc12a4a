/* Thread churn with per-thread caches: 10,000 threads, 8 at a time, each
 * allocates a mix of blocks, hands half of them to the next thread to free
 * (remote frees), frees the rest, and exits. A thread's cache goes back at
 * exit, so the footprint stays flat once warm: RSS after 5,000 threads and
 * after 10,000 are printed for the test to compare, and so is
 * show_alloc_mem at both points (with every block of the program freed): the totals must be
 * equal, glibc's own blocks for cached thread stacks being all that is
 * live (this program makes no stdio allocation: it writes with write(2)).
 * Also: a block freed twice from two threads is caught (the second free is
 * reported, and refused). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void show_alloc_mem(void);

enum { THREADS = 10000, AT_ONCE = 8, BLOCKS = 64 };

static void *handed[AT_ONCE][BLOCKS / 2];

static void say(const char *text)
{
	if (write(1, text, strlen(text)) < 0)
		_exit(3);
}

static long rss_pages(void)
{
	char buf[64] = {0};
	FILE *f;
	long size = 0, rss = 0;

	/* Read with a stack buffer and no stdio buffering. */
	f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	setvbuf(f, NULL, _IONBF, 0);
	if (fread(buf, 1, sizeof(buf) - 1, f) == 0)
		rss = -1;
	fclose(f);
	sscanf(buf, "%ld %ld", &size, &rss);
	return rss;
}

static void *worker(void *arg)
{
	long slot = (long)arg;
	void *mine[BLOCKS];

	/* Free what the previous thread in this slot handed over. */
	for (int i = 0; i < BLOCKS / 2; i++) {
		free(handed[slot][i]);
		handed[slot][i] = NULL;
	}
	for (int i = 0; i < BLOCKS; i++) {
		size_t size = (size_t)(16 + (i * 37 + slot * 11) % 2000);
		mine[i] = malloc(size);
		if (!mine[i])
			_exit(4);
		memset(mine[i], (int)i, size);
	}
	for (int i = 0; i < BLOCKS / 2; i++)
		handed[slot][i] = mine[i];
	for (int i = BLOCKS / 2; i < BLOCKS; i++)
		free(mine[i]);
	return NULL;
}

static void *free_it(void *p)
{
	free(p);
	return NULL;
}

int main(void)
{
	char line[96];
	long rss_early = 0;

	for (int done = 0; done < THREADS; done += AT_ONCE) {
		pthread_t t[AT_ONCE];
		for (long s = 0; s < AT_ONCE; s++)
			if (pthread_create(&t[s], NULL, worker, (void *)s))
				return 5;
		for (int s = 0; s < AT_ONCE; s++)
			pthread_join(t[s], NULL);
		if (done + AT_ONCE == THREADS / 2 || done + AT_ONCE == THREADS) {
			for (int s = 0; s < AT_ONCE; s++)
				for (int i = 0; i < BLOCKS / 2; i++) {
					free(handed[s][i]);
					handed[s][i] = NULL;
				}
			if (done + AT_ONCE == THREADS / 2)
				rss_early = rss_pages();
			say("live:\n");
			show_alloc_mem();
		}
	}
	snprintf(line, sizeof line, "rss %ld %ld\n", rss_early, rss_pages());
	say(line);

	/* A double free from two threads: the second one is refused. */
	void *p = malloc(48);
	pthread_t t;
	pthread_create(&t, NULL, free_it, p);
	pthread_join(t, NULL);
	free(p);
	say("double free done\n");
	show_alloc_mem();
	return 0;
}
