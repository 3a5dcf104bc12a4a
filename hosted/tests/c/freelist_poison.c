/* Use-after-free writes into freed blocks' free-list links (defect 5).
 *
 * 1. The defect as found: a freed block's link pointed at itself; the next
 *    two malloc(32) must not both return that block. (A front cache keeps
 *    its free blocks in arrays outside the blocks, so this write cannot
 *    reach it at all.)
 * 2. The same write into blocks that went back to their zones' free lists:
 *    of N blocks every other one is freed (more than the caches and depots
 *    keep; the live ones keep every zone mapped), then every freed one gets
 *    its own address written into its link. The heap must notice the
 *    corrupt links, report them, and never hand a block out twice: the next
 *    N/2 allocations are distinct from each other and from the live blocks.
 *
 * Prints the two pointers of part 1 and "distinct N" for part 2; exit status
 * 1 if a block came back twice. */
#include <stdio.h>
#include <stdlib.h>

enum { N = 20000 };

static int by_address(const void *a, const void *b)
{
	void *x = *(void *const *)a, *y = *(void *const *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	static void *blocks[N];
	void *p = malloc(32);

	free(p);
	*(void **)p = p;
	void *a = malloc(32);
	void *b = malloc(32);
	printf("%p %p\n", a, b);
	if (a == b)
		return 1;
	free(a);
	free(b);

	for (int i = 0; i < N; i++)
		blocks[i] = malloc(32);
	for (int i = 1; i < N; i += 2)
		free(blocks[i]);
	for (int i = 1; i < N; i += 2)
		*(void **)blocks[i] = blocks[i];
	for (int i = 1; i < N; i += 2)
		blocks[i] = malloc(32);
	qsort(blocks, N, sizeof(blocks[0]), by_address);
	for (int i = 1; i < N; i++)
		if (blocks[i] == blocks[i - 1]) {
			printf("block %p handed out twice\n", blocks[i]);
			return 1;
		}
	printf("distinct %d\n", N);
	return 0;
}
