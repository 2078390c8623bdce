/* libFuzzer target: every S3 XML parser, the CompleteMultipartUpload
 * builder and the date parsers, with invariant checks on what they return. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "stage/s3xml.h"
#include "tests/fuzz/fuzz.h"

static void check_list(const struct bb_s3_list *l)
{
	if (l->n + l->n_prefixes > BB_S3_LIST_MAX)
		abort();
	for (size_t i = 0; i < l->n; i++) {
		if (!l->objs[i].key || !l->objs[i].key[0] || !l->objs[i].etag)
			abort();
		if (strlen(l->objs[i].key) > BB_S3_KEY_MAX)
			abort();
	}
	for (size_t i = 0; i < l->n_prefixes; i++)
		if (!l->prefixes[i] || strlen(l->prefixes[i]) > BB_S3_KEY_MAX)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *xml = (const char *)data;
	struct bb_s3_list l;
	char err[256], code[64], msg[256], id[128], etag[128];
	const char *etags[1];
	char *s, *body, *enc;
	size_t len;
	int64_t ns;
	int rc;

	rc = bb_s3_parse_list(xml, size, &l, err, sizeof(err));
	if (rc == BB_OK)
		check_list(&l);
	else if (l.n || l.n_prefixes || l.objs || l.next_token || !err[0])
		abort();	/* a failure leaves nothing behind and says why */
	bb_s3_list_free(&l);

	rc = bb_s3_parse_error(xml, size, code, sizeof(code), msg, sizeof(msg));
	if (rc == BB_OK && !code[0])
		abort();
	(void)bb_s3_parse_upload_id(xml, size, id, sizeof(id));
	rc = bb_s3_parse_complete(xml, size, etag, sizeof(etag), code, sizeof(code));
	if ((rc == BB_OK && !etag[0]) || (rc == BB_EFILL && !code[0]))
		abort();

	/* The input as a NUL-terminated string for the rest. */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)bb_parse_iso8601(s, &ns);
	(void)bb_parse_http_date(s, &ns);

	/* What we build parses back (when the input is a usable ETag). */
	etags[0] = s;
	if (size < 100 && bb_s3_build_complete(etags, 1, &body, &len) == BB_OK) {
		if (strlen(body) != len)
			abort();
		free(body);
	}
	enc = malloc(3 * size + 1);
	if (enc) {
		if (bb_uri_encode(xml, size, size & 1, enc, 3 * size + 1) != BB_OK)
			abort();
		if (strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				"0123456789-_.~%/") != strlen(enc))
			abort();
		free(enc);
	}
	free(s);
	return 0;
}
