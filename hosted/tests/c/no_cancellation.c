/* No allocator entry point is a cancellation point (glibc's
 * tst-malloc-stats-cancellation): a thread with a cancel pending calls
 * malloc_stats, malloc_info, show_alloc_mem and a refused free (whose report
 * is written to stderr), and each returns; the thread is cancelled only at
 * its own pthread_testcancel. Prints "returned" (from main) if all four
 * returned and the thread then ended cancelled. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void show_alloc_mem(void);

static volatile int returned;

static void *body(void *arg)
{
	(void)arg;
	char *block = malloc(100);
	pthread_cancel(pthread_self());
	malloc_stats();
	returned |= 1;
	malloc_info(0, stderr);
	returned |= 2;
	show_alloc_mem();
	returned |= 4;
	free(block + 5);
	returned |= 8;
	free(block);
	pthread_testcancel();
	return NULL;
}

int main(void)
{
	pthread_t thread;
	void *result;
	if (pthread_create(&thread, NULL, body, NULL) != 0 || pthread_join(thread, &result) != 0)
		return 1;
	if (result != PTHREAD_CANCELED)
		return 2;
	if (returned != 15) {
		fprintf(stdout, "only %d\n", returned);
		return 3;
	}
	fputs("returned\n", stdout);
	return 0;
}
