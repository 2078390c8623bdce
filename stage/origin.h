/* Origins: listing a source into entries, and the request for a byte range
 * of one object.  file://, http(s):// and s3:// behind one interface. */
#ifndef BB_STAGE_ORIGIN_H
#define BB_STAGE_ORIGIN_H

#include <stddef.h>
#include <stdint.h>

#include "stage/awscfg.h"
#include "stage/engine.h"
#include "stage/url.h"

struct bb_conf;

struct bb_listed {
	char *rel;       /* path relative to the source root */
	char *src;       /* where to fetch it, relative to the source URL ("" = the URL itself) */
	uint64_t size;
	int64_t mtime_ns;
	char *etag;      /* NULL if unknown */
	uint64_t inode;
	int is_dir;      /* an explicit (empty) directory */
	int has_sha256;
	uint8_t sha256[32];
};

struct bb_listing {
	struct bb_listed *v;
	size_t n, cap;
};

struct bb_origin {
	struct bb_url url;        /* the source as given */
	char base[8192];          /* http(s)/s3: URL prefix objects are appended to */
	struct bb_aws_cfg aws;    /* s3 only */
	int anonymous;            /* s3 without credentials */
	int single;               /* the source is one object, not a directory */
	int list_file;            /* http(s): the URL is a listing file (see origins.md) */
	char list_url[8192];
	struct bb_engine *eng;
};

/* Parse and resolve the source (credentials for s3, policy check). */
int bb_origin_open(struct bb_origin *o, const char *source, int type, const struct bb_conf *conf,
		   struct bb_engine *eng, char *err, size_t errlen);
void bb_origin_close(struct bb_origin *o);
/* List into l (include/exclude applied). */
int bb_origin_list(struct bb_origin *o, const char *include, const char *exclude,
		   struct bb_listing *l, char *err, size_t errlen);
void bb_listing_free(struct bb_listing *l);
int bb_listing_add(struct bb_listing *l, const char *rel, const char *src, uint64_t size,
		   int64_t mtime_ns, const char *etag, uint64_t inode);
/* The full URL of object src (relative, as listed) for http(s)/s3. */
int bb_origin_object_url(const struct bb_origin *o, const char *src, char *buf, size_t len);
/* A request for [off, off+len) of object src (len 0: whole), If-Match etag. */
void bb_origin_request(const struct bb_origin *o, const char *url, uint64_t off, uint64_t len,
		       const char *etag, struct bb_xfer_req *r);

/* S3 helpers shared with stage-out: the URL of bucket/key (key may be ""),
 * with a sorted, encoded query appended when query != NULL. */
int bb_s3_url(const struct bb_aws_cfg *aws, const char *bucket, const char *key,
	      const char *query, char *buf, size_t len);

#endif
