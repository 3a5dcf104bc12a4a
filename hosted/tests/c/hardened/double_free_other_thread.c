/* A small block freed by one thread (into its quarantine), then freed
 * again by another thread: the second free must be caught. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static char *block;

static void *free_it(void *arg)
{
	(void)arg;
	free(block);
	return NULL;
}

int main(void)
{
	pthread_t t;

	block = malloc(40);
	free(malloc(40)); /* this thread has a cache (and a quarantine) */
	pthread_create(&t, NULL, free_it, NULL);
	pthread_join(t, NULL);
	puts("misuse");
	fflush(stdout);
	free(block);
	puts("survived");
	return 0;
}
