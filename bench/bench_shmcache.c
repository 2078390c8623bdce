/* Node-cache benchmarks, each printed as a ratio against a peer or the
 * physical limit measured in the same run:
 *
 *  small   hot lookup+copy of N blocks of 4 KiB and of 100 KiB, vs
 *          open+read+close of the same files on /dev/shm, and vs a bare
 *          memcpy loop over the same extents into the same buffer (the
 *          limit); in file order, and again in one shuffled order (a
 *          DataLoader with shuffle=True) for the cache and the bare loop;
 *  large   hot copy of a 64 MiB block vs single-thread memcpy of 64 MiB;
 *  scale   two processes reading one hot set vs one process;
 *  hit     one hit of a 4 KiB block, for instruction counts under callgrind
 *          (bench/run-bench.sh runs it with --toggle-collect).
 *
 * Fairness: every timed pass follows an untimed pass of the same loop, so
 * each loop is timed in its own hot state (before, the cache loop always ran
 * right after the tmpfs loop had pushed everything out of the caches, and
 * the bare loop right after a pass over the same blocks).  The loops run in
 * a rotating order, several rounds; a ratio is the median of the per-round
 * ratios, with the lowest and highest round beside it, because this machine
 * is shared and one round can be 30 % off.
 *
 *   bench_shmcache [small|large|scale|all] | hit N | copy N
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "shmcache/shmcache.h"

#define NFILES 10000
#define ROUNDS 11

static uint64_t g_job;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static struct bbc_cache *make_cache(uint64_t limit, uint32_t entries)
{
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;

	g_job = 800000000ULL + (uint64_t)getpid();
	p.job_id = g_job;
	p.byte_limit = limit;
	p.n_entries = entries;
	p.owner = (uid_t)-1;
	int rc = bbc_create(&p, &c);
	if (rc != BB_OK) {
		fprintf(stderr, "bench: cannot create a cache of %llu bytes: %s\n",
			(unsigned long long)limit, bb_strerror(rc));
		exit(1);
	}
	return c;
}

static void drop_cache(struct bbc_cache *c)
{
	bbc_detach(c);
	bbc_unlink(NULL, g_job);
}

static void fill_block(struct bbc_cache *c, uint64_t file, uint64_t block, uint32_t len,
		       const char *src)
{
	struct bbc_ref ref;
	if (bbc_get(c, file, block, len, -1, 0, 1000, &ref) != BB_OK) {
		fprintf(stderr, "bench: fill failed\n");
		exit(1);
	}
	if (ref.filling) {
		memcpy(ref.data, src, len);
		bbc_fill_commit(c, &ref);
	}
	bbc_unpin(c, &ref);
}

/* Keep the compiler from dropping copies nobody reads. */
static volatile unsigned char g_sink;

__attribute__((noinline)) static void bare_copy(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}

/* One pass of a small-file loop: 0 tmpfs, 1 cache, 2 bare memcpy; `order`
 * the file order.  Returns seconds. */
static double small_pass(int loop, struct bbc_cache *c, const char *dir, const int *order,
			 const void **extents, char *buf, size_t size)
{
	char path[128];
	double t0 = now_s();

	for (int k = 0; k < NFILES; k++) {
		int i = order[k];
		if (loop == 0) {
			snprintf(path, sizeof(path), "%s/f%05d", dir, i);
			int fd = open(path, O_RDONLY);
			if (fd < 0 || read(fd, buf, size) != (ssize_t)size)
				exit(1);
			close(fd);
		} else if (loop == 1) {
			if (bbc_read(c, (uint64_t)i, 0, 0, buf, size) != (long)size)
				exit(1);
		} else {
			bare_copy(buf, extents[i], size);
		}
	}
	double t = now_s() - t0;
	g_sink = (unsigned char)buf[size - 1];
	return t;
}

/* Untimed pass, then the timed one. */
static double small_hot(int loop, struct bbc_cache *c, const char *dir, const int *order,
			const void **extents, char *buf, size_t size)
{
	small_pass(loop, c, dir, order, extents, buf, size);
	return small_pass(loop, c, dir, order, extents, buf, size);
}

static void bench_small(size_t size)
{
	char dir[] = "/dev/shm/bbcache-bench-XXXXXX";
	char path[128];
	char *data = malloc(size), *buf = aligned_alloc(4096, (size + 4095) / 4096 * 4096);
	const void **extents = calloc(NFILES, sizeof(*extents));
	int *inorder = malloc(NFILES * sizeof(int)), *shuffled = malloc(NFILES * sizeof(int));
	double t[5][ROUNDS], r_mem[ROUNDS], r_tmpfs[ROUNDS], r_shuf[ROUNDS];

	memset(data, 0xa5, size);
	memset(buf, 0, size);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	struct bbc_cache *c = make_cache((uint64_t)NFILES * ((size + 4095) / 4096 * 4096 * 2) +
						 (64u << 20),
					 NFILES * 2);
	for (int i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/f%05d", dir, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
			perror(path);
			exit(1);
		}
		close(fd);
		fill_block(c, (uint64_t)i, 0, (uint32_t)size, data);
		struct bbc_ref ref;
		bbc_pin(c, (uint64_t)i, 0, &ref);
		extents[i] = ref.data; /* the same bytes the hit path copies */
		bbc_unpin(c, &ref);
		inorder[i] = shuffled[i] = i;
	}
	srand(12345); /* one fixed shuffle, the same for the cache and the bare loop */
	for (int i = NFILES - 1; i > 0; i--) {
		int j = rand() % (i + 1), x = shuffled[i];
		shuffled[i] = shuffled[j];
		shuffled[j] = x;
	}
	for (int r = 0; r < ROUNDS; r++) {
		for (int k = 0; k < 5; k++) {
			int m = (k + r) % 5; /* 0..2 in file order, 3..4 shuffled */
			t[m][r] = m < 3 ? small_hot(m, c, dir, inorder, extents, buf, size)
					: small_hot(m - 2, c, dir, shuffled, extents, buf, size);
		}
		r_tmpfs[r] = t[0][r] / t[1][r];
		r_mem[r] = t[2][r] / t[1][r];
		r_shuf[r] = t[4][r] / t[3][r];
	}
	double a = NFILES / median(t[0], ROUNDS), b = NFILES / median(t[1], ROUNDS),
	       m = NFILES / median(t[2], ROUNDS), bs = NFILES / median(t[3], ROUNDS),
	       ms = NFILES / median(t[4], ROUNDS);
	printf("small %3zu KiB: tmpfs open+read+close %9.0f files/s | cache hit %9.0f files/s "
	       "| bare memcpy %9.0f files/s\n",
	       size / 1024, a, b, m);
	double lo = r_mem[0], hi = r_mem[0];
	for (int r = 1; r < ROUNDS; r++) {
		lo = r_mem[r] < lo ? r_mem[r] : lo;
		hi = r_mem[r] > hi ? r_mem[r] : hi;
	}
	printf("small %3zu KiB: hit vs tmpfs %.2fx; hit vs bare memcpy %.3f (target >= 0.90; "
	       "median of %d rounds, range %.3f..%.3f)\n",
	       size / 1024, median(r_tmpfs, ROUNDS), median(r_mem, ROUNDS), ROUNDS, lo, hi);
	printf("small %3zu KiB, shuffled order: cache hit %9.0f files/s | bare memcpy %9.0f "
	       "files/s | hit vs bare memcpy %.3f\n",
	       size / 1024, bs, ms, median(r_shuf, ROUNDS));
	for (int i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/f%05d", dir, i);
		unlink(path);
	}
	rmdir(dir);
	drop_cache(c);
	free(data);
	free(buf);
	free(extents);
	free(inorder);
	free(shuffled);
}

static void bench_large(void)
{
	const size_t n = BBC_MAX_EXTENT;
	char *src = aligned_alloc(4096, n), *dst = aligned_alloc(4096, n);
	double t_cache[ROUNDS], t_memcpy[ROUNDS];

	memset(src, 0x3c, n);
	memset(dst, 0, n); /* fault it in: both loops copy into warm pages */
	struct bbc_cache *c = make_cache(2 * n, 0);
	fill_block(c, 1, 0, (uint32_t)n, src);
	struct bbc_ref ref;
	bbc_pin(c, 1, 0, &ref);
	const void *extent = ref.data;
	bbc_unpin(c, &ref);
	double ratio[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		/* Alternate which copy goes first: the second finds the source
		 * partly in the caches the first one filled. */
		for (int k = 0; k < 2; k++) {
			double t0 = now_s();
			if ((k + r) % 2 == 0) {
				if (bbc_read(c, 1, 0, 0, dst, n) != (long)n)
					exit(1);
				t_cache[r] = now_s() - t0;
			} else {
				bare_copy(dst, extent, n);
				t_memcpy[r] = now_s() - t0;
			}
		}
		ratio[r] = t_memcpy[r] / t_cache[r];
	}
	double b = (double)n / median(t_cache, ROUNDS) / 1e9,
	       m = (double)n / median(t_memcpy, ROUNDS) / 1e9;
	printf("large 64 MiB: cache hit %.2f GB/s | single-thread memcpy %.2f GB/s | ratio %.3f "
	       "(target >= 0.90; median of %d rounds)\n",
	       b, m, median(ratio, ROUNDS), ROUNDS);
	g_sink = (unsigned char)dst[n - 1];
	drop_cache(c);
	free(src);
	free(dst);
}

/* Hits per second of `procs` processes on the same 4 KiB hot set. */
static const void *g_hot[4096];

static double scale_run(struct bbc_cache *c, int procs, double seconds, int bare)
{
	/* counts[p * 8]: hits of process p; counts[64]: ready children;
	 * counts[72]: the start signal. */
	_Atomic uint64_t *counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[8];

	for (int p = 0; p < procs; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			char buf[4096];
			uint64_t n = 0;
			/* The first read registers this process in the cache
			 * (system calls, maybe an audit of an exited child):
			 * done before the clock starts. */
			if (!bare && bbc_read(c, 0, 0, 0, buf, sizeof(buf)) != 4096)
				_exit(1);
			atomic_fetch_add(&counts[64], 1);
			while (!atomic_load(&counts[72]))
				;
			double end = now_s() + seconds;
			while (now_s() < end) {
				for (int i = 0; i < 1000; i++) {
					uint64_t k = (n + (uint64_t)i) % 4096;
					if (bare)
						bare_copy(buf, g_hot[k], sizeof(buf));
					else if (bbc_read(c, k, 0, 0, buf, sizeof(buf)) != 4096)
						_exit(1);
				}
				n += 1000;
			}
			counts[p * 8] = n;
			_exit(0);
		}
	}
	while (atomic_load(&counts[64]) < (uint64_t)procs)
		usleep(100);
	atomic_store(&counts[72], 1);
	double total = 0;
	for (int p = 0; p < procs; p++) {
		waitpid(pids[p], NULL, 0);
		total += (double)counts[p * 8];
	}
	munmap((void *)counts, 4096);
	return total / seconds;
}

static void bench_scale(void)
{
	char data[4096];
	memset(data, 7, sizeof(data));
	struct bbc_cache *c = make_cache(64u << 20, 8192);
	for (uint64_t i = 0; i < 4096; i++) {
		struct bbc_ref ref;
		fill_block(c, i, 0, sizeof(data), data);
		bbc_pin(c, i, 0, &ref);
		g_hot[i] = ref.data;
		bbc_unpin(c, &ref);
	}
	enum { R = 5 };
	double one[R], two[R], bone[R], btwo[R], rh[R], rb[R];
	for (int r = 0; r < R; r++) {
		one[r] = scale_run(c, 1, 0.5, 0);
		two[r] = scale_run(c, 2, 0.5, 0);
		bone[r] = scale_run(c, 1, 0.5, 1);
		btwo[r] = scale_run(c, 2, 0.5, 1);
		rh[r] = two[r] / one[r];
		rb[r] = btwo[r] / bone[r];
	}
	double a = median(one, R), b = median(two, R), sh = median(rh, R), sb = median(rb, R);
	printf("scale 4 KiB hot set: 1 process %.0f hits/s | 2 processes %.0f hits/s | ratio %.2f "
	       "(target >= 1.80; %ld cores; median of %d rounds)\n",
	       a, b, sh, sysconf(_SC_NPROCESSORS_ONLN), R);
	printf("scale 4 KiB bare memcpy, same blocks: 2 processes / 1 = %.2f (this machine's "
	       "limit); hit scaling / memcpy scaling = %.2f\n",
	       sb, sh / sb);
	drop_cache(c);
}

/* For callgrind: n hits (or n bare copies) of 4 KiB blocks. */
static void hit_loop(long n, int bare)
{
	static char data[4096], buf[4096];
	struct bbc_cache *c = make_cache(16u << 20, 2048);
	const void *extents[64];
	for (uint64_t i = 0; i < 64; i++) {
		struct bbc_ref ref;
		fill_block(c, i, 0, sizeof(data), data);
		bbc_pin(c, i, 0, &ref);
		extents[i] = ref.data;
		bbc_unpin(c, &ref);
	}
	for (long k = 0; k < n; k++) {
		if (bare)
			bare_copy(buf, extents[k % 64], sizeof(buf));
		else if (bbc_read(c, (uint64_t)(k % 64), 0, 0, buf, sizeof(buf)) != 4096)
			exit(1);
	}
	g_sink = (unsigned char)buf[0];
	drop_cache(c);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "all";

	if (!strcmp(what, "hit") || !strcmp(what, "copy")) {
		hit_loop(argc > 2 ? atol(argv[2]) : 100000, !strcmp(what, "copy"));
		return 0;
	}
	if (!strcmp(what, "small") || !strcmp(what, "all")) {
		bench_small(4096);
		bench_small(100 * 1024);
	}
	if (!strcmp(what, "large") || !strcmp(what, "all"))
		bench_large();
	if (!strcmp(what, "scale") || !strcmp(what, "all"))
		bench_scale();
	return 0;
}
