/* libFuzzer target: the namespace file reader (common/ns.h).  bb_ns_read
 * takes a path, so each input is written to a file in a private directory
 * made once per process (removed at exit).  What it accepts must meet the
 * format's promises (fields NUL-terminated in their arrays, shm and socket
 * not empty, mounts absolute without a trailing '/', at most
 * BB_NS_MAX_DATASETS), and must survive bb_ns_write and bb_ns_read
 * unchanged; what it refuses has a "path:" message.  abort() otherwise. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/ns.h"
#include "tests/fuzz/fuzz.h"

static char dir[64], in_path[96], out_path[96];
static struct bb_ns ns, back;

static void cleanup(void)
{
	unlink(in_path);
	unlink(out_path);
	rmdir(dir);
}

static int setup(void)
{
	const char *t = getenv("TMPDIR");

	if (dir[0])
		return 0;
	snprintf(dir, sizeof(dir), "%s/bbcache-fuzz-ns.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror(dir);
		return -1;
	}
	snprintf(in_path, sizeof(in_path), "%s/in.ns", dir);
	snprintf(out_path, sizeof(out_path), "%s/out.ns", dir);
	atexit(cleanup);
	return 0;
}

static int terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static int has_tab_nl(const char *s)
{
	return strpbrk(s, "\t\n") != NULL;
}

static void check(const struct bb_ns *n)
{
	if (n->n > BB_NS_MAX_DATASETS || !terminated(n->shm_dir, sizeof(n->shm_dir)) ||
	    !terminated(n->socket, sizeof(n->socket)))
		abort();
	/* Empty fields are refused, also ones made empty by a NUL byte
	 * ("shm\t\0x", "dataset\t/m\t\0x"; this target found that). */
	if (!n->shm_dir[0] || !n->socket[0])
		abort();
	for (uint32_t i = 0; i < n->n; i++) {
		const struct bb_ns_dataset *d = &n->ds[i];
		size_t ml;

		if (!terminated(d->mount, sizeof(d->mount)) ||
		    !terminated(d->manifest, sizeof(d->manifest)))
			abort();
		ml = strlen(d->mount);
		if (d->mount[0] != '/' || (ml > 1 && d->mount[ml - 1] == '/'))
			abort();
		if (!d->manifest[0])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	int fd, rc;

	if (setup())
		abort();
	fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);

	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	rc = bb_ns_read(in_path, &ns, err, sizeof(err));
	if (rc != BB_OK) {
		if (rc != BB_EPARSE || strncmp(err, in_path, strlen(in_path)))
			abort();
		return 0;
	}
	check(&ns);

	/* written out and read back: the same namespace */
	rc = bb_ns_write(out_path, &ns, err, sizeof(err));
	if (rc != BB_OK) {
		int tab = 0;
		/* refused only for a tab or newline in a dataset path (the
		 * reader lets a tab through in a manifest) */
		for (uint32_t i = 0; i < ns.n; i++)
			tab |= has_tab_nl(ns.ds[i].mount) || has_tab_nl(ns.ds[i].manifest);
		if (rc != BB_EINVAL || !tab)
			abort();
		return 0;
	}
	if (bb_ns_read(out_path, &back, err, sizeof(err)) != BB_OK)
		abort();
	if (back.job_id != ns.job_id || back.n != ns.n || strcmp(back.shm_dir, ns.shm_dir) ||
	    strcmp(back.socket, ns.socket))
		abort();
	for (uint32_t i = 0; i < ns.n; i++)
		if (strcmp(back.ds[i].mount, ns.ds[i].mount) ||
		    strcmp(back.ds[i].manifest, ns.ds[i].manifest))
			abort();
	return 0;
}
