/* libFuzzer target: the manifest reader (bb_manifest_open_mem and every
 * accessor).  Each input is opened twice: as it is, and with its checksums
 * recomputed (bb_manifest_reseal), so mutations reach the structural checks
 * behind the checksum.  After a successful open every accessor must stay in
 * bounds (ASan) and the invariants the interposer relies on must hold
 * (abort otherwise). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "stage/manifest.h"
#include "tests/fuzz/fuzz.h"

#define MAX_WALK 4096 /* entries checked per input, to keep runs fast */

static const char *const probes[] = {
    "", "/", "a", "a/", "a//b", "a/b/c", "train/cat/001.jpg", "..", "B", "\xff\xff",
};

static void check_entry(const struct bb_manifest *m, uint32_t i)
{
	struct bb_mentry e, p, ce;
	uint32_t idx, c, k;
	size_t n = 0;

	if (bb_manifest_entry(m, i, &e) || e.idx != i)
		abort();
	if (strlen(e.path) != e.path_len || e.name < e.path || e.name > e.path + e.path_len)
		abort();
	n += strlen(e.etag) + strlen(e.source) + strlen(e.name);
	if (e.sha256)
		n += e.sha256[0] + e.sha256[31];
	if (bb_manifest_entry(m, e.parent, &p) || !S_ISDIR(p.mode))
		abort();
	if (i && e.parent >= i)
		abort();
	/* every stored path is found, at its own index, and so is its
	 * spelling with a trailing and a doubled '/' */
	if (bb_manifest_lookup(m, e.path, e.path_len, &idx) || idx != i)
		abort();
	if (e.path_len + 2 < BB_MANIFEST_MAX_PATH) {
		char buf[BB_MANIFEST_MAX_PATH + 2];

		memcpy(buf, "/", 1);
		memcpy(buf + 1, e.path, e.path_len);
		buf[e.path_len + 1] = '/';
		if (bb_manifest_lookup(m, buf, e.path_len + 2, &idx) || idx != i)
			abort();
	}
	if (!S_ISDIR(e.mode)) {
		if (e.n_children || bb_manifest_child(m, i, 0, &c) != BB_EINVAL)
			abort();
		if (e.n_blocks !=
		    e.size / bb_manifest_block_size(m) + (e.size % bb_manifest_block_size(m) != 0))
			abort();
		return;
	}
	for (k = 0; bb_manifest_child(m, i, k, &c) == BB_OK; k++) {
		if (bb_manifest_entry(m, c, &ce) || ce.parent != i)
			abort();
		if (bb_manifest_lookup_child(m, i, ce.name, strlen(ce.name), &idx) || idx != c)
			abort();
	}
	if (k != e.n_children)
		abort();
	(void)n;
}

static void exercise(const uint8_t *data, size_t size)
{
	struct bb_manifest *m = NULL;
	char err[256] = "";
	uint32_t idx, count;
	int rc;

	rc = bb_manifest_open_mem(data, size, &m, err, sizeof(err));
	if (rc) {
		/* a failure is always "corrupt", with a message naming the input */
		if (rc != BB_ECORRUPT || strncmp(err, "(memory): ", 10))
			abort();
		return;
	}
	count = bb_manifest_count(m);
	if (count < 1 || strlen(bb_manifest_source(m)) >= BB_MANIFEST_MAX_PATH ||
	    bb_manifest_block_size(m) == 0 || bb_manifest_n_files(m) >= count)
		abort();
	for (uint32_t i = 0; i < count && i < MAX_WALK; i++)
		check_entry(m, i);
	if (count > MAX_WALK)
		check_entry(m, count - 1);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (bb_manifest_lookup(m, probes[i], strlen(probes[i]), &idx) == BB_OK)
			check_entry(m, idx);
		(void)bb_manifest_lookup_child(m, 0, probes[i], strlen(probes[i]), &idx);
		(void)bb_manifest_select(probes[i], bb_manifest_source(m), probes[i]);
	}
	if (bb_manifest_lookup(m, "", 0, &idx) || idx != 0)
		abort();
	if (bb_manifest_entry(m, count, &(struct bb_mentry){0}) != BB_ENOENT)
		abort();
	bb_manifest_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	exercise(data, size);
	/* an exact-size copy, so ASan flags a read one byte past the end */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	bb_manifest_reseal(copy, size);
	exercise(copy, size);
	free(copy);
	return 0;
}
