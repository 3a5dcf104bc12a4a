/* Forks while the heap is busy, timed: the fork handlers' cost (every heap
 * lock taken and released around each fork) and what the heap's mappings
 * cost the kernel to copy.
 *
 *   fork_threads threads T F   T threads allocate and free blocks of 0..70000
 *                              bytes (1000 live each) while the main thread
 *                              forks F times (the child allocates, frees and
 *                              exits); prints the mean time per fork
 *   fork_threads signal F      one thread allocates and frees (1009 live
 *                              blocks of 0..70000 bytes, glibc's
 *                              tst-mallocfork2 load) while a helper process
 *                              signals it; the handler forks (the child
 *                              exits at once), F times in all
 *
 *   fork_threads counted F     as `signal`, but counting only the forks whose
 *                              signal landed inside the free+malloc pair, as
 *                              tst-mallocfork2 counts them (the sender is
 *                              stopped by each fork and resumed by the next
 *                              iteration); prints the time to F such forks
 *                              and the share of all forks that counted: a
 *                              faster malloc makes that share smaller and
 *                              the run longer, whatever fork costs
 *
 * Prints one line: "<mode>: <F> forks in <s> s, <us> us per fork, <n> maps". */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { LIVE = 1000, MAX_SIZE = 70000 };

static atomic_int stop;
static volatile sig_atomic_t forks_done;
static volatile sig_atomic_t in_pair_signal;
static pid_t sender_pid;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int lines = 0, c;
	while (f && (c = fgetc(f)) != EOF)
		lines += c == '\n';
	if (f)
		fclose(f);
	return lines;
}

static void churn_once(void **live, unsigned *seed)
{
	int slot = rand_r(seed) % LIVE;
	size_t size = rand_r(seed) % MAX_SIZE;
	free(live[slot]);
	live[slot] = malloc(size);
	if (live[slot] && size)
		((char *)live[slot])[0] = 1;
}

static void *allocator(void *arg)
{
	void **live = calloc(LIVE, sizeof(void *));
	unsigned seed = (unsigned)(size_t)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		churn_once(live, &seed);
	for (int i = 0; i < LIVE; i++)
		free(live[i]);
	free(live);
	return NULL;
}

static void fork_once(int allocate_in_child)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (allocate_in_child)
			free(malloc(100));
		_exit(0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		;
	if (pid < 0 || status != 0)
		abort();
}

static void on_signal(int signo)
{
	(void)signo;
	/* Async-signal-safe fork: the child may not allocate. */
	fork_once(0);
	forks_done++;
}

static void on_counted_signal(int signo)
{
	(void)signo;
	/* The first signal may come before fork() has returned the sender's
	 * pid here (kill(0) would stop the whole process group). */
	if (in_pair_signal || sender_pid <= 0)
		return;
	/* One fork per iteration at most: the sender waits for the next. */
	kill(sender_pid, SIGSTOP);
	in_pair_signal = 1;
	fork_once(0);
	forks_done++;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "threads") == 0) {
		int threads = atoi(argv[2]), forks = atoi(argv[3]);
		pthread_t t[64];
		for (int i = 0; i < threads && i < 64; i++)
			pthread_create(&t[i], NULL, allocator, (void *)(size_t)(i + 1));
		usleep(50000);
		double start = now();
		for (int i = 0; i < forks; i++)
			fork_once(1);
		double spent = now() - start;
		int mapped = maps();
		atomic_store(&stop, 1);
		for (int i = 0; i < threads && i < 64; i++)
			pthread_join(t[i], NULL);
		printf("threads: %d forks in %.3f s, %.0f us per fork, %d maps\n", forks, spent,
		       spent / forks * 1e6, mapped);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "signal") == 0) {
		int forks = atoi(argv[2]);
		signal(SIGUSR1, on_signal);
		pid_t parent = getpid();
		pid_t sender = fork();
		if (sender == 0) {
			for (;;) {
				if (kill(parent, SIGUSR1) != 0)
					_exit(0);
				usleep(500);
			}
		}
		void **live = calloc(1009, sizeof(void *));
		unsigned seed = 1;
		double start = now();
		while (forks_done < forks) {
			int slot = rand_r(&seed) % 1009;
			size_t size = rand_r(&seed) % MAX_SIZE;
			free(live[slot]);
			live[slot] = malloc(size);
			if (!live[slot] && size)
				abort();
		}
		double spent = now() - start;
		signal(SIGUSR1, SIG_IGN);
		kill(sender, SIGKILL);
		waitpid(sender, NULL, 0);
		printf("signal: %d forks in %.3f s, %.0f us per fork, %d maps\n", forks, spent,
		       spent / forks * 1e6, maps());
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "counted") == 0) {
		int wanted = atoi(argv[2]), counted = 0;
		signal(SIGUSR1, on_counted_signal);
		pid_t parent = getpid();
		sender_pid = fork();
		if (sender_pid == 0) {
			for (;;) {
				if (kill(parent, SIGUSR1) != 0)
					_exit(0);
				sched_yield();
			}
		}
		void **live = calloc(1009, sizeof(void *));
		unsigned seed = 1;
		double start = now();
		while (counted < wanted) {
			int slot = rand_r(&seed) % 1009;
			size_t size = rand_r(&seed) % MAX_SIZE;
			kill(sender_pid, SIGCONT);
			in_pair_signal = 0;
			free(live[slot]);
			live[slot] = malloc(size);
			counted += in_pair_signal;
			if (!live[slot] && size)
				abort();
		}
		double spent = now() - start;
		signal(SIGUSR1, SIG_IGN);
		kill(sender_pid, SIGKILL);
		waitpid(sender_pid, NULL, 0);
		printf("counted: %d forks in %.3f s, %.0f us per counted fork, %d forks in all (%.1f%% counted)\n",
		       wanted, spent, spent / wanted * 1e6, (int)forks_done, 100.0 * wanted / forks_done);
		return 0;
	}
	fprintf(stderr, "usage: %s threads T F | signal F | counted F\n", argv[0]);
	return 2;
}
