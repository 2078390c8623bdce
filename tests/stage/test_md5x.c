/* Unit tests: MD5 of one stream and of several side by side (stage/md5x.c)
 * against RFC 1321's test suite and against OpenSSL's MD5, on every path
 * this CPU has (one stream in portable C; up to four interleaved in it;
 * AVX2 lanes; AVX-512VL lanes) and on the automatic mix of them. */
#include "config.h"

#include <CUnit/Basic.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage/md5x.h"

static void hex(const unsigned char d[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* RFC 1321, appendix A.5. */
static void test_rfc(void)
{
	static const char *const in[] = {
		"", "a", "abc", "message digest", "abcdefghijklmnopqrstuvwxyz",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	};
	static const char *const want[] = {
		"d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661",
		"900150983cd24fb0d6963f7d28e17f72", "f96b697d7cb7938d525a2f31aaf161d0",
		"c3fcd3d76192e4007dfb496cca67e13b", "d174ab98d277d9f5a5611c2c9f419d9f",
		"57edf4a22be3c955ac49da2e2107b67a",
	};
	for (int path = BB_MD5_SCALAR; path <= BB_MD5_AVX512 + 1; path++) {
		if (bb_md5_force_path(path > BB_MD5_AVX512 ? BB_MD5_AUTO : path) != 0)
			continue;
		/* One at a time, and all seven side by side. */
		struct bb_md5 c[7], *cp[7];
		const unsigned char *d[7];
		size_t n[7];
		for (int i = 0; i < 7; i++) {
			unsigned char out[16];
			char h[33];
			bb_md5_init(&c[i]);
			bb_md5_update(&c[i], in[i], strlen(in[i]));
			bb_md5_final(&c[i], out);
			hex(out, h);
			CU_ASSERT_STRING_EQUAL(h, want[i]);
			bb_md5_init(&c[i]);
			cp[i] = &c[i];
			d[i] = (const unsigned char *)in[i];
			n[i] = strlen(in[i]);
		}
		bb_md5_update_lanes(cp, d, n, 7);
		for (int i = 0; i < 7; i++) {
			unsigned char out[16];
			char h[33];
			bb_md5_final(&c[i], out);
			hex(out, h);
			CU_ASSERT_STRING_EQUAL(h, want[i]);
		}
	}
	bb_md5_force_path(BB_MD5_AUTO);
}

/* 1 to 8 streams fed in random pieces (whole blocks, partial blocks, empty
 * ones, pieces that do or do not end a block), each against OpenSSL. */
static void test_random_lanes(void)
{
	const size_t per = 3u << 20;
	unsigned char *buf = malloc(8 * per);
	int bad = 0, runs = 0, paths = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	srand(1321);
	for (size_t i = 0; i < 8 * per; i++)
		buf[i] = (unsigned char)(rand() >> 3);
	for (int path = BB_MD5_SCALAR; path <= BB_MD5_AVX512 + 1; path++) {
		if (bb_md5_force_path(path > BB_MD5_AVX512 ? BB_MD5_AUTO : path) != 0)
			continue;
		paths++;
		for (int it = 0; it < 200; it++) {
			unsigned n = 1 + (unsigned)(it % 8);
			struct bb_md5 c[8], *cp[8];
			EVP_MD_CTX *e[8];
			size_t pos[8] = {0};
			for (unsigned i = 0; i < n; i++) {
				cp[i] = &c[i];
				bb_md5_init(&c[i]);
				e[i] = EVP_MD_CTX_new();
				EVP_DigestInit_ex(e[i], EVP_md5(), NULL);
			}
			for (int round = 0; round < 6; round++) {
				const unsigned char *d[8];
				size_t len[8];
				for (unsigned i = 0; i < n; i++) {
					switch (rand() % 5) {
					case 0: len[i] = 0; break;
					case 1: len[i] = (size_t)(rand() % 130); break;
					case 2: len[i] = 64 * (size_t)(1 + rand() % 40); break;
					default: len[i] = (size_t)(rand() % 300000); break;
					}
					if (pos[i] + len[i] > per)
						len[i] = per - pos[i];
					d[i] = buf + i * per + pos[i];
					EVP_DigestUpdate(e[i], d[i], len[i]);
					pos[i] += len[i];
				}
				bb_md5_update_lanes(cp, d, len, n);
			}
			for (unsigned i = 0; i < n; i++) {
				unsigned char a[16], b[16];
				bb_md5_final(&c[i], a);
				EVP_DigestFinal_ex(e[i], b, NULL);
				EVP_MD_CTX_free(e[i]);
				bad += memcmp(a, b, 16) != 0;
				runs++;
				CU_ASSERT_EQUAL(c[i].len, pos[i] + 64 - pos[i] % 64 + (pos[i] % 64 >= 56 ? 64 : 0));
			}
		}
	}
	bb_md5_force_path(BB_MD5_AUTO);
	CU_ASSERT_EQUAL(bad, 0);
	printf("(%d digests of 1-8 streams on %d paths and the mix, %d wrong; %s here) ", runs,
	       paths - 1, bad, bb_md5_path_name());
	free(buf);
}

/* The best path is what the CPU allows, and forcing another works. */
static void test_lanes(void)
{
	const char *best = bb_md5_path_name();
#if defined(__x86_64__)
	__builtin_cpu_init();
	int avx2 = __builtin_cpu_supports("avx2");
	int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
	CU_ASSERT_STRING_EQUAL(best, avx512 ? "avx512vl" : avx2 ? "avx2" : "ilp");
	CU_ASSERT_EQUAL(bb_md5_lanes(), avx2 ? BB_MD5_LANES : 1u);
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_AVX2), avx2 ? 0 : -1);
	if (avx2) {
		CU_ASSERT_STRING_EQUAL(bb_md5_path_name(), "avx2");
		CU_ASSERT_EQUAL(bb_md5_lanes(), BB_MD5_LANES);
	}
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_AVX512), avx512 ? 0 : -1);
#else
	CU_ASSERT_STRING_EQUAL(best, "ilp");
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_AVX2), -1);
#endif
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_ILP), 0);
	CU_ASSERT_EQUAL(bb_md5_lanes(), BB_MD5_LANES);
	CU_ASSERT_STRING_EQUAL(bb_md5_path_name(), "ilp");
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_SCALAR), 0);
	CU_ASSERT_EQUAL(bb_md5_lanes(), 1u);
	CU_ASSERT_STRING_EQUAL(bb_md5_path_name(), "scalar");
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_AUTO), 0);
	CU_ASSERT_STRING_EQUAL(bb_md5_path_name(), best);
}

/* How each path splits n streams: in portable C, groups of four and then
 * the rest; on a vector path, one pass; automatically, the cheapest split
 * by the costs it measured (checked here against those costs). */
static void test_plan(void)
{
	double vec, sc[5];

	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_SCALAR), 0);
	CU_ASSERT_EQUAL(bb_md5_plan(4, NULL, NULL), -1);
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_ILP), 0);
	for (unsigned n = 1; n <= BB_MD5_LANES; n++)
		CU_ASSERT_EQUAL(bb_md5_plan(n, &vec, sc), (int)(n < 4 ? n : 4));
	CU_ASSERT_EQUAL(bb_md5_plan(0, NULL, NULL), -1);
	CU_ASSERT_EQUAL(bb_md5_plan(BB_MD5_LANES + 1, NULL, NULL), -1);
	CU_ASSERT_EQUAL(vec, 0);
	if (bb_md5_force_path(BB_MD5_AVX2) == 0)
		for (unsigned n = 2; n <= BB_MD5_LANES; n++)
			CU_ASSERT_EQUAL(bb_md5_plan(n, NULL, NULL), 0);
	CU_ASSERT_EQUAL(bb_md5_force_path(BB_MD5_AUTO), 0);
	int vector = strcmp(bb_md5_path_name(), "ilp") != 0;
	double cost[BB_MD5_LANES + 1] = {0};
	for (unsigned n = 1; n <= BB_MD5_LANES; n++) {
		int k = bb_md5_plan(n, &vec, sc);
		CU_ASSERT(k >= 0 && k <= 4 && (unsigned)k <= n);
		CU_ASSERT(k > 0 || vector);
		CU_ASSERT(vector ? vec > 0 : vec == 0);
		for (int j = 1; j <= 4; j++)
			CU_ASSERT(sc[j] > 0);
		/* No split is cheaper than the chosen one. */
		cost[n] = k == 0 ? vec : sc[k] + cost[n - (unsigned)k];
		for (unsigned j = 1; j <= 4 && j <= n; j++)
			CU_ASSERT(cost[n] <= sc[j] + cost[n - j]);
		if (vector)
			CU_ASSERT(cost[n] <= vec);
		if (n == BB_MD5_LANES)
			printf("(measured: vector pass %.0f ns, portable C 1-4 streams %.0f/%.0f/%.0f/%.0f "
			       "ns; 4 streams: %s) ",
			       vec, sc[1], sc[2], sc[3], sc[4],
			       bb_md5_plan(4, NULL, NULL) ? "portable C" : "vector");
	}
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("md5x", NULL, NULL);
	CU_add_test(s, "RFC 1321 test suite", test_rfc);
	CU_add_test(s, "1-8 streams against OpenSSL", test_random_lanes);
	CU_add_test(s, "lanes", test_lanes);
	CU_add_test(s, "plan", test_plan);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
