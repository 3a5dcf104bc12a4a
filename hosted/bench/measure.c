/* measure: runs one command and reports its wall time and peak RSS.
 * Usage: measure PRELOAD OUTFILE PROGRAM [ARGS...]
 * PRELOAD ("-" for none) is put in LD_PRELOAD of the child only, so this
 * small process (its RSS at fork counts in the child's ru_maxrss) never
 * loads the allocator under test. Writes "wall_ns maxrss_kib status" to
 * OUTFILE; the command's output goes to /dev/null. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4)
		return (fprintf(stderr, "usage: measure PRELOAD OUTFILE PROGRAM [ARGS...]\n"), 2);
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	pid_t pid = fork();
	if (pid < 0)
		return (perror("fork"), 2);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		if (argv[1][0] != '-')
			setenv("LD_PRELOAD", argv[1], 1);
		else
			unsetenv("LD_PRELOAD");
		execvp(argv[3], argv + 3);
		_exit(127);
	}
	int status;
	struct rusage usage;
	if (wait4(pid, &status, 0, &usage) != pid)
		return (perror("wait4"), 2);
	clock_gettime(CLOCK_MONOTONIC, &end);
	long long ns = (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
	FILE *out = fopen(argv[2], "w");
	if (!out)
		return (perror(argv[2]), 2);
	fprintf(out, "%lld %ld %d\n", ns, usage.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fclose(out);
	return (0);
}
