/* A use-after-free that points a freed block's free-list link at itself
 * (defect 5): the next two malloc(32) must not both return that block. The
 * heap must notice the corrupt link, report it, and hand out another block.
 * Prints both pointers; exit status 1 if they are the same. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	void *p = malloc(32);
	free(p);
	/* The use-after-free. */
	*(void **)p = p;
	void *a = malloc(32);
	void *b = malloc(32);
	printf("%p %p\n", a, b);
	return (a == b);
}
