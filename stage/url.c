#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "stage/url.h"

const char *bb_scheme_name(enum bb_scheme s)
{
	switch (s) {
	case BB_SCHEME_FILE:
		return "file";
	case BB_SCHEME_HTTP:
		return "http";
	case BB_SCHEME_HTTPS:
		return "https";
	case BB_SCHEME_S3:
		return "s3";
	}
	return "?";
}

/* 1 if path has a "." or ".." segment ('/'-separated). */
static int has_dot_segment(const char *p)
{
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 1;
		p += n;
	}
	return 0;
}

static int copy_part(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		return BB_ERANGE;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return BB_OK;
}

int bb_url_parse(const char *s, struct bb_url *u, char *err, size_t errlen)
{
	const char *rest;

	memset(u, 0, sizeof(*u));
	if (!s || !*s) {
		snprintf(err, errlen, "empty URL");
		return BB_EINVAL;
	}
	if (strpbrk(s, "\n\r")) {
		snprintf(err, errlen, "URL contains a line break");
		return BB_EINVAL;
	}
	if (s[0] == '/') {
		u->scheme = BB_SCHEME_FILE;
		rest = s;
	} else if (!strncmp(s, "file://", 7)) {
		u->scheme = BB_SCHEME_FILE;
		rest = s + 7;
		if (rest[0] != '/') {
			snprintf(err, errlen, "%s: file:// URLs need an absolute path (file:///path)", s);
			return BB_EINVAL;
		}
	} else if (!strncmp(s, "s3://", 5)) {
		u->scheme = BB_SCHEME_S3;
		rest = s + 5;
	} else if (!strncmp(s, "https://", 8)) {
		u->scheme = BB_SCHEME_HTTPS;
		rest = s + 8;
	} else if (!strncmp(s, "http://", 7)) {
		u->scheme = BB_SCHEME_HTTP;
		rest = s + 7;
	} else {
		const char *colon = strstr(s, "://");
		snprintf(err, errlen, "unsupported scheme '%.*s' (use s3://, http://, https:// or file://)",
			 colon ? (int)(colon - s) : 16, s);
		return BB_EINVAL;
	}

	if (u->scheme == BB_SCHEME_FILE) {
		if (copy_part(u->path, sizeof(u->path), rest, strlen(rest))) {
			snprintf(err, errlen, "path too long");
			return BB_ERANGE;
		}
	} else {
		size_t hl = strcspn(rest, "/?#");
		if (memchr(rest, '@', hl)) {
			snprintf(err, errlen, "%s URLs must not carry credentials (user@host); "
				 "use ~/.aws/credentials or the environment", bb_scheme_name(u->scheme));
			return BB_EINVAL;
		}
		if (hl == 0) {
			snprintf(err, errlen, "%s: no %s in URL", s,
				 u->scheme == BB_SCHEME_S3 ? "bucket" : "host");
			return BB_EINVAL;
		}
		if (copy_part(u->host, sizeof(u->host), rest, hl)) {
			snprintf(err, errlen, "host name too long");
			return BB_ERANGE;
		}
		rest += hl;
		if (*rest == '#' || (u->scheme == BB_SCHEME_S3 && strpbrk(rest, "?#"))) {
			snprintf(err, errlen, "%s: '?' and '#' have no meaning in this URL", s);
			return BB_EINVAL;
		}
		size_t pl = strcspn(rest, "?#");
		if (u->scheme == BB_SCHEME_S3) {
			if (*rest == '/')
				rest++, pl--;
			if (copy_part(u->path, sizeof(u->path), rest, pl)) {
				snprintf(err, errlen, "key too long");
				return BB_ERANGE;
			}
		} else {
			if (pl == 0) {
				strcpy(u->path, "/");
			} else if (copy_part(u->path, sizeof(u->path), rest, pl)) {
				snprintf(err, errlen, "path too long");
				return BB_ERANGE;
			}
			rest += pl;
			if (*rest == '#') {
				snprintf(err, errlen, "%s: fragments (#) are not allowed", s);
				return BB_EINVAL;
			}
			if (*rest == '?' &&
			    copy_part(u->query, sizeof(u->query), rest + 1, strlen(rest + 1))) {
				snprintf(err, errlen, "query too long");
				return BB_ERANGE;
			}
		}
	}
	if (has_dot_segment(u->path)) {
		snprintf(err, errlen, "%s: '.' and '..' path segments are not allowed", s);
		return BB_EINVAL;
	}
	size_t n = strlen(u->path);
	u->dir = n == 0 || u->path[n - 1] == '/';
	return BB_OK;
}

int bb_url_format(const struct bb_url *u, char *buf, size_t len)
{
	int n;

	switch (u->scheme) {
	case BB_SCHEME_FILE:
		n = snprintf(buf, len, "file://%s", u->path);
		break;
	case BB_SCHEME_S3:
		n = snprintf(buf, len, "s3://%s/%s", u->host, u->path);
		break;
	default:
		n = snprintf(buf, len, "%s://%s%s%s%s", bb_scheme_name(u->scheme), u->host, u->path,
			     u->query[0] ? "?" : "", u->query);
		break;
	}
	return n < 0 || (size_t)n >= len ? BB_ERANGE : BB_OK;
}
