#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BB_LOG_COMPONENT "stage"
#include "common/error.h"
#include "common/log.h"
#include "stage/awscfg.h"

extern char **environ;

/* One `key = value` of an INI file; sub is set for a nested setting
 * (`s3 =` then `  addressing_style = path`), key is then the parent. */
struct ini_ent {
	char *section;
	char *key;
	char *sub;
	char *val;
	int line;
};

struct ini {
	char path[4096];
	char disp[512];		/* path with $HOME shown as ~ */
	int present;		/* the file exists and was parsed */
	mode_t mode;
	struct ini_ent *e;
	size_t n, cap;
};

struct resolver {
	const struct bb_aws_opts *o;
	char **envp;
	const char *home;
	const char *profile;
	int profile_explicit;	/* opts->profile: environment credentials skipped */
	int profile_named;	/* opts->profile or AWS_PROFILE */
	struct ini cred, conf, admin;
	struct bb_aws_cfg *out;
	char *err;
	size_t errlen;
};

static int fail(struct resolver *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct resolver *r, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* snprintf for display strings, where a long path is cut, not an error. */
static void fmt_cut(char *dst, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fmt_cut(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

static const char *env_get(const struct resolver *r, const char *name)
{
	size_t n = strlen(name);

	for (char **e = r->envp; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return (*e)[n + 1] ? *e + n + 1 : NULL;	/* "" is unset */
	return NULL;
}

/* A name safe to repeat in a message (a profile, section or key name);
 * anything else might be a secret pasted on the wrong line. */
static const char *safe_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				      "0123456789_-. ") != n)
		return "(name not shown)";
	return s;
}

static void wipe_str(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void ini_free(struct ini *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->e[i].section);
		wipe_str(f->e[i].key);
		wipe_str(f->e[i].sub);
		wipe_str(f->e[i].val);
	}
	free(f->e);
	f->e = NULL;
	f->n = f->cap = 0;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

static struct ini_ent *ini_find(const struct ini *f, const char *section, const char *key,
				const char *sub)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct ini_ent *e = &f->e[i];

		if (strcmp(e->section, section) || strcasecmp(e->key, key))
			continue;
		if (!sub ? !e->sub : (e->sub && !strcasecmp(e->sub, sub)))
			return &f->e[i];
	}
	return NULL;
}

static int ini_has_section(const struct ini *f, const char *section)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->e[i].section, section))
			return 1;
	return 0;
}

static int ini_add(struct resolver *r, struct ini *f, const char *section, const char *key,
		   const char *sub, const char *val, int line)
{
	struct ini_ent *e;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct ini_ent *ne = realloc(f->e, cap * sizeof(*ne));

		if (!ne)
			return fail(r, BB_ENOMEM, "out of memory");
		f->e = ne;
		f->cap = cap;
	}
	e = &f->e[f->n];
	memset(e, 0, sizeof(*e));
	e->line = line;
	e->section = strdup(section);
	e->key = strdup(key);
	e->sub = sub ? strdup(sub) : NULL;
	e->val = strdup(val);
	f->n++;
	if (!e->section || !e->key || (sub && !e->sub) || !e->val)
		return fail(r, BB_ENOMEM, "out of memory");
	return BB_OK;
}

/* Append a continuation line to a plain value, as configparser does. */
static int ini_append(struct resolver *r, struct ini_ent *e, const char *more)
{
	size_t a = strlen(e->val), b = strlen(more);
	char *v = malloc(a + b + 2);

	if (!v)
		return fail(r, BB_ENOMEM, "out of memory");
	memcpy(v, e->val, a);
	v[a] = '\n';
	memcpy(v + a + 1, more, b + 1);
	wipe_str(e->val);
	e->val = v;
	return BB_OK;
}

/* Parse text (NUL-terminated, modified in place) as configparser would. */
static int ini_parse(struct resolver *r, struct ini *f, char *text, size_t len)
{
	char section[512] = "";
	int have_section = 0;
	ptrdiff_t cur = -1;	/* index of the entry continuation lines extend */
	int nested = 0;		/* cur had an empty value: lines are settings */
	size_t cur_indent = 0;	/* a continuation is indented deeper than cur */
	int line = 0;
	char *p = text;
	int rc = BB_OK;

	if (memchr(text, '\0', len)) {
		rc = fail(r, BB_EPARSE, "%s: contains a NUL byte", f->disp);
		goto out;
	}
	if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3;
	while (*p) {
		char *nl = strchr(p, '\n');
		char *s, *delim;
		size_t n, indent;

		line++;
		if (nl)
			*nl = '\0';
		n = strlen(p);
		if (n && p[n - 1] == '\r')
			p[--n] = '\0';
		indent = strspn(p, " \t");
		s = trim(p);
		if (!*s || *s == '#' || *s == ';')
			goto next;
		if (cur >= 0 && indent > cur_indent) {
			if (!nested) {
				rc = ini_append(r, &f->e[cur], s);
				if (rc)
					goto out;
				goto next;
			}
			delim = strchr(s, '=');
			if (!delim) {
				rc = fail(r, BB_EPARSE,
					  "%s:%d: expected 'name = value' in the settings of '%s'",
					  f->disp, line, safe_name(f->e[cur].key));
				goto out;
			}
			*delim = '\0';
			rc = ini_add(r, f, section, f->e[cur].key, trim(s), trim(delim + 1), line);
			if (rc)
				goto out;
			goto next;
		}
		if (*s == '[') {
			n = strlen(s);
			if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof(section)) {
				rc = fail(r, BB_EPARSE, "%s:%d: malformed [section] header",
					  f->disp, line);
				goto out;
			}
			s[n - 1] = '\0';
			if (ini_has_section(f, s + 1)) {
				rc = fail(r, BB_EPARSE, "%s:%d: section [%s] repeated", f->disp, line,
					  safe_name(s + 1));
				goto out;
			}
			snprintf(section, sizeof(section), "%s", s + 1);
			have_section = 1;
			cur = -1;
			/* an empty section still exists (a profile without settings) */
			rc = ini_add(r, f, section, "", NULL, "", line);
			if (rc)
				goto out;
			goto next;
		}
		if (!have_section) {
			rc = fail(r, BB_EPARSE, "%s:%d: a setting before any [section]", f->disp,
				  line);
			goto out;
		}
		delim = s + strcspn(s, "=:");
		if (!*delim) {
			rc = fail(r, BB_EPARSE, "%s:%d: expected 'name = value'", f->disp, line);
			goto out;
		}
		*delim = '\0';
		s = trim(s);
		if (!*s) {
			rc = fail(r, BB_EPARSE, "%s:%d: a setting without a name", f->disp, line);
			goto out;
		}
		for (char *c = s; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		if (ini_find(f, section, s, NULL)) {
			rc = fail(r, BB_EPARSE, "%s:%d: '%s' repeated in [%s]", f->disp, line,
				  safe_name(s), safe_name(section));
			goto out;
		}
		rc = ini_add(r, f, section, s, NULL, trim(delim + 1), line);
		if (rc)
			goto out;
		cur = (ptrdiff_t)f->n - 1;
		cur_indent = indent;
		nested = !f->e[cur].val[0];
next:
		if (!nl)
			break;
		p = nl + 1;
	}
out:
	return rc;
}

static void set_disp(const struct resolver *r, struct ini *f)
{
	size_t h = r->home ? strlen(r->home) : 0;

	if (h > 1 && !strncmp(f->path, r->home, h) && f->path[h] == '/')
		fmt_cut(f->disp, sizeof(f->disp), "~%s", f->path + h);
	else
		fmt_cut(f->disp, sizeof(f->disp), "%s", f->path);
}

/* Set f->path from an environment value or $HOME/.aws/NAME; "" if neither. */
static void ini_path(struct resolver *r, struct ini *f, const char *envname, const char *name)
{
	const char *v = env_get(r, envname);

	f->path[0] = '\0';
	if (v && (v[0] != '~' || (v[1] && v[1] != '/')))
		snprintf(f->path, sizeof(f->path), "%s", v);
	else if (v && r->home)
		snprintf(f->path, sizeof(f->path), "%s%s", r->home, v + 1);
	else if (!v && r->home)
		snprintf(f->path, sizeof(f->path), "%s/.aws/%s", r->home, name);
	set_disp(r, f);
}

/* Read and parse f->path.  A missing file (or not a regular file) leaves
 * f empty, as the CLI; missing_ok == 0 makes that BB_ENOENT. */
static int ini_load(struct resolver *r, struct ini *f, int missing_ok)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = -1;
	int rc = BB_OK;

	if (!f->path[0])
		goto out;
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {
		if (!missing_ok)
			rc = fail(r, BB_ENOENT, "%s: no such file", f->disp);
		goto out;
	}
	if (fd < 0) {
		rc = fail(r, errno == EACCES ? BB_EPERM : BB_ESYS, "%s: %s", f->disp,
			  strerror(errno));
		goto out;
	}
	if (fstat(fd, &st)) {
		rc = fail(r, BB_ESYS, "%s: %s", f->disp, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		if (!missing_ok)
			rc = fail(r, BB_ENOENT, "%s: not a regular file", f->disp);
		goto out;
	}
	if (st.st_size > BB_AWS_FILE_MAX) {
		rc = fail(r, BB_ETOOBIG, "%s: larger than %d bytes", f->disp, BB_AWS_FILE_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = fail(r, BB_ENOMEM, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail(r, BB_ESYS, "%s: %s", f->disp, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	f->present = 1;
	f->mode = st.st_mode;
	rc = ini_parse(r, f, buf, got);
out:
	if (buf) {
		explicit_bzero(buf, got);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The config file's section for profile name: [profile NAME], or
 * [default] for "default". */
static const char *conf_section(const struct ini *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++) {
		const char *s = f->e[i].section;
		size_t n;

		if (strncmp(s, "profile", 7) || (s[7] != ' ' && s[7] != '\t'))
			continue;
		s += 7 + strspn(s + 7, " \t");
		n = strlen(name);
		if (!strncmp(s, name, n) && !s[n + strspn(s + n, " \t")])
			return f->e[i].section;
	}
	if (!strcmp(name, "default") && ini_has_section(f, "default"))
		return "default";
	return NULL;
}

/* A profile setting: the credentials file's section overrides the config
 * file's (botocore merges the two so).  *from is the file it came from. */
static const struct ini_ent *setting(const struct resolver *r, const char *key,
				     const char *sub, const struct ini **from)
{
	const char *cs = conf_section(&r->conf, r->profile);
	const struct ini_ent *e = ini_find(&r->cred, r->profile, key, sub);

	*from = &r->cred;
	if (!e && cs) {
		e = ini_find(&r->conf, cs, key, sub);
		*from = &r->conf;
	}
	return e;
}

/* Copy a credential value, refusing what cannot be one. */
static int copy_cred(struct resolver *r, char *dst, size_t dstlen, const char *val,
		     const char *what, const char *where, int line)
{
	char pos[600];
	size_t n = strlen(val);

	if (line)
		snprintf(pos, sizeof(pos), "%s:%d", where, line);
	else
		snprintf(pos, sizeof(pos), "%s", where);
	if (n >= dstlen)
		return fail(r, BB_ERANGE, "%s: %s is longer than %zu bytes", pos, what, dstlen - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)val[i] <= ' ' || val[i] == 0x7f)
			return fail(r, BB_EPARSE, "%s: %s contains blanks or control characters",
				    pos, what);
	memcpy(dst, val, n + 1);
	return BB_OK;
}

static int creds_from_env(struct resolver *r, int *found)
{
	const char *ak = env_get(r, "AWS_ACCESS_KEY_ID");
	const char *sk = env_get(r, "AWS_SECRET_ACCESS_KEY");
	const char *tok = env_get(r, "AWS_SESSION_TOKEN");
	struct bb_aws_cfg *c = r->out;
	int rc;

	if (!tok)
		tok = env_get(r, "AWS_SECURITY_TOKEN");
	if (!ak)
		return BB_OK;
	if (!sk)
		return fail(r, BB_EINVAL, "environment: AWS_ACCESS_KEY_ID is set but "
				       "AWS_SECRET_ACCESS_KEY is not");
	rc = copy_cred(r, c->access_key, sizeof(c->access_key), ak, "AWS_ACCESS_KEY_ID",
		       "environment", 0);
	if (!rc)
		rc = copy_cred(r, c->secret_key, sizeof(c->secret_key), sk,
			       "AWS_SECRET_ACCESS_KEY", "environment", 0);
	if (!rc && tok)
		rc = copy_cred(r, c->session_token, sizeof(c->session_token), tok,
			       "AWS_SESSION_TOKEN", "environment", 0);
	if (!rc) {
		snprintf(c->source, sizeof(c->source), "environment");
		*found = 1;
	}
	return rc;
}

/* Static keys from section of f; *found = 1 when taken. */
static int creds_from_section(struct resolver *r, const struct ini *f, const char *section,
			      int *found)
{
	const struct ini_ent *ak, *sk, *tok;
	struct bb_aws_cfg *c = r->out;
	int rc;

	if (!section)
		return BB_OK;
	ak = ini_find(f, section, "aws_access_key_id", NULL);
	sk = ini_find(f, section, "aws_secret_access_key", NULL);
	tok = ini_find(f, section, "aws_session_token", NULL);
	if (!tok)
		tok = ini_find(f, section, "aws_security_token", NULL);
	if (!ak || !ak->val[0])
		return BB_OK;
	if (!sk || !sk->val[0])
		return fail(r, BB_EINVAL, "%s:%d: aws_access_key_id in [%s] without "
				       "aws_secret_access_key", f->disp, ak->line,
			    safe_name(section));
	rc = copy_cred(r, c->access_key, sizeof(c->access_key), ak->val, "aws_access_key_id",
		       f->disp, ak->line);
	if (!rc)
		rc = copy_cred(r, c->secret_key, sizeof(c->secret_key), sk->val,
			       "aws_secret_access_key", f->disp, sk->line);
	if (!rc && tok && tok->val[0])
		rc = copy_cred(r, c->session_token, sizeof(c->session_token), tok->val,
			       "aws_session_token", f->disp, tok->line);
	if (rc)
		return rc;
	fmt_cut(c->source, sizeof(c->source), "%s [%s]", f->disp, section);
	if (f->mode & 077)
		bb_warn("%s may be read or written by group or others (mode %03o): "
			"chmod 600 it", f->disp, (unsigned)(f->mode & 0777));
	*found = 1;
	return BB_OK;
}

/* Credential sources of a profile that bbcache cannot use. */
static int unsupported(struct resolver *r, const char *const *keys, size_t n)
{
	const struct ini *from;
	const struct ini_ent *e;

	for (size_t i = 0; i < n; i++) {
		e = setting(r, keys[i], NULL, &from);
		if (e && e->val[0])
			return fail(r, BB_ENOTSUP,
				    "%s:%d: profile '%s' uses %s, which bbcache does not "
				    "support; use static keys or the AWS_* environment variables",
				    from->disp, e->line, safe_name(r->profile), keys[i]);
	}
	return BB_OK;
}

static int resolve_creds(struct resolver *r)
{
	static const char *const before[] = {"role_arn", "web_identity_token_file",
					     "sso_start_url", "sso_session"};
	static const char *const process[] = {"credential_process"};
	const char *admin_section;
	int found = 0;
	int rc;

	/* As the AWS CLI's --no-sign-request: no credential is looked for (a
	 * profile of an unsupported kind is no error), none is read. */
	if (r->o->no_credentials) {
		snprintf(r->out->source, sizeof(r->out->source), "none (unsigned requests asked for)");
		return BB_OK;
	}
	if (!r->profile_explicit) {
		rc = creds_from_env(r, &found);
		if (rc || found)
			return rc;
	}
	rc = unsupported(r, before, sizeof(before) / sizeof(before[0]));
	if (rc)
		return rc;
	rc = creds_from_section(r, &r->cred, ini_has_section(&r->cred, r->profile) ?
				r->profile : NULL, &found);
	if (rc || found)
		return rc;
	rc = unsupported(r, process, 1);
	if (rc)
		return rc;
	rc = creds_from_section(r, &r->conf, conf_section(&r->conf, r->profile), &found);
	if (rc || found)
		return rc;
	if (r->o->credentials_file && r->o->credentials_file[0]) {
		if (!r->admin.present) {
			rc = ini_load(r, &r->admin, 0);
			if (rc)
				return rc;
		}
		admin_section = ini_has_section(&r->admin, r->profile) ? r->profile :
				ini_has_section(&r->admin, "default") ? "default" : NULL;
		rc = creds_from_section(r, &r->admin, admin_section, &found);
		if (rc || found)
			return rc;
	}
	snprintf(r->out->source, sizeof(r->out->source), "none");
	return BB_OK;
}

static int resolve_region(struct resolver *r)
{
	const struct ini *from = NULL;
	const struct ini_ent *e = NULL;
	const char *v = r->o->region;
	char where[600] = "the region option";
	size_t n;

	if (!v && (v = env_get(r, "AWS_REGION")))
		snprintf(where, sizeof(where), "AWS_REGION");
	else if (!v && (v = env_get(r, "AWS_DEFAULT_REGION")))
		snprintf(where, sizeof(where), "AWS_DEFAULT_REGION");
	else if (!v && (e = setting(r, "region", NULL, &from)) && e->val[0]) {
		v = e->val;
		snprintf(where, sizeof(where), "%s:%d", from->disp, e->line);
	} else if (!v) {
		v = "us-east-1";
	}
	/* it becomes part of a host name and of the signature scope */
	n = strlen(v);
	if (!n || n >= sizeof(r->out->region) ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != n)
		return fail(r, BB_EPARSE, "%s: not a region name (letters, digits and '-', "
				       "at most %zu)", where, sizeof(r->out->region) - 1);
	memcpy(r->out->region, v, n + 1);
	return BB_OK;
}

static int set_endpoint(struct resolver *r, const char *v, const char *where)
{
	char *dst = r->out->endpoint_url;
	size_t n = strlen(v);
	size_t scheme = !strncasecmp(v, "https://", 8) ? 8 : !strncasecmp(v, "http://", 7) ? 7 : 0;

	while (n > scheme && v[n - 1] == '/')
		n--;
	if (!scheme || n == scheme || v[scheme] == '/')
		return fail(r, BB_EPARSE, "%s: endpoint_url is not an http:// or https:// URL",
			    where);
	if (n >= sizeof(r->out->endpoint_url))
		return fail(r, BB_ERANGE, "%s: endpoint_url is longer than %zu bytes", where,
			    sizeof(r->out->endpoint_url) - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f)
			return fail(r, BB_EPARSE, "%s: endpoint_url contains blanks or control "
					       "characters", where);
	memcpy(dst, v, n);
	dst[n] = '\0';
	return BB_OK;
}

static int resolve_endpoint(struct resolver *r)
{
	const struct ini *from;
	const struct ini_ent *e, *svc;
	const char *v;
	char where[600];

	if (r->o->endpoint_url)
		return set_endpoint(r, r->o->endpoint_url, "the endpoint option");
	v = env_get(r, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	e = setting(r, "ignore_configured_endpoint_urls", NULL, &from);
	if ((v && !strcasecmp(v, "true")) || (!v && e && !strcasecmp(e->val, "true")))
		return BB_OK;
	if ((v = env_get(r, "AWS_ENDPOINT_URL_S3")))
		return set_endpoint(r, v, "AWS_ENDPOINT_URL_S3");
	if ((v = env_get(r, "AWS_ENDPOINT_URL")))
		return set_endpoint(r, v, "AWS_ENDPOINT_URL");
	e = setting(r, "s3", "endpoint_url", &from);
	svc = setting(r, "services", NULL, &from);
	if (!e && svc && svc->val[0]) {
		char section[600];

		snprintf(section, sizeof(section), "services %s", svc->val);
		e = ini_find(&r->conf, section, "s3", "endpoint_url");
		from = &r->conf;
	}
	if (!e)
		e = setting(r, "endpoint_url", NULL, &from);
	if (!e || !e->val[0])
		return BB_OK;
	snprintf(where, sizeof(where), "%s:%d", from->disp, e->line);
	return set_endpoint(r, e->val, where);
}

static int resolve_addressing(struct resolver *r)
{
	const struct ini *from;
	const struct ini_ent *e = setting(r, "s3", "addressing_style", &from);

	r->out->path_style = -1;
	if (!e || !strcasecmp(e->val, "auto"))
		return BB_OK;
	if (!strcasecmp(e->val, "path"))
		r->out->path_style = 1;
	else if (!strcasecmp(e->val, "virtual"))
		r->out->path_style = 0;
	else
		return fail(r, BB_EPARSE, "%s:%d: addressing_style must be path, virtual or auto",
			    from->disp, e->line);
	return BB_OK;
}

static int resolve_profile(struct resolver *r)
{
	const char *p = r->o->profile;
	size_t n;

	if (p) {
		r->profile_explicit = r->profile_named = 1;
	} else if ((p = env_get(r, "AWS_PROFILE")) || (p = env_get(r, "AWS_DEFAULT_PROFILE"))) {
		r->profile_named = 1;
	} else {
		p = "default";
	}
	n = strlen(p);
	if (!n || n >= sizeof(r->out->profile))
		return fail(r, BB_EINVAL, "profile name empty or longer than %zu bytes",
			    sizeof(r->out->profile) - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < ' ' || p[i] == 0x7f || p[i] == ']' || p[i] == '[')
			return fail(r, BB_EINVAL, "profile name with brackets or control "
					       "characters");
	memcpy(r->out->profile, p, n + 1);
	r->profile = r->out->profile;
	return BB_OK;
}

/* A profile named by the user must exist somewhere, as with the CLI. */
static int check_profile_exists(struct resolver *r)
{
	int rc;

	if (!r->profile_named || !strcmp(r->profile, "default"))
		return BB_OK;
	if (ini_has_section(&r->cred, r->profile) || conf_section(&r->conf, r->profile))
		return BB_OK;
	if (r->o->credentials_file && r->o->credentials_file[0]) {
		rc = ini_load(r, &r->admin, 1);
		if (rc)
			return rc;
		if (ini_has_section(&r->admin, r->profile))
			return BB_OK;
	}
	return fail(r, BB_ENOENT, "profile '%s' is not defined in %s, %s%s%s",
		    safe_name(r->profile), r->cred.path[0] ? r->cred.disp : "(no credentials file)",
		    r->conf.path[0] ? r->conf.disp : "(no config file)",
		    r->admin.path[0] ? " or " : "", r->admin.path[0] ? r->admin.disp : "");
}

int bb_aws_resolve(const struct bb_aws_opts *o, struct bb_aws_cfg *out, char *err,
		   size_t errlen)
{
	static const struct bb_aws_opts none;
	struct resolver r;
	char dummy[1];
	int rc;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!out)
		return BB_EINVAL;
	memset(out, 0, sizeof(*out));
	out->path_style = -1;
	memset(&r, 0, sizeof(r));
	r.o = o ? o : &none;
	r.envp = r.o->envp ? r.o->envp : environ;
	r.out = out;
	r.err = err;
	r.errlen = errlen;
	r.home = r.o->home ? r.o->home : env_get(&r, "HOME");
	rc = resolve_profile(&r);
	if (rc)
		goto out;
	ini_path(&r, &r.cred, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
	ini_path(&r, &r.conf, "AWS_CONFIG_FILE", "config");
	if (r.o->credentials_file && r.o->credentials_file[0]) {
		snprintf(r.admin.path, sizeof(r.admin.path), "%s", r.o->credentials_file);
		set_disp(&r, &r.admin);
	}
	/* the CLI reads both files first: a malformed one fails every command */
	rc = ini_load(&r, &r.cred, 1);
	if (!rc)
		rc = ini_load(&r, &r.conf, 1);
	if (!rc)
		rc = check_profile_exists(&r);
	if (!rc)
		rc = resolve_creds(&r);
	if (!rc)
		rc = resolve_region(&r);
	if (!rc)
		rc = resolve_endpoint(&r);
	if (!rc)
		rc = resolve_addressing(&r);
out:
	if (rc)
		bb_aws_cfg_wipe(out);
	ini_free(&r.cred);
	ini_free(&r.conf);
	ini_free(&r.admin);
	return rc;
}

int bb_aws_path_style(const struct bb_aws_cfg *c)
{
	if (c->path_style >= 0)
		return c->path_style;
	return c->endpoint_url[0] != '\0';
}

void bb_aws_cfg_wipe(struct bb_aws_cfg *c)
{
	if (!c)
		return;
	explicit_bzero(c->access_key, sizeof(c->access_key));
	explicit_bzero(c->secret_key, sizeof(c->secret_key));
	explicit_bzero(c->session_token, sizeof(c->session_token));
}
