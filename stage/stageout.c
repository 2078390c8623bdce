/* Stage-out: a local file or directory to s3:// (PUT, or a multipart upload
 * for large files, aborted on failure) or to a file:// directory (copied
 * under a temporary name, then renamed). */
#include "config.h"

#define BB_LOG_COMPONENT "stage-out"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/error.h"
#include "common/log.h"
#include "stage/origin.h"
#include "stage/s3xml.h"
#include "stage/stage.h"
#include "stage/stage_util.h"

#define PART_SIZE (64ULL << 20)

struct part {
	struct upload *up;
	uint32_t no;               /* 1-based part number */
	uint64_t off, len;
	char url[12288];
	char sha[65];
	char md5[33];
	char etag[160];
	int done;
};

struct upload {
	struct out_run *run;
	const struct bb_listed *f;
	char key[4096 + 1024];
	char local[PATH_MAX];
	void *map;
	uint64_t size;
	int multipart;
	char upload_id[1024];
	struct part *parts;
	uint32_t n_parts, parts_left;
	int failed, rc;
	char err[700];
};

struct out_run {
	const struct bb_stage_opts *o;
	struct bb_stage_summary *s;
	struct bb_url dst;
	struct bb_aws_cfg aws;
	int anonymous;
	struct bb_engine *eng;
	struct bb_progress prog;
	uint64_t part_size;
};

static void hex(const unsigned char *d, int n, char *out)
{
	for (int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void digests(const void *buf, uint64_t len, char sha[65], char md5[33])
{
	unsigned char d[32];
	EVP_Digest(buf, len, d, NULL, EVP_sha256(), NULL);
	hex(d, 32, sha);
	EVP_Digest(buf, len, d, NULL, EVP_md5(), NULL);
	hex(d, 16, md5);
}

static void up_fail(struct upload *u, int rc, const char *msg)
{
	if (!u->failed) {
		u->failed = 1;
		u->rc = rc;
		snprintf(u->err, sizeof(u->err), "%s", msg);
	}
}

static void sign_req(struct out_run *r, struct bb_xfer_req *q)
{
	if (!r->anonymous)
		q->aws = &r->aws;
}

static void part_done(void *arg, struct bb_xfer_result *res)
{
	struct part *p = arg;
	struct upload *u = p->up;

	if (res->rc != BB_OK) {
		up_fail(u, res->rc, res->errmsg);
	} else {
		snprintf(p->etag, sizeof(p->etag), "%s", res->etag);
		/* S3 answers a part or a small object with the MD5 of what it got. */
		if (strlen(res->etag) == 32 && strcmp(res->etag, p->md5) != 0) {
			char m[700];
			snprintf(m, sizeof(m), "%s: the server stored different bytes (ETag %s, MD5 %s)",
				 u->key, res->etag, p->md5);
			up_fail(u, BB_ECORRUPT, m);
		}
		p->done = 1;
		bb_progress_bytes(&u->run->prog, p->len);
	}
	u->parts_left--;
}

static int s3_simple(struct out_run *r, struct upload *u, const char *query, enum bb_method m,
		     const void *body, size_t body_len, struct bb_xfer_result *res)
{
	char url[12288], sha[65], md5[33];
	struct bb_xfer_req q = {0};

	if (bb_s3_url(&r->aws, r->dst.host, u->key, query, url, sizeof(url)) != BB_OK)
		return BB_ERANGE;
	digests(body ? body : "", body_len, sha, md5);
	q.url = url;
	q.method = m;
	q.body = body;
	q.body_len = body_len;
	q.body_sha256 = sha;
	q.capture_body = 1;
	q.what = u->key;
	sign_req(r, &q);
	return bb_engine_fetch(r->eng, &q, res);
}

/* Phase 1 (before the engine runs): map the file, start a multipart upload
 * if it is large, and queue its PUTs. */
static int prepare_upload(struct out_run *r, struct upload *u)
{
	int fd = open(u->local, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char m[PATH_MAX + 200];

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(m, sizeof(m), "cannot open %s: %s", u->local, strerror(errno));
		up_fail(u, BB_ESYS, m);
		if (fd >= 0)
			close(fd);
		return BB_ESYS;
	}
	u->size = (uint64_t)st.st_size;
	if (u->size) {
		u->map = mmap(NULL, u->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (u->map == MAP_FAILED) {
			u->map = NULL;
			close(fd);
			up_fail(u, BB_ESYS, "mmap failed");
			return BB_ESYS;
		}
		madvise(u->map, u->size, MADV_SEQUENTIAL);
	}
	close(fd);
	u->multipart = u->size > r->part_size;
	u->n_parts = u->multipart ? (uint32_t)((u->size + r->part_size - 1) / r->part_size) : 1;
	if (u->n_parts > 10000) {
		up_fail(u, BB_ETOOBIG, "more than 10,000 parts: use a larger --chunk");
		return BB_ETOOBIG;
	}
	u->parts = calloc(u->n_parts, sizeof(*u->parts));
	if (!u->parts)
		return BB_ENOMEM;
	if (u->multipart) {
		struct bb_xfer_result res;
		int rc = s3_simple(r, u, "uploads=", BB_POST, NULL, 0, &res);
		if (rc == BB_OK)
			rc = bb_s3_parse_upload_id(res.body ? res.body : "", res.body_len, u->upload_id,
						   sizeof(u->upload_id));
		if (rc != BB_OK) {
			snprintf(m, sizeof(m), "starting the multipart upload of %s: %s", u->key,
				 res.errmsg[0] ? res.errmsg : bb_strerror(rc));
			up_fail(u, rc, m);
			bb_xfer_result_free(&res);
			return rc;
		}
		bb_xfer_result_free(&res);
	}
	u->parts_left = u->n_parts;
	for (uint32_t i = 0; i < u->n_parts; i++) {
		struct part *p = &u->parts[i];
		struct bb_xfer_req q = {0};
		char query[1200], eid[3 * 1024];
		p->up = u;
		p->no = i + 1;
		p->off = (uint64_t)i * r->part_size;
		p->len = u->multipart ? (u->size - p->off < r->part_size ? u->size - p->off : r->part_size)
				      : u->size;
		digests(u->map ? (char *)u->map + p->off : "", p->len, p->sha, p->md5);
		if (u->multipart) {
			bb_uri_encode(u->upload_id, strlen(u->upload_id), 1, eid, sizeof(eid));
			snprintf(query, sizeof(query), "partNumber=%u&uploadId=%s", p->no, eid);
		}
		if (bb_s3_url(&r->aws, r->dst.host, u->key, u->multipart ? query : NULL, p->url,
			      sizeof(p->url)) != BB_OK) {
			up_fail(u, BB_ERANGE, "URL too long");
			u->parts_left = 0;
			return BB_ERANGE;
		}
		q.url = p->url;
		q.method = BB_PUT;
		q.body = u->map ? (char *)u->map + p->off : "";
		q.body_len = p->len;
		q.body_sha256 = p->sha;
		q.on_done = part_done;
		q.arg = p;
		q.what = u->key;
		sign_req(r, &q);
		if (bb_engine_submit(r->eng, &q) != BB_OK) {
			up_fail(u, BB_ENOMEM, "out of memory");
			u->parts_left -= u->n_parts - i;
			return BB_ENOMEM;
		}
	}
	return BB_OK;
}

/* Phase 3: complete (or abort) a multipart upload. */
static void finish_upload(struct out_run *r, struct upload *u)
{
	char m[1024];

	if (u->multipart && u->upload_id[0]) {
		char eid[3 * 1024], query[3200];
		bb_uri_encode(u->upload_id, strlen(u->upload_id), 1, eid, sizeof(eid));
		snprintf(query, sizeof(query), "uploadId=%s", eid);
		struct bb_xfer_result res;
		if (!u->failed) {
			const char **etags = calloc(u->n_parts, sizeof(char *));
			char *xml = NULL;
			size_t xl = 0;
			for (uint32_t i = 0; etags && i < u->n_parts; i++)
				etags[i] = u->parts[i].etag;
			int rc = etags ? bb_s3_build_complete(etags, u->n_parts, &xml, &xl) : BB_ENOMEM;
			free(etags);
			if (rc == BB_OK)
				rc = s3_simple(r, u, query, BB_POST, xml, xl, &res);
			free(xml);
			if (rc == BB_OK) {
				char etag[160], code[64] = "";
				rc = bb_s3_parse_complete(res.body ? res.body : "", res.body_len, etag,
							  sizeof(etag), code, sizeof(code));
				if (rc != BB_OK)
					snprintf(res.errmsg, sizeof(res.errmsg), "%s: %s", u->key,
						 code[0] ? code : "bad CompleteMultipartUpload answer");
			}
			if (rc != BB_OK) {
				snprintf(m, sizeof(m), "completing the multipart upload: %s", res.errmsg);
				up_fail(u, rc, m);
			}
			bb_xfer_result_free(&res);
		}
		if (u->failed) {
			/* Abort, so no parts linger (best effort: not every server has it). */
			if (s3_simple(r, u, query, BB_DELETE, NULL, 0, &res) != BB_OK)
				bb_debug("%s: abort of the upload failed: %s", u->key, res.errmsg);
			bb_xfer_result_free(&res);
		}
	}
	if (u->map)
		munmap(u->map, u->size);
	u->map = NULL;
	if (u->failed) {
		r->s->failed++;
		if (!r->s->first_error[0])
			snprintf(r->s->first_error, sizeof(r->s->first_error), "%s", u->err);
		bb_progress_error(&r->prog, u->local, u->err);
	} else {
		r->s->files++;
		r->s->bytes += u->size;
		bb_progress_file(&r->prog, u->key, u->size);
	}
	free(u->parts);
	u->parts = NULL;
}

/* file:// destination: copy under a temporary name, fsync, rename. */
static int copy_local(struct out_run *r, const char *src, const char *dst, uint64_t *bytes,
		      char *err, size_t errlen)
{
	static char buf[4 << 20];
	char tmp[PATH_MAX + 16];
	int in = -1, out = -1, rc = BB_OK;
	struct stat st;

	if (bb_mkdirs_for(dst) != BB_OK) {
		snprintf(err, errlen, "cannot create the directory of %s: %s", dst, strerror(errno));
		return BB_ESYS;
	}
	const char *slash = strrchr(dst, '/');
	snprintf(tmp, sizeof(tmp), "%.*s.%s.bbtmp", slash ? (int)(slash - dst + 1) : 0, dst,
		 slash ? slash + 1 : dst);
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		snprintf(err, errlen, "cannot open %s: %s", src, strerror(errno));
		rc = BB_ESYS;
		goto out;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		rc = errno == ENOSPC ? BB_ENOSPC : BB_ESYS;
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0 || write(out, buf, (size_t)n) != n) {
			snprintf(err, errlen, "copying %s to %s: %s", src, tmp, strerror(errno));
			rc = errno == ENOSPC ? BB_ENOSPC : BB_ESYS;
			goto out;
		}
		*bytes += (uint64_t)n;
		bb_progress_bytes(&r->prog, (uint64_t)n);
	}
	if (fsync(out) < 0 || close(out) < 0) {
		out = -1;
		snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
		rc = errno == ENOSPC ? BB_ENOSPC : BB_ESYS;
		goto out;
	}
	out = -1;
	if (rename(tmp, dst) < 0) {
		snprintf(err, errlen, "cannot rename into %s: %s", dst, strerror(errno));
		rc = BB_ESYS;
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc != BB_OK)
		unlink(tmp);
	return rc;
}

int bb_stage_out(const struct bb_stage_opts *o, struct bb_stage_summary *s, char *err,
		 size_t errlen)
{
	struct out_run r;
	struct bb_origin src;
	struct bb_listing l = {0};
	struct bb_engine_opts eo = {0};
	struct upload *ups = NULL;
	struct timespec t0, t1;
	int rc;

	memset(s, 0, sizeof(*s));
	memset(&r, 0, sizeof(r));
	memset(&src, 0, sizeof(src));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r.o = o;
	r.s = s;
	r.part_size = o->chunk ? o->chunk : PART_SIZE;
	if (r.part_size < (5u << 20))
		r.part_size = 5u << 20; /* S3's smallest part */
	eo.max_parallel = o->jobs > 0 ? o->jobs : 32;
	eo.max_attempts = o->max_attempts;
	eo.stall_timeout_s = o->stall_timeout_s;
	eo.verify_tls = o->no_verify_tls ? -1 : 1;
	eo.ca_file = getenv("BBCACHE_CA_BUNDLE");
	rc = bb_engine_new(&eo, &r.eng);
	if (rc != BB_OK) {
		snprintf(err, errlen, "cannot start the transfer engine: %s",
			 rc == BB_ESYS ? strerror(errno) : bb_strerror(rc));
		return rc;
	}
	rc = bb_url_parse(o->dest, &r.dst, err, errlen);
	if (rc != BB_OK)
		goto out;
	if (r.dst.scheme != BB_SCHEME_S3 && r.dst.scheme != BB_SCHEME_FILE) {
		snprintf(err, errlen, "stage-out to %s: only s3:// and file:// destinations are supported",
			 o->dest);
		rc = BB_ENOTSUP;
		goto out;
	}
	char canon[8192];
	if (o->conf && (bb_url_format(&r.dst, canon, sizeof(canon)) != BB_OK ||
			!bb_conf_origin_allowed(o->conf, canon))) {
		snprintf(err, errlen, "%s is not an allowed destination (allowed_origins in bbcache.conf)",
			 o->dest);
		rc = BB_EPOLICY;
		goto out;
	}
	/* The source is local: list it as a file:// origin. */
	struct stat st;
	if (stat(o->source, &st) < 0) {
		snprintf(err, errlen, "%s: %s", o->source, strerror(errno));
		rc = errno == ENOENT ? BB_ENOENT : BB_ESYS;
		goto out;
	}
	rc = bb_origin_open(&src, o->source, S_ISDIR(st.st_mode) ? BB_STAGE_DIRECTORY : BB_STAGE_FILE,
			    NULL, r.eng, err, errlen);
	if (rc == BB_OK)
		rc = bb_origin_list(&src, o->include, o->exclude, &l, err, errlen);
	if (rc != BB_OK)
		goto out;
	bb_progress_init(&r.prog, o->progress, o->json, "stage-out");
	for (size_t i = 0; i < l.n; i++) {
		s->total_files++;
		s->total_bytes += l.v[i].size;
	}
	bb_progress_start(&r.prog, s->total_files, s->total_bytes);

	/* Where each file goes: DEST/ + relative path; a single file to a
	 * destination ending in '/' keeps its name. */
	if (r.dst.scheme == BB_SCHEME_FILE) {
		for (size_t i = 0; i < l.n; i++) {
			char from[PATH_MAX * 2], to[PATH_MAX * 2], e[1024];
			uint64_t bytes = 0;
			snprintf(from, sizeof(from), "%s%s%s", src.base, src.single ? "" : "/",
				 src.single ? "" : l.v[i].src);
			if (src.single && !r.dst.dir)
				snprintf(to, sizeof(to), "%s", r.dst.path);
			else
				snprintf(to, sizeof(to), "%s%s%s", r.dst.path, r.dst.dir ? "" : "/",
					 l.v[i].rel);
			int crc = copy_local(&r, from, to, &bytes, e, sizeof(e));
			if (crc != BB_OK) {
				s->failed++;
				if (!s->first_error[0])
					snprintf(s->first_error, sizeof(s->first_error), "%s", e);
				bb_progress_error(&r.prog, from, e);
			} else {
				s->files++;
				s->bytes += bytes;
				bb_progress_file(&r.prog, to, bytes);
			}
		}
	} else {
		struct bb_aws_opts ao = {0};
		ao.credentials_file = o->conf && o->conf->credentials_file[0] ? o->conf->credentials_file
									    : NULL;
		if (o->conf) {
			ao.endpoint_url = o->conf->s3_endpoint_url[0] ? o->conf->s3_endpoint_url : NULL;
			ao.region = o->conf->s3_region[0] ? o->conf->s3_region : NULL;
			ao.profile = o->conf->s3_profile[0] ? o->conf->s3_profile : NULL;
		}
		rc = bb_aws_resolve(&ao, &r.aws, err, errlen);
		if (rc != BB_OK)
			goto out;
		r.anonymous = !r.aws.access_key[0];
		ups = calloc(l.n ? l.n : 1, sizeof(*ups));
		if (!ups) {
			rc = BB_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < l.n; i++) {
			struct upload *u = &ups[i];
			u->run = &r;
			u->f = &l.v[i];
			snprintf(u->local, sizeof(u->local), "%s%s%s", src.base, src.single ? "" : "/",
				 src.single ? "" : l.v[i].src);
			if (src.single && !r.dst.dir && r.dst.path[0])
				snprintf(u->key, sizeof(u->key), "%s", r.dst.path);
			else
				snprintf(u->key, sizeof(u->key), "%s%s%s", r.dst.path,
					 r.dst.dir || !r.dst.path[0] ? "" : "/", l.v[i].rel);
			prepare_upload(&r, u);
		}
		bb_engine_run(r.eng);
		for (size_t i = 0; i < l.n; i++)
			finish_upload(&r, &ups[i]);
	}
	bb_progress_end(&r.prog);
	rc = BB_OK;
	if (s->failed) {
		rc = BB_EFILL;
		for (size_t i = 0; ups && i < l.n; i++)
			if (ups[i].failed && ups[i].rc) {
				rc = ups[i].rc;
				break;
			}
		snprintf(err, errlen, "%llu of %llu file(s) failed; first: %s",
			 (unsigned long long)s->failed, (unsigned long long)s->total_files,
			 s->first_error);
	}
out:
	if (r.eng) {
		struct bb_engine_stats es;
		bb_engine_get_stats(r.eng, &es);
		s->requests = es.requests;
		s->retries = es.retries;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	free(ups);
	bb_listing_free(&l);
	bb_origin_close(&src);
	bb_aws_cfg_wipe(&r.aws);
	bb_engine_free(r.eng);
	return rc;
}
