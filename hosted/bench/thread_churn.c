/* Thread churn: THREADS short-lived threads, AT_ONCE at a time; each
 * allocates 200 blocks of 16..4096 bytes, frees half of them, and leaves the
 * other half to the next thread of its slot to free. Usage: thread_churn
 * [threads]. */
#include <pthread.h>
#include <stdlib.h>

enum { AT_ONCE = 4, BLOCKS = 200 };

static void *left[AT_ONCE][BLOCKS / 2];

static void *worker(void *arg)
{
	long slot = (long)arg;
	void *mine[BLOCKS];
	for (int i = 0; i < BLOCKS / 2; i++)
		free(left[slot][i]);
	for (int i = 0; i < BLOCKS; i++) {
		size_t size = 16 + (size_t)(i * 97 + slot * 31) % 4081;
		char *p = malloc(size);
		p[0] = (char)i;
		mine[i] = p;
	}
	for (int i = 0; i < BLOCKS / 2; i++)
		left[slot][i] = mine[2 * i];
	for (int i = 0; i < BLOCKS / 2; i++)
		free(mine[2 * i + 1]);
	return NULL;
}

int main(int argc, char **argv)
{
	long threads = argc > 1 ? atol(argv[1]) : 20000;
	for (long done = 0; done < threads; done += AT_ONCE) {
		pthread_t t[AT_ONCE];
		for (long s = 0; s < AT_ONCE; s++)
			pthread_create(&t[s], NULL, worker, (void *)s);
		for (int s = 0; s < AT_ONCE; s++)
			pthread_join(t[s], NULL);
	}
	return 0;
}
