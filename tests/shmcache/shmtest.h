/* Helpers shared by the shmcache tests: deterministic block contents, a
 * unique job id per test, and a check that nothing is left behind. */
#ifndef BB_TESTS_SHMTEST_H
#define BB_TESTS_SHMTEST_H

#include <CUnit/Basic.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shmcache/shmcache.h"

/* The bytes of block (file, block): every 8-byte word is a hash of its
 * position, so a torn, stale or misplaced block never verifies. */
static inline uint64_t shmtest_word(uint64_t file, uint64_t block, uint64_t i)
{
	uint64_t x = file * 0x9e3779b97f4a7c15ULL + block * 0xbf58476d1ce4e5b9ULL + i;
	x ^= x >> 31;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 29;
	return x;
}

static inline void shmtest_fill(void *buf, uint64_t file, uint64_t block, size_t len)
{
	uint64_t *w = buf;
	size_t n = len / 8, i;
	for (i = 0; i < n; i++)
		w[i] = shmtest_word(file, block, i);
	if (len % 8) {
		uint64_t last = shmtest_word(file, block, n);
		memcpy((char *)buf + n * 8, &last, len % 8);
	}
}

/* 1 if buf holds len bytes of block (file, block) starting at off (off % 8 == 0). */
static inline int shmtest_check(const void *buf, uint64_t file, uint64_t block, uint64_t off,
				size_t len)
{
	const unsigned char *p = buf;
	for (size_t k = 0; k < len; k += 8) {
		uint64_t w = shmtest_word(file, block, (off + k) / 8);
		size_t m = len - k < 8 ? len - k : 8;
		if (memcmp(p + k, &w, m) != 0)
			return 0;
	}
	return 1;
}

/* Fill (file, block) with its pattern unless it is there; rc of bbc_get. */
static inline int shmtest_put(struct bbc_cache *c, uint64_t file, uint64_t block, uint32_t len)
{
	struct bbc_ref ref;
	int rc = bbc_get(c, file, block, len, -1, 0, 1000, &ref);
	if (rc != 0)
		return rc;
	if (ref.filling) {
		shmtest_fill(ref.data, file, block, len);
		rc = bbc_fill_commit(c, &ref);
	}
	bbc_unpin(c, &ref);
	return rc;
}

static inline uint64_t shmtest_job_id(int n)
{
	return 900000000ULL + (uint64_t)getpid() * 100 + (uint64_t)n;
}

/* Number of files in dir whose name starts with "bbcache.". */
static inline int shmtest_leftovers(const char *dir)
{
	DIR *d = opendir(dir ? dir : "/dev/shm");
	struct dirent *de;
	int n = 0;
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "bbcache.%llu", (unsigned long long)shmtest_job_id(0) / 100);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

#define SHMTEST_MAIN(suite_name, ...)                                                \
	int main(void)                                                               \
	{                                                                            \
		struct {                                                             \
			const char *name;                                            \
			void (*fn)(void);                                            \
		} tests[] = {__VA_ARGS__};                                           \
		CU_pSuite s;                                                         \
		if (CU_initialize_registry() != CUE_SUCCESS)                         \
			return 1;                                                    \
		s = CU_add_suite(suite_name, NULL, NULL);                            \
		for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)        \
			CU_add_test(s, tests[i].name, tests[i].fn);                  \
		CU_basic_set_mode(CU_BRM_VERBOSE);                                   \
		CU_basic_run_tests();                                                \
		unsigned failed = CU_get_number_of_failures() +                      \
				  CU_get_number_of_tests_failed();                   \
		CU_cleanup_registry();                                               \
		int left = shmtest_leftovers(NULL);                                  \
		if (left)                                                            \
			fprintf(stderr, "FAIL: %d segment(s) left in /dev/shm\n", left); \
		return failed || left ? 1 : 0;                                       \
	}

#endif
