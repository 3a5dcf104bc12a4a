/* Threads hammering malloc/free/realloc, with cross-thread frees: each thread
 * hands some of its blocks to the next thread through a mailbox, and frees
 * what the previous thread handed it. Every block carries a pattern derived
 * from its owner and size, checked before every realloc and free.
 * Usage: threads [threads] [rounds]. Exit status 0 if no byte was lost. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 256, MAILBOX = 64 };

struct mailbox {
	pthread_mutex_t lock;
	unsigned char *blocks[MAILBOX];
	size_t sizes[MAILBOX];
	int count;
};

static int nthreads = 8;
static int rounds = 200000;
static struct mailbox *boxes;
static atomic_long broken;

static unsigned char tag(size_t size, size_t i)
{
	return (unsigned char)(size * 7 + i * 13 + 1);
}

static void stamp(unsigned char *p, size_t size)
{
	for (size_t i = 0; i < size; i += 16)
		p[i] = tag(size, i);
	if (size)
		p[size - 1] = tag(size, size - 1);
}

static void verify(const unsigned char *p, size_t size)
{
	for (size_t i = 0; i < size; i += 16)
		if (p[i] != tag(size, i)) {
			atomic_fetch_add(&broken, 1);
			return;
		}
	if (size && p[size - 1] != tag(size, size - 1))
		atomic_fetch_add(&broken, 1);
}

static size_t pick_size(uint64_t r)
{
	unsigned shape = (unsigned)(r % 1000);
	if (shape < 700)
		return (r >> 10) % 129;              /* TINY */
	if (shape < 990)
		return (r >> 10) % 32769;            /* SMALL */
	return 32769 + (r >> 10) % (1 << 20);        /* LARGE */
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	unsigned char *slot[SLOTS] = { 0 };
	size_t len[SLOTS] = { 0 };
	uint64_t r = 0x853c49e6748fea9bULL * (uint64_t)(id + 1);
	struct mailbox *mine = &boxes[id], *next = &boxes[(id + 1) % nthreads];

	for (int round = 0; round < rounds; round++) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		int i = (int)((r >> 33) % SLOTS);
		size_t size = pick_size(r >> 17);
		unsigned op = (unsigned)(r >> 60);
		if (slot[i])
			verify(slot[i], len[i]);
		if (slot[i] && op < 4) {
			/* realloc(p, 0) would free p: grow to 1 byte instead. */
			if (size == 0)
				size = 1;
			unsigned char *q = realloc(slot[i], size);
			if (!q) {
				atomic_fetch_add(&broken, 1);
				continue;
			}
			size_t kept = len[i] < size ? len[i] : size;
			/* The old pattern survives in the kept prefix (sampled). */
			for (size_t b = 0; b + 16 < kept; b += 16)
				if (q[b] != tag(len[i], b)) {
					atomic_fetch_add(&broken, 1);
					break;
				}
			slot[i] = q;
		} else if (slot[i] && op < 8) {
			/* Hand the block to the next thread. */
			pthread_mutex_lock(&next->lock);
			if (next->count < MAILBOX) {
				next->blocks[next->count] = slot[i];
				next->sizes[next->count++] = len[i];
				slot[i] = NULL;
			}
			pthread_mutex_unlock(&next->lock);
			free(slot[i]);
			slot[i] = malloc(size);
		} else {
			free(slot[i]);
			slot[i] = malloc(size);
		}
		if (!slot[i] && size) {
			atomic_fetch_add(&broken, 1);
			continue;
		}
		/* Only what was asked is ours: malloc(0) gives no byte (the
		 * hardened mode's canary catches a write through it). */
		len[i] = slot[i] ? size : 0;
		if (slot[i])
			stamp(slot[i], len[i]);
		/* Free what the previous thread handed over. */
		if ((round & 15) == 0) {
			pthread_mutex_lock(&mine->lock);
			for (int k = 0; k < mine->count; k++) {
				verify(mine->blocks[k], mine->sizes[k]);
				free(mine->blocks[k]);
			}
			mine->count = 0;
			pthread_mutex_unlock(&mine->lock);
		}
	}
	for (int i = 0; i < SLOTS; i++)
		free(slot[i]);
	return (NULL);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		nthreads = atoi(argv[1]);
	if (argc > 2)
		rounds = atoi(argv[2]);
	boxes = calloc((size_t)nthreads, sizeof(*boxes));
	pthread_t *tid = calloc((size_t)nthreads, sizeof(*tid));
	for (int t = 0; t < nthreads; t++)
		pthread_mutex_init(&boxes[t].lock, NULL);
	for (int t = 0; t < nthreads; t++)
		pthread_create(&tid[t], NULL, worker, (void *)(intptr_t)t);
	for (int t = 0; t < nthreads; t++)
		pthread_join(tid[t], NULL);
	for (int t = 0; t < nthreads; t++)
		for (int k = 0; k < boxes[t].count; k++) {
			verify(boxes[t].blocks[k], boxes[t].sizes[k]);
			free(boxes[t].blocks[k]);
		}
	printf("%d threads x %d rounds: %ld broken\n", nthreads, rounds, (long)broken);
	free(boxes);
	free(tid);
	return (broken != 0);
}
