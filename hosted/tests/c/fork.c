/* fork() from a multi-threaded process while the other threads allocate:
 * the child must be able to allocate at once (no lock left held by a thread
 * that does not exist in the child). Each child allocates in every size
 * class, frees, and exits 0; alarm() turns a deadlocked child into a failure.
 * Usage: fork [threads] [forks]. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void show_alloc_mem(void);

static atomic_int stop;

static void *churn(void *arg)
{
	unsigned long r = (unsigned long)arg * 2654435761UL + 1;
	void *keep[64] = { 0 };

	while (!atomic_load(&stop)) {
		r = r * 6364136223846793005UL + 1442695040888963407UL;
		int i = (int)((r >> 33) % 64);
		free(keep[i]);
		size_t size = (r >> 40) % 4 == 0 ? (r >> 20) % 300000 : (r >> 20) % 2000;
		keep[i] = malloc(size);
		if (keep[i])
			memset(keep[i], 0x11, size < 64 ? size : 64);
	}
	for (int i = 0; i < 64; i++)
		free(keep[i]);
	return (NULL);
}

static int child(void)
{
	alarm(20);
	for (size_t size = 0; size < (1 << 22); size = size * 2 + 1) {
		char *p = malloc(size);
		if (p == NULL && size)
			return (2);
		memset(p, 1, size);
		p = realloc(p, size + 100);
		if (p == NULL)
			return (3);
		free(p);
	}
	/* Introspection takes every lock too (stdout is /dev/null here). */
	show_alloc_mem();
	return (0);
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 8;
	int forks = argc > 2 ? atoi(argv[2]) : 200;
	pthread_t tid[64];
	int failed = 0;

	for (int t = 0; t < nthreads; t++)
		pthread_create(&tid[t], NULL, churn, (void *)(long)(t + 1));
	for (int f = 0; f < forks; f++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return (1);
		}
		if (pid == 0)
			_exit(child());
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			failed++;
			fprintf(stderr, "child %d: %s %d\n", f, WIFEXITED(status) ? "exit" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		}
	}
	atomic_store(&stop, 1);
	for (int t = 0; t < nthreads; t++)
		pthread_join(tid[t], NULL);
	printf("%d forks with %d busy threads: %d failed children\n", forks, nthreads, failed);
	return (failed != 0);
}
