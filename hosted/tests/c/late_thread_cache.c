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
 * /proc/self/statm without stdio buffers: nothing else allocates.
 *
 * With "fork" as the second argument, the threads run in the child of a
 * fork instead, which prints "child clean" if the forking thread's blocks
 * stayed its own (see run_threads_in_child). */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WARM_UP = 200 };

static pthread_key_t key;
/* Rounds of 8 mallocs and frees in the last destructor round. */
static int rounds_in_destructor = 1;
static atomic_int destructor_done;

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
	for (int r = 0; r < rounds_in_destructor; r++) {
		void *small[8];

		for (int i = 0; i < 8; i++) {
			small[i] = malloc(16 + 40 * i);
			memset(small[i], i, 16 + 40 * i);
		}
		for (int i = 0; i < 8; i++)
			free(small[i]);
	}
	free(malloc(3000));
	atomic_store(&destructor_done, 1);
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

/* The same, in the child of a fork, while the forking thread keeps using
 * the cache it had in the parent: it holds a block of each of 8 sizes per
 * thread run, each filled with its own byte, and checks them all at the
 * end (a cache taken from under it would hand its blocks out twice). */
static int run_threads_in_child(int n)
{
	enum { SIZES = 8 };
	unsigned char **held = malloc(sizeof(void *) * n * SIZES);

	if (!held)
		return 2;
	for (int i = 0; i < n; i++) {
		pthread_t thread;

		atomic_store(&destructor_done, 0);
		if (pthread_create(&thread, NULL, worker, NULL) != 0)
			return 2;
		/* While the thread sets up its cache on its way out, and uses it. */
		for (int k = 0; k < SIZES; k++) {
			held[i * SIZES + k] = malloc(16 + 40 * k);
			memset(held[i * SIZES + k], (i * SIZES + k) & 0xff, 16 + 40 * k);
		}
		while (!atomic_load(&destructor_done))
			for (int k = 0; k < SIZES; k++)
				free(malloc(16 + 40 * k));
		pthread_join(thread, NULL);
	}
	for (int i = 0; i < n * SIZES; i++)
		for (int b = 0; b < 16 + 40 * (i % SIZES); b++)
			if (held[i][b] != (i & 0xff)) {
				say("a held block changed in the child\n");
				return 1;
			}
	return 0;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 5000;
	int in_child = argc > 2 && strcmp(argv[2], "fork") == 0;
	char line[64];
	long before, after;

	if (pthread_key_create(&key, destructor) != 0)
		return 2;
	run_threads(WARM_UP);
	if (in_child) {
		pid_t child = fork();
		int status;

		if (child == 0) {
			rounds_in_destructor = 64;
			_exit(run_threads_in_child(threads));
		}
		if (child < 0 || waitpid(child, &status, 0) != child)
			return 2;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return 1;
		say("child clean\n");
		return 0;
	}
	before = rss_kib();
	run_threads(threads);
	after = rss_kib();
	snprintf(line, sizeof(line), "rss %ld %ld\n", before, after);
	say(line);
	return 0;
}
