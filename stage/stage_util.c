#include "config.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/parse.h"
#include "stage/stage_util.h"

int bb_mkdirs_for(const char *path)
{
	char d[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(d))
		return BB_ERANGE;
	memcpy(d, path, n + 1);
	char *slash = strrchr(d, '/');
	if (!slash || slash == d)
		return BB_OK;
	*slash = '\0';
	for (char *p = d + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(d, 0700) < 0 && errno != EEXIST)
			return BB_ESYS;
		*p = '/';
	}
	if (mkdir(d, 0700) < 0 && errno != EEXIST)
		return BB_ESYS;
	return BB_OK;
}

int bb_digest_fd(int fd, uint64_t size, const char *md, unsigned char *out)
{
	/* Not a static buffer: bbcached verifies files in several threads. */
	size_t cap = size < (1u << 20) ? (size_t)size + 1 : 1u << 20;
	char *buf = malloc(cap);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint64_t pos = 0;
	int rc = BB_OK;

	if (!c || !buf) {
		EVP_MD_CTX_free(c);
		free(buf);
		return BB_ENOMEM;
	}
	EVP_DigestInit_ex(c, EVP_get_digestbyname(md), NULL);
	while (pos < size) {
		ssize_t r = pread(fd, buf, cap, (off_t)pos);
		if (r <= 0) {
			rc = BB_ESYS;
			break;
		}
		EVP_DigestUpdate(c, buf, (size_t)r);
		pos += (uint64_t)r;
	}
	EVP_DigestFinal_ex(c, out, NULL);
	EVP_MD_CTX_free(c);
	free(buf);
	return rc;
}

int bb_sha256_fd(int fd, uint64_t size, uint8_t out[32])
{
	return bb_digest_fd(fd, size, "SHA256", out);
}

int bb_sha256_fd_check(int fd, uint64_t size, const uint8_t *sha256)
{
	uint8_t d[32];
	int rc = bb_sha256_fd(fd, size, d);
	if (rc != BB_OK)
		return rc;
	return memcmp(d, sha256, 32) ? BB_ECORRUPT : BB_OK;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bb_json_escape(const char *s, char *out, size_t len)
{
	size_t n = 0;
	for (; *s && n + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, len - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
}

void bb_progress_init(struct bb_progress *p, int want_bar, int json, const char *phase)
{
	memset(p, 0, sizeof(*p));
	p->tty = want_bar && isatty(STDERR_FILENO);
	p->json = json;
	p->phase = phase;
	p->t0 = p->last = now_s();
	if (p->tty)
		fprintf(stderr, "bbcache: %s...\r", phase);
}

void bb_progress_start(struct bb_progress *p, uint64_t files, uint64_t bytes)
{
	p->files_total = files;
	p->bytes_total = bytes;
	p->t0 = now_s();
	if (p->json) {
		printf("{\"event\":\"start\",\"files\":%llu,\"bytes\":%llu}\n",
		       (unsigned long long)files, (unsigned long long)bytes);
		fflush(stdout);
	}
}

static void draw(struct bb_progress *p, int force)
{
	double t = now_s();
	if (!p->tty || (!force && t - p->last < 0.25))
		return;
	p->last = t;
	double el = t - p->t0 > 1e-6 ? t - p->t0 : 1e-6;
	double rate = (double)p->bytes_done / el;
	uint64_t left = p->bytes_total > p->bytes_done ? p->bytes_total - p->bytes_done : 0;
	char a[32], b[32], r[32];
	bb_format_size(p->bytes_done, a, sizeof(a));
	bb_format_size(p->bytes_total, b, sizeof(b));
	bb_format_size((uint64_t)rate, r, sizeof(r));
	int pct = p->bytes_total ? (int)(100.0 * (double)p->bytes_done / (double)p->bytes_total) : 100;
	long eta = rate > 0 ? (long)((double)left / rate) : 0;
	fprintf(stderr, "\r%3d%% %llu/%llu files  %s/%s  %s/s  ETA %ld:%02ld%s   ", pct,
		(unsigned long long)(p->files_done + p->skipped), (unsigned long long)p->files_total,
		a, b, r, eta / 60, eta % 60, p->errors ? "  errors!" : "");
}

void bb_progress_bytes(struct bb_progress *p, uint64_t n)
{
	p->bytes_done += n;
	draw(p, 0);
}

void bb_progress_skip(struct bb_progress *p, uint64_t bytes)
{
	p->skipped++;
	p->bytes_total = p->bytes_total >= bytes ? p->bytes_total - bytes : 0;
	draw(p, 0);
}

void bb_progress_file(struct bb_progress *p, const char *path, uint64_t size)
{
	p->files_done++;
	if (p->json) {
		char e[8192];
		bb_json_escape(path, e, sizeof(e));
		printf("{\"event\":\"file\",\"path\":\"%s\",\"bytes\":%llu}\n", e,
		       (unsigned long long)size);
	}
	draw(p, 0);
}

void bb_progress_error(struct bb_progress *p, const char *path, const char *msg)
{
	p->errors++;
	if (p->json) {
		char e[8192], m[2048];
		bb_json_escape(path, e, sizeof(e));
		bb_json_escape(msg, m, sizeof(m));
		printf("{\"event\":\"error\",\"path\":\"%s\",\"message\":\"%s\"}\n", e, m);
	}
	if (p->tty)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "bbcache: error: %s\n", msg);
	draw(p, 1);
}

void bb_progress_end(struct bb_progress *p)
{
	if (p->tty) {
		draw(p, 1);
		fprintf(stderr, "\n");
	}
	fflush(stdout);
}
