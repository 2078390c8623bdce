/* The loops of bench/bench_preload.sh.  The same binary runs with and
 * without LD_PRELOAD=libbbcache_preload.so, so the interposed loop and the
 * plain one are the very same code.
 *
 *   bench_preload loop DIR N ITERS     open+read+close of DIR/f00000..: files/s
 *   bench_preload limit SIZE N ITERS   dup+memcpy+close from memory: files/s
 *   bench_preload seq FILE ITERS       sequential read(), 1 MiB at a time: GB/s
 *   bench_preload memcpy SIZE ITERS    memcpy of SIZE bytes, 1 MiB at a time: GB/s
 *   bench_preload ttfb FILE [WARM]     open + first 4 KiB read: seconds (after
 *                                      reading WARM first: a running client)
 *
 * Each prints one number on stdout (the best of ITERS passes after one
 * warm-up pass) so the script can form ratios measured in the same run.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *page_buf(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, 1, n);
	return p;
}

static int loop(const char *dir, int n, int iters)
{
	char (*paths)[512] = malloc((size_t)n * 512);
	size_t cap = 4u << 20;
	char *buf = page_buf(cap);
	double best = 1e30;
	unsigned long long bytes = 0;

	for (int i = 0; i < n; i++)
		snprintf(paths[i], 512, "%s/f%05d", dir, i);
	for (int it = 0; it <= iters; it++) {
		double t0 = now();
		for (int i = 0; i < n; i++) {
			int fd = open(paths[i], O_RDONLY);
			if (fd < 0) {
				perror(paths[i]);
				return 1;
			}
			ssize_t r;
			while ((r = read(fd, buf, cap)) > 0)
				bytes += (unsigned long long)r;
			if (r < 0) {
				perror(paths[i]);
				return 1;
			}
			close(fd);
		}
		double t = now() - t0;
		if (it && t < best)
			best = t;
	}
	if (!bytes)
		return 1;
	printf("%.0f\n", n / best);
	return 0;
}

static int limit(size_t size, int n, int iters)
{
	char *arena = page_buf(size * (size_t)n);
	char *buf = page_buf(size < 4096 ? 4096 : size);
	int base = open("/dev/null", O_RDONLY);
	double best = 1e30;

	for (int it = 0; it <= iters; it++) {
		double t0 = now();
		for (int i = 0; i < n; i++) {
			int fd = dup(base);
			memcpy(buf, arena + (size_t)i * size, size);
			__asm__ volatile("" ::"r"(buf) : "memory");
			close(fd);
		}
		double t = now() - t0;
		if (it && t < best)
			best = t;
	}
	printf("%.0f\n", n / best);
	return 0;
}

static int seq(const char *file, int iters)
{
	size_t chunk = 1u << 20;
	char *buf = page_buf(chunk);
	double best = 1e30;
	unsigned long long total = 0;

	for (int it = 0; it <= iters; it++) {
		int fd = open(file, O_RDONLY);
		if (fd < 0) {
			perror(file);
			return 1;
		}
		total = 0;
		double t0 = now();
		ssize_t r;
		while ((r = read(fd, buf, chunk)) > 0)
			total += (unsigned long long)r;
		double t = now() - t0;
		close(fd);
		if (r < 0) {
			perror(file);
			return 1;
		}
		if (it && t < best)
			best = t;
	}
	printf("%.3f\n", (double)total / best / 1e9);
	return 0;
}

static int bench_memcpy(size_t size, int iters)
{
	size_t chunk = 1u << 20;
	char *src = page_buf(size), *dst = page_buf(chunk);
	double best = 1e30;

	for (int it = 0; it <= iters; it++) {
		double t0 = now();
		for (size_t off = 0; off < size; off += chunk) {
			memcpy(dst, src + off, size - off < chunk ? size - off : chunk);
			__asm__ volatile("" ::"r"(dst) : "memory");
		}
		double t = now() - t0;
		if (it && t < best)
			best = t;
	}
	printf("%.3f\n", (double)size / best / 1e9);
	return 0;
}

static int ttfb(const char *file, const char *warm)
{
	char buf[4096];
	if (warm) {
		int w = open(warm, O_RDONLY);
		if (w < 0 || read(w, buf, sizeof(buf)) <= 0) {
			perror(warm);
			return 1;
		}
		close(w);
	}
	double t0 = now();
	int fd = open(file, O_RDONLY);
	double t1 = now();
	if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0) {
		perror(file);
		return 1;
	}
	double t = now() - t0;
	fprintf(stderr, "ttfb: open %.3f ms, first read %.3f ms\n", (t1 - t0) * 1e3,
		(t - (t1 - t0)) * 1e3);
	close(fd);
	printf("%.6f\n", t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "loop"))
		return loop(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "limit"))
		return limit(strtoull(argv[2], NULL, 0), atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "seq"))
		return seq(argv[2], atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "memcpy"))
		return bench_memcpy(strtoull(argv[2], NULL, 0), atoi(argv[3]));
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "ttfb"))
		return ttfb(argv[2], argc == 4 ? argv[3] : NULL);
	fprintf(stderr, "usage: see the comment at the top of bench/bench_preload.c\n");
	return 2;
}
