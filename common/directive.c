#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/directive.h"
#include "common/error.h"
#include "common/parse.h"

enum dir_word { DIR_STAGE_IN, DIR_STAGE_OUT, DIR_CACHE };

/* Every key of the grammar; a directive accepts a subset (key_mask). */
enum dir_key {
	K_SOURCE, K_DESTINATION, K_TYPE, K_REPLICAS, K_MODE, K_VERIFY, K_INCLUDE,
	K_EXCLUDE, K_SHM, K_NVME, K_NUMA, N_KEYS
};

static const char *const key_names[N_KEYS] = {
	"source", "destination", "type", "replicas", "mode", "verify", "include",
	"exclude", "shm", "nvme", "numa",
};

#define KB(k) (1u << (k))

static const struct dir_def {
	const char *name;
	unsigned keys;		/* accepted */
	unsigned required;
} dir_defs[] = {
	[DIR_STAGE_IN] = {"stage_in",
			  KB(K_SOURCE) | KB(K_DESTINATION) | KB(K_TYPE) | KB(K_REPLICAS) |
				  KB(K_MODE) | KB(K_VERIFY) | KB(K_INCLUDE) | KB(K_EXCLUDE),
			  KB(K_SOURCE) | KB(K_DESTINATION) | KB(K_TYPE)},
	[DIR_STAGE_OUT] = {"stage_out", KB(K_SOURCE) | KB(K_DESTINATION) | KB(K_TYPE),
			   KB(K_SOURCE) | KB(K_DESTINATION) | KB(K_TYPE)},
	[DIR_CACHE] = {"cache", KB(K_SHM) | KB(K_NVME) | KB(K_NUMA), 0},
};

#define N_DIRS (sizeof(dir_defs) / sizeof(dir_defs[0]))

static const char *const url_schemes[] = {"s3", "http", "https", "file"};

struct dparser {
	const struct bb_directive_ctx *ctx;
	struct bb_job_spec *spec;
	char job_id[32];
	const char *job_id_str;
	char *job_dir;		/* ctx->bb_job_dir without trailing slashes */
	size_t job_dir_len;
	int line;
	char *err;
	size_t errlen;
	/* The current line's values (pointers into the line buffer). */
	char *val[N_KEYS];
};

static int fail(struct dparser *dp, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct dparser *dp, int rc, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!dp->err || !dp->errlen)
		return rc;
	if (dp->line > 0)
		n = snprintf(dp->err, dp->errlen, "line %d: ", dp->line);
	if (n < 0 || (size_t)n >= dp->errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(dp->err + n, dp->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return rc;
}

const char *bb_stage_type_name(enum bb_stage_type type)
{
	return type == BB_STAGE_FILE ? "file" : type == BB_STAGE_DIRECTORY ? "directory" : "?";
}

const char *bb_stage_mode_name(enum bb_stage_mode mode)
{
	return mode == BB_MODE_ASYNC ? "async" : mode == BB_MODE_WAIT ? "wait" : "?";
}

const char *bb_verify_name(enum bb_verify verify)
{
	switch (verify) {
	case BB_VERIFY_ETAG:
		return "etag";
	case BB_VERIFY_SHA256:
		return "sha256";
	case BB_VERIFY_NONE:
		return "none";
	}
	return "?";
}

static void stage_free(struct bb_stage *st)
{
	free(st->source);
	free(st->destination);
	free(st->include);
	free(st->exclude);
}

void bb_job_spec_free(struct bb_job_spec *spec)
{
	if (!spec)
		return;
	for (size_t i = 0; i < spec->n_stage_in; i++)
		stage_free(&spec->stage_in[i]);
	for (size_t i = 0; i < spec->n_stage_out; i++)
		stage_free(&spec->stage_out[i]);
	free(spec->stage_in);
	free(spec->stage_out);
	memset(spec, 0, sizeof(*spec));
}

/* A growable string for expansion. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->s, cap);
		if (!p)
			return BB_ENOMEM;
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return BB_OK;
}

static int is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* Expand $BB_JOB_DIR, ${BB_JOB_DIR}, %j, %u and %% in the value of key k;
 * *out is malloc'd. */
static int expand(struct dparser *dp, enum dir_key k, char **out)
{
	static const char var[] = "BB_JOB_DIR";
	const size_t vl = sizeof(var) - 1;
	const char *in = dp->val[k];
	struct sbuf b = {0};
	int rc = BB_OK;

	*out = NULL;
	rc = sbuf_add(&b, "", 0);
	for (const char *p = in; *p && !rc;) {
		if (*p == '$') {
			if (!strncmp(p + 1, var, vl) && !is_ident(p[1 + vl])) {
				rc = sbuf_add(&b, dp->job_dir, dp->job_dir_len);
				p += 1 + vl;
			} else if (p[1] == '{' && !strncmp(p + 2, var, vl) && p[2 + vl] == '}') {
				rc = sbuf_add(&b, dp->job_dir, dp->job_dir_len);
				p += 3 + vl;
			} else {
				rc = fail(dp, BB_EPARSE,
					  "%s=%s: only $BB_JOB_DIR and ${BB_JOB_DIR} are expanded",
					  key_names[k], in);
				goto out;
			}
		} else if (*p == '%' && p[1] == 'j') {
			rc = sbuf_add(&b, dp->job_id_str, strlen(dp->job_id_str));
			p += 2;
		} else if (*p == '%' && p[1] == 'u') {
			rc = sbuf_add(&b, dp->ctx->user, strlen(dp->ctx->user));
			p += 2;
		} else if (*p == '%' && p[1] == '%') {
			rc = sbuf_add(&b, "%", 1);
			p += 2;
		} else {
			rc = sbuf_add(&b, p, 1);
			p++;
		}
	}
	if (rc) {
		rc = fail(dp, rc, "out of memory");
		goto out;
	}
	*out = b.s;
	b.s = NULL;
out:
	free(b.s);
	return rc;
}

/* Why path (absolute or not) is not in canonical form, or NULL. */
static const char *path_flaw(const char *path)
{
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "contains a control character";
	if (strstr(path, "//"))
		return "has an empty ('//') component";
	for (const char *c = path;;) {
		size_t n = strcspn(c, "/");

		if (n == 2 && c[0] == '.' && c[1] == '.')
			return "has a '..' component";
		if (n == 1 && c[0] == '.')
			return "has a '.' component";
		if (c[n] == '\0')
			break;
		c += n + 1;
	}
	return NULL;
}

/* The local side: below (or equal to) the job directory. */
static int check_local(struct dparser *dp, enum dir_key k, const char *path)
{
	const char *flaw = path_flaw(path);
	const char *raw = dp->val[k];

	if (flaw)
		return fail(dp, BB_EPARSE, "%s=%s (expands to %s) %s", key_names[k], raw, path,
			    flaw);
	if (path[0] != '/')
		return fail(dp, BB_EPARSE,
			    "%s=%s is a relative path; it must lie under $BB_JOB_DIR (%s)",
			    key_names[k], raw, dp->job_dir);
	if (strncmp(path, dp->job_dir, dp->job_dir_len) ||
	    (path[dp->job_dir_len] != '\0' && path[dp->job_dir_len] != '/'))
		return fail(dp, BB_EPARSE, "%s=%s (expands to %s) is outside $BB_JOB_DIR (%s)",
			    key_names[k], raw, path, dp->job_dir);
	return BB_OK;
}

/* The URL side: a supported scheme, a well-formed authority, no dot
 * segments, and allowed by the site. */
static int check_url(struct dparser *dp, enum dir_key k, const char *url)
{
	const char *raw = dp->val[k];
	const char *sep = strstr(url, "://");
	const char *auth, *path;
	size_t sl, n, i;
	const char *flaw;

	for (sl = 0; url[sl] && url[sl] != ':' && url[sl] != '/'; sl++)
		;
	if (!sep || (size_t)(sep - url) != sl || sl == 0)
		return fail(dp, BB_EPARSE,
			    "%s=%s is not a URL (expected s3://, http://, https:// or file://)",
			    key_names[k], raw);
	for (i = 0; i < sizeof(url_schemes) / sizeof(url_schemes[0]); i++)
		if (strlen(url_schemes[i]) == sl && !strncmp(url, url_schemes[i], sl))
			break;
	if (i == sizeof(url_schemes) / sizeof(url_schemes[0]))
		return fail(dp, BB_EPARSE,
			    "%s=%s: unsupported scheme '%.*s' (allowed: s3, http, https, file)",
			    key_names[k], raw, (int)sl, url);
	auth = sep + 3;
	n = strcspn(auth, "/");
	path = auth + n;
	if (!strcmp(url_schemes[i], "file")) {
		if (n != 0 || path[0] != '/' || path[1] == '\0')
			return fail(dp, BB_EPARSE,
				    "%s=%s: a file URL must be file:///ABSOLUTE/PATH", key_names[k],
				    raw);
	} else if (n == 0) {
		return fail(dp, BB_EPARSE, "%s=%s: the URL has no %s", key_names[k], raw,
			    i == 0 ? "bucket" : "host");
	}
	if (memchr(auth, '@', n))
		return fail(dp, BB_EPARSE,
			    "%s=%s: credentials (user@) do not belong in a URL; they would be visible in the job record",
			    key_names[k], raw);
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			return fail(dp, BB_EPARSE,
				    "%s=%s contains a control character or backslash",
				    key_names[k], raw);
	flaw = *path ? path_flaw(path) : NULL;
	if (flaw && strcmp(flaw, "has an empty ('//') component"))
		return fail(dp, BB_EPARSE, "%s=%s: the URL path %s", key_names[k], raw, flaw);
	if (dp->ctx->conf && !bb_conf_origin_allowed(dp->ctx->conf, url))
		return fail(dp, BB_EPOLICY, "%s=%s is not allowed by allowed_origins (%s)",
			    key_names[k], raw, dp->ctx->conf->origins_source);
	return BB_OK;
}

static int parse_size_key(struct dparser *dp, enum dir_key k, uint64_t *out)
{
	int rc = bb_parse_size(dp->val[k], out);

	if (rc == BB_ERANGE)
		return fail(dp, rc, "%s=%s: size out of range", key_names[k], dp->val[k]);
	if (rc)
		return fail(dp, BB_EPARSE, "%s=%s: bad size (e.g. 64GiB, 800G, 1.5T)",
			    key_names[k], dp->val[k]);
	return BB_OK;
}

static int parse_type(struct dparser *dp, enum bb_stage_type *out)
{
	const char *v = dp->val[K_TYPE];

	if (!strcmp(v, "file"))
		*out = BB_STAGE_FILE;
	else if (!strcmp(v, "directory"))
		*out = BB_STAGE_DIRECTORY;
	else
		return fail(dp, BB_EPARSE, "type=%s: expected file or directory", v);
	return BB_OK;
}

/* Does a lie under b (or equal it)?  Trailing slashes are ignored. */
static int path_within(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	if (la < lb || strncmp(a, b, lb))
		return 0;
	return la == lb || a[lb] == '/';
}

static int check_overlap(struct dparser *dp, const char *dest)
{
	const struct bb_job_spec *s = dp->spec;

	for (size_t i = 0; i < s->n_stage_in; i++) {
		const struct bb_stage *o = &s->stage_in[i];

		if (path_within(dest, o->destination) && path_within(o->destination, dest))
			return fail(dp, BB_EPARSE,
				    "destination=%s is also the destination of line %d",
				    dp->val[K_DESTINATION], o->line);
		if (path_within(dest, o->destination))
			return fail(dp, BB_EPARSE,
				    "destination=%s lies inside the destination of line %d (%s)",
				    dp->val[K_DESTINATION], o->line, o->destination);
		if (path_within(o->destination, dest))
			return fail(dp, BB_EPARSE,
				    "destination=%s contains the destination of line %d (%s)",
				    dp->val[K_DESTINATION], o->line, o->destination);
	}
	return BB_OK;
}

static int parse_stage_in(struct dparser *dp, struct bb_stage *st)
{
	const struct bb_conf *conf = dp->ctx->conf;
	int rc;

	st->replicas = conf ? conf->default_replicas : BB_REPLICAS_ALL;
	rc = parse_type(dp, &st->type);
	if (rc)
		goto out;
	rc = expand(dp, K_SOURCE, &st->source);
	if (rc)
		goto out;
	rc = check_url(dp, K_SOURCE, st->source);
	if (rc)
		goto out;
	rc = expand(dp, K_DESTINATION, &st->destination);
	if (rc)
		goto out;
	rc = check_local(dp, K_DESTINATION, st->destination);
	if (rc)
		goto out;
	rc = check_overlap(dp, st->destination);
	if (rc)
		goto out;
	if (dp->val[K_REPLICAS] && strcmp(dp->val[K_REPLICAS], "all")) {
		const char *v = dp->val[K_REPLICAS];
		unsigned long n = 0;
		const char *p;

		for (p = v; *p >= '0' && *p <= '9' && n <= BB_REPLICAS_MAX; p++)
			n = n * 10 + (unsigned long)(*p - '0');
		if (p == v || *p || n < 1 || n > BB_REPLICAS_MAX) {
			rc = fail(dp, BB_EPARSE, "replicas=%s: expected all or an integer 1..%d",
				  v, BB_REPLICAS_MAX);
			goto out;
		}
		st->replicas = (uint32_t)n;
	} else if (dp->val[K_REPLICAS]) {
		st->replicas = BB_REPLICAS_ALL;
	}
	if (dp->val[K_MODE]) {
		if (!strcmp(dp->val[K_MODE], "async")) {
			st->mode = BB_MODE_ASYNC;
		} else if (!strcmp(dp->val[K_MODE], "wait")) {
			st->mode = BB_MODE_WAIT;
		} else {
			rc = fail(dp, BB_EPARSE, "mode=%s: expected async or wait", dp->val[K_MODE]);
			goto out;
		}
	}
	if (dp->val[K_VERIFY]) {
		const char *v = dp->val[K_VERIFY];

		if (!strcmp(v, "etag")) {
			st->verify = BB_VERIFY_ETAG;
		} else if (!strcmp(v, "sha256")) {
			st->verify = BB_VERIFY_SHA256;
		} else if (!strcmp(v, "none")) {
			st->verify = BB_VERIFY_NONE;
		} else {
			rc = fail(dp, BB_EPARSE, "verify=%s: expected etag, sha256 or none", v);
			goto out;
		}
	}
	if (dp->val[K_INCLUDE] && !(st->include = strdup(dp->val[K_INCLUDE]))) {
		rc = fail(dp, BB_ENOMEM, "out of memory");
		goto out;
	}
	if (dp->val[K_EXCLUDE] && !(st->exclude = strdup(dp->val[K_EXCLUDE]))) {
		rc = fail(dp, BB_ENOMEM, "out of memory");
		goto out;
	}
out:
	return rc;
}

static int parse_stage_out(struct dparser *dp, struct bb_stage *st)
{
	int rc;

	st->replicas = BB_REPLICAS_ALL;
	rc = parse_type(dp, &st->type);
	if (rc)
		goto out;
	rc = expand(dp, K_SOURCE, &st->source);
	if (rc)
		goto out;
	rc = check_local(dp, K_SOURCE, st->source);
	if (rc)
		goto out;
	rc = expand(dp, K_DESTINATION, &st->destination);
	if (rc)
		goto out;
	rc = check_url(dp, K_DESTINATION, st->destination);
out:
	return rc;
}

static int parse_cache(struct dparser *dp)
{
	struct bb_cache_spec *c = &dp->spec->cache;
	const struct bb_conf *conf = dp->ctx->conf;
	char a[BB_SIZE_STRLEN], b[BB_SIZE_STRLEN];
	int rc;

	if (c->present) {
		rc = fail(dp, BB_EPARSE, "only one cache line is allowed (first on line %d)",
			  c->line);
		goto out;
	}
	/* Either size may be left out (the site's default applies, as in
	 * "#BB cache shm=8GiB"), but a cache line must size something. */
	if (!dp->val[K_SHM] && !dp->val[K_NVME]) {
		rc = fail(dp, BB_EPARSE, "cache: give shm=SIZE and/or nvme=SIZE");
		goto out;
	}
	rc = dp->val[K_SHM] ? parse_size_key(dp, K_SHM, &c->shm_bytes) : BB_OK;
	if (rc)
		goto out;
	rc = dp->val[K_NVME] ? parse_size_key(dp, K_NVME, &c->nvme_bytes) : BB_OK;
	if (rc)
		goto out;
	if (dp->val[K_NUMA] && bb_numa_parse(dp->val[K_NUMA], &c->numa)) {
		rc = fail(dp, BB_EPARSE, "numa=%s: expected local, interleave or replicate",
			  dp->val[K_NUMA]);
		goto out;
	}
	if (conf) {
		uint64_t shm_max = conf->shm_limit_per_job ? conf->shm_limit_per_job
							   : conf->shm_limit_per_node;
		const char *shm_key = conf->shm_limit_per_job ? "shm_limit_per_job"
							      : "shm_limit_per_node";

		if (shm_max && c->shm_bytes > shm_max) {
			rc = fail(dp, BB_EPOLICY, "shm=%s (%s) exceeds the site's %s of %s",
				  dp->val[K_SHM], bb_format_size(c->shm_bytes, a, sizeof(a)),
				  shm_key, bb_format_size(shm_max, b, sizeof(b)));
			goto out;
		}
		if (conf->nvme_limit_per_job && c->nvme_bytes > conf->nvme_limit_per_job) {
			rc = fail(dp, BB_EPOLICY,
				  "nvme=%s (%s) exceeds the site's nvme_limit_per_job of %s",
				  dp->val[K_NVME], bb_format_size(c->nvme_bytes, a, sizeof(a)),
				  bb_format_size(conf->nvme_limit_per_job, b, sizeof(b)));
			goto out;
		}
	}
	c->present = true;
	c->line = dp->line;
out:
	return rc;
}

/*
 * Read one value starting at *pp (just after '=') into dst (which may alias
 * the line: values only shrink), advancing *pp past it.
 */
static int read_value(struct dparser *dp, const char *key, char **pp, char *dst)
{
	char *p = *pp;
	char q = *p;

	if (q == '"' || q == '\'') {
		for (p++; *p && *p != q; p++) {
			if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			*dst++ = *p;
		}
		if (*p != q)
			return fail(dp, BB_EPARSE, "%s=: unterminated %s quote", key,
				    q == '"' ? "double" : "single");
		p++;
		if (*p && *p != ' ' && *p != '\t')
			return fail(dp, BB_EPARSE, "%s=: unexpected text after closing quote",
				    key);
	} else {
		for (; *p && *p != ' ' && *p != '\t'; p++) {
			if (*p == '"' || *p == '\'')
				return fail(dp, BB_EPARSE,
					    "%s=: a quote must enclose the whole value", key);
			*dst++ = *p;
		}
	}
	*dst = '\0';
	*pp = p;
	return BB_OK;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* line: NUL-terminated text after "#BB", modified in place. */
static int parse_directive(struct dparser *dp, char *line)
{
	struct bb_job_spec *s = dp->spec;
	struct bb_stage st = {0};
	const struct dir_def *def;
	char *p = line, *word;
	unsigned seen = 0;
	size_t i;
	int rc = BB_OK;

	memset(dp->val, 0, sizeof(dp->val));
	while (is_blank(*p))
		p++;
	word = p;
	while (*p && !is_blank(*p))
		p++;
	if (*p)
		*p++ = '\0';
	if (!*word) {
		rc = fail(dp, BB_EPARSE, "empty #BB directive");
		goto out;
	}
	for (i = 0; i < N_DIRS; i++)
		if (!strcmp(word, dir_defs[i].name))
			break;
	if (i == N_DIRS) {
		rc = fail(dp, BB_EPARSE,
			  "unknown directive '%s' (expected stage_in, stage_out or cache)", word);
		goto out;
	}
	def = &dir_defs[i];

	for (;;) {
		char *key, *eq;
		size_t k;

		while (is_blank(*p))
			p++;
		if (!*p)
			break;
		key = p;
		while (*p && !is_blank(*p) && *p != '=')
			p++;
		if (*p != '=' || p == key) {
			size_t n = strcspn(key, " \t");

			rc = fail(dp, BB_EPARSE, "expected key=value, found '%.*s'",
				  n > 64 ? 64 : (int)n, key);
			goto out;
		}
		eq = p;
		*eq = '\0';
		if (!strcmp(key, "capacity") || !strcmp(key, "pool")) {
			rc = fail(dp, BB_EPARSE,
				  "%s= is reserved by Slurm's burst_buffer/lua plugin; size the cache with '#BB cache shm=SIZE nvme=SIZE'",
				  key);
			goto out;
		}
		for (k = 0; k < N_KEYS; k++)
			if (!strcmp(key, key_names[k]))
				break;
		if (k == N_KEYS || !(def->keys & KB(k))) {
			rc = fail(dp, BB_EPARSE, "unknown key '%s' for %s", key, def->name);
			goto out;
		}
		if (seen & KB(k)) {
			rc = fail(dp, BB_EPARSE, "duplicate key '%s'", key);
			goto out;
		}
		seen |= KB(k);
		p = eq + 1;
		dp->val[k] = key;	/* the value is copied over the key */
		rc = read_value(dp, key_names[k], &p, key);
		if (rc)
			goto out;
		if (!*dp->val[k]) {
			rc = fail(dp, BB_EPARSE, "%s= has an empty value", key_names[k]);
			goto out;
		}
	}
	for (size_t k = 0; k < N_KEYS; k++) {
		if ((def->required & KB(k)) && !(seen & KB(k))) {
			rc = fail(dp, BB_EPARSE, "%s: missing required key '%s'", def->name,
				  key_names[k]);
			goto out;
		}
	}

	st.line = dp->line;
	if (def == &dir_defs[DIR_CACHE]) {
		rc = parse_cache(dp);
		goto out;
	}
	if (def == &dir_defs[DIR_STAGE_IN]) {
		struct bb_stage *v;

		rc = parse_stage_in(dp, &st);
		if (rc)
			goto out;
		v = realloc(s->stage_in, (s->n_stage_in + 1) * sizeof(*v));
		if (!v) {
			rc = fail(dp, BB_ENOMEM, "out of memory");
			goto out;
		}
		s->stage_in = v;
		s->stage_in[s->n_stage_in++] = st;
	} else {
		struct bb_stage *v;

		rc = parse_stage_out(dp, &st);
		if (rc)
			goto out;
		v = realloc(s->stage_out, (s->n_stage_out + 1) * sizeof(*v));
		if (!v) {
			rc = fail(dp, BB_ENOMEM, "out of memory");
			goto out;
		}
		s->stage_out = v;
		s->stage_out[s->n_stage_out++] = st;
	}
	memset(&st, 0, sizeof(st));
out:
	stage_free(&st);
	return rc;
}

static int setup(struct dparser *dp)
{
	const struct bb_directive_ctx *ctx = dp->ctx;
	const char *jd = ctx->bb_job_dir;
	size_t n;

	if (!ctx->user || !ctx->user[0])
		return fail(dp, BB_EINVAL, "no user name for %%u");
	if (!jd || jd[0] != '/' || path_flaw(jd))
		return fail(dp, BB_EINVAL, "bad job directory '%s'", jd ? jd : "(null)");
	n = strlen(jd);
	while (n > 1 && jd[n - 1] == '/')
		n--;
	if (n <= 1)
		return fail(dp, BB_EINVAL, "the job directory cannot be '/'");
	dp->job_dir = strndup(jd, n);
	if (!dp->job_dir)
		return fail(dp, BB_ENOMEM, "out of memory");
	dp->job_dir_len = n;
	if (ctx->job_id) {
		dp->job_id_str = ctx->job_id;
	} else {
		snprintf(dp->job_id, sizeof(dp->job_id), "%" PRIu64, ctx->job_id_num);
		dp->job_id_str = dp->job_id;
	}
	return BB_OK;
}

int bb_directives_parse(const char *script, size_t len, const struct bb_directive_ctx *ctx,
			struct bb_job_spec *out, char *err, size_t errlen)
{
	struct dparser dp = {.ctx = ctx, .spec = out, .err = err, .errlen = errlen};
	char *buf = NULL;
	size_t pos = 0;
	int rc = BB_OK;

	if (err && errlen)
		err[0] = '\0';
	if (!out || !ctx || (!script && len)) {
		rc = fail(&dp, BB_EINVAL, "invalid argument");
		goto out;
	}
	memset(out, 0, sizeof(*out));
	out->cache.numa = ctx->conf ? ctx->conf->numa : BB_NUMA_LOCAL;
	rc = setup(&dp);
	if (rc)
		goto out;

	while (pos < len) {
		const char *l = script + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		size_t b;

		pos += nl ? n + 1 : n;
		dp.line++;
		if (n > 0 && l[n - 1] == '\r')
			n--;
		for (b = 0; b < n && (l[b] == ' ' || l[b] == '\t' || l[b] == '\r' ||
				      l[b] == '\f' || l[b] == '\v');
		     b++)
			;
		if (b == n)
			continue;		/* blank */
		if (l[b] != '#')
			break;			/* end of the leading comment block */
		if (n < 3 || memcmp(l, "#BB", 3))
			continue;		/* #!, #SBATCH, indented comments... */
		if (n > 3 && l[3] != ' ' && l[3] != '\t')
			continue;		/* #BB_LUA and the like are not ours */
		if (memchr(l, '\0', n)) {
			rc = fail(&dp, BB_EPARSE, "NUL byte in #BB line");
			goto out;
		}
		buf = strndup(l + 3, n - 3);
		if (!buf) {
			rc = fail(&dp, BB_ENOMEM, "out of memory");
			goto out;
		}
		rc = parse_directive(&dp, buf);
		free(buf);
		buf = NULL;
		if (rc)
			goto out;
	}
out:
	if (rc && out)
		bb_job_spec_free(out);
	free(buf);
	free(dp.job_dir);
	return rc;
}
