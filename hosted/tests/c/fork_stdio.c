/* fork() while other threads are inside stdio (defect 3): readers call
 * getline() on pipes (holding the FILE lock while getline reallocs its
 * buffer), one thread calls fflush(NULL) in a loop (holding glibc's stdio
 * list lock while it waits for each FILE lock), and the main thread forks in
 * a loop. A fork handler that takes the heap locks before glibc's fork takes
 * the list lock closes a cycle: fork waits for the list lock, fflush for a
 * FILE lock, getline for a heap lock. The Rust test kills a hang.
 * Usage: fork_stdio [seconds]. Exit status 0 if every child exited 0. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { PAIRS = 2 };

static atomic_int stop;
static atomic_long lines_read, flushes;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec + t.tv_nsec / 1e9);
}

/* Writes lines of varying length (up to a few KiB) so that getline keeps
 * growing its buffer. write(2) only: this thread takes no lock. */
static void *writer(void *arg)
{
	int fd = (int)(long)arg;
	static char text[8192];
	unsigned r = (unsigned)fd * 2654435761u;

	memset(text, 'x', sizeof(text));
	while (!atomic_load(&stop)) {
		r = r * 1103515245u + 12345u;
		size_t len = 1 + (r >> 8) % (sizeof(text) - 1);
		text[len - 1] = '\n';
		if (write(fd, text, len) < 0)
			break;
		text[len - 1] = 'x';
	}
	close(fd);
	return (NULL);
}

/* getline() with its buffer dropped every few lines, so that it mallocs and
 * reallocs again while holding the stream's lock. */
static void *reader(void *arg)
{
	FILE *in = fdopen((int)(long)arg, "r");
	char *line = NULL;
	size_t cap = 0;

	if (in == NULL)
		return (perror("fdopen"), NULL);
	for (long n = 0; getline(&line, &cap, in) > 0; n++) {
		atomic_fetch_add(&lines_read, 1);
		if (n % 4 == 0) {
			free(line);
			line = NULL;
			cap = 0;
		}
	}
	free(line);
	fclose(in);
	return (NULL);
}

static void *flusher(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		fflush(NULL);
		atomic_fetch_add(&flushes, 1);
	}
	return (NULL);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	pthread_t tid[2 * PAIRS + 1];
	int n = 0, forks = 0, failed = 0;

	for (int i = 0; i < PAIRS; i++) {
		int fds[2];
		if (pipe(fds) != 0)
			return (perror("pipe"), 1);
		pthread_create(&tid[n++], NULL, reader, (void *)(long)fds[0]);
		pthread_create(&tid[n++], NULL, writer, (void *)(long)fds[1]);
	}
	pthread_create(&tid[n++], NULL, flusher, NULL);
	for (double end = now() + seconds; now() < end; forks++) {
		pid_t pid = fork();
		if (pid < 0)
			return (perror("fork"), 1);
		if (pid == 0) {
			free(malloc(100));
			_exit(0);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			failed++;
	}
	atomic_store(&stop, 1);
	/* The writers close their pipes, which ends the readers. */
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	printf("%d forks, %ld lines read, %ld flushes: %d failed children\n", forks,
	       atomic_load(&lines_read), atomic_load(&flushes), failed);
	return (failed != 0 || forks == 0);
}
