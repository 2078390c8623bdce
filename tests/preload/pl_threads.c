/* Threads against the interposer, for test_preload_programs.sh:
 *
 *   pl_threads STAGED ORIGIN
 *
 * 1. NT threads, started together, read() 4 KiB at a time from ONE
 *    descriptor of STAGED until EOF; ROUNDS times on a fresh descriptor.  read() moves one shared offset, so the chunks they get together
 *    must be the file's 4 KiB chunks, each exactly once.  Chunks are
 *    compared by a 64-bit FNV-1a of their bytes (the test file is random).
 * 2. NT threads each open+read+close STAGED 200 times at the same time,
 *    every copy equal to ORIGIN's bytes.
 * Prints TAP-style "ok - ..." / "not ok - ..." lines; exits 1 on a failure.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NT 4
#define CHUNK 4096
#define ROUNDS 20

static int g_fd;
static const char *g_staged;
static unsigned char *g_want;
static size_t g_size;
static uint64_t *g_got[NT];
static size_t g_ngot[NT], g_cap;
static int g_bad[NT];
static pthread_barrier_t g_start;

static uint64_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ n;
}

static int cmp64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void *shared_reader(void *arg)
{
	int i = (int)(intptr_t)arg;
	unsigned char buf[CHUNK];
	ssize_t r;
	pthread_barrier_wait(&g_start);
	while ((r = read(g_fd, buf, CHUNK)) > 0) {
		if (g_ngot[i] == g_cap) {
			g_bad[i] = 1;
			break;
		}
		g_got[i][g_ngot[i]++] = fnv(buf, (size_t)r);
	}
	if (r < 0)
		g_bad[i] = 1;
	return NULL;
}

static void *own_reader(void *arg)
{
	int i = (int)(intptr_t)arg;
	unsigned char *buf = malloc(g_size + 1);
	for (int k = 0; buf && k < 200 && !g_bad[i]; k++) {
		int fd = open(g_staged, O_RDONLY);
		size_t got = 0;
		ssize_t r;
		if (fd < 0) {
			g_bad[i] = 1;
			break;
		}
		while ((r = read(fd, buf + got, g_size + 1 - got)) > 0)
			got += (size_t)r;
		close(fd);
		if (r < 0 || got != g_size || memcmp(buf, g_want, g_size) != 0)
			g_bad[i] = 1;
	}
	free(buf);
	return NULL;
}

static int report(int cond, const char *what)
{
	printf("%s - %s\n", cond ? "ok" : "not ok", what);
	return cond ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct stat st;
	pthread_t t[NT];
	int fails = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: pl_threads STAGED ORIGIN\n");
		return 2;
	}
	g_staged = argv[1];
	int ofd = open(argv[2], O_RDONLY);
	if (ofd < 0 || fstat(ofd, &st) < 0 || st.st_size < 4 * CHUNK) {
		fprintf(stderr, "pl_threads: %s: no usable origin file\n", argv[2]);
		return 2;
	}
	g_size = (size_t)st.st_size;
	g_want = malloc(g_size);
	if (!g_want || pread(ofd, g_want, g_size, 0) != (ssize_t)g_size) {
		fprintf(stderr, "pl_threads: cannot read %s\n", argv[2]);
		return 2;
	}
	close(ofd);

	size_t nchunks = (g_size + CHUNK - 1) / CHUNK;
	uint64_t *want = malloc(nchunks * sizeof(*want)), *all = malloc(nchunks * sizeof(*all));
	g_cap = nchunks;
	for (int i = 0; i < NT; i++)
		g_got[i] = malloc(g_cap * sizeof(uint64_t));
	for (size_t c = 0; c < nchunks; c++) {
		size_t n = g_size - c * CHUNK < CHUNK ? g_size - c * CHUNK : CHUNK;
		want[c] = fnv(g_want + c * CHUNK, n);
	}
	qsort(want, nchunks, sizeof(*want), cmp64);
	pthread_barrier_init(&g_start, NULL, NT);
	int bad = 0, multi = 0, rounds_ok = 0;
	for (int round = 0; round < ROUNDS; round++) {
		g_fd = open(g_staged, O_RDONLY);
		if (g_fd < 0) {
			perror(g_staged);
			return 1;
		}
		memset(g_ngot, 0, sizeof(g_ngot));
		memset(g_bad, 0, sizeof(g_bad));
		for (int i = 0; i < NT; i++)
			pthread_create(&t[i], NULL, shared_reader, (void *)(intptr_t)i);
		size_t total = 0;
		int rbad = 0, busy = 0;
		for (int i = 0; i < NT; i++) {
			pthread_join(t[i], NULL);
			rbad |= g_bad[i];
			busy += g_ngot[i] > 0;
			for (size_t k = 0; k < g_ngot[i]; k++)
				if (total < nchunks)
					all[total++] = g_got[i][k];
				else
					rbad = 1;
		}
		close(g_fd);
		multi += busy >= 2;
		qsort(all, total, sizeof(*all), cmp64);
		if (!rbad && total == nchunks && !memcmp(all, want, nchunks * sizeof(*all)))
			rounds_ok++;
		else
			bad = 1;
	}
	char what[256];
	snprintf(what, sizeof(what),
		 "%d threads read() one descriptor: each of the %zu chunks of 4 KiB exactly once "
		 "(%d of %d rounds)",
		 NT, nchunks, rounds_ok, ROUNDS);
	fails += report(!bad, what);
	snprintf(what, sizeof(what), "... more than one thread got chunks in %d of %d rounds (want half)",
		 multi, ROUNDS);
	fails += report(multi >= ROUNDS / 2, what);

	memset(g_bad, 0, sizeof(g_bad));
	for (int i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, own_reader, (void *)(intptr_t)i);
	bad = 0;
	for (int i = 0; i < NT; i++) {
		pthread_join(t[i], NULL);
		bad |= g_bad[i];
	}
	snprintf(what, sizeof(what),
		 "%d threads each open+read+close the file 200 times at once: every copy equals "
		 "the origin's",
		 NT);
	fails += report(!bad, what);
	return fails ? 1 : 0;
}
