/* fork() from a signal handler in a single-threaded program (defect 4): a
 * SIGALRM timer's handler forks (the child _exits at once, the parent reaps
 * it) while the only thread loops over malloc/free. glibc's fork skips its
 * locking when the process is single-threaded so that this works; a fork
 * handler that takes every heap lock waits forever for the one the
 * interrupted malloc or free holds. The Rust test kills a hang.
 * Usage: fork_signal [seconds]. Exit status 0 if every child exited 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t forks, failed;

static void on_alarm(int sig)
{
	int saved = errno;
	(void)sig;
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		failed++;
	forks++;
	errno = saved;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec + t.tv_nsec / 1e9);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	struct sigaction sa;
	void *keep[64] = { 0 };
	unsigned r = 12345;
	long ops = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval every = { { 0, 500 }, { 0, 500 } };
	setitimer(ITIMER_REAL, &every, NULL);
	for (double end = now() + seconds; now() < end;) {
		for (int k = 0; k < 1000; k++, ops++) {
			r = r * 1103515245u + 12345u;
			int i = (r >> 8) % 64;
			free(keep[i]);
			size_t size = (r >> 16) % 8 == 0 ? (r >> 12) % 40000 : (r >> 12) % 200;
			keep[i] = malloc(size);
		}
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	for (int i = 0; i < 64; i++)
		free(keep[i]);
	printf("%ld operations, %d forks from a signal handler: %d failed children\n",
	       ops, (int)forks, (int)failed);
	return (failed != 0 || forks == 0);
}
