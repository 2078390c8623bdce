#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"

static const char *const numa_names[] = {"local", "interleave", "replicate"};

int bb_numa_parse(const char *s, enum bb_numa_policy *out)
{
	int rc = BB_EPARSE;

	if (!s || !out) {
		rc = BB_EINVAL;
		goto out;
	}
	for (size_t i = 0; i < sizeof(numa_names) / sizeof(numa_names[0]); i++) {
		if (!strcmp(s, numa_names[i])) {
			*out = (enum bb_numa_policy)i;
			rc = BB_OK;
			break;
		}
	}
out:
	return rc;
}

const char *bb_numa_name(enum bb_numa_policy numa)
{
	if ((unsigned)numa >= sizeof(numa_names) / sizeof(numa_names[0]))
		return "?";
	return numa_names[numa];
}

void bb_conf_defaults(struct bb_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	snprintf(conf->nvme_root, sizeof(conf->nvme_root), "%s", BB_CONF_DEFAULT_NVME_ROOT);
	snprintf(conf->shm_dir, sizeof(conf->shm_dir), "%s", BB_CONF_DEFAULT_SHM_DIR);
	snprintf(conf->state_dir, sizeof(conf->state_dir), "%s", BB_CONF_DEFAULT_STATE_DIR);
	snprintf(conf->origins_source, sizeof(conf->origins_source), "built-in default");
	conf->default_replicas = BB_REPLICAS_ALL;
	conf->log_level = BB_LOG_INFO;
	conf->log_syslog = false;
	conf->block_size = BB_CONF_DEFAULT_BLOCK_SIZE;
	conf->numa = BB_NUMA_LOCAL;
}

void bb_conf_free(struct bb_conf *conf)
{
	if (!conf)
		return;
	for (size_t i = 0; i < conf->n_allowed_origins; i++)
		free(conf->allowed_origins[i]);
	free(conf->allowed_origins);
	conf->allowed_origins = NULL;
	conf->n_allowed_origins = 0;
}

/* State of one parse call, handed to the per-key setters. */
struct conf_parser {
	struct bb_conf *conf;
	const char *source;
	int line;
	char *why;		/* reason of a failing setter, without position */
	size_t whylen;
	int shm_job_line;
	int shm_node_line;
};

static int why(struct conf_parser *cp, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int why(struct conf_parser *cp, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cp->why, cp->whylen, fmt, ap);
	va_end(ap);
	return rc;
}

static int set_path(struct conf_parser *cp, const char *key, const char *val,
		    char *dst, size_t dstlen, bool empty_ok)
{
	if (val[0] == '\0' && empty_ok) {
		dst[0] = '\0';
		return BB_OK;
	}
	if (val[0] != '/')
		return why(cp, BB_EPARSE, "%s: '%s' is not an absolute path", key, val);
	if (strlen(val) >= dstlen)
		return why(cp, BB_ERANGE, "%s: path longer than %zu bytes", key, dstlen - 1);
	memcpy(dst, val, strlen(val) + 1);
	return BB_OK;
}

static int set_size(struct conf_parser *cp, const char *key, const char *val, uint64_t *dst)
{
	int rc = bb_parse_size(val, dst);

	if (rc == BB_ERANGE)
		return why(cp, rc, "%s: size '%s' out of range", key, val);
	if (rc)
		return why(cp, rc, "%s: bad size '%s' (e.g. 64GiB, 800G, 1.5T)", key, val);
	return BB_OK;
}

static int set_nvme_root(struct conf_parser *cp, const char *val)
{
	return set_path(cp, "nvme_root", val, cp->conf->nvme_root,
			sizeof(cp->conf->nvme_root), false);
}

static int set_shm_dir(struct conf_parser *cp, const char *val)
{
	return set_path(cp, "shm_dir", val, cp->conf->shm_dir, sizeof(cp->conf->shm_dir),
			false);
}

static int set_state_dir(struct conf_parser *cp, const char *val)
{
	return set_path(cp, "state_dir", val, cp->conf->state_dir, sizeof(cp->conf->state_dir),
			false);
}

static int set_credentials_file(struct conf_parser *cp, const char *val)
{
	return set_path(cp, "credentials_file", val, cp->conf->credentials_file,
			sizeof(cp->conf->credentials_file), true);
}

/* A short word of letters, digits and [-_.:/] (a region, a profile, a URL). */
static int set_word(struct conf_parser *cp, const char *key, const char *val, char *dst,
		    size_t dstlen, const char *must_start)
{
	if (strlen(val) >= dstlen)
		return why(cp, BB_ERANGE, "%s: longer than %zu bytes", key, dstlen - 1);
	for (const char *c = val; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("-_.:/", *c))
			return why(cp, BB_EPARSE, "%s: unexpected character '%c'", key, *c);
	if (*val && must_start && strncmp(val, must_start, strlen(must_start)) &&
	    strncmp(val, "https://", 8))
		return why(cp, BB_EPARSE, "%s: '%s' is not an http:// or https:// URL", key, val);
	memcpy(dst, val, strlen(val) + 1);
	return BB_OK;
}

static int set_s3_endpoint_url(struct conf_parser *cp, const char *val)
{
	return set_word(cp, "s3_endpoint_url", val, cp->conf->s3_endpoint_url,
			sizeof(cp->conf->s3_endpoint_url), "http://");
}

static int set_s3_region(struct conf_parser *cp, const char *val)
{
	return set_word(cp, "s3_region", val, cp->conf->s3_region, sizeof(cp->conf->s3_region),
			NULL);
}

static int set_s3_profile(struct conf_parser *cp, const char *val)
{
	return set_word(cp, "s3_profile", val, cp->conf->s3_profile, sizeof(cp->conf->s3_profile),
			NULL);
}

/* A yes/no key. */
static int set_bool(struct conf_parser *cp, const char *key, const char *val, bool *dst)
{
	if (bb_parse_bool(val, dst))
		return why(cp, BB_EPARSE, "%s: '%s' is not yes/no/true/false/on/off/1/0", key, val);
	return BB_OK;
}

static int set_s3_no_sign_request(struct conf_parser *cp, const char *val)
{
	return set_bool(cp, "s3_no_sign_request", val, &cp->conf->s3_no_sign_request);
}

static int set_shm_limit_per_job(struct conf_parser *cp, const char *val)
{
	cp->shm_job_line = cp->line;
	return set_size(cp, "shm_limit_per_job", val, &cp->conf->shm_limit_per_job);
}

static int set_shm_limit_per_node(struct conf_parser *cp, const char *val)
{
	cp->shm_node_line = cp->line;
	return set_size(cp, "shm_limit_per_node", val, &cp->conf->shm_limit_per_node);
}

static int set_nvme_limit_per_job(struct conf_parser *cp, const char *val)
{
	return set_size(cp, "nvme_limit_per_job", val, &cp->conf->nvme_limit_per_job);
}

static int set_block_size(struct conf_parser *cp, const char *val)
{
	uint64_t v;
	int rc = set_size(cp, "block_size", val, &v);

	if (rc)
		return rc;
	if (v < BB_CONF_MIN_BLOCK_SIZE || v > BB_CONF_MAX_BLOCK_SIZE || (v & (v - 1)))
		return why(cp, BB_ERANGE,
			   "block_size: '%s' is not a power of two between 4KiB and 64MiB", val);
	cp->conf->block_size = v;
	return BB_OK;
}

static int set_default_replicas(struct conf_parser *cp, const char *val)
{
	unsigned long v = 0;
	const char *p;

	if (!strcmp(val, "all")) {
		cp->conf->default_replicas = BB_REPLICAS_ALL;
		return BB_OK;
	}
	for (p = val; *p >= '0' && *p <= '9' && v <= BB_REPLICAS_MAX; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (p == val || *p != '\0' || v < 1 || v > BB_REPLICAS_MAX)
		return why(cp, BB_EPARSE,
			   "default_replicas: '%s' is not 'all' or an integer 1..%d", val,
			   BB_REPLICAS_MAX);
	cp->conf->default_replicas = (uint32_t)v;
	return BB_OK;
}

static int set_log_level(struct conf_parser *cp, const char *val)
{
	int l = bb_log_level_parse(val);

	if (l < 0)
		return why(cp, BB_EPARSE,
			   "log_level: '%s' is not one of error, warn, info, debug", val);
	cp->conf->log_level = l;
	return BB_OK;
}

static int set_log_syslog(struct conf_parser *cp, const char *val)
{
	return set_bool(cp, "log_syslog", val, &cp->conf->log_syslog);
}

static int set_numa(struct conf_parser *cp, const char *val)
{
	if (bb_numa_parse(val, &cp->conf->numa))
		return why(cp, BB_EPARSE,
			   "numa: '%s' is not one of local, interleave, replicate", val);
	return BB_OK;
}

static int valid_origin_pattern(const char *pat)
{
	static const char *const schemes[] = {"s3://", "http://", "https://", "file://"};

	if (!strcmp(pat, "*"))
		return 1;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(pat, schemes[i], strlen(schemes[i])) && pat[strlen(schemes[i])])
			return 1;
	return 0;
}

static int add_origin(struct conf_parser *cp, const char *pat, size_t n)
{
	struct bb_conf *c = cp->conf;
	char **v;
	char *copy;

	copy = strndup(pat, n);
	if (!copy)
		return why(cp, BB_ENOMEM, "out of memory");
	if (!valid_origin_pattern(copy)) {
		why(cp, BB_EPARSE,
		    "allowed_origins: '%s' must be '*', 'none' or start with s3://, http://, https:// or file://",
		    copy);
		free(copy);
		return BB_EPARSE;
	}
	v = realloc(c->allowed_origins, (c->n_allowed_origins + 1) * sizeof(*v));
	if (!v) {
		free(copy);
		return why(cp, BB_ENOMEM, "out of memory");
	}
	c->allowed_origins = v;
	c->allowed_origins[c->n_allowed_origins++] = copy;
	return BB_OK;
}

static int set_allowed_origins(struct conf_parser *cp, const char *val)
{
	struct bb_conf *c = cp->conf;
	const char *p = val;
	int rc = BB_OK;

	if (!c->origins_restricted) {
		c->origins_restricted = true;
		snprintf(c->origins_source, sizeof(c->origins_source), "%s:%d", cp->source,
			 cp->line);
	}
	if (!strcmp(val, "none"))
		goto out;
	while (*p) {
		size_t n;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ", \t");
		if (n == 0)
			continue;
		if (n == 4 && !strncmp(p, "none", 4)) {
			rc = why(cp, BB_EPARSE, "allowed_origins: 'none' must stand alone");
			goto out;
		}
		rc = add_origin(cp, p, n);
		if (rc)
			goto out;
		p += n;
	}
out:
	return rc;
}

static const struct conf_key {
	const char *name;
	bool repeatable;
	int (*set)(struct conf_parser *cp, const char *val);
} conf_keys[] = {
	{"nvme_root", false, set_nvme_root},
	{"shm_dir", false, set_shm_dir},
	{"state_dir", false, set_state_dir},
	{"shm_limit_per_job", false, set_shm_limit_per_job},
	{"shm_limit_per_node", false, set_shm_limit_per_node},
	{"nvme_limit_per_job", false, set_nvme_limit_per_job},
	{"allowed_origins", true, set_allowed_origins},
	{"default_replicas", false, set_default_replicas},
	{"credentials_file", false, set_credentials_file},
	{"s3_endpoint_url", false, set_s3_endpoint_url},
	{"s3_region", false, set_s3_region},
	{"s3_profile", false, set_s3_profile},
	{"s3_no_sign_request", false, set_s3_no_sign_request},
	{"log_level", false, set_log_level},
	{"log_syslog", false, set_log_syslog},
	{"block_size", false, set_block_size},
	{"numa", false, set_numa},
};

#define N_CONF_KEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/*
 * Split one line (NUL-terminated, no newline) into key and value, both
 * written NUL-terminated into buffers of at least BB_CONF_LINE_MAX + 1
 * bytes.  Returns 0 for a blank or comment line, 1 for a setting, or an
 * error rc (reason in cp->why) as -rc.
 */
static int split_line(struct conf_parser *cp, const char *line, char *key, char *val)
{
	const char *p = line;
	size_t n;

	while (is_blank(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	for (n = 0; is_key_char(p[n]); n++)
		;
	if (n == 0)
		return -why(cp, BB_EPARSE, "expected 'key = value', found '%.40s'", p);
	memcpy(key, p, n);
	key[n] = '\0';
	p += n;
	while (is_blank(*p))
		p++;
	if (*p != '=')
		return -why(cp, BB_EPARSE, "missing '=' after '%s'", key);
	p++;
	while (is_blank(*p))
		p++;
	if (*p == '"') {
		char *d = val;

		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			*d++ = *p;
		}
		*d = '\0';
		if (*p != '"')
			return -why(cp, BB_EPARSE, "%s: unterminated quoted value", key);
		for (p++; is_blank(*p); p++)
			;
		if (*p != '\0' && *p != '#')
			return -why(cp, BB_EPARSE, "%s: unexpected text after closing quote: '%.40s'",
				    key, p);
		return 1;
	}
	for (n = 0; p[n] && !(p[n] == '#' && n > 0 && is_blank(p[n - 1])); n++) {
		if (p[n] == '"')
			return -why(cp, BB_EPARSE,
				    "%s: a quote must enclose the whole value", key);
	}
	while (n > 0 && is_blank(p[n - 1]))
		n--;
	if (n == 0 || p[0] == '#')
		return -why(cp, BB_EPARSE, "%s: missing value", key);
	memcpy(val, p, n);
	val[n] = '\0';
	return 1;
}

static int check_limits(struct conf_parser *cp)
{
	struct bb_conf *c = cp->conf;
	char a[BB_SIZE_STRLEN], b[BB_SIZE_STRLEN];

	if (c->shm_limit_per_job && c->shm_limit_per_node &&
	    c->shm_limit_per_job > c->shm_limit_per_node) {
		cp->line = cp->shm_job_line > cp->shm_node_line ? cp->shm_job_line
								 : cp->shm_node_line;
		return why(cp, BB_ERANGE, "shm_limit_per_job (%s) exceeds shm_limit_per_node (%s)",
			   bb_format_size(c->shm_limit_per_job, a, sizeof(a)),
			   bb_format_size(c->shm_limit_per_node, b, sizeof(b)));
	}
	return BB_OK;
}

int bb_conf_parse_string(struct bb_conf *conf, const char *text, size_t len,
			 const char *source_name, char *err, size_t errlen)
{
	char why_buf[512];
	char *line = NULL, *key = NULL, *val = NULL;
	int seen[N_CONF_KEYS] = {0};
	struct conf_parser cp = {
		.conf = conf,
		.source = source_name ? source_name : "(string)",
		.why = why_buf,
		.whylen = sizeof(why_buf),
	};
	size_t pos = 0;
	int rc = BB_OK;

	why_buf[0] = '\0';
	if (err && errlen)
		err[0] = '\0';
	if (!conf || (!text && len)) {
		rc = why(&cp, BB_EINVAL, "invalid argument");
		goto out;
	}
	line = malloc(BB_CONF_LINE_MAX + 1);
	key = malloc(BB_CONF_LINE_MAX + 1);
	val = malloc(BB_CONF_LINE_MAX + 1);
	if (!line || !key || !val) {
		rc = why(&cp, BB_ENOMEM, "out of memory");
		goto out;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		size_t k;
		int r;

		cp.line++;
		if (n > 0 && text[pos + n - 1] == '\r')
			n--;
		if (n > BB_CONF_LINE_MAX) {
			rc = why(&cp, BB_EPARSE, "line longer than %d bytes", BB_CONF_LINE_MAX);
			goto out;
		}
		if (memchr(text + pos, '\0', n)) {
			rc = why(&cp, BB_EPARSE, "NUL byte in line");
			goto out;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += nl ? (size_t)(nl - (text + pos)) + 1 : len - pos;

		r = split_line(&cp, line, key, val);
		if (r < 0) {
			rc = -r;
			goto out;
		}
		if (r == 0)
			continue;
		for (k = 0; k < N_CONF_KEYS; k++)
			if (!strcmp(key, conf_keys[k].name))
				break;
		if (k == N_CONF_KEYS) {
			rc = why(&cp, BB_EPARSE, "unknown key '%s'", key);
			goto out;
		}
		if (seen[k] && !conf_keys[k].repeatable) {
			rc = why(&cp, BB_EPARSE, "duplicate key '%s' (first set on line %d)", key,
				 seen[k]);
			goto out;
		}
		if (!seen[k])
			seen[k] = cp.line;
		rc = conf_keys[k].set(&cp, val);
		if (rc)
			goto out;
	}
	rc = check_limits(&cp);
out:
	if (rc && err && errlen) {
		if (cp.line > 0)
			snprintf(err, errlen, "%s:%d: %s", cp.source, cp.line, why_buf);
		else
			snprintf(err, errlen, "%s: %s", cp.source, why_buf);
	}
	free(line);
	free(key);
	free(val);
	return rc;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int conf_load(struct bb_conf *conf, const char *path, bool optional, char *err,
		     size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd = -1;
	int rc = BB_OK;

	if (!path)
		path = BB_CONF_DEFAULT_PATH;
	if (!conf) {
		rc = BB_EINVAL;
		set_err(err, errlen, "%s: invalid argument", path);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && optional)
			goto out;
		rc = errno == ENOENT ? BB_ENOENT : BB_ESYS;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = BB_ESYS;
		set_err(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > BB_CONF_FILE_MAX) {
		rc = BB_ETOOBIG;
		set_err(err, errlen, "%s: larger than %d bytes", path, BB_CONF_FILE_MAX);
		goto out;
	}
	/* One spare byte tells a file that grew since fstat. */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = BB_ENOMEM;
		set_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (len < (size_t)st.st_size + 1) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = BB_ESYS;
			set_err(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > (size_t)st.st_size) {
		rc = BB_EAGAIN;
		set_err(err, errlen, "%s: file changed while being read", path);
		goto out;
	}
	rc = bb_conf_parse_string(conf, buf, len, path, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int bb_conf_load(struct bb_conf *conf, const char *path, char *err, size_t errlen)
{
	return conf_load(conf, path, false, err, errlen);
}

int bb_conf_load_optional(struct bb_conf *conf, const char *path, char *err,
			  size_t errlen)
{
	return conf_load(conf, path, true, err, errlen);
}

/* A `.` or `..` segment, literal or percent-encoded, anywhere in s. */
static int has_dot_segment(const char *s)
{
	const char *p = s;

	while ((p = strchr(p, '/')) != NULL) {
		const char *q = ++p;
		int dots = 0;

		for (;;) {
			if (*q == '.') {
				q++;
			} else if (q[0] == '%' && q[1] == '2' && (q[2] == 'e' || q[2] == 'E')) {
				q += 3;
			} else {
				break;
			}
			dots++;
		}
		if (dots >= 1 && dots <= 2 && (*q == '\0' || *q == '/' || *q == '?' || *q == '#'))
			return 1;
	}
	return 0;
}

static int url_is_safe(const char *url)
{
	const char *auth = strstr(url, "://");
	size_t n;

	if (!auth || strchr(url, '\\'))
		return 0;
	auth += 3;
	n = strcspn(auth, "/");
	if (memchr(auth, '@', n) || memchr(auth, '?', n) || memchr(auth, '#', n))
		return 0;
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	return !has_dot_segment(auth + n);
}

static int origin_match(const char *pat, const char *url)
{
	size_t pl = strlen(pat);
	size_t slashes = 0, i;
	char *pre_pat = NULL, *pre_url = NULL;
	int match = 0;

	if (!strcmp(pat, "*"))
		return 1;
	if (pl < 2 || pat[pl - 2] != '/' || pat[pl - 1] != '*')
		return fnmatch(pat, url, FNM_PATHNAME) == 0;

	/* Prefix pattern: with FNM_PATHNAME a match needs as many slashes as
	 * the prefix has, so only the url prefix up to that slash can match. */
	for (i = 0; i < pl - 1; i++)
		slashes += pat[i] == '/';
	for (i = 0; url[i] && slashes; i++)
		slashes -= url[i] == '/';
	if (slashes)
		goto out;
	pre_pat = strndup(pat, pl - 1);
	pre_url = strndup(url, i);
	if (!pre_pat || !pre_url)
		goto out;
	match = fnmatch(pre_pat, pre_url, FNM_PATHNAME) == 0;
out:
	free(pre_pat);
	free(pre_url);
	return match;
}

int bb_conf_origin_allowed(const struct bb_conf *conf, const char *url)
{
	if (!conf || !url || !url_is_safe(url))
		return 0;
	if (!conf->origins_restricted)
		return 1;
	for (size_t i = 0; i < conf->n_allowed_origins; i++)
		if (origin_match(conf->allowed_origins[i], url))
			return 1;
	return 0;
}
