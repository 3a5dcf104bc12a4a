/* The smallest real use of malloc (tests/footprint.rs): a few blocks
 * allocated, grown and freed, one line printed. Then prints the peak
 * resident set as "peak KIB" (VmHWM), for comparison with the same program
 * under glibc's malloc: what the library costs a program that barely uses
 * it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	char *a = malloc(40);
	char *b = calloc(10, 100);
	if (a == NULL || b == NULL)
		return 1;
	strcpy(a, "small");
	a = realloc(a, 200);
	if (a == NULL)
		return 1;
	printf("%s %d\n", a, b[999]);
	free(a);
	free(b);

	FILE *status = fopen("/proc/self/status", "r");
	char line[256];
	while (status != NULL && fgets(line, sizeof line, status) != NULL) {
		long kib;
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			printf("peak %ld\n", kib);
	}
	return 0;
}
