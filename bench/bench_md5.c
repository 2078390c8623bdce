/* The stage-in's MD5 (stage/md5x.c) against OpenSSL's, for 1 to 8 files
 * hashed at once, as the hashing thread does for the large S3 objects of a
 * stage-in: 1 MiB of each file per call, from a buffer in the CPU's cache.
 *
 * For each number of files n it times, in CPU time of this thread, the
 * automatic choice (what a stage-in uses), each path forced (one file at a
 * time in portable C, up to four interleaved in portable C, the best
 * vector path), and OpenSSL's MD5 over the same bytes one file after the
 * other (the peer: what hashing without stage/md5x.c costs).  Each figure
 * is the median of ROUNDS rounds, the variants in turn within a round; the
 * ratios are of those medians.
 *
 *   bench_md5 [MIB_PER_FILE [ROUNDS]]      (default 64 3)
 */
#include "config.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stage/md5x.h"

#define PIECE (1u << 20)
#define MAXR 15

static double cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#define OPENSSL (-1) /* a variant: OpenSSL's MD5, one file after the other */

/* Seconds of CPU to hash pieces x 1 MiB of each of n files on path p
 * (or OPENSSL). */
static double run(int p, unsigned n, unsigned pieces, unsigned char *buf)
{
	struct bb_md5 c[BB_MD5_LANES], *cp[BB_MD5_LANES];
	const unsigned char *d[BB_MD5_LANES];
	size_t len[BB_MD5_LANES];
	unsigned char out[16];
	double t0;

	if (p == OPENSSL) {
		EVP_MD_CTX *e = EVP_MD_CTX_new();
		t0 = cpu_s();
		for (unsigned i = 0; i < n; i++) {
			EVP_DigestInit_ex(e, EVP_md5(), NULL);
			for (unsigned k = 0; k < pieces; k++)
				EVP_DigestUpdate(e, buf + (size_t)i * PIECE, PIECE);
			EVP_DigestFinal_ex(e, out, NULL);
		}
		t0 = cpu_s() - t0;
		EVP_MD_CTX_free(e);
		return t0;
	}
	if (bb_md5_force_path((enum bb_md5_path)p) != 0)
		return -1;
	bb_md5_plan(1, NULL, NULL); /* the automatic choice measures before the clock starts */
	for (unsigned i = 0; i < n; i++) {
		bb_md5_init(&c[i]);
		cp[i] = &c[i];
		d[i] = buf + (size_t)i * PIECE;
		len[i] = PIECE;
	}
	t0 = cpu_s();
	for (unsigned k = 0; k < pieces; k++)
		bb_md5_update_lanes(cp, d, len, n);
	for (unsigned i = 0; i < n; i++)
		bb_md5_final(&c[i], out);
	t0 = cpu_s() - t0;
	bb_md5_force_path(BB_MD5_AUTO);
	return t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : 64;
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	unsigned char *buf = malloc((size_t)BB_MD5_LANES * PIECE);
	/* The variants: automatic, one at a time, interleaved, the best vector
	 * path (none: BB_MD5_AUTO, not run), OpenSSL. */
	int vp = bb_md5_force_path(BB_MD5_AVX512) == 0 ? BB_MD5_AVX512
		 : bb_md5_force_path(BB_MD5_AVX2) == 0 ? BB_MD5_AVX2
							: BB_MD5_AUTO;
	const int var[] = {BB_MD5_AUTO, BB_MD5_SCALAR, BB_MD5_ILP, vp, OPENSSL};
	double vec, sc[5];

	bb_md5_force_path(BB_MD5_AUTO);

	if (!buf || mib < 1 || rounds < 1 || rounds > MAXR) {
		fprintf(stderr, "usage: bench_md5 [MIB_PER_FILE [ROUNDS (1-%d)]]\n", MAXR);
		return 2;
	}
	for (size_t i = 0; i < (size_t)BB_MD5_LANES * PIECE; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	bb_md5_plan(4, &vec, sc);
	printf("bench_md5: %u MiB per file, median of %d rounds, CPU time; vector path here: %s\n",
	       mib, rounds, vp != BB_MD5_AUTO ? bb_md5_path_name() : "none");
	if (vp != BB_MD5_AUTO)
		printf("measured by the automatic choice (256 blocks a file): vector pass %.0f us, "
		       "portable C 1-4 files %.0f/%.0f/%.0f/%.0f us\n",
		       vec / 1e3, sc[1] / 1e3, sc[2] / 1e3, sc[3] / 1e3, sc[4] / 1e3);
	printf("files  split        GB/s: auto  one-at-a-time  interleaved  vector  OpenSSL   "
	       "auto/OpenSSL  auto/vector\n");
	for (unsigned n = 1; n <= BB_MD5_LANES; n++) {
		double t[5][MAXR], med[5];
		char split[32] = "";
		for (int r = 0; r < rounds; r++)
			for (int v = 0; v < 5; v++)
				t[v][r] = v == 3 && vp == BB_MD5_AUTO ? -1 : run(var[v], n, mib, buf);
		for (int v = 0; v < 5; v++) {
			qsort(t[v], (size_t)rounds, sizeof(double), cmp);
			med[v] = t[v][rounds / 2];
		}
		for (unsigned left = n, k; left > 0; left -= k) {
			int f = bb_md5_plan(left, NULL, NULL);
			k = f > 0 ? (unsigned)f : left;
			snprintf(split + strlen(split), sizeof(split) - strlen(split), "%s%s%u",
				 left < n ? "+" : "", f > 0 ? "c" : "v", k);
		}
		double bytes = (double)n * mib * PIECE / 1e9;
		printf("%5u  %-11s  %10.2f  %13.2f  %11.2f  ", n, split, bytes / med[0],
		       bytes / med[1], bytes / med[2]);
		if (med[3] > 0)
			printf("%6.2f", bytes / med[3]);
		else
			printf("%6s", "-");
		printf("  %7.2f   %11.2fx", bytes / med[4], med[4] / med[0]);
		if (med[3] > 0)
			printf("  %10.2fx", med[3] / med[0]);
		printf("\n");
	}
	printf("split: how the automatic choice hashes n files: cK = K interleaved in portable "
	       "C, vK = K in one vector pass\n");
	free(buf);
	return 0;
}
