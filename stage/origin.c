/* Origins: file://, http(s)://, s3:// behind one interface. */
#include "config.h"

#define BB_LOG_COMPONENT "origin"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/conf.h"
#include "common/directive.h"
#include "common/error.h"
#include "common/log.h"
#include "stage/manifest.h"
#include "stage/origin.h"
#include "stage/s3xml.h"

/* ---- listings --------------------------------------------------------------- */

int bb_listing_add(struct bb_listing *l, const char *rel, const char *src, uint64_t size,
		   int64_t mtime_ns, const char *etag, uint64_t inode)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct bb_listed *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return BB_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct bb_listed *x = &l->v[l->n];
	memset(x, 0, sizeof(*x));
	x->rel = strdup(rel);
	x->src = strdup(src ? src : rel);
	x->etag = etag && *etag ? strdup(etag) : NULL;
	if (!x->rel || !x->src || (etag && *etag && !x->etag)) {
		free(x->rel);
		free(x->src);
		free(x->etag);
		return BB_ENOMEM;
	}
	x->size = size;
	x->mtime_ns = mtime_ns;
	x->inode = inode;
	l->n++;
	return BB_OK;
}

void bb_listing_free(struct bb_listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].rel);
		free(l->v[i].src);
		free(l->v[i].etag);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* ---- URLs -------------------------------------------------------------------- */

int bb_s3_url(const struct bb_aws_cfg *aws, const char *bucket, const char *key,
	      const char *query, char *buf, size_t len)
{
	char ekey[3 * 1024 + 16];
	int n;

	if (bb_uri_encode(key, strlen(key), 0, ekey, sizeof(ekey)) != BB_OK)
		return BB_ERANGE;
	if (aws->endpoint_url[0]) {
		const char *ep = aws->endpoint_url;
		size_t el = strlen(ep);
		while (el && ep[el - 1] == '/')
			el--;
		if (bb_aws_path_style(aws)) {
			n = snprintf(buf, len, "%.*s/%s/%s", (int)el, ep, bucket, ekey);
		} else {
			const char *h = strstr(ep, "://");
			h = h ? h + 3 : ep;
			n = snprintf(buf, len, "%.*s%s.%.*s/%s", (int)(h - ep), ep, bucket,
				     (int)(el - (size_t)(h - ep)), h, ekey);
		}
	} else {
		const char *region = aws->region[0] ? aws->region : "us-east-1";
		if (bb_aws_path_style(aws))
			n = snprintf(buf, len, "https://s3.%s.amazonaws.com/%s/%s", region, bucket, ekey);
		else
			n = snprintf(buf, len, "https://%s.s3.%s.amazonaws.com/%s", bucket, region, ekey);
	}
	if (n < 0 || (size_t)n >= len)
		return BB_ERANGE;
	if (query && *query) {
		int m = snprintf(buf + n, len - (size_t)n, "?%s", query);
		if (m < 0 || (size_t)m >= len - (size_t)n)
			return BB_ERANGE;
	}
	return BB_OK;
}

/* Append src to base, percent-encoding each segment (http) or as a key (s3). */
int bb_origin_object_url(const struct bb_origin *o, const char *src, char *buf, size_t len)
{
	char enc[3 * 4096 + 16];

	if (o->url.scheme == BB_SCHEME_S3) {
		char key[4096 + 1024];
		int n = snprintf(key, sizeof(key), "%s%s", o->single ? o->url.path : o->base, src);
		if (n < 0 || (size_t)n >= sizeof(key))
			return BB_ERANGE;
		return bb_s3_url(&o->aws, o->url.host, key, NULL, buf, len);
	}
	if (bb_uri_encode(src, strlen(src), 0, enc, sizeof(enc)) != BB_OK)
		return BB_ERANGE;
	/* A single object keeps its query (a presigned URL, say). */
	int q = o->single && o->url.query[0];
	int n = snprintf(buf, len, "%s%s%s%s", o->base, enc, q ? "?" : "", q ? o->url.query : "");
	return n < 0 || (size_t)n >= len ? BB_ERANGE : BB_OK;
}

void bb_origin_request(const struct bb_origin *o, const char *url, uint64_t off, uint64_t len,
		       const char *etag, struct bb_xfer_req *r)
{
	memset(r, 0, sizeof(*r));
	r->url = url;
	r->method = BB_GET;
	r->range_off = off;
	r->range_len = len;
	r->if_match = etag && *etag ? etag : NULL;
	if (o->url.scheme == BB_SCHEME_S3 && !o->anonymous)
		r->aws = &o->aws;
}

/* ---- open ---------------------------------------------------------------------- */

int bb_origin_open(struct bb_origin *o, const char *source, int type, const struct bb_conf *conf,
		   struct bb_engine *eng, char *err, size_t errlen)
{
	int rc;

	memset(o, 0, sizeof(*o));
	o->eng = eng;
	rc = bb_url_parse(source, &o->url, err, errlen);
	if (rc != BB_OK)
		return rc;
	char canon[8192];
	if (conf && (bb_url_format(&o->url, canon, sizeof(canon)) != BB_OK ||
		     !bb_conf_origin_allowed(conf, canon))) {
		snprintf(err, errlen, "%s is not an allowed origin (allowed_origins in %s)", source,
			 "bbcache.conf");
		return BB_EPOLICY;
	}
	o->single = type >= 0 ? type == BB_STAGE_FILE : !o->url.dir;
	switch (o->url.scheme) {
	case BB_SCHEME_FILE:
		snprintf(o->base, sizeof(o->base), "%s", o->url.path);
		break;
	case BB_SCHEME_HTTP:
	case BB_SCHEME_HTTPS: {
		const char *path = o->url.path;
		size_t pl = strlen(path);
		/* A directory given by a URL without a trailing '/' is a listing
		 * file; the objects it names are relative to its directory. */
		if (!o->single && !o->url.dir) {
			o->list_file = 1;
			snprintf(o->list_url, sizeof(o->list_url), "%s://%s%s%s%s",
				 bb_scheme_name(o->url.scheme), o->url.host, path,
				 o->url.query[0] ? "?" : "", o->url.query);
			while (pl && path[pl - 1] != '/')
				pl--;
		}
		int n = snprintf(o->base, sizeof(o->base), "%s://%s%.*s", bb_scheme_name(o->url.scheme),
				 o->url.host, (int)pl, path);
		if (n < 0 || (size_t)n >= sizeof(o->base)) {
			snprintf(err, errlen, "URL too long");
			return BB_ERANGE;
		}
		break;
	}
	case BB_SCHEME_S3: {
		struct bb_aws_opts ao = {0};
		ao.credentials_file = conf && conf->credentials_file[0] ? conf->credentials_file : NULL;
		if (conf) {
			ao.endpoint_url = conf->s3_endpoint_url[0] ? conf->s3_endpoint_url : NULL;
			ao.region = conf->s3_region[0] ? conf->s3_region : NULL;
			ao.profile = conf->s3_profile[0] ? conf->s3_profile : NULL;
			ao.no_credentials = conf->s3_no_sign_request;
		}
		rc = bb_aws_resolve(&ao, &o->aws, err, errlen);
		if (rc != BB_OK)
			return rc;
		o->anonymous = !o->aws.access_key[0];
		/* The key prefix of a directory ends with '/'. */
		snprintf(o->base, sizeof(o->base), "%s%s", o->url.path,
			 o->single || o->url.dir || !o->url.path[0] ? "" : "/");
		bb_debug("s3 credentials from %s, region %s, endpoint %s", o->aws.source,
			 o->aws.region, o->aws.endpoint_url[0] ? o->aws.endpoint_url : "AWS");
		break;
	}
	}
	return BB_OK;
}

void bb_origin_close(struct bb_origin *o)
{
	bb_aws_cfg_wipe(&o->aws);
}

/* ---- file:// ---------------------------------------------------------------------- */

static int list_dir(const char *root, const char *rel, const char *inc, const char *exc,
		    struct bb_listing *l, char *err, size_t errlen, int depth)
{
	char path[8192];
	DIR *d;
	struct dirent *de;
	int rc = BB_OK;

	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	if (depth > 256) {
		snprintf(err, errlen, "%s: directories nested too deep", path);
		return BB_ERANGE;
	}
	d = opendir(path);
	if (!d) {
		snprintf(err, errlen, "cannot list %s: %s", path, strerror(errno));
		return errno == ENOENT ? BB_ENOENT : errno == EACCES ? BB_EPERM : BB_ESYS;
	}
	while (rc == BB_OK && (de = readdir(d))) {
		char crel[8192], cpath[8192 + 256];
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(crel, sizeof(crel), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		snprintf(cpath, sizeof(cpath), "%s/%s", root, crel);
		if (lstat(cpath, &st) < 0)
			continue; /* vanished while listing */
		if (S_ISLNK(st.st_mode) && (stat(cpath, &st) < 0 || S_ISDIR(st.st_mode))) {
			bb_warn("%s: skipping a symbolic link to a directory or nowhere", cpath);
			continue;
		}
		if (S_ISDIR(st.st_mode))
			rc = list_dir(root, crel, inc, exc, l, err, errlen, depth + 1);
		else if (S_ISREG(st.st_mode) && bb_manifest_select(inc, exc, crel))
			rc = bb_listing_add(l, crel, crel, (uint64_t)st.st_size,
					    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
					    NULL, (uint64_t)st.st_ino);
	}
	closedir(d);
	return rc;
}

static int list_file(struct bb_origin *o, const char *inc, const char *exc, struct bb_listing *l,
		     char *err, size_t errlen)
{
	struct stat st;

	if (stat(o->url.path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", o->url.path, strerror(errno));
		return errno == ENOENT ? BB_ENOENT : errno == EACCES ? BB_EPERM : BB_ESYS;
	}
	if (S_ISDIR(st.st_mode)) {
		if (o->single) {
			snprintf(err, errlen, "%s is a directory (use type=directory)", o->url.path);
			return BB_EINVAL;
		}
		size_t n = strlen(o->base);
		while (n > 1 && o->base[n - 1] == '/')
			o->base[--n] = '\0';
		return list_dir(o->base, "", inc, exc, l, err, errlen, 0);
	}
	if (!o->single) {
		snprintf(err, errlen, "%s is not a directory (use type=file)", o->url.path);
		return BB_EINVAL;
	}
	const char *name = strrchr(o->url.path, '/');
	return bb_listing_add(l, name ? name + 1 : o->url.path, "", (uint64_t)st.st_size,
			      (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, NULL,
			      (uint64_t)st.st_ino);
}

/* ---- HEAD of one object (http and s3) ------------------------------------------------ */

static int head_one(struct bb_origin *o, const char *url, const char *what, struct bb_listing *l,
		    const char *rel, char *err, size_t errlen)
{
	struct bb_xfer_req r;
	struct bb_xfer_result res;

	bb_origin_request(o, url, 0, 0, NULL, &r);
	r.method = BB_HEAD;
	r.what = what;
	int rc = bb_engine_fetch(o->eng, &r, &res);
	if (rc != BB_OK) {
		snprintf(err, errlen, "%s", res.errmsg[0] ? res.errmsg : bb_strerror(rc));
		bb_xfer_result_free(&res);
		return rc;
	}
	if (!res.has_length) {
		snprintf(err, errlen, "%s: the server gave no Content-Length", what);
		bb_xfer_result_free(&res);
		return BB_ENOTSUP;
	}
	/* An ETag enables ranged GETs with If-Match; over HTTP only when the
	 * server says it serves ranges. */
	int ranges = o->url.scheme == BB_SCHEME_S3 || res.accept_ranges;
	rc = bb_listing_add(l, rel, "", res.content_length,
			    res.last_modified_ns >= 0 ? res.last_modified_ns : 0,
			    ranges ? res.etag : NULL, 0);
	bb_xfer_result_free(&res);
	return rc;
}

static const char *base_name(const char *p)
{
	size_t n = strlen(p);
	while (n && p[n - 1] == '/')
		n--;
	const char *s = p + n;
	while (s > p && s[-1] != '/')
		s--;
	return s;
}

/* ---- s3:// ---------------------------------------------------------------------------- */

/* A listing page is parsed once, here, where a body that does not parse can
 * still be retried; list_s3() takes the result. */
struct s3_page {
	struct bb_s3_list l;
	int parsed;
};

static int valid_s3_list(void *arg, const struct bb_xfer_result *r)
{
	struct s3_page *pg = arg;
	char err[256];
	if (pg->parsed) /* an earlier attempt's, then a retry */
		bb_s3_list_free(&pg->l);
	pg->parsed = 0;
	int rc = bb_s3_parse_list(r->body ? r->body : "", r->body_len, &pg->l, err, sizeof(err));
	if (rc == BB_OK)
		pg->parsed = 1;
	return rc;
}

static int list_s3(struct bb_origin *o, const char *inc, const char *exc, struct bb_listing *l,
		   char *err, size_t errlen)
{
	char url[16384], query[8192], eprefix[3 * 4096], etoken[4096];
	char *token = NULL;
	int rc = BB_OK, pages = 0;
	size_t plen = strlen(o->base);

	if (o->single) {
		char what[4200];
		snprintf(what, sizeof(what), "s3://%s/%s", o->url.host, o->url.path);
		rc = bb_s3_url(&o->aws, o->url.host, o->url.path, NULL, url, sizeof(url));
		if (rc != BB_OK)
			return rc;
		char name[1024];
		snprintf(name, sizeof(name), "%s", base_name(o->url.path));
		return head_one(o, url, what, l, name, err, errlen);
	}
	if (bb_uri_encode(o->base, plen, 1, eprefix, sizeof(eprefix)) != BB_OK)
		return BB_ERANGE;
	do {
		struct bb_xfer_req r;
		struct bb_xfer_result res;
		struct s3_page pg = {0};
		struct bb_s3_list lst;

		/* SigV4 signs the query as sent: keep it sorted and encoded. */
		if (token) {
			if (bb_uri_encode(token, strlen(token), 1, etoken, sizeof(etoken)) != BB_OK) {
				rc = BB_ERANGE;
				break;
			}
			snprintf(query, sizeof(query), "continuation-token=%s&list-type=2&prefix=%s",
				 etoken, eprefix);
		} else {
			snprintf(query, sizeof(query), "list-type=2&prefix=%s", eprefix);
		}
		rc = bb_s3_url(&o->aws, o->url.host, "", query, url, sizeof(url));
		if (rc != BB_OK)
			break;
		char what[4200];
		snprintf(what, sizeof(what), "listing s3://%s/%s", o->url.host, o->base);
		bb_origin_request(o, url, 0, 0, NULL, &r);
		r.capture_body = 1;
		r.validate = valid_s3_list;
		r.arg = &pg;
		r.what = what;
		rc = bb_engine_fetch(o->eng, &r, &res);
		if (rc != BB_OK) {
			snprintf(err, errlen, "%s", res.errmsg[0] ? res.errmsg : bb_strerror(rc));
			bb_xfer_result_free(&res);
			if (pg.parsed)
				bb_s3_list_free(&pg.l);
			break;
		}
		if (pg.parsed)
			lst = pg.l;
		else
			rc = bb_s3_parse_list(res.body ? res.body : "", res.body_len, &lst, err,
					      errlen);
		bb_xfer_result_free(&res);
		if (rc != BB_OK)
			break;
		for (size_t i = 0; i < lst.n && rc == BB_OK; i++) {
			const struct bb_s3_object *ob = &lst.objs[i];
			if (strncmp(ob->key, o->base, plen) != 0)
				continue;
			const char *rel = ob->key + plen;
			size_t rl = strlen(rel);
			if (!rl || rel[rl - 1] == '/')
				continue; /* the prefix itself, or a "folder" marker */
			if (!bb_manifest_select(inc, exc, rel))
				continue;
			rc = bb_listing_add(l, rel, rel, ob->size, ob->mtime_ns, ob->etag, 0);
		}
		free(token);
		token = lst.truncated && lst.next_token ? strdup(lst.next_token) : NULL;
		if (lst.truncated && !lst.next_token && rc == BB_OK) {
			snprintf(err, errlen, "s3://%s/%s: truncated listing without a continuation token",
				 o->url.host, o->base);
			rc = BB_EPARSE;
		}
		bb_s3_list_free(&lst);
		pages++;
	} while (rc == BB_OK && token);
	free(token);
	if (rc == BB_OK && l->n == 0)
		bb_warn("s3://%s/%s: no objects", o->url.host, o->base);
	bb_debug("listed %zu objects in %d page(s)", l->n, pages);
	return rc;
}

/* ---- http(s):// ------------------------------------------------------------------------ */

/* A JSON string at *p (after the opening quote) into out; advances *p. */
static int json_string(const char **p, const char *end, char *out, size_t cap)
{
	size_t n = 0;
	const char *s = *p;

	while (s < end && *s != '"') {
		char c = *s++;
		if (c == '\\' && s < end) {
			c = *s++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned v = 0;
				for (int k = 0; k < 4; k++) {
					if (s >= end)
						return BB_EPARSE;
					char h = *s++;
					v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0'
								: (h | 32) >= 'a' && (h | 32) <= 'f' ? (h | 32) - 'a' + 10
								: 99);
					if (v > 0xffff)
						return BB_EPARSE;
				}
				/* UTF-8 encode (surrogates kept as-is: rare in file names). */
				char u[4];
				size_t ul;
				if (v < 0x80) { u[0] = (char)v; ul = 1; }
				else if (v < 0x800) { u[0] = (char)(0xc0 | v >> 6); u[1] = (char)(0x80 | (v & 63)); ul = 2; }
				else { u[0] = (char)(0xe0 | v >> 12); u[1] = (char)(0x80 | ((v >> 6) & 63)); u[2] = (char)(0x80 | (v & 63)); ul = 3; }
				if (n + ul >= cap)
					return BB_ERANGE;
				memcpy(out + n, u, ul);
				n += ul;
				continue;
			}
			default: break; /* \" \\ \/ */
			}
		}
		if (n + 1 >= cap)
			return BB_ERANGE;
		out[n++] = c;
	}
	if (s >= end)
		return BB_EPARSE;
	out[n] = '\0';
	*p = s + 1;
	return BB_OK;
}

struct json_item {
	char name[1024], type[32], mtime[64];
	uint64_t size;
	int has_size;
};

/* nginx `autoindex_format json`: [ {"name":..,"type":"file"|"directory","mtime":..,"size":N}, ... ] */
static int parse_autoindex(const char *body, size_t len, struct json_item **items, size_t *n_items)
{
	const char *p = body, *end = body + len;
	size_t n = 0, cap = 0;
	struct json_item *v = NULL;

	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	if (p >= end || *p != '[')
		return BB_EPARSE;
	p++;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ','))
			p++;
		if (p < end && *p == ']')
			break;
		if (p >= end || *p != '{')
			goto bad;
		p++;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct json_item *nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				goto bad;
			v = nv;
		}
		struct json_item *it = &v[n];
		memset(it, 0, sizeof(*it));
		for (;;) {
			char key[32], sval[1024];
			while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ','))
				p++;
			if (p < end && *p == '}') {
				p++;
				break;
			}
			if (p >= end || *p != '"')
				goto bad;
			p++;
			if (json_string(&p, end, key, sizeof(key)) != BB_OK)
				goto bad;
			while (p < end && (*p == ' ' || *p == ':'))
				p++;
			if (p < end && *p == '"') {
				p++;
				if (json_string(&p, end, sval, sizeof(sval)) != BB_OK)
					goto bad;
				if (!strcmp(key, "name"))
					snprintf(it->name, sizeof(it->name), "%s", sval);
				else if (!strcmp(key, "type"))
					snprintf(it->type, sizeof(it->type), "%s", sval);
				else if (!strcmp(key, "mtime"))
					snprintf(it->mtime, sizeof(it->mtime), "%s", sval);
			} else {
				char *e;
				unsigned long long num = strtoull(p, &e, 10);
				if (e == p)
					goto bad;
				if (!strcmp(key, "size")) {
					it->size = num;
					it->has_size = 1;
				}
				p = e;
			}
		}
		n++;
	}
	*items = v;
	*n_items = n;
	return BB_OK;
bad:
	free(v);
	return BB_EPARSE;
}

static int valid_autoindex(void *arg, const struct bb_xfer_result *r)
{
	struct json_item *items = NULL;
	size_t n = 0;
	/* Not JSON at all (an HTML index): no retry will help; let it through
	 * for the clear message.  JSON cut short: retry. */
	const char *b = r->body ? r->body : "";
	while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')
		b++;
	if (*b != '[')
		return BB_OK;
	int rc = parse_autoindex(r->body, r->body_len, &items, &n);
	free(items);
	return rc;
}

static int list_http_dir(struct bb_origin *o, const char *rel, const char *inc, const char *exc,
			 struct bb_listing *l, char *err, size_t errlen, int depth)
{
	char url[16384];
	struct bb_xfer_req r;
	struct bb_xfer_result res;
	struct json_item *items = NULL;
	size_t n = 0;
	int rc;

	if (depth > 64) {
		snprintf(err, errlen, "%s%s: directories nested too deep", o->base, rel);
		return BB_ERANGE;
	}
	rc = bb_origin_object_url(o, rel, url, sizeof(url));
	if (rc != BB_OK)
		return rc;
	bb_origin_request(o, url, 0, 0, NULL, &r);
	r.capture_body = 1;
	r.validate = valid_autoindex;
	rc = bb_engine_fetch(o->eng, &r, &res);
	if (rc != BB_OK) {
		snprintf(err, errlen, "listing %s", res.errmsg[0] ? res.errmsg : bb_strerror(rc));
		bb_xfer_result_free(&res);
		return rc;
	}
	rc = parse_autoindex(res.body ? res.body : "", res.body_len, &items, &n);
	bb_xfer_result_free(&res);
	if (rc != BB_OK) {
		snprintf(err, errlen, "%s: not a JSON directory listing (serve it with nginx "
			 "'autoindex on; autoindex_format json;', or stage single files with type=file)",
			 url);
		return rc;
	}
	for (size_t i = 0; i < n && rc == BB_OK; i++) {
		char crel[8192];
		if (!items[i].name[0] || strchr(items[i].name, '/') || !strcmp(items[i].name, ".") ||
		    !strcmp(items[i].name, ".."))
			continue;
		snprintf(crel, sizeof(crel), "%s%s", rel, items[i].name);
		if (!strcmp(items[i].type, "directory")) {
			strcat(crel, "/");
			rc = list_http_dir(o, crel, inc, exc, l, err, errlen, depth + 1);
		} else if (!strcmp(items[i].type, "file") && items[i].has_size &&
			   bb_manifest_select(inc, exc, crel)) {
			int64_t ns = 0;
			bb_parse_http_date(items[i].mtime, &ns);
			rc = bb_listing_add(l, crel, crel, items[i].size, ns, NULL, 0);
		}
	}
	free(items);
	return rc;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
}

/* A listing file: one object per line, "SIZE SHA256|- PATH", '#' comments;
 * PATH relative to the listing's directory, may contain spaces. */
static int parse_list_file(const char *body, size_t len, const char *inc, const char *exc,
			   struct bb_listing *l, const char *url, char *err, size_t errlen)
{
	const char *p = body, *end = body + len;
	int line = 0, rc = BB_OK;

	while (p < end && rc == BB_OK) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char buf[8192], sha[80], path[8192];
		unsigned long long size;
		line++;
		if (n >= sizeof(buf)) {
			snprintf(err, errlen, "%s:%d: line too long", url, line);
			return BB_EPARSE;
		}
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (n && buf[n - 1] == '\r')
			buf[--n] = '\0';
		p = nl ? nl + 1 : end;
		if (!n || buf[0] == '#')
			continue;
		int off = 0;
		if (sscanf(buf, "%llu %79s %n", &size, sha, &off) != 2 || !off || !buf[off]) {
			snprintf(err, errlen, "%s:%d: expected 'SIZE SHA256|- PATH'", url, line);
			return BB_EPARSE;
		}
		snprintf(path, sizeof(path), "%s", buf + off);
		int dots = 0;
		for (const char *c = path; *c;) {
			size_t sl = strcspn(c, "/");
			if ((sl == 1 && c[0] == '.') || (sl == 2 && c[0] == '.' && c[1] == '.'))
				dots = 1;
			c += sl + (c[sl] == '/');
		}
		if (path[0] == '/' || dots || !path[0]) {
			snprintf(err, errlen, "%s:%d: path must be relative, without '..'", url, line);
			return BB_EPARSE;
		}
		if (!bb_manifest_select(inc, exc, path))
			continue;
		rc = bb_listing_add(l, path, path, size, 0, NULL, 0);
		if (rc == BB_OK && strcmp(sha, "-") != 0) {
			struct bb_listed *x = &l->v[l->n - 1];
			if (strlen(sha) != 64) {
				snprintf(err, errlen, "%s:%d: a SHA-256 has 64 hex digits", url, line);
				return BB_EPARSE;
			}
			for (int i = 0; i < 32; i++) {
				int a = hexval(sha[2 * i]), b = hexval(sha[2 * i + 1]);
				if (a < 0 || b < 0) {
					snprintf(err, errlen, "%s:%d: bad SHA-256", url, line);
					return BB_EPARSE;
				}
				x->sha256[i] = (uint8_t)(a * 16 + b);
			}
			x->has_sha256 = 1;
		}
	}
	return rc;
}

static int list_http(struct bb_origin *o, const char *inc, const char *exc, struct bb_listing *l,
		     char *err, size_t errlen)
{
	if (o->list_file) {
		struct bb_xfer_req r;
		struct bb_xfer_result res;
		bb_origin_request(o, o->list_url, 0, 0, NULL, &r);
		r.capture_body = 1;
		int rc = bb_engine_fetch(o->eng, &r, &res);
		if (rc != BB_OK) {
			snprintf(err, errlen, "listing file %s (a directory URL without a trailing '/' "
				 "names a listing file)", res.errmsg[0] ? res.errmsg : o->list_url);
			bb_xfer_result_free(&res);
			return rc;
		}
		rc = parse_list_file(res.body ? res.body : "", res.body_len, inc, exc, l, o->list_url,
				     err, errlen);
		bb_xfer_result_free(&res);
		return rc;
	}
	if (o->single) {
		char name[1024];
		snprintf(name, sizeof(name), "%s", base_name(o->url.path));
		if (!name[0]) {
			snprintf(err, errlen, "%s: a URL ending in '/' is a directory (type=directory)",
				 o->base);
			return BB_EINVAL;
		}
		return head_one(o, o->base, o->base, l, name, err, errlen);
	}
	return list_http_dir(o, "", inc, exc, l, err, errlen, 0);
}

int bb_origin_list(struct bb_origin *o, const char *include, const char *exclude,
		   struct bb_listing *l, char *err, size_t errlen)
{
	switch (o->url.scheme) {
	case BB_SCHEME_FILE:
		return list_file(o, include, exclude, l, err, errlen);
	case BB_SCHEME_S3:
		return list_s3(o, include, exclude, l, err, errlen);
	default:
		return list_http(o, include, exclude, l, err, errlen);
	}
}
