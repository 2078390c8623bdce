/* MD5 (RFC 1321), one stream or several side by side; see md5x.h.  Written
 * from the RFC: the 64 steps are listed once (MD5_STEPS) and expanded three
 * times: on 32-bit words, for one to four streams interleaved, and on
 * vectors of eight words, one per stream (with AVX2's instructions, and
 * with AVX-512VL's). */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "stage/md5x.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MD5X_AVX2 1
#endif

/* STEP(f, a, b, c, d, i, k, s): a = b + ((a + f(b, c, d) + m[i] + k) <<< s).
 * The four rounds use F, G, H and I (each expansion defines STEP_F...
 * STEP_I: a += f(b, c, d) + mk), message words in the RFC's order, its
 * constants (the integer part of 2^32 |sin(i + 1)|) and shifts. */
/* clang-format off */
#define MD5_STEPS \
	STEP(F, a, b, c, d,  0, 0xd76aa478,  7) \
	STEP(F, d, a, b, c,  1, 0xe8c7b756, 12) \
	STEP(F, c, d, a, b,  2, 0x242070db, 17) \
	STEP(F, b, c, d, a,  3, 0xc1bdceee, 22) \
	STEP(F, a, b, c, d,  4, 0xf57c0faf,  7) \
	STEP(F, d, a, b, c,  5, 0x4787c62a, 12) \
	STEP(F, c, d, a, b,  6, 0xa8304613, 17) \
	STEP(F, b, c, d, a,  7, 0xfd469501, 22) \
	STEP(F, a, b, c, d,  8, 0x698098d8,  7) \
	STEP(F, d, a, b, c,  9, 0x8b44f7af, 12) \
	STEP(F, c, d, a, b, 10, 0xffff5bb1, 17) \
	STEP(F, b, c, d, a, 11, 0x895cd7be, 22) \
	STEP(F, a, b, c, d, 12, 0x6b901122,  7) \
	STEP(F, d, a, b, c, 13, 0xfd987193, 12) \
	STEP(F, c, d, a, b, 14, 0xa679438e, 17) \
	STEP(F, b, c, d, a, 15, 0x49b40821, 22) \
	STEP(G, a, b, c, d,  1, 0xf61e2562,  5) \
	STEP(G, d, a, b, c,  6, 0xc040b340,  9) \
	STEP(G, c, d, a, b, 11, 0x265e5a51, 14) \
	STEP(G, b, c, d, a,  0, 0xe9b6c7aa, 20) \
	STEP(G, a, b, c, d,  5, 0xd62f105d,  5) \
	STEP(G, d, a, b, c, 10, 0x02441453,  9) \
	STEP(G, c, d, a, b, 15, 0xd8a1e681, 14) \
	STEP(G, b, c, d, a,  4, 0xe7d3fbc8, 20) \
	STEP(G, a, b, c, d,  9, 0x21e1cde6,  5) \
	STEP(G, d, a, b, c, 14, 0xc33707d6,  9) \
	STEP(G, c, d, a, b,  3, 0xf4d50d87, 14) \
	STEP(G, b, c, d, a,  8, 0x455a14ed, 20) \
	STEP(G, a, b, c, d, 13, 0xa9e3e905,  5) \
	STEP(G, d, a, b, c,  2, 0xfcefa3f8,  9) \
	STEP(G, c, d, a, b,  7, 0x676f02d9, 14) \
	STEP(G, b, c, d, a, 12, 0x8d2a4c8a, 20) \
	STEP(H, a, b, c, d,  5, 0xfffa3942,  4) \
	STEP(H, d, a, b, c,  8, 0x8771f681, 11) \
	STEP(H, c, d, a, b, 11, 0x6d9d6122, 16) \
	STEP(H, b, c, d, a, 14, 0xfde5380c, 23) \
	STEP(H, a, b, c, d,  1, 0xa4beea44,  4) \
	STEP(H, d, a, b, c,  4, 0x4bdecfa9, 11) \
	STEP(H, c, d, a, b,  7, 0xf6bb4b60, 16) \
	STEP(H, b, c, d, a, 10, 0xbebfbc70, 23) \
	STEP(H, a, b, c, d, 13, 0x289b7ec6,  4) \
	STEP(H, d, a, b, c,  0, 0xeaa127fa, 11) \
	STEP(H, c, d, a, b,  3, 0xd4ef3085, 16) \
	STEP(H, b, c, d, a,  6, 0x04881d05, 23) \
	STEP(H, a, b, c, d,  9, 0xd9d4d039,  4) \
	STEP(H, d, a, b, c, 12, 0xe6db99e5, 11) \
	STEP(H, c, d, a, b, 15, 0x1fa27cf8, 16) \
	STEP(H, b, c, d, a,  2, 0xc4ac5665, 23) \
	STEP(I, a, b, c, d,  0, 0xf4292244,  6) \
	STEP(I, d, a, b, c,  7, 0x432aff97, 10) \
	STEP(I, c, d, a, b, 14, 0xab9423a7, 15) \
	STEP(I, b, c, d, a,  5, 0xfc93a039, 21) \
	STEP(I, a, b, c, d, 12, 0x655b59c3,  6) \
	STEP(I, d, a, b, c,  3, 0x8f0ccc92, 10) \
	STEP(I, c, d, a, b, 10, 0xffeff47d, 15) \
	STEP(I, b, c, d, a,  1, 0x85845dd1, 21) \
	STEP(I, a, b, c, d,  8, 0x6fa87e4f,  6) \
	STEP(I, d, a, b, c, 15, 0xfe2ce6e0, 10) \
	STEP(I, c, d, a, b,  6, 0xa3014314, 15) \
	STEP(I, b, c, d, a, 13, 0x4e0811a1, 21) \
	STEP(I, a, b, c, d,  4, 0xf7537e82,  6) \
	STEP(I, d, a, b, c, 11, 0xbd3af235, 10) \
	STEP(I, c, d, a, b,  2, 0x2ad7d2bb, 15) \
	STEP(I, b, c, d, a,  9, 0xeb86d391, 21)
/* clang-format on */

#define ROL(x, s) (((x) << (s)) | ((x) >> (32 - (s))))

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Scalar code, for one stream or for two to four side by side: the steps
 * of n streams interleaved, so that a core's integer units run n chains at
 * once (md5_blocks_x1 ... md5_blocks_x4).  h[j] is stream j's state; it
 * reads nblocks blocks from p[j].  Where vector operations take two cycles
 * (the AMD EPYC of docs/origins.md), four streams in scalar code cost less
 * than the vector lanes' pass; bb_md5_update_lanes picks by what it
 * measured (below).
 *
 * The sums are ordered so that what depends on b, the word made by the
 * step before, comes last (a + m[i] + k is ready early); in G the two
 * terms have no bit in common, so | is +.  EACH(x) is x for J = 0 to N - 1
 * (a constant in each copy, so that the arrays stay in registers). */
#define STEP(f, a, b, c, d, i, k, s) EACH(STEP_##f(a[J], b[J], c[J], d[J], m[J][i] + (uint32_t)(k), s))
#define STEP_F(a, b, c, d, mk, s) a += mk; a += (d) ^ ((b) & ((c) ^ (d))); a = ROL(a, s) + b;
#define STEP_G(a, b, c, d, mk, s) a += mk; a += (c) & ~(d); a += (b) & (d); a = ROL(a, s) + b;
#define STEP_H(a, b, c, d, mk, s) a += mk; a += (b) ^ ((c) ^ (d)); a = ROL(a, s) + b;
#define STEP_I(a, b, c, d, mk, s) a += mk; a += (c) ^ ((b) | ~(d)); a = ROL(a, s) + b;
#define EACH1(j, x) if ((j) < N) { enum { J = (j) < N ? (j) : 0 }; x }
#define EACH(x) EACH1(0, x) EACH1(1, x) EACH1(2, x) EACH1(3, x)
#define MD5_BLOCKS_X(n)                                                                         \
	static void md5_blocks_x##n(uint32_t *const h[], const unsigned char *const pp[],      \
				    size_t nblocks)                                             \
	{                                                                                       \
		enum { N = n };                                                                 \
		const unsigned char *p[N];                                                      \
		uint32_t a[N], b[N], c[N], d[N], m[N][16];                                      \
		EACH(p[J] = pp[J];)                                                             \
		for (; nblocks > 0; nblocks--) {                                                \
			EACH(for (int i = 0; i < 16; i++) m[J][i] = le32(p[J] + 4 * i);         \
			     p[J] += 64; a[J] = h[J][0]; b[J] = h[J][1]; c[J] = h[J][2];        \
			     d[J] = h[J][3];)                                                   \
			MD5_STEPS                                                               \
			EACH(h[J][0] += a[J]; h[J][1] += b[J]; h[J][2] += c[J]; h[J][3] += d[J];) \
		}                                                                               \
	}
MD5_BLOCKS_X(1)
MD5_BLOCKS_X(2)
MD5_BLOCKS_X(3)
MD5_BLOCKS_X(4)
#undef MD5_BLOCKS_X
#undef EACH
#undef EACH1
#undef STEP
#undef STEP_F
#undef STEP_G
#undef STEP_H
#undef STEP_I

/* nblocks blocks of 64 bytes at p into one stream's state h. */
static void md5_blocks(uint32_t h[4], const unsigned char *p, size_t nblocks)
{
	md5_blocks_x1(&h, &p, nblocks);
}

#ifdef MD5X_AVX2
/* Eight streams: st[w][lane] is word w of a lane's state; lane j reads
 * nblocks blocks from p[j], advancing by step[j] (64, or 0 for a lane that
 * only fills the vector: its result is not used).  MD5X8_BLOCKS is the
 * body; each expansion defines STEP first (AVX2 below; AVX-512VL, with a
 * rotate and three-input logic in one instruction each, after it). */
#define MD5X8_BLOCKS                                                                            \
	__m256i a = _mm256_loadu_si256((const __m256i *)st[0]);                                 \
	__m256i b = _mm256_loadu_si256((const __m256i *)st[1]);                                 \
	__m256i c = _mm256_loadu_si256((const __m256i *)st[2]);                                 \
	__m256i d = _mm256_loadu_si256((const __m256i *)st[3]);                                 \
	size_t off[8] = {0};                                                                    \
	for (; nblocks > 0; nblocks--) {                                                        \
		__m256i m[16];                                                                  \
		md5x8_load(m, p, off);                                                          \
		for (int j = 0; j < 8; j++)                                                     \
			off[j] += step[j];                                                      \
		__m256i a0 = a, b0 = b, c0 = c, d0 = d;                                         \
		MD5_STEPS                                                                       \
		a = _mm256_add_epi32(a, a0);                                                    \
		b = _mm256_add_epi32(b, b0);                                                    \
		c = _mm256_add_epi32(c, c0);                                                    \
		d = _mm256_add_epi32(d, d0);                                                    \
	}                                                                                       \
	_mm256_storeu_si256((__m256i *)st[0], a);                                               \
	_mm256_storeu_si256((__m256i *)st[1], b);                                               \
	_mm256_storeu_si256((__m256i *)st[2], c);                                               \
	_mm256_storeu_si256((__m256i *)st[3], d);

/* Transpose one block of each lane: row j (lane j's words) becomes word w
 * of every lane, for the first and the second half of the block. */
__attribute__((target("avx2"), always_inline)) static inline void
md5x8_load(__m256i m[16], const unsigned char *const p[8], const size_t off[8])
{
	for (int half = 0; half < 2; half++) {
		__m256i r[8], t[8], u[8];
		for (int j = 0; j < 8; j++)
			r[j] = _mm256_loadu_si256((const __m256i *)(p[j] + off[j] + 32 * half));
		for (int j = 0; j < 8; j += 2) {
			t[j] = _mm256_unpacklo_epi32(r[j], r[j + 1]);
			t[j + 1] = _mm256_unpackhi_epi32(r[j], r[j + 1]);
		}
		for (int j = 0; j < 8; j += 4) {
			u[j] = _mm256_unpacklo_epi64(t[j], t[j + 2]);
			u[j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 2]);
			u[j + 2] = _mm256_unpacklo_epi64(t[j + 1], t[j + 3]);
			u[j + 3] = _mm256_unpackhi_epi64(t[j + 1], t[j + 3]);
		}
		__m256i *w = m + 8 * half;
		for (int j = 0; j < 4; j++) {
			w[j] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x20);
			w[j + 4] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x31);
		}
	}
}

__attribute__((target("avx2"))) static void md5x8_blocks(uint32_t st[4][8],
							 const unsigned char *const p[8],
							 const size_t step[8], size_t nblocks)
{
#define ADD _mm256_add_epi32
#define STEP(f, a, b, c, d, i, k, s) \
	STEP_##f(a, b, c, d, ADD(m[i], _mm256_set1_epi32((int)(k))), s) \
	a = ADD(b, _mm256_or_si256(_mm256_slli_epi32(a, s), _mm256_srli_epi32(a, 32 - (s))));
#define STEP_F(a, b, c, d, mk, s) \
	a = ADD(ADD(a, mk), _mm256_or_si256(_mm256_and_si256(b, c), _mm256_andnot_si256(b, d)));
#define STEP_G(a, b, c, d, mk, s) \
	a = ADD(ADD(ADD(a, mk), _mm256_andnot_si256(d, c)), _mm256_and_si256(b, d));
#define STEP_H(a, b, c, d, mk, s) \
	a = ADD(ADD(a, mk), _mm256_xor_si256(b, _mm256_xor_si256(c, d)));
#define STEP_I(a, b, c, d, mk, s) \
	a = ADD(ADD(a, mk), _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, ones))));
	const __m256i ones = _mm256_set1_epi32(-1);
	MD5X8_BLOCKS
#undef STEP
#undef STEP_F
#undef STEP_G
#undef STEP_H
#undef STEP_I
}

/* The same with AVX-512VL on the same eight lanes: F, G, H and I are one
 * vpternlogd each (the immediate is the function's truth table over
 * b, c, d: F = b ? c : d is 0xca, G = d ? b : c is 0xe4, H = b ^ c ^ d is
 * 0x96, I = c ^ (b | ~d) is 0x39) and the rotate is one vprold, which
 * shortens the chain of dependent steps by about a third. */
__attribute__((target("avx2,avx512f,avx512vl"))) static void
md5x8_blocks_512(uint32_t st[4][8], const unsigned char *const p[8], const size_t step[8],
		 size_t nblocks)
{
#define STEP(f, a, b, c, d, i, k, s) \
	a = ADD(ADD(a, ADD(m[i], _mm256_set1_epi32((int)(k)))), \
		_mm256_ternarylogic_epi32(b, c, d, TT_##f)); \
	a = ADD(b, _mm256_rol_epi32(a, s));
#define TT_F 0xca
#define TT_G 0xe4
#define TT_H 0x96
#define TT_I 0x39
	MD5X8_BLOCKS
#undef STEP
#undef TT_F
#undef TT_G
#undef TT_H
#undef TT_I
#undef ADD
}
#endif

/* The path in use: forced (tests, benchmarks), else the best the CPU has. */
static enum bb_md5_path forced;

static enum bb_md5_path best_path(void)
{
#ifdef MD5X_AVX2
	static enum bb_md5_path best;
	if (best == BB_MD5_AUTO) {
		__builtin_cpu_init();
		best = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
			       ? BB_MD5_AVX512
		       : __builtin_cpu_supports("avx2") ? BB_MD5_AVX2
							: BB_MD5_ILP;
	}
	return best;
#else
	return BB_MD5_ILP;
#endif
}

static enum bb_md5_path path_now(void)
{
	return forced != BB_MD5_AUTO ? forced : best_path();
}

int bb_md5_force_path(enum bb_md5_path p)
{
	if (p > best_path())
		return -1;
	forced = p;
	return 0;
}

const char *bb_md5_path_name(void)
{
	static const char *const name[] = {
		[BB_MD5_SCALAR] = "scalar", [BB_MD5_ILP] = "ilp", [BB_MD5_AVX2] = "avx2",
		[BB_MD5_AVX512] = "avx512vl",
	};
	return name[path_now()];
}

unsigned bb_md5_lanes(void)
{
	return path_now() == BB_MD5_SCALAR ? 1 : BB_MD5_LANES;
}

/* ---- which code hashes how many streams ------------------------------------------
 * A pass hashes the same number of blocks of each stream that has whole
 * blocks: n streams (2 to 8) split into groups, first[n] of them side by
 * side in scalar code (md5_blocks_x1 to x4), then the rest the same way
 * (first[n - first[n]], ...), or, where first[n] is 0, all n in one pass
 * of the vector lanes.  The vector pass costs the same for one stream as
 * for eight; a scalar group's cost grows with its streams.  Which is
 * cheaper depends on the CPU: on the AMD EPYC of docs/origins.md (section
 * 6), where a vector operation takes two cycles, four streams in scalar
 * code cost 0.74 of the vector pass, two 0.49; where vector operations
 * take one cycle, the vector pass costs about half as much.  So the
 * automatic choice measures each once (the CPU time of 256 blocks a
 * stream, the least of seven tries) and splits n the cheapest way. */
struct md5_plan {
	unsigned char first[BB_MD5_LANES + 1];
};

static double cost_vector, cost_scalar[5]; /* ns per pass (auto), see md5_measure */

static void scalar_pass(uint32_t *const *h, const unsigned char *const *p, unsigned k,
			size_t nblocks)
{
	switch (k) {
	case 1: md5_blocks_x1(h, p, nblocks); break;
	case 2: md5_blocks_x2(h, p, nblocks); break;
	case 3: md5_blocks_x3(h, p, nblocks); break;
	default: md5_blocks_x4(h, p, nblocks); break;
	}
}

#ifdef MD5X_AVX2
/* One vector pass: k streams (k <= 8), nblocks blocks each, on path. */
static void vector_pass(enum bb_md5_path path, uint32_t *const *h, const unsigned char *const *p,
			unsigned k, size_t nblocks)
{
	static const unsigned char idle[64];
	const unsigned char *vp[8];
	size_t step[8];
	uint32_t st[4][8];

	for (unsigned j = 0; j < 8; j++) {
		vp[j] = j < k ? p[j] : idle;
		step[j] = j < k ? 64 : 0;
		for (int w = 0; w < 4; w++)
			st[w][j] = j < k ? h[j][w] : 0;
	}
	if (path == BB_MD5_AVX512)
		md5x8_blocks_512(st, vp, step, nblocks);
	else
		md5x8_blocks(st, vp, step, nblocks);
	for (unsigned j = 0; j < k; j++)
		for (int w = 0; w < 4; w++)
			h[j][w] = st[w][j];
}
#endif

#define MEASURE_BLOCKS 256

static double cpu_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The CPU time of one pass of MEASURE_BLOCKS blocks: the vector lanes'
 * (cost_vector; 0 without them) and k streams' in scalar code. */
static void md5_measure(void)
{
	static unsigned char data[BB_MD5_LANES][MEASURE_BLOCKS * 64];
	uint32_t st[BB_MD5_LANES][4] = {{0}}, *h[BB_MD5_LANES];
	const unsigned char *p[BB_MD5_LANES];
	enum bb_md5_path vec = best_path();

	for (unsigned j = 0; j < BB_MD5_LANES; j++) {
		memset(data[j], (int)(0x5a + j), sizeof(data[j]));
		h[j] = st[j];
		p[j] = data[j];
	}
	for (int k = 0; k <= 4; k++) {
		double best = 1e30;
		if (k == 0 && vec < BB_MD5_AVX2)
			continue;
		for (int t = 0; t < 7; t++) {
			double t0 = cpu_ns();
#ifdef MD5X_AVX2
			if (k == 0)
				vector_pass(vec, h, p, BB_MD5_LANES, MEASURE_BLOCKS);
			else
#endif
				scalar_pass(h, p, (unsigned)k, MEASURE_BLOCKS);
			double dt = cpu_ns() - t0;
			if (dt < best)
				best = dt;
		}
		if (k == 0)
			cost_vector = best;
		else
			cost_scalar[k] = best;
	}
}

/* first[n] for n = 1 to 8: the cheapest split of n streams, from costs
 * (vector < 0: no vector pass; scalar[k] for a group of k). */
static void plan_split(struct md5_plan *pl, double vector, const double scalar[5])
{
	double best[BB_MD5_LANES + 1] = {0};

	for (unsigned n = 1; n <= BB_MD5_LANES; n++) {
		best[n] = vector >= 0 ? vector : 1e30;
		pl->first[n] = 0;
		for (unsigned k = 1; k <= 4 && k <= n; k++)
			if (scalar[k] + best[n - k] < best[n]) {
				best[n] = scalar[k] + best[n - k];
				pl->first[n] = (unsigned char)k;
			}
	}
}

static struct md5_plan auto_plan;
static pthread_once_t auto_once = PTHREAD_ONCE_INIT;

static void auto_plan_init(void)
{
	md5_measure();
	plan_split(&auto_plan, best_path() >= BB_MD5_AVX2 ? cost_vector : -1, cost_scalar);
}

/* The plan of the path in use. */
static const struct md5_plan *plan_now(void)
{
	static const struct md5_plan ilp = {{0, 1, 2, 3, 4, 4, 4, 4, 4}}; /* fours, then the rest */
	static const struct md5_plan vector; /* all zero: one pass */

	if (forced == BB_MD5_AUTO) {
		pthread_once(&auto_once, auto_plan_init);
		return &auto_plan;
	}
	return path_now() == BB_MD5_ILP ? &ilp : &vector; /* (BB_MD5_SCALAR never asks) */
}

int bb_md5_plan(unsigned n, double *vector_ns, double scalar_ns[5])
{
	const struct md5_plan *pl;

	if (n < 1 || n > BB_MD5_LANES || path_now() == BB_MD5_SCALAR)
		return -1;
	pl = plan_now();
	if (vector_ns)
		*vector_ns = forced == BB_MD5_AUTO ? cost_vector : 0;
	if (scalar_ns)
		for (int k = 0; k < 5; k++)
			scalar_ns[k] = forced == BB_MD5_AUTO ? cost_scalar[k] : 0;
	return pl->first[n];
}

void bb_md5_init(struct bb_md5 *c)
{
	c->h[0] = 0x67452301;
	c->h[1] = 0xefcdab89;
	c->h[2] = 0x98badcfe;
	c->h[3] = 0x10325476;
	c->len = 0;
}

void bb_md5_update_lanes(struct bb_md5 *const *c, const unsigned char *const *data,
			 const size_t *len, unsigned n)
{
	const unsigned char *p[BB_MD5_LANES];
	size_t left[BB_MD5_LANES];

	if (n > BB_MD5_LANES)
		n = BB_MD5_LANES; /* (md5x.h: at most that many) */
	/* First each stream's partial block, from the front of its data. */
	for (unsigned i = 0; i < n; i++) {
		size_t have = (size_t)(c[i]->len % 64);
		p[i] = data[i];
		left[i] = len[i];
		c[i]->len += len[i];
		if (have && left[i]) {
			size_t take = 64 - have < left[i] ? 64 - have : left[i];
			memcpy(c[i]->buf + have, p[i], take);
			p[i] += take;
			left[i] -= take;
			if (have + take == 64)
				md5_blocks(c[i]->h, c[i]->buf, 1);
		}
	}
	/* Then the whole blocks that two or more streams have, a pass at a
	 * time in the plan's groups. */
	const struct md5_plan *pl = n > 1 && bb_md5_lanes() > 1 ? plan_now() : NULL;
	while (pl) {
		uint32_t *h[BB_MD5_LANES];
		const unsigned char *q[BB_MD5_LANES];
		unsigned idx[BB_MD5_LANES], act = 0;
		size_t nb = SIZE_MAX;
		for (unsigned i = 0; i < n; i++)
			if (left[i] >= 64) {
				h[act] = c[i]->h;
				q[act] = p[i];
				idx[act++] = i;
				if (left[i] / 64 < nb)
					nb = left[i] / 64;
			}
		if (act < 2)
			break;
		for (unsigned g = 0, k; g < act; g += k) {
			k = pl->first[act - g];
#ifdef MD5X_AVX2
			if (k == 0) {
				vector_pass(path_now(), h + g, q + g, act - g, nb);
				break;
			}
#endif
			scalar_pass(h + g, q + g, k, nb);
		}
		for (unsigned j = 0; j < act; j++) {
			p[idx[j]] += 64 * nb;
			left[idx[j]] -= 64 * nb;
		}
	}
	/* The rest one stream at a time; what is left is under a block. */
	for (unsigned i = 0; i < n; i++) {
		size_t nb = left[i] / 64;
		md5_blocks(c[i]->h, p[i], nb);
		p[i] += 64 * nb;
		left[i] -= 64 * nb;
		if (left[i])
			memcpy(c[i]->buf, p[i], left[i]);
	}
}

void bb_md5_update(struct bb_md5 *c, const void *data, size_t n)
{
	const unsigned char *d = data;
	bb_md5_update_lanes(&c, &d, &n, 1);
}

void bb_md5_final(struct bb_md5 *c, unsigned char out[16])
{
	static const unsigned char pad[64] = {0x80};
	uint64_t bits = c->len * 8;
	unsigned char lenb[8];
	size_t have = (size_t)(c->len % 64);

	bb_md5_update(c, pad, have < 56 ? 56 - have : 120 - have);
	for (int i = 0; i < 8; i++)
		lenb[i] = (unsigned char)(bits >> (8 * i));
	bb_md5_update(c, lenb, 8);
	for (int w = 0; w < 4; w++)
		for (int i = 0; i < 4; i++)
			out[4 * w + i] = (unsigned char)(c->h[w] >> (8 * i));
}
