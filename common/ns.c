/* The job's namespace file (common/ns.h). */
#include "common/ns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

#define NS_MAX_BYTES (BB_NS_MAX_DATASETS * (2 * BB_NS_PATH + 16) + 4096)

int bb_ns_file(const char *jobdir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/.bbcache/agent.ns", jobdir);
	return n < 0 || (size_t)n >= len ? BB_ERANGE : BB_OK;
}

int bb_ns_socket(const char *jobdir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/.bbcache/agent.sock", jobdir);
	return n < 0 || (size_t)n >= len ? BB_ERANGE : BB_OK;
}

/* Copy field [s, e) into dst (cap bytes, NUL-terminated). */
static int field(char *dst, size_t cap, const char *s, const char *e)
{
	size_t n = (size_t)(e - s);
	if (n == 0 || n >= cap || memchr(s, '\0', n) || memchr(s, '\t', n))
		return BB_EPARSE;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return BB_OK;
}

static int parse_line(struct bb_ns *ns, const char *s, const char *e, int lineno, int *have)
{
	const char *t1 = memchr(s, '\t', (size_t)(e - s));
	if (!t1)
		return BB_EPARSE;
	size_t kl = (size_t)(t1 - s);
	const char *v = t1 + 1;

	if (lineno == 1)
		return kl == 10 && !memcmp(s, "bbcache-ns", 10) && e - v == 1 && *v == '1'
			       ? BB_OK : BB_EPARSE;
	if (kl == 3 && !memcmp(s, "job", 3)) {
		char num[32], *end;
		if (field(num, sizeof(num), v, e))
			return BB_EPARSE;
		if (num[0] < '0' || num[0] > '9') /* strtoull takes blanks and signs */
			return BB_EPARSE;
		errno = 0;
		ns->job_id = strtoull(num, &end, 10);
		*have |= 1;
		return *end || errno ? BB_EPARSE : BB_OK;
	}
	if (kl == 3 && !memcmp(s, "shm", 3)) {
		*have |= 2;
		return field(ns->shm_dir, sizeof(ns->shm_dir), v, e);
	}
	if (kl == 6 && !memcmp(s, "socket", 6)) {
		*have |= 4;
		return field(ns->socket, sizeof(ns->socket), v, e);
	}
	if (kl == 7 && !memcmp(s, "dataset", 7)) {
		const char *t2 = memchr(v, '\t', (size_t)(e - v));
		if (!t2 || ns->n >= BB_NS_MAX_DATASETS)
			return BB_EPARSE;
		struct bb_ns_dataset *d = &ns->ds[ns->n];
		if (field(d->mount, sizeof(d->mount), v, t2) ||
		    field(d->manifest, sizeof(d->manifest), t2 + 1, e) || d->mount[0] != '/')
			return BB_EPARSE;
		/* A mount is a normalized absolute path: no trailing '/'. */
		size_t ml = strlen(d->mount);
		while (ml > 1 && d->mount[ml - 1] == '/')
			d->mount[--ml] = '\0';
		ns->n++;
		return BB_OK;
	}
	return BB_OK; /* unknown keys: a newer agent; ignored */
}

int bb_ns_read(const char *path, struct bb_ns *ns, char *err, size_t errlen)
{
	char *buf;
	const size_t cap = NS_MAX_BYTES;
	int fd, rc = BB_OK, have = 0, lineno = 0;
	size_t len = 0;

	memset(ns, 0, sizeof(*ns));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? BB_ENOENT : errno == EACCES ? BB_EPERM : BB_ESYS;
	}
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return BB_ENOMEM;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			free(buf);
			return BB_ESYS;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == cap) {
			snprintf(err, errlen, "%s: larger than %zu bytes", path, cap);
			close(fd);
			free(buf);
			return BB_EPARSE;
		}
	}
	close(fd);
	for (const char *s = buf, *end = buf + len; s < end && rc == BB_OK;) {
		const char *e = memchr(s, '\n', (size_t)(end - s));
		if (!e)
			e = end;
		lineno++;
		rc = parse_line(ns, s, e, lineno, &have);
		if (rc != BB_OK)
			snprintf(err, errlen, "%s:%d: malformed line", path, lineno);
		s = e + 1;
	}
	if (rc == BB_OK && have != 7) {
		snprintf(err, errlen, "%s: %s", path,
			 lineno ? "the job, shm or socket line is missing" : "empty");
		rc = BB_EPARSE;
	}
	free(buf);
	return rc;
}

int bb_ns_write(const char *path, const struct bb_ns *ns, char *err, size_t errlen)
{
	char tmp[BB_NS_PATH + 16];
	FILE *f;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return BB_ERANGE;
	}
	if (ns->n > BB_NS_MAX_DATASETS) {
		snprintf(err, errlen, "%s: %u datasets, at most %d", path, ns->n, BB_NS_MAX_DATASETS);
		return BB_ERANGE;
	}
	if (!ns->shm_dir[0] || !ns->socket[0] || strpbrk(ns->shm_dir, "\t\n") ||
	    strpbrk(ns->socket, "\t\n")) {
		snprintf(err, errlen, "%s: the shm directory or socket path is empty or holds a tab "
			 "or newline", path);
		return BB_EINVAL;
	}
	for (uint32_t i = 0; i < ns->n; i++)
		if (strpbrk(ns->ds[i].mount, "\t\n") || strpbrk(ns->ds[i].manifest, "\t\n")) {
			snprintf(err, errlen, "%s: a dataset path holds a tab or newline",
				 ns->ds[i].mount);
			return BB_EINVAL;
		}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return BB_ESYS;
	}
	fprintf(f, "bbcache-ns\t1\njob\t%llu\nshm\t%s\nsocket\t%s\n",
		(unsigned long long)ns->job_id, ns->shm_dir, ns->socket);
	for (uint32_t i = 0; i < ns->n; i++)
		fprintf(f, "dataset\t%s\t%s\n", ns->ds[i].mount, ns->ds[i].manifest);
	if (fflush(f) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		return BB_ESYS;
	}
	fclose(f);
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return BB_ESYS;
	}
	return BB_OK;
}
