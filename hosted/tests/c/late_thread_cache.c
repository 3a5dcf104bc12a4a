/* Threads whose first malloc happens in a pthread_key destructor, in the
 * last round of destructors (PTHREAD_DESTRUCTOR_ITERATIONS): a thread
 * cache set up there is stored with pthread_setspecific, which no later
 * round runs. The library must give it back anyway.
 *
 * Each thread sets a key and returns; the key's destructor sets it again
 * in every round but the last, and in the last one allocates and frees a
 * few blocks (its first calls to malloc). THREADS threads (the first
 * argument; 5000 by default) run one after another. The program prints
 * "rss BEFORE AFTER" in KiB (VmRSS), measured after a warm-up of 200
 * threads and after all of them. It writes with write(2) and reads
 * /proc/self/statm without stdio buffers: nothing else allocates. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { WARM_UP = 200 };

static pthread_key_t key;

static void say(const char *text)
{
	if (write(1, text, strlen(text)) < 0)
		_exit(3);
}

static long rss_kib(void)
{
	char buf[64] = {0};
	long size = 0, pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	setvbuf(f, NULL, _IONBF, 0);
	if (fread(buf, 1, sizeof(buf) - 1, f) == 0)
		pages = -1;
	fclose(f);
	sscanf(buf, "%ld %ld", &size, &pages);
	return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

static void destructor(void *value)
{
	long round = (long)value;

	if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
		pthread_setspecific(key, (void *)(round + 1));
		return;
	}
	/* The last round: this thread's first allocations. */
	void *small[8];
	for (int i = 0; i < 8; i++) {
		small[i] = malloc(16 + 40 * i);
		memset(small[i], i, 16 + 40 * i);
	}
	for (int i = 0; i < 8; i++)
		free(small[i]);
	free(malloc(3000));
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_setspecific(key, (void *)1);
	return NULL;
}

static void run_threads(int n)
{
	for (int i = 0; i < n; i++) {
		pthread_t thread;

		if (pthread_create(&thread, NULL, worker, NULL) != 0)
			_exit(2);
		pthread_join(thread, NULL);
	}
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 5000;
	char line[64];
	long before, after;

	if (pthread_key_create(&key, destructor) != 0)
		return 2;
	run_threads(WARM_UP);
	before = rss_kib();
	run_threads(threads);
	after = rss_kib();
	snprintf(line, sizeof(line), "rss %ld %ld\n", before, after);
	say(line);
	return 0;
}
