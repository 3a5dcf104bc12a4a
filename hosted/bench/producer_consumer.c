/* Producer/consumer (larson- and xmalloc-test-like): PAIRS pairs of threads;
 * each producer allocates ITEMS blocks of 16..512 bytes, writes them and
 * passes them through a ring to its consumer, which reads and frees them.
 * Every block is freed by a thread other than the one that allocated it.
 * Usage: producer_consumer [pairs] [items per producer]. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

enum { RING = 1024 };

struct ring {
	void *slot[RING];
	_Atomic unsigned long head, tail;
	long items;
	unsigned long sum;
};

static void *produce(void *arg)
{
	struct ring *r = arg;
	uint64_t x = (uint64_t)(uintptr_t)r | 1;
	for (long i = 0; i < r->items; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t size = 16 + x % 497;
		unsigned char *p = malloc(size);
		p[0] = (unsigned char)i, p[size - 1] = 1;
		unsigned long h = atomic_load_explicit(&r->head, memory_order_relaxed);
		while (h - atomic_load_explicit(&r->tail, memory_order_acquire) == RING)
			sched_yield(); /* 2 cores: let the consumer run */
		r->slot[h % RING] = p;
		atomic_store_explicit(&r->head, h + 1, memory_order_release);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct ring *r = arg;
	for (long i = 0; i < r->items; i++) {
		unsigned long t = atomic_load_explicit(&r->tail, memory_order_relaxed);
		while (atomic_load_explicit(&r->head, memory_order_acquire) == t)
			sched_yield();
		unsigned char *p = r->slot[t % RING];
		r->sum += p[0];
		free(p);
		atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int pairs = argc > 1 ? atoi(argv[1]) : 1;
	long items = argc > 2 ? atol(argv[2]) : 1000000;
	struct ring *rings = calloc((size_t)pairs, sizeof(*rings));
	pthread_t *t = calloc((size_t)pairs * 2, sizeof(*t));
	for (int i = 0; i < pairs; i++) {
		rings[i].items = items;
		pthread_create(&t[2 * i], NULL, produce, &rings[i]);
		pthread_create(&t[2 * i + 1], NULL, consume, &rings[i]);
	}
	unsigned long sum = 0;
	for (int i = 0; i < pairs; i++) {
		pthread_join(t[2 * i], NULL);
		pthread_join(t[2 * i + 1], NULL);
		sum += rings[i].sum;
	}
	return sum == 42;
}
