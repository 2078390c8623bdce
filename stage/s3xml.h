/* S3 XML: parsing the responses bbcache needs (ListObjectsV2, errors,
 * multipart uploads), building the CompleteMultipartUpload body, SigV4 URI
 * encoding and the two date formats of object listings.
 *
 * The XML parsers use expat and treat every response as hostile: a
 * document with a DOCTYPE (and so any entity declaration) is refused, text
 * is bounded per element, keys at BB_S3_KEY_MAX bytes and a listing page at
 * BB_S3_LIST_MAX entries.  Element names are matched by their local name in
 * any namespace (S3 uses xmlns="http://s3.amazonaws.com/doc/2006-03-01/",
 * its errors none).  Leading whitespace before the document is skipped:
 * S3 sends blanks as keep-alive before a CompleteMultipartUpload result.
 */
#ifndef BB_STAGE_S3XML_H
#define BB_STAGE_S3XML_H

#include <stddef.h>
#include <stdint.h>

#define BB_S3_KEY_MAX 1024		/* bytes of an object key (S3's limit) */
#define BB_S3_LIST_MAX 100000		/* objects + common prefixes per page */
#define BB_S3_TEXT_MAX 8192		/* bytes of text of any other element */
#define BB_S3_PARTS_MAX 10000		/* parts of a multipart upload */

struct bb_s3_object {
	char *key;		/* decoded (entities, and EncodingType=url) */
	uint64_t size;
	char *etag;		/* quotes stripped; "" when the listing has none */
	int64_t mtime_ns;	/* LastModified; 0 when absent */
};

struct bb_s3_list {
	struct bb_s3_object *objs;
	size_t n;
	char **prefixes;	/* CommonPrefixes/Prefix, decoded */
	size_t n_prefixes;
	int truncated;		/* IsTruncated */
	char *next_token;	/* NextContinuationToken, NULL when absent */
	char *start_after;	/* StartAfter, NULL when absent */
};

/*
 * Parse a ListBucketResult (ListObjectsV2) of len bytes into out (which
 * the caller frees with bb_s3_list_free(); on failure out is left empty).  Returns
 * BB_OK; BB_EPARSE for malformed XML, another root element, a Contents
 * without Key or Size, a bad number or date, or a repeated field (err then
 * says "line L, column C: why"); BB_ERANGE when a bound is exceeded;
 * BB_ENOMEM.  Keys are percent-decoded when the response says
 * <EncodingType>url</EncodingType> (as the AWS CLI requests).
 */
int bb_s3_parse_list(const char *xml, size_t len, struct bb_s3_list *out, char *err,
		     size_t errlen);
void bb_s3_list_free(struct bb_s3_list *l);

/* <Error><Code>NoSuchKey</Code><Message>...</Message></Error>: BB_OK with
 * code and msg (each may be NULL/0 to skip, truncated to fit); BB_EPARSE if
 * xml is not an S3 error document or has no Code. */
int bb_s3_parse_error(const char *xml, size_t len, char *code, size_t codelen, char *msg,
		      size_t msglen);

/* InitiateMultipartUploadResult/UploadId: BB_OK; BB_EPARSE if absent or
 * not that document; BB_ERANGE if idlen is too small. */
int bb_s3_parse_upload_id(const char *xml, size_t len, char *upload_id, size_t idlen);

/*
 * The body of a 200 answer to CompleteMultipartUpload.  A
 * CompleteMultipartUploadResult: BB_OK with its ETag (quotes stripped,
 * BB_ERANGE if etaglen is too small).  An <Error> (S3 reports late
 * failures inside a 200): BB_EFILL with its Code in code.  Anything else:
 * BB_EPARSE.  code may be NULL.
 */
int bb_s3_parse_complete(const char *xml, size_t len, char *etag, size_t etaglen, char *code,
			 size_t codelen);

/*
 * Build the CompleteMultipartUpload body for parts 1..n_parts whose ETags
 * are etags[0..n_parts-1] (with or without quotes).  *xml_out is malloc'd
 * and NUL-terminated, *len_out its length.  BB_EINVAL for no parts, more
 * than BB_S3_PARTS_MAX or a NULL/empty ETag; BB_ENOMEM.
 */
int bb_s3_build_complete(const char *const *etags, size_t n_parts, char **xml_out,
			 size_t *len_out);

/*
 * URI encoding as SigV4 wants it: the unreserved A-Za-z0-9-_.~ kept,
 * every other byte %XX (uppercase hex); '/' kept when encode_slash == 0.
 * out is NUL-terminated; BB_ERANGE if out is too small (3 * inlen + 1
 * always suffices).
 */
int bb_uri_encode(const char *in, size_t inlen, int encode_slash, char *out, size_t outlen);

/*
 * ISO 8601 / RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
 * ('T' may also be 't' or a blank; without a zone, UTC) into nanoseconds
 * since the epoch (a leap second :60 counts as the next second).
 * BB_EPARSE for a bad form or field, BB_ERANGE outside what int64
 * nanoseconds hold (1677-09-21 to 2262-04-11).
 */
int bb_parse_iso8601(const char *s, int64_t *ns);

/* An HTTP date (RFC 7231 7.1.1.1): IMF-fixdate "Wed, 25 Nov 2026 10:39:44
 * GMT", and the obsolete RFC 850 and asctime forms a recipient must
 * accept.  Same results as bb_parse_iso8601(). */
int bb_parse_http_date(const char *s, int64_t *ns);

#endif
