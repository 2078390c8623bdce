/* Unit tests: hashing and rendezvous placement. */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hrw.h"

static void test_mix_and_hash(void)
{
	const char *s = "s3://bucket/imagenet/train/n01440764/0001.JPEG";
	unsigned char buf[64];
	uint64_t h1, h2;
	int flips = 0;

	/* Fixed values: placement must agree across nodes and releases. */
	CU_ASSERT_EQUAL(bb_mix64(0), 0);
	CU_ASSERT_NOT_EQUAL(bb_mix64(1), 1);
	CU_ASSERT_EQUAL(bb_mix64(12345), bb_mix64(12345));

	h1 = bb_hash64(s, strlen(s), 0);
	h2 = bb_hash64(s, strlen(s), 0);
	CU_ASSERT_EQUAL(h1, h2);
	CU_ASSERT_NOT_EQUAL(bb_hash64(s, strlen(s), 1), h1);
	CU_ASSERT_NOT_EQUAL(bb_hash64("a", 1, 0), bb_hash64("a\0", 2, 0));
	CU_ASSERT_NOT_EQUAL(bb_hash64("", 0, 0), bb_hash64("\0", 1, 0));
	CU_ASSERT_EQUAL(bb_hash64(NULL, 0, 7), bb_hash64("", 0, 7));

	/* Every length 0..64 and a one-bit change of every byte changes the
	 * hash, and flips about half of the output bits on average. */
	memset(buf, 0x5a, sizeof(buf));
	for (size_t len = 1; len <= sizeof(buf); len++) {
		uint64_t base = bb_hash64(buf, len, 42);
		for (size_t i = 0; i < len; i++) {
			buf[i] ^= 0x10;
			uint64_t h = bb_hash64(buf, len, 42);
			buf[i] ^= 0x10;
			CU_ASSERT_NOT_EQUAL(h, base);
			flips += __builtin_popcountll(h ^ base);
		}
	}
	/* 64*65/2 = 2080 trials, expect 32 bits each. */
	CU_ASSERT(flips > 2080 * 30 && flips < 2080 * 34);
}

static void test_place_basic(void)
{
	uint32_t nodes[8] = {10, 11, 12, 13, 14, 15, 16, 17};
	int idx[8], idx2[8];

	CU_ASSERT_EQUAL(bb_hrw_place(1, NULL, 8, 1, idx), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_hrw_place(1, nodes, 0, 1, idx), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_hrw_place(1, nodes, 8, 0, idx), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_hrw_place(1, nodes, 8, 1, NULL), BB_EINVAL);

	for (uint64_t key = 0; key < 1000; key++) {
		CU_ASSERT_EQUAL(bb_hrw_place(key, nodes, 8, 3, idx), BB_OK);
		CU_ASSERT_EQUAL(bb_hrw_place(key, nodes, 8, 3, idx2), BB_OK);
		CU_ASSERT_EQUAL(memcmp(idx, idx2, 3 * sizeof(int)), 0);
		/* distinct, in range, in descending weight order */
		for (int a = 0; a < 3; a++) {
			CU_ASSERT(idx[a] >= 0 && idx[a] < 8);
			for (int b = a + 1; b < 3; b++)
				CU_ASSERT_NOT_EQUAL(idx[a], idx[b]);
			if (a > 0)
				CU_ASSERT(bb_hrw_weight(key, nodes[idx[a - 1]]) >=
					  bb_hrw_weight(key, nodes[idx[a]]));
		}
		/* the top one beats every other node */
		for (int n = 0; n < 8; n++)
			CU_ASSERT(bb_hrw_weight(key, nodes[idx[0]]) >= bb_hrw_weight(key, nodes[n]));
		/* replicas clamp to n_nodes: a permutation */
		CU_ASSERT_EQUAL(bb_hrw_place(key, nodes, 8, 100, idx), BB_OK);
		int seen = 0;
		for (int a = 0; a < 8; a++)
			seen |= 1 << idx[a];
		CU_ASSERT_EQUAL(seen, 0xff);
		/* the first r of a larger placement are the smaller placement */
		CU_ASSERT_EQUAL(memcmp(idx, idx2, 3 * sizeof(int)), 0);
	}
	/* one node: always index 0 */
	CU_ASSERT_EQUAL(bb_hrw_place(99, nodes, 1, 4, idx), BB_OK);
	CU_ASSERT_EQUAL(idx[0], 0);
	/* duplicate ids tie; the lower index ranks first */
	uint32_t dup[2] = {5, 5};
	CU_ASSERT_EQUAL(bb_hrw_place(7, dup, 2, 2, idx), BB_OK);
	CU_ASSERT_EQUAL(idx[0], 0);
	CU_ASSERT_EQUAL(idx[1], 1);
}

/* Removing a node moves only the keys that had it in their top r. */
static void test_minimal_disruption(void)
{
	uint32_t all[8] = {100, 101, 102, 103, 104, 105, 106, 107};
	uint32_t less[7];
	const int removed = 5, r = 3;
	int moved = 0;

	for (int i = 0, j = 0; i < 8; i++)
		if (i != removed)
			less[j++] = all[i];
	for (uint64_t key = 0; key < 20000; key++) {
		int a[3], b[3];
		uint32_t ida[3], idb[3];
		int had = 0;

		bb_hrw_place(key * 0x10001, all, 8, r, a);
		bb_hrw_place(key * 0x10001, less, 7, r, b);
		for (int i = 0; i < r; i++) {
			ida[i] = all[a[i]];
			idb[i] = less[b[i]];
			had |= a[i] == removed;
		}
		if (!had) {
			CU_ASSERT_EQUAL(memcmp(ida, idb, sizeof(ida)), 0);
			continue;
		}
		moved++;
		/* the survivors keep their relative order, a new node joins last */
		for (int i = 0, j = 0; i < r; i++) {
			if (ida[i] == all[removed])
				continue;
			CU_ASSERT_EQUAL(ida[i], idb[j]);
			j++;
		}
	}
	/* about r/8 of the keys had the removed node */
	CU_ASSERT(moved > 20000 * 3 / 8 * 0.9 && moved < 20000 * 3 / 8 * 1.1);
}

static void test_uniform(void)
{
	uint32_t nodes[8];
	const int n_keys = 100000;
	int count[8] = {0}, count3[8] = {0};
	double mean = n_keys / 8.0;

	for (int i = 0; i < 8; i++)
		nodes[i] = (uint32_t)i; /* small consecutive ids are the hard case */
	for (int k = 0; k < n_keys; k++) {
		int idx[3];

		bb_hrw_place((uint64_t)k, nodes, 8, 1, idx);
		count[idx[0]]++;
		bb_hrw_place(bb_hash64(&k, sizeof(k), 0), nodes, 8, 3, idx);
		for (int r = 0; r < 3; r++)
			count3[idx[r]]++;
	}
	double chi2 = 0;
	for (int i = 0; i < 8; i++) {
		CU_ASSERT(count[i] > mean * 0.95 && count[i] < mean * 1.05);
		CU_ASSERT(count3[i] > 3 * mean * 0.95 && count3[i] < 3 * mean * 1.05);
		chi2 += (count[i] - mean) * (count[i] - mean) / mean;
	}
	/* 7 degrees of freedom: P(chi2 > 24.3) = 0.001 */
	CU_ASSERT(chi2 < 24.3);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("hrw", NULL, NULL);
	CU_add_test(s, "mix and hash", test_mix_and_hash);
	CU_add_test(s, "placement", test_place_basic);
	CU_add_test(s, "minimal disruption", test_minimal_disruption);
	CU_add_test(s, "uniform distribution", test_uniform);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
