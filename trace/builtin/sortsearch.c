/* sortsearch: the small C program whose memory accesses
 * trace/builtin/sortsearch.lackey.xz records (scripts/record-trace.sh).
 * It sorts an array, builds a hash table and a linked list, and walks
 * them: sequential, random and pointer-chasing accesses in one run. */
#include <stdlib.h>
#include <string.h>

#define N 2048
#define BUCKETS 512

struct node {
	struct node *next;
	unsigned key, val;
};

static struct node *table[BUCKETS];

static int cmp(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

int main(void)
{
	unsigned *a = malloc(N * sizeof *a);
	struct node *nodes = malloc(N * sizeof *nodes);
	unsigned seed = 12345, sum = 0;
	int i;

	if (!a || !nodes)
		return 1;
	for (i = 0; i < N; i++) {
		seed = seed * 1103515245 + 12345;
		a[i] = seed >> 8;
	}
	qsort(a, N, sizeof *a, cmp);
	memset(table, 0, sizeof table);
	for (i = 0; i < N; i++) {
		struct node *n = &nodes[(i * 7) % N];
		n->key = a[i];
		n->val = i;
		n->next = table[a[i] % BUCKETS];
		table[a[i] % BUCKETS] = n;
	}
	for (i = 0; i < N; i++) {
		struct node *n;
		for (n = table[a[(i * 13) % N] % BUCKETS]; n; n = n->next)
			if (n->key == a[(i * 13) % N]) {
				sum += n->val;
				break;
			}
	}
	free(nodes);
	free(a);
	return sum == 0;
}
