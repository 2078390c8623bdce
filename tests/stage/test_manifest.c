/* Unit tests: the manifest builder and validating reader.
 *
 * With BB_MANIFEST_CORPUS=<dir> in the environment, the seed corpus of the
 * fuzz target (tests/fuzz/corpus/manifest/) is also written to <dir>. */
#include "config.h"

#include <CUnit/Basic.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "stage/manifest.h"

/* Header and entry field offsets (docs/manifest.md). */
#define H_VERSION 8
#define H_HEADER_SIZE 12
#define H_FLAGS 16
#define H_ENTRY_SIZE 20
#define H_COUNT 24
#define H_N_FILES 28
#define H_BLOCK_SIZE 32
#define H_N_DIGESTS 36
#define H_TOTAL 40
#define H_FILE_SIZE 48
#define H_ENTRIES_OFF 56
#define H_CHILDREN_OFF 72
#define H_DIGESTS_OFF 88
#define H_STRTAB_OFF 104
#define H_STRTAB_LEN 112
#define H_SOURCE_OFF 120
#define H_SOURCE_LEN 128
#define H_RESERVED 132
#define HDR 152
#define E_SIZE 0
#define E_N_BLOCKS 24
#define E_PATH_OFF 32
#define E_ETAG_LEN 88
#define E_PATH_LEN 56
#define E_NAME_POS 60
#define E_PARENT 64
#define E_MODE 68
#define E_FIRST_CHILD 72
#define E_N_CHILDREN 76
#define E_DIGEST 80
#define E_RESERVED 92
#define ENT 96

static char tmpdir[64];

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static char *tpath(const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return;
	fwrite(buf, 1, len, f);
	fclose(f);
}

static const uint8_t sha_a[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
				  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* The round-trip dataset: nested dirs, an empty dir, unicode, spaces, the
 * '.' < '/' ordering trap ("a", "a.b", "a/x"), sources, etags, digests. */
static const struct bb_manifest_file sample[] = {
    {.path = "train/cat/001.jpg", .size = 5000, .mtime_ns = 100, .etag = "e1", .sha256 = sha_a},
    {.path = "train/cat/002.jpg", .size = 4096, .mtime_ns = 300},
    {.path = "train/dog/001.jpg", .size = 0, .mtime_ns = 200, .source = "raw/dog-001.jpg"},
    {.path = "a", .mode = S_IFDIR | 0700, .mtime_ns = 5},
    {.path = "a/x", .size = 1, .mtime_ns = 7, .inode = 42},
    {.path = "a.b", .size = 8193, .mtime_ns = 9, .etag = "d41d8cd98f00b204e9800998ecf8427e-3"},
    {.path = "empty/", .mode = S_IFDIR | 0755, .mtime_ns = 11},
    {.path = "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt", .size = 3, .mtime_ns = 12},
    {.path = "with space/a file.txt", .size = 10, .mtime_ns = 13, .mode = S_IFREG | 0600},
    {.path = "B", .size = 2, .mtime_ns = 14},
};
#define N_SAMPLE (sizeof(sample) / sizeof(sample[0]))

/* All paths of the written manifest, sorted bytewise. */
static const char *const sample_sorted[] = {
    "",
    "B",
    "a",
    "a.b",
    "a/x",
    "caf\xc3\xa9",
    "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt",
    "empty",
    "train",
    "train/cat",
    "train/cat/001.jpg",
    "train/cat/002.jpg",
    "train/dog",
    "train/dog/001.jpg",
    "with space",
    "with space/a file.txt",
};
#define N_SORTED (sizeof(sample_sorted) / sizeof(sample_sorted[0]))

static int write_sample(const char *path, uint32_t block_size)
{
	struct bb_manifest_builder *b = NULL;
	char err[256];
	int rc;

	rc = bb_manifest_builder_new("s3://bucket/prefix/", block_size, &b);
	for (size_t i = 0; rc == BB_OK && i < N_SAMPLE; i++)
		rc = bb_manifest_builder_add(b, &sample[i]);
	if (rc == BB_OK)
		rc = bb_manifest_builder_write(b, path, err, sizeof(err));
	bb_manifest_builder_free(b);
	return rc;
}

static struct bb_manifest *open_ok(const char *path)
{
	struct bb_manifest *m = NULL;
	char err[256] = "";
	int rc = bb_manifest_open(path, &m, err, sizeof(err));

	if (rc)
		fprintf(stderr, "open %s: %s (%s)\n", path, bb_errname(rc), err);
	CU_ASSERT_EQUAL(rc, BB_OK);
	return m;
}

/* Walk everything an accessor can reach; the sanitizers check the bounds. */
static unsigned walk(const struct bb_manifest *m)
{
	unsigned sum = (unsigned)strlen(bb_manifest_source(m));

	for (uint32_t i = 0; i < bb_manifest_count(m); i++) {
		struct bb_mentry e;
		uint32_t idx, c;

		if (bb_manifest_entry(m, i, &e))
			return 0;
		sum +=
		    (unsigned)(strlen(e.path) + strlen(e.name) + strlen(e.etag) + strlen(e.source));
		if (e.sha256)
			sum += e.sha256[0] + e.sha256[31];
		if (bb_manifest_lookup(m, e.path, e.path_len, &idx) == BB_OK)
			sum += idx;
		for (uint32_t k = 0; bb_manifest_child(m, i, k, &c) == BB_OK; k++) {
			struct bb_mentry ce;

			bb_manifest_entry(m, c, &ce);
			sum += ce.parent;
			if (bb_manifest_lookup_child(m, i, ce.name, strlen(ce.name), &idx) == BB_OK)
				sum += idx;
		}
	}
	return sum;
}

static void test_round_trip(void)
{
	char path[256];
	struct bb_manifest *m;
	struct bb_mentry e;
	struct stat st;
	uint32_t idx;

	snprintf(path, sizeof(path), "%s", tpath("sample.bbm"));
	CU_ASSERT_EQUAL_FATAL(write_sample(path, 4096), BB_OK);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL(access(tpath("sample.bbm.tmp"), F_OK), -1);
	m = open_ok(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);

	CU_ASSERT_STRING_EQUAL(bb_manifest_source(m), "s3://bucket/prefix/");
	CU_ASSERT_EQUAL(bb_manifest_block_size(m), 4096);
	CU_ASSERT_EQUAL(bb_manifest_count(m), N_SORTED);
	CU_ASSERT_EQUAL(bb_manifest_n_files(m), 8);
	CU_ASSERT_EQUAL(bb_manifest_total_bytes(m), 5000 + 4096 + 0 + 1 + 8193 + 3 + 10 + 2);

	for (uint32_t i = 0; i < N_SORTED; i++) {
		CU_ASSERT_EQUAL(bb_manifest_entry(m, i, &e), BB_OK);
		CU_ASSERT_EQUAL(e.idx, i);
		CU_ASSERT_STRING_EQUAL(e.path, sample_sorted[i]);
		CU_ASSERT_EQUAL(e.path_len, strlen(sample_sorted[i]));
		CU_ASSERT_EQUAL(bb_manifest_lookup(m, e.path, e.path_len, &idx), BB_OK);
		CU_ASSERT_EQUAL(idx, i);
		if (i) {
			struct bb_mentry p;
			const char *slash = strrchr(e.path, '/');

			CU_ASSERT_EQUAL(bb_manifest_entry(m, e.parent, &p), BB_OK);
			CU_ASSERT(S_ISDIR(p.mode));
			CU_ASSERT_STRING_EQUAL(e.name, slash ? slash + 1 : e.path);
			CU_ASSERT_EQUAL(p.path_len, slash ? (uint32_t)(slash - e.path) : 0);
		}
	}
	CU_ASSERT_EQUAL(bb_manifest_entry(m, N_SORTED, &e), BB_ENOENT);

	/* root */
	CU_ASSERT_EQUAL(bb_manifest_entry(m, 0, &e), BB_OK);
	CU_ASSERT_STRING_EQUAL(e.path, "");
	CU_ASSERT_STRING_EQUAL(e.name, "");
	CU_ASSERT_EQUAL(e.parent, 0);
	CU_ASSERT(S_ISDIR(e.mode));
	CU_ASSERT_EQUAL(e.n_children, 7);
	CU_ASSERT_EQUAL(e.mtime_ns, 300); /* newest below it */

	/* a file with everything */
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "train/cat/001.jpg", 17, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.size, 5000);
	CU_ASSERT_EQUAL(e.n_blocks, 2);
	CU_ASSERT_EQUAL(e.mtime_ns, 100);
	CU_ASSERT_EQUAL(e.mode, S_IFREG | 0644);
	CU_ASSERT_STRING_EQUAL(e.etag, "e1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e.sha256);
	CU_ASSERT_EQUAL(memcmp(e.sha256, sha_a, 32), 0);
	CU_ASSERT_STRING_EQUAL(e.source, "train/cat/001.jpg");
	CU_ASSERT_STRING_EQUAL(e.name, "001.jpg");
	CU_ASSERT_EQUAL(e.n_children, 0);

	/* a file with nothing, exact block multiple, explicit source */
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "train/cat/002.jpg", 17, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.n_blocks, 1);
	CU_ASSERT_STRING_EQUAL(e.etag, "");
	CU_ASSERT_PTR_NULL(e.sha256);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "train/dog/001.jpg", 17, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.n_blocks, 0);
	CU_ASSERT_STRING_EQUAL(e.source, "raw/dog-001.jpg");
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "a.b", 3, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.n_blocks, 3);
	CU_ASSERT_STRING_EQUAL(e.etag, "d41d8cd98f00b204e9800998ecf8427e-3");
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "a/x", 3, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.inode, 42);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "with space/a file.txt", 21, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.mode, S_IFREG | 0600);
	CU_ASSERT_STRING_EQUAL(e.name, "a file.txt");

	/* explicit dirs keep their attributes; synthesized ones get 0755 and
	 * the newest mtime below them */
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "a", 1, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.mode, S_IFDIR | 0700);
	CU_ASSERT_EQUAL(e.mtime_ns, 5);
	CU_ASSERT_EQUAL(e.n_children, 1);
	CU_ASSERT_EQUAL(e.size, 0);
	CU_ASSERT_EQUAL(e.n_blocks, 0);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "empty", 5, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.mode, S_IFDIR | 0755);
	CU_ASSERT_EQUAL(e.n_children, 0);
	CU_ASSERT_EQUAL(e.mtime_ns, 11);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "train", 5, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.mode, S_IFDIR | 0755);
	CU_ASSERT_EQUAL(e.mtime_ns, 300);
	CU_ASSERT_EQUAL(e.n_children, 2);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "train/dog", 9, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.mtime_ns, 200);
	CU_ASSERT_STRING_EQUAL(e.source, "train/dog");

	CU_ASSERT(walk(m) > 0);
	bb_manifest_close(m);
}

static void test_lookup(void)
{
	const char *path = tpath("sample.bbm");
	static const char *const missing[] = {
	    "train/ca",
	    "train/cat/00",
	    "train/cat/001.jp",
	    "train/cat/001.jpgx",
	    "tra",
	    "trainx",
	    "a/y",
	    "A",
	    "b",
	    "zzz",
	    "empty/x",
	    "train/cat/001.jpg/x",
	    "./train",
	    "train/./cat",
	    "train/../a",
	    "\xff",
	    "caf",
	};
	static const struct {
		const char *q;
		const char *want;
	} fuzzy[] = {
	    {"", ""},
	    {"/", ""},
	    {"//", ""},
	    {"train/", "train"},
	    {"train//cat", "train/cat"},
	    {"/train/cat/", "train/cat"},
	    {"train///cat//001.jpg", "train/cat/001.jpg"},
	    {"a/x/", "a/x"},
	    {"empty//", "empty"},
	};
	struct bb_manifest *m;
	struct bb_mentry e;
	uint32_t idx;
	char big[BB_MANIFEST_MAX_PATH + 10];

	m = open_ok(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		int rc = bb_manifest_lookup(m, missing[i], strlen(missing[i]), &idx);

		CU_ASSERT_EQUAL(rc, BB_ENOENT);
		if (rc != BB_ENOENT)
			fprintf(stderr, "lookup '%s' found %u\n", missing[i], idx);
	}
	/* "a/" normalizes to the directory "a", not to a missing entry */
	for (size_t i = 0; i < sizeof(fuzzy) / sizeof(fuzzy[0]); i++) {
		CU_ASSERT_EQUAL(bb_manifest_lookup(m, fuzzy[i].q, strlen(fuzzy[i].q), &idx), BB_OK);
		bb_manifest_entry(m, idx, &e);
		CU_ASSERT_STRING_EQUAL(e.path, fuzzy[i].want);
	}
	/* len bounds the path: the rest of the string is not looked at */
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "train/cat/001.jpg", 9, &idx), BB_OK);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_STRING_EQUAL(e.path, "train/cat");
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, NULL, 0, &idx), BB_OK);
	CU_ASSERT_EQUAL(idx, 0);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "a\0x", 3, &idx), BB_ENOENT);
	memset(big, 'a', sizeof(big));
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, big, sizeof(big), &idx), BB_ENOENT);
	memset(big, '/', sizeof(big));
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, big, sizeof(big), &idx), BB_OK);
	CU_ASSERT_EQUAL(idx, 0);
	bb_manifest_close(m);
}

static void test_readdir(void)
{
	static const char *const root_names[] = {"B",	  "a",	   "a.b",	"caf\xc3\xa9",
						 "empty", "train", "with space"};
	struct bb_manifest *m;
	struct bb_mentry e;
	uint32_t c, idx, cat;

	m = open_ok(tpath("sample.bbm"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	for (uint32_t k = 0; k < 7; k++) {
		CU_ASSERT_EQUAL(bb_manifest_child(m, 0, k, &c), BB_OK);
		bb_manifest_entry(m, c, &e);
		CU_ASSERT_STRING_EQUAL(e.name, root_names[k]);
		CU_ASSERT_EQUAL(e.parent, 0);
		CU_ASSERT_EQUAL(
		    bb_manifest_lookup_child(m, 0, root_names[k], strlen(root_names[k]), &idx),
		    BB_OK);
		CU_ASSERT_EQUAL(idx, c);
	}
	CU_ASSERT_EQUAL(bb_manifest_child(m, 0, 7, &c), BB_ENOENT);
	CU_ASSERT_EQUAL(bb_manifest_lookup_child(m, 0, "train/cat", 9, &idx), BB_ENOENT);
	CU_ASSERT_EQUAL(bb_manifest_lookup_child(m, 0, "nope", 4, &idx), BB_ENOENT);

	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "train/cat", 9, &cat), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_child(m, cat, 0, &c), BB_OK);
	bb_manifest_entry(m, c, &e);
	CU_ASSERT_STRING_EQUAL(e.name, "001.jpg");
	CU_ASSERT_EQUAL(bb_manifest_child(m, cat, 1, &c), BB_OK);
	bb_manifest_entry(m, c, &e);
	CU_ASSERT_STRING_EQUAL(e.name, "002.jpg");
	CU_ASSERT_EQUAL(bb_manifest_child(m, cat, 2, &c), BB_ENOENT);
	CU_ASSERT_EQUAL(bb_manifest_lookup_child(m, cat, "002.jpg", 7, &idx), BB_OK);
	CU_ASSERT_EQUAL(idx, c);

	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "empty", 5, &idx), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_child(m, idx, 0, &c), BB_ENOENT);
	/* files and bad indices are not directories */
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "a.b", 3, &idx), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_child(m, idx, 0, &c), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_manifest_lookup_child(m, idx, "x", 1, &c), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_manifest_child(m, 1000, 0, &c), BB_EINVAL);
	bb_manifest_close(m);
}

static void test_empty_manifest(void)
{
	struct bb_manifest_builder *b = NULL;
	struct bb_manifest *m;
	struct bb_mentry e;
	char err[256];
	uint32_t c;

	CU_ASSERT_EQUAL_FATAL(bb_manifest_builder_new("file:///lustre/x", 1, &b), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("empty.bbm"), err, sizeof(err)), BB_OK);
	bb_manifest_builder_free(b);
	m = open_ok(tpath("empty.bbm"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(bb_manifest_count(m), 1);
	CU_ASSERT_EQUAL(bb_manifest_n_files(m), 0);
	CU_ASSERT_EQUAL(bb_manifest_total_bytes(m), 0);
	CU_ASSERT_EQUAL(bb_manifest_entry(m, 0, &e), BB_OK);
	CU_ASSERT_EQUAL(e.n_children, 0);
	CU_ASSERT_EQUAL(e.mtime_ns, 0);
	CU_ASSERT_EQUAL(bb_manifest_child(m, 0, 0, &c), BB_ENOENT);
	bb_manifest_close(m);
}

/* A single-file dataset (type=file) says so; a single manifest of two files fails. */
static void test_single(void)
{
	struct bb_manifest_builder *b = NULL;
	struct bb_manifest *m;
	struct bb_manifest_file f = {.path = "shard-000.tar", .size = 10};
	char err[256];
	uint32_t idx;

	CU_ASSERT_EQUAL_FATAL(bb_manifest_builder_new("https://h/d/shard-000.tar", 4096, &b), BB_OK);
	bb_manifest_builder_set_single(b);
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("single.bbm"), err, sizeof(err)), BB_OK);
	m = open_ok(tpath("single.bbm"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(bb_manifest_is_single(m), 1);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "shard-000.tar", 13, &idx), BB_OK);
	CU_ASSERT_EQUAL(idx, 1);
	bb_manifest_close(m);
	f.path = "shard-001.tar";
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("single.bbm"), err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_open(tpath("single.bbm"), &m, err, sizeof(err)), BB_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "single-file manifest"));
	bb_manifest_builder_free(b);
}

static int build_err(const char *const *paths, const uint32_t *modes, int n, char *err,
		     size_t errlen)
{
	struct bb_manifest_builder *b = NULL;
	int rc;

	rc = bb_manifest_builder_new("s3://b/", 1 << 20, &b);
	for (int i = 0; rc == BB_OK && i < n; i++) {
		struct bb_manifest_file f = {
		    .path = paths[i], .size = 1, .mode = modes ? modes[i] : 0};

		rc = bb_manifest_builder_add(b, &f);
	}
	if (rc == BB_OK)
		rc = bb_manifest_builder_write(b, tpath("conflict.bbm"), err, errlen);
	bb_manifest_builder_free(b);
	return rc;
}

static void test_conflicts(void)
{
	static const char *const dup[] = {"x/a", "x/b", "x/a"};
	static const char *const filedir[] = {"a/b", "a/b/c"};
	static const char *const filedir2[] = {"a/b/c/d", "a/b"};
	static const char *const dirdir[] = {"d", "d/"};
	static const uint32_t dirdir_modes[] = {S_IFDIR | 0755, S_IFDIR | 0755};
	static const char *const filefile_dir[] = {"d", "d"};
	static const uint32_t fd_modes[] = {S_IFREG | 0644, S_IFDIR | 0755};
	static const char *const ok[] = {"d/x", "d", "d/y/z"};
	static const uint32_t ok_modes[] = {0, S_IFDIR | 0711, 0};
	char err[256];

	err[0] = '\0';
	CU_ASSERT_EQUAL(build_err(dup, NULL, 3, err, sizeof(err)), BB_EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "duplicate path 'x/a'"));
	err[0] = '\0';
	CU_ASSERT_EQUAL(build_err(filedir, NULL, 2, err, sizeof(err)), BB_EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'a/b' is a file"));
	err[0] = '\0';
	CU_ASSERT_EQUAL(build_err(filedir2, NULL, 2, err, sizeof(err)), BB_EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'a/b' is a file"));
	err[0] = '\0';
	CU_ASSERT_EQUAL(build_err(dirdir, dirdir_modes, 2, err, sizeof(err)), BB_EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "duplicate path 'd'"));
	err[0] = '\0';
	CU_ASSERT_EQUAL(build_err(filefile_dir, fd_modes, 2, err, sizeof(err)), BB_EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "duplicate path 'd'"));
	CU_ASSERT_EQUAL(access(tpath("conflict.bbm"), F_OK), -1);
	CU_ASSERT_EQUAL(access(tpath("conflict.bbm.tmp"), F_OK), -1);
	/* an explicit directory merges with the one its children need */
	CU_ASSERT_EQUAL(build_err(ok, ok_modes, 3, err, sizeof(err)), BB_OK);
	{
		struct bb_manifest *m = open_ok(tpath("conflict.bbm"));
		struct bb_mentry e;
		uint32_t idx;

		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_EQUAL(bb_manifest_count(m), 5);
		CU_ASSERT_EQUAL(bb_manifest_lookup(m, "d", 1, &idx), BB_OK);
		bb_manifest_entry(m, idx, &e);
		CU_ASSERT_EQUAL(e.mode, S_IFDIR | 0711);
		CU_ASSERT_EQUAL(e.n_children, 2);
		bb_manifest_close(m);
	}
}

static void test_builder_reuse_and_errors(void)
{
	struct bb_manifest_builder *b = NULL;
	struct bb_manifest_file f = {.path = "x", .size = 1};
	struct bb_manifest *m;
	char err[256] = "";

	CU_ASSERT_EQUAL(bb_manifest_builder_new(NULL, 1, &b), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_manifest_builder_new("s3://b/", 0, &b), BB_EINVAL);
	CU_ASSERT_EQUAL_FATAL(bb_manifest_builder_new("s3://b/", 4096, &b), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("reuse.bbm"), err, sizeof(err)),
			BB_EEXIST);
	/* a directory that does not exist: a system error, nothing left */
	CU_ASSERT_EQUAL(bb_manifest_builder_count(b), 2);
	{
		struct bb_manifest_builder *b2 = NULL;

		bb_manifest_builder_new("s3://b/", 4096, &b2);
		bb_manifest_builder_add(b2, &f);
		err[0] = '\0';
		CU_ASSERT_EQUAL(
		    bb_manifest_builder_write(b2, tpath("nodir/x.bbm"), err, sizeof(err)), BB_ESYS);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "nodir/x.bbm.tmp"));
		bb_manifest_builder_free(b2);
	}
	/* written twice: both writes give the same result */
	bb_manifest_builder_free(b);
	b = NULL;
	CU_ASSERT_EQUAL_FATAL(bb_manifest_builder_new("s3://b/", 4096, &b), BB_OK);
	f.path = "p/q/r";
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("reuse.bbm"), err, sizeof(err)), BB_OK);
	f.path = "p/s";
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_builder_count(b), 2);
	CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("reuse.bbm"), err, sizeof(err)), BB_OK);
	m = open_ok(tpath("reuse.bbm"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(bb_manifest_count(m), 5); /* "", p, p/q, p/q/r, p/s */
	bb_manifest_close(m);
	/* Written without fsync (a stage-in's own manifest): the same bytes. */
	bb_manifest_builder_set_sync(b, 0);
	CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("nosync.bbm"), err, sizeof(err)), BB_OK);
	{
		size_t na = 0, nc = 0;
		unsigned char *a = slurp(tpath("reuse.bbm"), &na);
		unsigned char *c = slurp(tpath("nosync.bbm"), &nc);
		CU_ASSERT(a && c && na > 0 && na == nc && memcmp(a, c, na) == 0);
		free(a);
		free(c);
	}
	m = open_ok(tpath("nosync.bbm"));
	CU_ASSERT_PTR_NOT_NULL(m);
	if (m)
		bb_manifest_close(m);
	bb_manifest_builder_free(b);
}

static void test_bad_paths(void)
{
	static const char *const bad[] = {
	    "",	   "/abs",  "..",   "a/..", "../a", "a/../b", ".",    "./a",
	    "a/.", "a/./b", "a//b", "//",   "/",    "a/",     "a/b/",
	};
	static const char *const good[] = {"...", ".a", "a..", "a/.b", "a b/c d", "\xe2\x82\xac"};
	struct bb_manifest_builder *b = NULL;
	struct bb_manifest_file f = {0};
	char longp[BB_MANIFEST_MAX_PATH + 1];
	char etag[BB_MANIFEST_MAX_ETAG + 2];

	CU_ASSERT_EQUAL_FATAL(bb_manifest_builder_new("s3://b/", 4096, &b), BB_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f.path = bad[i];
		CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	}
	f.path = NULL;
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, NULL), BB_EINVAL);
	/* directories: one trailing '/' is fine, the rest is not */
	f.mode = S_IFDIR | 0755;
	f.path = "dir/";
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	f.path = "dir2//";
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	f.path = "/";
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	f.path = "d/../e/";
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	/* other file types */
	f.path = "link";
	f.mode = S_IFLNK | 0777;
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	f.mode = S_IFREG | 0644 | 0x100000;
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	f.mode = 0;
	/* lengths */
	memset(longp, 'a', sizeof(longp));
	longp[BB_MANIFEST_MAX_PATH] = '\0';
	f.path = longp;
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	longp[BB_MANIFEST_MAX_PATH - 1] = '\0';
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	memset(etag, 'e', sizeof(etag));
	etag[BB_MANIFEST_MAX_ETAG + 1] = '\0';
	f.path = "etag";
	f.etag = etag;
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_EINVAL);
	etag[BB_MANIFEST_MAX_ETAG] = '\0';
	CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	f.etag = NULL;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		f.path = good[i];
		CU_ASSERT_EQUAL(bb_manifest_builder_add(b, &f), BB_OK);
	}
	{
		char err[256];
		struct bb_manifest *m;
		uint32_t idx;

		CU_ASSERT_EQUAL(bb_manifest_builder_write(b, tpath("paths.bbm"), err, sizeof(err)),
				BB_OK);
		m = open_ok(tpath("paths.bbm"));
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_EQUAL(bb_manifest_lookup(m, longp, strlen(longp), &idx), BB_OK);
		CU_ASSERT_EQUAL(bb_manifest_lookup(m, "...", 3, &idx), BB_OK);
		CU_ASSERT_EQUAL(bb_manifest_lookup(m, "dir", 3, &idx), BB_OK);
		bb_manifest_close(m);
	}
	bb_manifest_builder_free(b);
}

/* Open buf (copied to an exact-size heap block so ASan sees any over-read)
 * and expect BB_ECORRUPT with a message containing want (if not NULL). */
static int expect_corrupt(const unsigned char *buf, size_t len, const char *want)
{
	unsigned char *copy = malloc(len ? len : 1);
	struct bb_manifest *m = NULL;
	char err[256] = "";
	int rc;

	memcpy(copy, buf, len);
	rc = bb_manifest_open_mem(copy, len, &m, err, sizeof(err));
	if (rc != BB_ECORRUPT || strncmp(err, "(memory): ", 10) || (want && !strstr(err, want))) {
		fprintf(stderr, "want ECORRUPT '%s', got %s '%s'\n", want ? want : "",
			bb_errname(rc), err);
		rc = -1;
	}
	bb_manifest_close(m);
	free(copy);
	return rc;
}

static unsigned char *load_sample(size_t *len)
{
	unsigned char *buf = slurp(tpath("sample.bbm"), len);

	CU_ASSERT_PTR_NOT_NULL(buf);
	return buf;
}

static unsigned char *entry_at(unsigned char *buf, uint32_t i)
{
	return buf + get64(buf + H_ENTRIES_OFF) + (uint64_t)i * ENT;
}

/* Structural faults: checksums fixed up (bb_manifest_reseal), so the check
 * behind them must catch each one. */
static void test_corrupt_structure(void)
{
	size_t len;
	unsigned char *orig = load_sample(&len), *buf;
	uint32_t cat = 9, f1 = 10, f2 = 11; /* train/cat, its two files */

	CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
	buf = malloc(len);

#define CORRUPT(want, stmt)                                                                        \
	do {                                                                                       \
		memcpy(buf, orig, len);                                                            \
		stmt;                                                                              \
		bb_manifest_reseal(buf, len);                                                      \
		CU_ASSERT_EQUAL(expect_corrupt(buf, len, want), BB_ECORRUPT);                      \
	} while (0)

	/* unchanged + resealed opens fine */
	{
		struct bb_manifest *m = NULL;

		memcpy(buf, orig, len);
		bb_manifest_reseal(buf, len);
		CU_ASSERT_EQUAL(memcmp(buf, orig, len), 0);
		CU_ASSERT_EQUAL(bb_manifest_open_mem(buf, len, &m, NULL, 0), BB_OK);
		bb_manifest_close(m);
	}
	CORRUPT("bad magic", buf[0] = 'X');
	CORRUPT("version 2", put32(buf + H_VERSION, 2));
	CORRUPT("header size", put32(buf + H_HEADER_SIZE, 160));
	CORRUPT("entry size", put32(buf + H_ENTRY_SIZE, 88));
	CORRUPT("flags", put32(buf + H_FLAGS, 5));
	CORRUPT("flags", put32(buf + H_FLAGS, 0));
	CORRUPT("single-file manifest with 16", put32(buf + H_FLAGS, 3));
	CORRUPT("reserved", put32(buf + H_RESERVED, 1));
	CORRUPT("entry count 0", put32(buf + H_COUNT, 0));
	CORRUPT("entries section is", put32(buf + H_COUNT, 17));
	CORRUPT("block size 0", put32(buf + H_BLOCK_SIZE, 0));
	CORRUPT("blocks", put32(buf + H_BLOCK_SIZE, 8192));
	CORRUPT("digest section", put32(buf + H_N_DIGESTS, 2));
	CORRUPT("entries section at", put64(buf + H_ENTRIES_OFF, HDR + 8));
	CORRUPT("children section at",
		put64(buf + H_CHILDREN_OFF, get64(buf + H_CHILDREN_OFF) + 8));
	CORRUPT("digest section at", put64(buf + H_DIGESTS_OFF, UINT64_MAX - 7));
	CORRUPT("string section at", put64(buf + H_STRTAB_OFF, get64(buf + H_STRTAB_OFF) - 8));
	CORRUPT("runs past the end", put64(buf + H_STRTAB_LEN, get64(buf + H_STRTAB_LEN) + 1));
	CORRUPT("after the string table", put64(buf + H_STRTAB_LEN, get64(buf + H_STRTAB_LEN) - 1));
	CORRUPT("runs past the end", put64(buf + H_STRTAB_LEN, UINT64_MAX));
	CORRUPT("trailing bytes", put64(buf + H_FILE_SIZE, len - 1));
	CORRUPT("truncated", put64(buf + H_FILE_SIZE, len + 1));
	CORRUPT("source URL", put32(buf + H_SOURCE_LEN, 5));
	CORRUPT("source URL", put64(buf + H_SOURCE_OFF, get64(buf + H_STRTAB_LEN)));
	CORRUPT("source URL", put64(buf + H_SOURCE_OFF, UINT64_MAX));
	CORRUPT("source URL", put32(buf + H_SOURCE_LEN, BB_MANIFEST_MAX_PATH));
	CORRUPT("does not start with the empty string", buf[get64(buf + H_STRTAB_OFF)] = 'x');
	CORRUPT("files", put32(buf + H_N_FILES, 7));
	CORRUPT("bytes", put64(buf + H_TOTAL, 1));

	/* entries */
	CORRUPT("entry 0 is not the root", put32(entry_at(buf, 0) + E_PARENT, 1));
	CORRUPT("entry 0 is not the root", put32(entry_at(buf, 0) + E_MODE, S_IFREG | 0644));
	CORRUPT("entry 0: path", put64(entry_at(buf, 0) + E_PATH_OFF, 1));
	CORRUPT("parent 11 does not precede", put32(entry_at(buf, f1) + E_PARENT, 11));
	CORRUPT("parent 4294967295", put32(entry_at(buf, f1) + E_PARENT, UINT32_MAX));
	CORRUPT("is not a directory", put32(entry_at(buf, f2) + E_PARENT, f1));
	CORRUPT("not its parent's path plus a name", put32(entry_at(buf, f1) + E_PARENT, 8));
	CORRUPT("not its parent's path plus a name", put32(entry_at(buf, f1) + E_NAME_POS, 11));
	CORRUPT("path not NUL", put32(entry_at(buf, f1) + E_PATH_LEN, 10));
	CORRUPT("path not NUL", put32(entry_at(buf, f1) + E_PATH_LEN, 16));
	CORRUPT("path length", put32(entry_at(buf, f1) + E_PATH_LEN, UINT32_MAX));
	CORRUPT("path outside", put64(entry_at(buf, f1) + E_PATH_OFF, get64(buf + H_STRTAB_LEN)));
	CORRUPT("path outside", put64(entry_at(buf, f1) + E_PATH_OFF, UINT64_MAX - 3));
	/* a path that hides a NUL: "train/cat/001.jpg" -> "train/cat/0\0..." */
	CORRUPT("path contains a NUL",
		buf[get64(buf + H_STRTAB_OFF) + get64(entry_at(buf, f1) + E_PATH_OFF) + 11] = '\0');
	/* a name with '/', '.' or "..": rewrite the bytes of "001.jpg" */
	CORRUPT("bad name", memcpy((char *)buf + get64(buf + H_STRTAB_OFF) +
				       get64(entry_at(buf, f1) + E_PATH_OFF) + 10,
				   "00/.jpg", 7));
	/* swap two siblings' paths: unsorted (and children order broken) */
	CORRUPT("not strictly sorted", {
		unsigned char t[8];
		memcpy(t, entry_at(buf, f1) + E_PATH_OFF, 8);
		memcpy(entry_at(buf, f1) + E_PATH_OFF, entry_at(buf, f2) + E_PATH_OFF, 8);
		memcpy(entry_at(buf, f2) + E_PATH_OFF, t, 8);
	});
	/* two entries with the same path */
	CORRUPT("not strictly sorted",
		memcpy(entry_at(buf, f2) + E_PATH_OFF, entry_at(buf, f1) + E_PATH_OFF, 8));
	CORRUPT("blocks", put64(entry_at(buf, f1) + E_N_BLOCKS, 3));
	CORRUPT("blocks", put64(entry_at(buf, f1) + E_SIZE, 8193));
	CORRUPT("blocks", put64(entry_at(buf, 13) + E_SIZE, 1));
	CORRUPT("bytes", put64(entry_at(buf, f1) + E_SIZE, 5001)); /* same blocks, other total */
	CORRUPT("directory with a size", put64(entry_at(buf, cat) + E_SIZE, 1));
	CORRUPT("directory with a size", put32(entry_at(buf, cat) + E_DIGEST, 1));
	CORRUPT("etag not NUL", put32(entry_at(buf, cat) + E_ETAG_LEN, 1));
	CORRUPT("digest 2 out of range", put32(entry_at(buf, f1) + E_DIGEST, 2));
	CORRUPT("etag longer", put32(entry_at(buf, f1) + E_ETAG_LEN, 129));
	CORRUPT("etag not NUL", put32(entry_at(buf, f1) + E_ETAG_LEN, 1));
	CORRUPT("reserved field", put32(entry_at(buf, f1) + E_RESERVED, 1));
	CORRUPT("bad mode", put32(entry_at(buf, f1) + E_MODE, S_IFLNK | 0777));
	CORRUPT("bad mode", put32(entry_at(buf, f1) + E_MODE, S_IFREG | 010000000));
	CORRUPT("a file with children", put32(entry_at(buf, f1) + E_N_CHILDREN, 1));
	CORRUPT("a file with children", put32(entry_at(buf, f1) + E_FIRST_CHILD, 1));
	/* a file turned into a directory, and a directory into a file */
	CORRUPT(NULL, {
		put32(entry_at(buf, f1) + E_MODE, S_IFDIR | 0755);
		put64(entry_at(buf, f1) + E_SIZE, 0);
		put64(entry_at(buf, f1) + E_N_BLOCKS, 0);
		put32(entry_at(buf, f1) + E_DIGEST, 0);
		put32(entry_at(buf, f1) + E_ETAG_LEN, 0);
	});
	CORRUPT(NULL, put32(entry_at(buf, 12) + E_MODE, S_IFREG | 0644));
	/* children */
	CORRUPT("child 2 (entry 13) is wrong", put32(entry_at(buf, cat) + E_N_CHILDREN, 3));
	CORRUPT("children range", put32(entry_at(buf, cat) + E_N_CHILDREN, UINT32_MAX));
	CORRUPT("children range", put32(entry_at(buf, cat) + E_FIRST_CHILD, 0));
	CORRUPT("children range", put32(entry_at(buf, 12) + E_N_CHILDREN, 0));
	CORRUPT("children cover 14 of 15", put32(entry_at(buf, 14) + E_N_CHILDREN, 0));
	{
		uint64_t ch = get64(orig + H_CHILDREN_OFF);
		uint32_t first = get32(entry_at(orig, cat) + E_FIRST_CHILD);

		CORRUPT("is wrong", { /* swapped: not ascending */
				      put32(buf + ch + first * 4, f2);
				      put32(buf + ch + first * 4 + 4, f1);
		});
		CORRUPT("is wrong", put32(buf + ch + first * 4, f1 + 3)); /* wrong parent */
		CORRUPT("is wrong", put32(buf + ch + first * 4, 0));
		CORRUPT("is wrong", put32(buf + ch + first * 4, 1000));
		CORRUPT("is wrong", put32(buf + ch + first * 4 + 4, f1)); /* duplicate */
	}
#undef CORRUPT
	free(buf);
	free(orig);
}

/* Every byte flipped without resealing: the checksums catch it. */
static void test_corrupt_flip_and_truncate(void)
{
	size_t len;
	unsigned char *orig = load_sample(&len);
	int bad = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			orig[i] ^= (unsigned char)(1u << bit);
			bad += expect_corrupt(orig, len, NULL) != BB_ECORRUPT;
			orig[i] ^= (unsigned char)(1u << bit);
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* truncation at every length; and one byte appended */
	for (size_t n = 0; n < len; n++)
		bad += expect_corrupt(orig, n, n < HDR ? "truncated" : "truncated") != BB_ECORRUPT;
	CU_ASSERT_EQUAL(bad, 0);
	{
		unsigned char *more = malloc(len + 1);

		memcpy(more, orig, len);
		more[len] = 0;
		CU_ASSERT_EQUAL(expect_corrupt(more, len + 1, "trailing bytes"), BB_ECORRUPT);
		free(more);
	}
	/* through the file API too */
	{
		struct bb_manifest *m = NULL;
		char err[256] = "";

		spit(tpath("trunc.bbm"), orig, len / 2);
		CU_ASSERT_EQUAL(bb_manifest_open(tpath("trunc.bbm"), &m, err, sizeof(err)),
				BB_ECORRUPT);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "trunc.bbm: truncated"));
		spit(tpath("trunc.bbm"), orig, 10);
		CU_ASSERT_EQUAL(bb_manifest_open(tpath("trunc.bbm"), &m, err, sizeof(err)),
				BB_ECORRUPT);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "trunc.bbm: truncated"));
		spit(tpath("trunc.bbm"), orig, 0);
		CU_ASSERT_EQUAL(bb_manifest_open(tpath("trunc.bbm"), &m, err, sizeof(err)),
				BB_ECORRUPT);
		orig[200] ^= 1;
		spit(tpath("trunc.bbm"), orig, len);
		orig[200] ^= 1;
		CU_ASSERT_EQUAL(bb_manifest_open(tpath("trunc.bbm"), &m, err, sizeof(err)),
				BB_ECORRUPT);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "trunc.bbm: body checksum mismatch"));
		CU_ASSERT_EQUAL(bb_manifest_open(tpath("missing.bbm"), &m, err, sizeof(err)),
				BB_ENOENT);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing.bbm"));
		CU_ASSERT_EQUAL(bb_manifest_open(tmpdir, &m, err, sizeof(err)), BB_ECORRUPT);
		CU_ASSERT_PTR_NULL(m);
	}
	free(orig);
}

/* Every bit flipped and the checksums fixed: open fails or the manifest is
 * still safe to walk (run under --enable-sanitizers to check the bounds). */
static void test_corrupt_flip_resealed(void)
{
	size_t len;
	unsigned char *orig = load_sample(&len);
	int opened = 0, wrong_rc = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			unsigned char *buf = malloc(len);
			struct bb_manifest *m = NULL;
			char err[256] = "";
			int rc;

			memcpy(buf, orig, len);
			buf[i] ^= (unsigned char)(1u << bit);
			bb_manifest_reseal(buf, len);
			rc = bb_manifest_open_mem(buf, len, &m, err, sizeof(err));
			if (rc == BB_OK) {
				opened++;
				walk(m);
				bb_manifest_close(m);
			} else if (rc != BB_ECORRUPT || !err[0]) {
				wrong_rc++;
			}
			free(buf);
		}
	}
	CU_ASSERT_EQUAL(wrong_rc, 0);
	/* flips in mtimes, inodes, permission bits, etag/source text... pass */
	CU_ASSERT(opened > 0);
	free(orig);
}

static void test_select(void)
{
	CU_ASSERT_EQUAL(bb_manifest_select(NULL, NULL, "a/b.jpg"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("", "", "a/b.jpg"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("*.jpg", NULL, "a/b.jpg"), 1); /* '*' crosses '/' */
	CU_ASSERT_EQUAL(bb_manifest_select("*.jpg", NULL, "a/b.png"), 0);
	CU_ASSERT_EQUAL(bb_manifest_select("**/*.jpg", NULL, "a/b/c.jpg"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("**/*.jpg", NULL, "c.jpg"), 0); /* like "*" + "/" */
	CU_ASSERT_EQUAL(bb_manifest_select("train/**", NULL, "train/x/y"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("train/**", NULL, "val/x"), 0);
	CU_ASSERT_EQUAL(bb_manifest_select("train/*", NULL, "train/x/y"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select(NULL, "*.tmp", "a/b.tmp"), 0);
	CU_ASSERT_EQUAL(bb_manifest_select(NULL, "*.tmp", "a/b.jpg"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("*.jpg", "*/bad/*", "x/bad/y.jpg"), 0);
	CU_ASSERT_EQUAL(bb_manifest_select("*.jpg", "*/bad/*", "x/good/y.jpg"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("shard-[0-9][0-9].tar", NULL, "shard-07.tar"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("shard-[0-9][0-9].tar", NULL, "shard-7.tar"), 0);
	CU_ASSERT_EQUAL(bb_manifest_select("?", NULL, "a"), 1);
	CU_ASSERT_EQUAL(bb_manifest_select("*", NULL, ".hidden/x"), 1); /* no FNM_PERIOD */
	CU_ASSERT_EQUAL(bb_manifest_select("*", NULL, NULL), 0);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 200k files in 400 directories, added in a scrambled order. */
static void test_scale(void)
{
	enum { N_DIRS = 400, PER_DIR = 500, N = N_DIRS * PER_DIR };
	struct bb_manifest_builder *b = NULL;
	struct bb_manifest *m = NULL;
	char path[64], err[256] = "";
	double t0, t_write, t_open, t_lookup;
	uint32_t idx, c, found = 0;
	struct bb_mentry e;
	int rc = BB_OK;

	CU_ASSERT_EQUAL_FATAL(bb_manifest_builder_new("s3://big/", 1 << 22, &b), BB_OK);
	t0 = now();
	for (uint32_t i = 0; i < N; i++) {
		uint32_t k = (uint32_t)(((uint64_t)i * 7919) % N); /* 7919 prime, coprime to N */
		struct bb_manifest_file f = {.path = path,
					     .size = k * 1000ULL,
					     .mtime_ns = k,
					     .etag = "0123456789abcdef0123456789abcdef"};

		snprintf(path, sizeof(path), "shard-%03u/sample-%06u.jpg", k / PER_DIR, k);
		if ((rc = bb_manifest_builder_add(b, &f)))
			break;
	}
	CU_ASSERT_EQUAL(rc, BB_OK);
	rc = bb_manifest_builder_write(b, tpath("scale.bbm"), err, sizeof(err));
	CU_ASSERT_EQUAL(rc, BB_OK);
	t_write = now() - t0;
	bb_manifest_builder_free(b);

	t0 = now();
	rc = bb_manifest_open(tpath("scale.bbm"), &m, err, sizeof(err));
	t_open = now() - t0;
	CU_ASSERT_EQUAL_FATAL(rc, BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_count(m), 1 + N_DIRS + N);
	CU_ASSERT_EQUAL(bb_manifest_n_files(m), N);

	t0 = now();
	for (uint32_t k = 0; k < N; k++) {
		int len =
		    snprintf(path, sizeof(path), "shard-%03u/sample-%06u.jpg", k / PER_DIR, k);

		if (bb_manifest_lookup(m, path, (size_t)len, &idx) == BB_OK &&
		    bb_manifest_entry(m, idx, &e) == BB_OK && e.size == k * 1000ULL)
			found++;
	}
	t_lookup = now() - t0;
	CU_ASSERT_EQUAL(found, N);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "shard-400", 9, &idx), BB_ENOENT);
	CU_ASSERT_EQUAL(bb_manifest_lookup(m, "shard-399", 9, &idx), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_child(m, idx, PER_DIR - 1, &c), BB_OK);
	CU_ASSERT_EQUAL(bb_manifest_child(m, idx, PER_DIR, &c), BB_ENOENT);
	bb_manifest_entry(m, idx, &e);
	CU_ASSERT_EQUAL(e.mtime_ns, N - 1);
	fprintf(stderr,
		"\n  scale: %d entries, write %.3fs, open %.3fs, %d lookups %.3fs "
		"(%.0f ns each)\n",
		1 + N_DIRS + N, t_write, t_open, N, t_lookup, t_lookup / N * 1e9);
	/* About 0.1 s in a plain build; the bound leaves room for sanitizers
	 * and valgrind (~2 s) and still fails a linear-time lookup. */
	CU_ASSERT(t_open + t_lookup < 4.0);
	bb_manifest_close(m);
	unlink(tpath("scale.bbm"));
}

/* Seeds for tests/fuzz/corpus/manifest/: valid manifests and broken ones. */
static void write_corpus(const char *dir)
{
	static const struct bb_manifest_file tiny[] = {
	    {.path = "a/b/c", .size = 3, .etag = "x", .sha256 = sha_a},
	    {.path = "a/d", .size = 1 << 20, .source = "other/d"},
	    {.path = "e", .mode = S_IFDIR | 0755},
	};
	struct bb_manifest_builder *b = NULL;
	char path[512], err[256];
	unsigned char *buf;
	size_t len;

	snprintf(path, sizeof(path), "%s/sample.bbm", dir);
	write_sample(path, 4096);
	bb_manifest_builder_new("file:///lustre/x", 1, &b);
	snprintf(path, sizeof(path), "%s/root-only.bbm", dir);
	bb_manifest_builder_write(b, path, err, sizeof(err));
	for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++)
		bb_manifest_builder_add(b, &tiny[i]);
	snprintf(path, sizeof(path), "%s/tiny.bbm", dir);
	bb_manifest_builder_write(b, path, err, sizeof(err));
	bb_manifest_builder_free(b);

	buf = slurp(path, &len);
	if (!buf)
		return;
	snprintf(path, sizeof(path), "%s/truncated.bbm", dir);
	spit(path, buf, len - 7);
	snprintf(path, sizeof(path), "%s/header-only.bbm", dir);
	spit(path, buf, HDR);
	buf[len - 3] ^= 0x20;
	snprintf(path, sizeof(path), "%s/bad-checksum.bbm", dir);
	spit(path, buf, len);
	bb_manifest_reseal(buf, len); /* passes the checksum, not the validation */
	snprintf(path, sizeof(path), "%s/resealed-bad-string.bbm", dir);
	spit(path, buf, len);
	buf[len - 3] ^= 0x20;
	put32(entry_at(buf, 2) + E_PARENT, 3);
	bb_manifest_reseal(buf, len);
	snprintf(path, sizeof(path), "%s/resealed-bad-parent.bbm", dir);
	spit(path, buf, len);
	free(buf);
}

int main(void)
{
	const char *corpus = getenv("BB_MANIFEST_CORPUS");
	CU_pSuite s;
	char cmd[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_manifest.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	if (corpus)
		write_corpus(corpus);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("manifest", NULL, NULL);
	CU_add_test(s, "round trip", test_round_trip);
	CU_add_test(s, "lookup", test_lookup);
	CU_add_test(s, "readdir", test_readdir);
	CU_add_test(s, "empty manifest", test_empty_manifest);
	CU_add_test(s, "single-file manifest", test_single);
	CU_add_test(s, "duplicates and conflicts", test_conflicts);
	CU_add_test(s, "builder reuse and errors", test_builder_reuse_and_errors);
	CU_add_test(s, "bad paths", test_bad_paths);
	CU_add_test(s, "corrupt structures", test_corrupt_structure);
	CU_add_test(s, "flipped bytes and truncation", test_corrupt_flip_and_truncate);
	CU_add_test(s, "flipped bits resealed", test_corrupt_flip_resealed);
	CU_add_test(s, "select", test_select);
	CU_add_test(s, "200k entries", test_scale);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return failed ? 1 : 0;
}
