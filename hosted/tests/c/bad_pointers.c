/* The subject's error-management scenario: bad pointers never crash the
 * program. Each call is printed first on stdout, so the test can match the
 * library's stderr report with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	char stack_buffer[64];
	char *block = malloc(100);
	char *large = malloc(100000);

	strcpy(block, "still here");
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("free(NULL)\n");
	free(NULL);
	printf("free(interior)\n");
	free(block + 8);
	printf("free(misaligned)\n");
	free(block + 1);
	printf("free(stack)\n");
	free(stack_buffer);
	printf("free(large interior)\n");
	free(large + 4096);
	printf("realloc(interior)\n");
	void *r = realloc(block + 8, 200);
	printf("realloc(interior) returned %s\n", r == NULL ? "NULL" : "non-NULL");
	printf("realloc(stack)\n");
	r = realloc(stack_buffer, 10);
	printf("realloc(stack) returned %s\n", r == NULL ? "NULL" : "non-NULL");
	char *gone = malloc(32);
	free(gone);
	printf("double free\n");
	free(gone);
	printf("block says: %s\n", block);
	free(block);
	free(large);
	/* The heap still works. */
	for (int i = 0; i < 1000; i++)
		free(malloc((size_t)i * 13));
	printf("done\n");
	return (0);
}
