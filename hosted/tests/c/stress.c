/* Stress harness: everything the library must survive at once, for a given
 * time. Worker threads mix TINY / SMALL / LARGE blocks, realloc them across
 * kinds, and hand blocks to each other to free; RLIMIT_AS pressure phases
 * drive malloc to NULL and back (NULL is counted, never fatal); a thread
 * forks in a loop (each child allocates, frees and _exits) while other
 * threads sit in stdio (getline on a pipe, fflush(NULL)). Every block holds a
 * pattern derived from its address and size, checked before every free and
 * after every realloc (up to the size kept).
 * Usage: stress [seconds] [threads] [--no-rlimit] [--no-large-realloc]
 *        [--corrupt (flip one byte of one block: the run must fail)]
 * Prints one summary line; exit status 0 only if nothing went wrong. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024UL
#define MIB (1024UL * 1024UL)
enum { MAX_THREADS = 16, SLOTS = 512, BOX = 64, SMALL_MAX = 32768 };

struct box {
	pthread_mutex_t lock;
	unsigned char *block[BOX];
	size_t size[BOX];
	int count;
};

static int nthreads = 4, use_rlimit = 1, large_realloc = 1, corrupt = 0;
static struct box boxes[MAX_THREADS];
static atomic_int stop, pressure;
static atomic_long ops, reallocs, cross_frees, forks, enomems, failures;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec + t.tv_nsec / 1e9);
}

static void pause_ms(long ms)
{
	nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000 }, NULL);
}

/* A failure: one loud line on stderr (no stdio: it may be out of memory),
 * and the run stops. */
static void fail(const char *what, const void *p, size_t size, size_t at)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "stress: FAILURE: %s (block %p, size %zu, offset %zu)\n",
			 what, p, size, at);
	if (write(2, line, (size_t)n) < 0)
		abort();
	atomic_fetch_add(&failures, 1);
	atomic_store(&stop, 1);
}

static unsigned char pattern(uintptr_t addr, size_t size, size_t i)
{
	uint64_t x = (addr ^ (size * 0x9E3779B97F4A7C15ULL)) + i * 0x2545F4914F6CDD1DULL;
	return (unsigned char)(x ^ (x >> 29) ^ (x >> 51));
}

/* Which bytes carry the pattern: all of a block up to 4 KiB, else every
 * 64th byte and the last 64 (every page, both ends). */
static size_t next_stamped(size_t size, size_t i)
{
	if (size <= 4 * KIB || i + 1 >= size - 64)
		return (i + 1);
	size_t next = (i | 63) + 1;
	return (next < size - 64 ? next : size - 64);
}

static void stamp(unsigned char *p, size_t size)
{
	for (size_t i = 0; i < size; i = next_stamped(size, i))
		p[i] = pattern((uintptr_t)p, size, i);
}

/* Checks the pattern `p` got when it was stamped at `was` with `size`, up to
 * `kept` bytes. */
static int intact(const unsigned char *p, uintptr_t was, size_t size, size_t kept)
{
	for (size_t i = 0; i < kept; i = next_stamped(size, i))
		if (p[i] != pattern(was, size, i)) {
			fail("pattern mismatch", p, size, i);
			return (0);
		}
	return (1);
}

static void release(unsigned char *p, size_t size)
{
	intact(p, (uintptr_t)p, size, size);
	free(p);
}

static size_t pick_size(uint64_t r, int squeeze)
{
	unsigned shape = (unsigned)(r % 1000);
	if (squeeze ? shape < 300 : shape < 20)
		return SMALL_MAX + 1 + (r >> 10) % (2 * MIB); /* LARGE */
	if (shape < 600)
		return (r >> 10) % 129;                         /* TINY */
	return 129 + (r >> 10) % (SMALL_MAX - 128);            /* SMALL */
}

/* Hands a block to the next thread, which frees it; frees it here if the
 * next thread's box is full. */
static void hand_over(int id, unsigned char *p, size_t size)
{
	struct box *to = &boxes[(id + 1) % nthreads];
	pthread_mutex_lock(&to->lock);
	int kept = to->count < BOX;
	if (kept) {
		to->block[to->count] = p;
		to->size[to->count++] = size;
	}
	pthread_mutex_unlock(&to->lock);
	if (!kept)
		release(p, size);
}

/* Frees what other threads handed to `box`. */
static long drain(struct box *box)
{
	unsigned char *block[BOX];
	size_t size[BOX];
	pthread_mutex_lock(&box->lock);
	int n = box->count;
	memcpy(block, box->block, sizeof(block[0]) * (size_t)n);
	memcpy(size, box->size, sizeof(size[0]) * (size_t)n);
	box->count = 0;
	pthread_mutex_unlock(&box->lock);
	for (int i = 0; i < n; i++)
		release(block[i], size[i]);
	return (n);
}

static void resize(unsigned char **slot, size_t *len, size_t size)
{
	int large = *len > SMALL_MAX || size > SMALL_MAX;
	if (!large_realloc && large) {
		/* The same move by hand, without a LARGE realloc. */
		unsigned char *q = malloc(size);
		if (q == NULL)
			return ((void)atomic_fetch_add(&enomems, 1));
		release(*slot, *len);
		stamp(q, size);
		*slot = q;
		*len = size;
		return;
	}
	unsigned char *old = *slot;
	uintptr_t was = (uintptr_t)old;
	if (!intact(old, was, *len, *len))
		return;
	unsigned char *q = realloc(old, size ? size : 1);
	if (q == NULL) {
		/* The old block must be untouched. */
		atomic_fetch_add(&enomems, 1);
		intact(old, was, *len, *len);
		return;
	}
	atomic_fetch_add(&reallocs, 1);
	intact(q, was, *len, *len < size ? *len : size);
	size = size ? size : 1;
	stamp(q, size);
	*slot = q;
	*len = size;
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	unsigned char *slot[SLOTS] = { 0 };
	size_t len[SLOTS] = { 0 };
	uint64_t r = 0x853c49e6748fea9bULL * (uint64_t)(id + 1);
	long done = 0, received = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		int squeeze = atomic_load_explicit(&pressure, memory_order_relaxed);
		int i = (int)((r >> 33) % SLOTS);
		unsigned op = (unsigned)(r >> 59) % 16;
		size_t size = pick_size(r >> 7, squeeze);
		if (slot[i] == NULL) {
			slot[i] = malloc(size);
			if (slot[i] == NULL) {
				atomic_fetch_add(&enomems, 1);
			} else {
				len[i] = size;
				stamp(slot[i], size);
				/* --corrupt: proves the checks catch a changed byte. */
				if (id == 0 && corrupt && size > 0 && done > 1000) {
					slot[i][size - 1] ^= 0xFF;
					corrupt = 0;
				}
			}
		} else if (op < 5) {
			resize(&slot[i], &len[i], size);
		} else if (op < 7) {
			hand_over(id, slot[i], len[i]);
			slot[i] = NULL;
		} else if (!squeeze || op < 9) {
			release(slot[i], len[i]);
			slot[i] = NULL;
		}
		if (++done % 64 == 0)
			received += drain(&boxes[id]);
	}
	for (int i = 0; i < SLOTS; i++)
		if (slot[i])
			release(slot[i], len[i]);
	received += drain(&boxes[id]);
	atomic_fetch_add(&ops, done);
	atomic_fetch_add(&cross_frees, received);
	return (NULL);
}

/* The forked child: a few blocks of every kind (NULL allowed: the parent
 * may be under its address-space limit), nothing printed. */
static void child(void)
{
	for (size_t size = 1; size < 4 * MIB; size = size * 3 + 7) {
		unsigned char *p = malloc(size);
		if (p == NULL)
			continue;
		stamp(p, size);
		if (!intact(p, (uintptr_t)p, size, size))
			_exit(3);
		free(p);
	}
	_exit(0);
}

/* Forks in a loop; a child that hangs for 10 s or dies by a signal fails the
 * run. */
static void *forker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pid_t pid = fork();
		if (pid < 0) {
			pause_ms(10); /* EAGAIN/ENOMEM under pressure: try again */
			continue;
		}
		if (pid == 0)
			child();
		int status = 0;
		pid_t got = 0;
		for (int waited = 0; waited < 10000 && got == 0; waited++) {
			got = waitpid(pid, &status, WNOHANG);
			if (got == 0)
				pause_ms(1);
		}
		if (got == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail("forked child hung for 10 s", NULL, 0, (size_t)pid);
		} else if (got != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fail(WIFSIGNALED(status) ? "forked child killed by a signal"
						 : "forked child failed",
			     NULL, 0, (size_t)(WIFSIGNALED(status) ? WTERMSIG(status)
								  : WEXITSTATUS(status)));
		}
		atomic_fetch_add(&forks, 1);
		pause_ms(2);
	}
	return (NULL);
}

/* Lines of varying length into a pipe, with write(2) only. */
static void *writer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static char text[6000];
	unsigned r = 7;

	memset(text, 'y', sizeof(text));
	while (!atomic_load(&stop)) {
		r = r * 1103515245u + 12345u;
		size_t n = 1 + (r >> 8) % (sizeof(text) - 1);
		text[n - 1] = '\n';
		if (write(fd, text, n) < 0)
			break;
		text[n - 1] = 'y';
		pause_ms(0);
	}
	close(fd);
	return (NULL);
}

/* getline() holds the stream's lock while it reallocates its buffer. */
static void *reader(void *arg)
{
	FILE *in = fdopen((int)(intptr_t)arg, "r");
	char *line = NULL;
	size_t cap = 0;

	if (in == NULL)
		return (fail("fdopen", NULL, 0, 0), NULL);
	for (long n = 0;; n++) {
		if (getline(&line, &cap, in) < 0) {
			if (feof(in))
				break;
			clearerr(in); /* ENOMEM under pressure */
			continue;
		}
		if (n % 8 == 0) {
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
		usleep(100);
	}
	return (NULL);
}

static size_t mapped_now(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	if (f) {
		if (fscanf(f, "%lu", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	return pages * 4096;
}

/* Alternates free running (0.7 s) with address-space pressure (0.3 s: the
 * limit is set 32 MiB above what is mapped, and the workers keep more and
 * larger blocks) until `seconds` have passed. */
static long run_phases(double seconds)
{
	struct rlimit normal;
	long phases = 0;

	getrlimit(RLIMIT_AS, &normal);
	for (double end = now() + seconds; now() < end && !atomic_load(&stop);) {
		pause_ms(700);
		size_t mapped = mapped_now();
		if (!use_rlimit || mapped == 0 || now() >= end)
			continue;
		struct rlimit tight = normal;
		tight.rlim_cur = mapped + 32 * MIB;
		if (setrlimit(RLIMIT_AS, &tight) != 0)
			return (fail("setrlimit", NULL, 0, (size_t)errno), phases);
		atomic_store(&pressure, 1);
		pause_ms(300);
		atomic_store(&pressure, 0);
		setrlimit(RLIMIT_AS, &normal);
		phases++;
	}
	return (phases);
}

int main(int argc, char **argv)
{
	double seconds = 10;
	int positional = 0;
	pthread_t tid[MAX_THREADS + 4];
	int fds[2], n = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-rlimit") == 0)
			use_rlimit = 0;
		else if (strcmp(argv[i], "--no-large-realloc") == 0)
			large_realloc = 0;
		else if (strcmp(argv[i], "--corrupt") == 0)
			corrupt = 1;
		else if (positional++ == 0)
			seconds = atof(argv[i]);
		else
			nthreads = atoi(argv[i]);
	}
	if (nthreads < 1 || nthreads > MAX_THREADS)
		nthreads = 4;
	for (int t = 0; t < nthreads; t++)
		pthread_mutex_init(&boxes[t].lock, NULL);
	if (pipe(fds) != 0)
		return (perror("pipe"), 1);
	for (int t = 0; t < nthreads; t++)
		pthread_create(&tid[n++], NULL, worker, (void *)(intptr_t)t);
	pthread_create(&tid[n++], NULL, reader, (void *)(intptr_t)fds[0]);
	pthread_create(&tid[n++], NULL, writer, (void *)(intptr_t)fds[1]);
	pthread_create(&tid[n++], NULL, flusher, NULL);
	pthread_create(&tid[n++], NULL, forker, NULL);
	long phases = run_phases(seconds);
	atomic_store(&stop, 1);
	for (int t = 0; t < n; t++)
		pthread_join(tid[t], NULL);
	/* Blocks handed over after their receiver had finished. */
	long late = 0;
	for (int t = 0; t < nthreads; t++)
		late += drain(&boxes[t]);
	atomic_fetch_add(&cross_frees, late);
	printf("stress: %d threads, %.0f s: %ld operations, %ld reallocs, %ld cross-thread frees, "
	       "%ld forks, %ld ENOMEMs survived in %ld pressure phases: %s\n",
	       nthreads, seconds, atomic_load(&ops), atomic_load(&reallocs),
	       atomic_load(&cross_frees), atomic_load(&forks), atomic_load(&enomems), phases,
	       atomic_load(&failures) ? "FAILED" : "OK");
	return (atomic_load(&failures) != 0);
}
