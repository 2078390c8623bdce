/* Source and destination URLs: file://, http://, https://, s3://. */
#ifndef BB_STAGE_URL_H
#define BB_STAGE_URL_H

#include <stddef.h>

enum bb_scheme { BB_SCHEME_FILE = 1, BB_SCHEME_HTTP, BB_SCHEME_HTTPS, BB_SCHEME_S3 };

struct bb_url {
	enum bb_scheme scheme;
	char host[256];   /* http(s): host[:port]; s3: the bucket */
	char path[4096];  /* file: absolute path; http(s): path with leading '/';
			     s3: the key or prefix, no leading '/' */
	char query[1024]; /* http(s) only, without '?' */
	int dir;          /* the URL ends with '/' (a prefix or a directory) */
};

/* Parse s.  Plain absolute paths are taken as file:// URLs.  Rejects
 * user@ credentials, NUL/newline, '..' segments, and other schemes, with
 * a reason in err (never echoing what follows an '@'). */
int bb_url_parse(const char *s, struct bb_url *u, char *err, size_t errlen);
const char *bb_scheme_name(enum bb_scheme s);
/* Back to text: "s3://bucket/key", "https://host/path", "file:///path". */
int bb_url_format(const struct bb_url *u, char *buf, size_t len);

#endif
