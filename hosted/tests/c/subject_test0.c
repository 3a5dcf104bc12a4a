/* The subject's baseline: a program that allocates nothing itself. Its minor
 * page faults under LD_PRELOAD are what the library costs by being loaded. */
int main(void)
{
	int i = 0;

	while (i < 1024)
		i++;
	return (0);
}
