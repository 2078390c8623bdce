#include "config.h"

#include <expat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "stage/s3xml.h"

/* Elements we know, by local name; everything else is E_OTHER and skipped. */
enum elem {
	E_OTHER = 0,
	E_LIST,
	E_CONTENTS,
	E_KEY,
	E_SIZE,
	E_ETAG,
	E_MTIME,
	E_CPREFIXES,
	E_PREFIX,
	E_TRUNCATED,
	E_NEXT_TOKEN,
	E_START_AFTER,
	E_ENCODING,
	E_ERROR,
	E_CODE,
	E_MESSAGE,
	E_INITIATE,
	E_UPLOAD_ID,
	E_COMPLETE,
};

static const struct {
	const char *name;
	enum elem id;
} elem_names[] = {
	{"ListBucketResult", E_LIST},
	{"Contents", E_CONTENTS},
	{"Key", E_KEY},
	{"Size", E_SIZE},
	{"ETag", E_ETAG},
	{"LastModified", E_MTIME},
	{"CommonPrefixes", E_CPREFIXES},
	{"Prefix", E_PREFIX},
	{"IsTruncated", E_TRUNCATED},
	{"NextContinuationToken", E_NEXT_TOKEN},
	{"StartAfter", E_START_AFTER},
	{"EncodingType", E_ENCODING},
	{"Error", E_ERROR},
	{"Code", E_CODE},
	{"Message", E_MESSAGE},
	{"InitiateMultipartUploadResult", E_INITIATE},
	{"UploadId", E_UPLOAD_ID},
	{"CompleteMultipartUploadResult", E_COMPLETE},
};

/* The separator expat puts between a namespace URI and a local name. */
#define NS_SEP '\x01'
/* Deeper documents are not S3 answers; refusing them bounds the stack. */
#define XP_DEPTH_MAX 64
/* Bytes handed to expat per call (its length argument is an int). */
#define XP_CHUNK (1 << 20)

/* Which fields of the Contents being parsed were seen. */
#define HAVE_KEY 0x1
#define HAVE_SIZE 0x2
#define HAVE_ETAG 0x4
#define HAVE_MTIME 0x8

struct xp {
	XML_Parser p;
	int rc;
	char *err;
	size_t errlen;
	int depth;
	unsigned char stack[XP_DEPTH_MAX];	/* enum elem per open element */
	/* roots accepted (bit per enum elem); another root fails at once */
	unsigned roots;
	enum elem root;
	/* text of the element being collected (collect != E_OTHER) */
	enum elem collect;
	char *text;
	size_t tlen, tcap, tmax;
	/* ListBucketResult */
	struct bb_s3_list *list;
	size_t objcap, precap;
	struct bb_s3_object cur;
	unsigned cur_have;
	int url_encoded;
	int seen_truncated;
	/* the small documents: first occurrence of each field */
	char *code, *message, *upload_id, *etag;
};

static void xp_fail(struct xp *x, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first failure with the position expat is at, and stop. */
static void xp_fail(struct xp *x, int rc, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (x->rc)
		return;
	x->rc = rc;
	if (x->err && x->errlen) {
		n = snprintf(x->err, x->errlen, "line %lu, column %lu: ",
			     (unsigned long)XML_GetCurrentLineNumber(x->p),
			     (unsigned long)XML_GetCurrentColumnNumber(x->p));
		if (n >= 0 && (size_t)n < x->errlen) {
			va_start(ap, fmt);
			vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	XML_StopParser(x->p, XML_FALSE);
}

static const char *elem_name(enum elem id)
{
	for (size_t i = 0; i < sizeof(elem_names) / sizeof(elem_names[0]); i++)
		if (elem_names[i].id == id)
			return elem_names[i].name;
	return "?";
}

static enum elem elem_lookup(const char *name)
{
	const char *local = strrchr(name, NS_SEP);

	local = local ? local + 1 : name;
	for (size_t i = 0; i < sizeof(elem_names) / sizeof(elem_names[0]); i++)
		if (!strcmp(local, elem_names[i].name))
			return elem_names[i].id;
	return E_OTHER;
}

/* Take the collected text (NUL-terminated) away from the parser. */
static char *take_text(struct xp *x)
{
	char *t = x->text;

	if (!t)
		t = strdup("");
	x->text = NULL;
	x->tlen = x->tcap = 0;
	if (!t)
		xp_fail(x, BB_ENOMEM, "out of memory");
	return t;
}

static void strip_quotes(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		memmove(s, s + 1, n - 2);
		s[n - 2] = '\0';
	}
}

static int parse_u64(const char *s, uint64_t *v)
{
	uint64_t r = 0;

	if (!*s)
		return BB_EPARSE;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return BB_EPARSE;
		if (r > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return BB_ERANGE;
		r = r * 10 + (uint64_t)(*s - '0');
	}
	*v = r;
	return BB_OK;
}

/* Which element's text to keep, given the element and its parent. */
static enum elem wanted(const struct xp *x, enum elem id, enum elem parent)
{
	if (x->root == E_LIST) {
		if (parent == E_LIST && x->depth == 2 &&
		    (id == E_TRUNCATED || id == E_NEXT_TOKEN || id == E_START_AFTER ||
		     id == E_ENCODING))
			return id;
		if (parent == E_CONTENTS && x->depth == 3 &&
		    (id == E_KEY || id == E_SIZE || id == E_ETAG || id == E_MTIME))
			return id;
		if (parent == E_CPREFIXES && x->depth == 3 && id == E_PREFIX)
			return id;
		return E_OTHER;
	}
	if (x->depth != 2)
		return E_OTHER;
	if (x->root == E_ERROR && (id == E_CODE || id == E_MESSAGE))
		return id;
	if (x->root == E_INITIATE && id == E_UPLOAD_ID)
		return id;
	if (x->root == E_COMPLETE && id == E_ETAG)
		return id;
	return E_OTHER;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct xp *x = ud;
	enum elem id = elem_lookup(name);
	enum elem parent = x->depth ? (enum elem)x->stack[x->depth - 1] : E_OTHER;

	(void)attrs;
	if (x->rc)
		return;
	if (x->collect != E_OTHER) {
		xp_fail(x, BB_EPARSE, "element inside <%s>", elem_name(x->collect));
		return;
	}
	if (x->depth >= XP_DEPTH_MAX) {
		xp_fail(x, BB_EPARSE, "elements nested deeper than %d", XP_DEPTH_MAX);
		return;
	}
	x->stack[x->depth++] = (unsigned char)id;
	if (x->depth == 1) {
		if (id == E_OTHER || !(x->roots & (1u << id))) {
			xp_fail(x, BB_EPARSE, "unexpected root element <%s>",
				id == E_OTHER ? "(unknown)" : elem_name(id));
			return;
		}
		x->root = id;
		return;
	}
	if (x->root == E_LIST && id == E_CONTENTS && parent == E_LIST && x->depth == 2) {
		if (x->list->n + x->list->n_prefixes >= BB_S3_LIST_MAX) {
			xp_fail(x, BB_ERANGE, "more than %d entries in a listing page",
				BB_S3_LIST_MAX);
			return;
		}
		memset(&x->cur, 0, sizeof(x->cur));
		x->cur_have = 0;
		return;
	}
	x->collect = wanted(x, id, parent);
	if (x->collect == E_OTHER)
		return;
	/* Keys may be percent-encoded (EncodingType=url): up to 3 bytes each. */
	if (id == E_KEY || id == E_PREFIX || id == E_START_AFTER)
		x->tmax = 3 * BB_S3_KEY_MAX;
	else
		x->tmax = BB_S3_TEXT_MAX;
	x->tlen = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct xp *x = ud;
	size_t n = len > 0 ? (size_t)len : 0;

	if (x->rc || x->collect == E_OTHER || !n)
		return;
	if (n > x->tmax - x->tlen) {
		xp_fail(x, BB_ERANGE, "text of <%s> longer than %zu bytes",
			elem_name(x->collect), x->tmax);
		return;
	}
	if (x->tlen + n + 1 > x->tcap) {
		size_t cap = x->tcap ? x->tcap : 64;
		char *t;

		while (cap < x->tlen + n + 1)
			cap *= 2;
		t = realloc(x->text, cap);
		if (!t) {
			xp_fail(x, BB_ENOMEM, "out of memory");
			return;
		}
		x->text = t;
		x->tcap = cap;
	}
	memcpy(x->text + x->tlen, s, n);
	x->tlen += n;
	x->text[x->tlen] = '\0';
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	void *a;
	size_t c;

	if (n < *cap)
		return BB_OK;
	c = *cap ? *cap * 2 : 64;
	a = realloc(*arr, c * size);
	if (!a)
		return BB_ENOMEM;
	*arr = a;
	*cap = c;
	return BB_OK;
}

/* A field of the Contents being parsed. */
static void contents_field(struct xp *x, enum elem id, char *t)
{
	static const unsigned bit[] = {[E_KEY] = HAVE_KEY, [E_SIZE] = HAVE_SIZE,
				       [E_ETAG] = HAVE_ETAG, [E_MTIME] = HAVE_MTIME};
	int rc;

	if (x->cur_have & bit[id]) {
		xp_fail(x, BB_EPARSE, "<%s> repeated in <Contents>", elem_name(id));
		goto out;
	}
	x->cur_have |= bit[id];
	switch (id) {
	case E_KEY:
		if (!*t) {
			xp_fail(x, BB_EPARSE, "empty <Key>");
			goto out;
		}
		x->cur.key = t;
		return;
	case E_ETAG:
		strip_quotes(t);
		x->cur.etag = t;
		return;
	case E_SIZE:
		rc = parse_u64(t, &x->cur.size);
		if (rc)
			xp_fail(x, rc, "bad <Size>");
		break;
	case E_MTIME:
		rc = bb_parse_iso8601(t, &x->cur.mtime_ns);
		if (rc)
			xp_fail(x, rc, "bad <LastModified>");
		break;
	default:
		break;
	}
out:
	free(t);
}

static void list_field(struct xp *x, enum elem id, char *t)
{
	struct bb_s3_list *l = x->list;

	switch (id) {
	case E_KEY:
	case E_SIZE:
	case E_ETAG:
	case E_MTIME:
		contents_field(x, id, t);
		return;
	case E_PREFIX:
		if (grow((void **)&l->prefixes, &x->precap, l->n_prefixes, sizeof(char *))) {
			xp_fail(x, BB_ENOMEM, "out of memory");
			break;
		}
		if (l->n + l->n_prefixes >= BB_S3_LIST_MAX) {
			xp_fail(x, BB_ERANGE, "more than %d entries in a listing page",
				BB_S3_LIST_MAX);
			break;
		}
		l->prefixes[l->n_prefixes++] = t;
		return;
	case E_TRUNCATED:
		if (x->seen_truncated++)
			xp_fail(x, BB_EPARSE, "<IsTruncated> repeated");
		else if (!strcmp(t, "true"))
			l->truncated = 1;
		else if (strcmp(t, "false"))
			xp_fail(x, BB_EPARSE, "<IsTruncated> is neither true nor false");
		break;
	case E_NEXT_TOKEN:
	case E_START_AFTER: {
		char **dst = id == E_NEXT_TOKEN ? &l->next_token : &l->start_after;

		if (*dst) {
			xp_fail(x, BB_EPARSE, "<%s> repeated", elem_name(id));
			break;
		}
		*dst = t;
		return;
	}
	case E_ENCODING:
		if (!strcmp(t, "url"))
			x->url_encoded = 1;
		break;
	default:
		break;
	}
	free(t);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xp *x = ud;
	enum elem id;
	char **slot = NULL;
	char *t;

	(void)name;
	if (x->rc || !x->depth)
		return;
	id = (enum elem)x->stack[x->depth - 1];
	if (x->collect != E_OTHER) {
		x->collect = E_OTHER;
		t = take_text(x);
		if (!t)
			goto pop;
		if (x->root == E_LIST) {
			list_field(x, id, t);
			goto pop;
		}
		if (id == E_CODE)
			slot = &x->code;
		else if (id == E_MESSAGE)
			slot = &x->message;
		else if (id == E_UPLOAD_ID)
			slot = &x->upload_id;
		else if (id == E_ETAG)
			slot = &x->etag;
		if (slot && !*slot)
			*slot = t;
		else
			free(t);
		goto pop;
	}
	if (x->root == E_LIST && id == E_CONTENTS && x->depth == 2) {
		struct bb_s3_list *l = x->list;

		if ((x->cur_have & (HAVE_KEY | HAVE_SIZE)) != (HAVE_KEY | HAVE_SIZE)) {
			xp_fail(x, BB_EPARSE, "<Contents> without <%s>",
				x->cur_have & HAVE_KEY ? "Size" : "Key");
			goto pop;
		}
		if (!x->cur.etag && !(x->cur.etag = strdup(""))) {
			xp_fail(x, BB_ENOMEM, "out of memory");
			goto pop;
		}
		if (grow((void **)&l->objs, &x->objcap, l->n, sizeof(*l->objs))) {
			xp_fail(x, BB_ENOMEM, "out of memory");
			goto pop;
		}
		l->objs[l->n++] = x->cur;
		memset(&x->cur, 0, sizeof(x->cur));
	}
pop:
	x->depth--;
}

/* S3 never sends a DTD; refusing one refuses every entity declaration. */
static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	xp_fail(ud, BB_EPARSE, "DOCTYPE not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
				   const XML_Char *value, int value_len, const XML_Char *base,
				   const XML_Char *sysid, const XML_Char *pubid,
				   const XML_Char *notation)
{
	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	xp_fail(ud, BB_EPARSE, "entity declarations not allowed");
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Run expat over xml with x's handlers; on failure x->rc and x->err are set. */
static int xp_run(struct xp *x, const char *xml, size_t len)
{
	enum XML_Status st = XML_STATUS_OK;

	if (!xml)
		len = 0;
	while (len && is_blank(*xml)) {
		xml++;
		len--;
	}
	x->p = XML_ParserCreateNS(NULL, NS_SEP);
	if (!x->p) {
		x->rc = BB_ENOMEM;
		if (x->err && x->errlen)
			snprintf(x->err, x->errlen, "out of memory");
		goto out;
	}
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, on_start, on_end);
	XML_SetCharacterDataHandler(x->p, on_text);
	XML_SetStartDoctypeDeclHandler(x->p, on_doctype);
	XML_SetEntityDeclHandler(x->p, on_entity_decl);
	do {
		int n = len > XP_CHUNK ? XP_CHUNK : (int)len;

		st = XML_Parse(x->p, xml, n, (size_t)n == len);
		xml += n;
		len -= (size_t)n;
	} while (st == XML_STATUS_OK && len);
	if (st != XML_STATUS_OK && !x->rc) {
		x->rc = BB_EPARSE;
		if (x->err && x->errlen)
			snprintf(x->err, x->errlen, "line %lu, column %lu: malformed XML: %s",
				 (unsigned long)XML_GetCurrentLineNumber(x->p),
				 (unsigned long)XML_GetCurrentColumnNumber(x->p),
				 XML_ErrorString(XML_GetErrorCode(x->p)));
	}
out:
	if (x->p)
		XML_ParserFree(x->p);
	x->p = NULL;
	free(x->text);
	x->text = NULL;
	return x->rc;
}

static void xp_free(struct xp *x)
{
	free(x->cur.key);
	free(x->cur.etag);
	free(x->code);
	free(x->message);
	free(x->upload_id);
	free(x->etag);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* In place, as botocore's unquote_plus for EncodingType=url. */
static int url_decode(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (*s == '+') {
			*w++ = ' ';
		} else if (*s == '%') {
			int hi = hexval(s[1]);
			int lo = hi < 0 ? -1 : hexval(s[2]);

			if (lo < 0 || (hi == 0 && lo == 0))
				return BB_EPARSE;
			*w++ = (char)(hi << 4 | lo);
			s += 2;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
	return BB_OK;
}

/* After the parse: decode url-encoded names, check the decoded key bound. */
static int list_finish(struct xp *x)
{
	struct bb_s3_list *l = x->list;
	int rc = BB_OK;

	for (size_t i = 0; i < l->n + l->n_prefixes + 1; i++) {
		char *s = i < l->n ? l->objs[i].key :
			  i < l->n + l->n_prefixes ? l->prefixes[i - l->n] : l->start_after;

		if (!s)
			continue;
		if (x->url_encoded && url_decode(s)) {
			rc = BB_EPARSE;
			snprintf(x->err, x->errlen, "bad percent-encoding in a key of the listing");
			goto out;
		}
		if (strlen(s) > BB_S3_KEY_MAX) {
			rc = BB_ERANGE;
			snprintf(x->err, x->errlen, "a key of the listing is longer than %d bytes",
				 BB_S3_KEY_MAX);
			goto out;
		}
	}
out:
	return rc;
}

int bb_s3_parse_list(const char *xml, size_t len, struct bb_s3_list *out, char *err,
		     size_t errlen)
{
	char dummy[1];
	struct xp x;
	int rc;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!out)
		return BB_EINVAL;
	memset(out, 0, sizeof(*out));
	memset(&x, 0, sizeof(x));
	x.err = err;
	x.errlen = errlen;
	x.list = out;
	x.roots = 1u << E_LIST;
	rc = xp_run(&x, xml, len);
	if (!rc)
		rc = list_finish(&x);
	if (rc)
		bb_s3_list_free(out);
	xp_free(&x);
	return rc;
}

void bb_s3_list_free(struct bb_s3_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->objs[i].key);
		free(l->objs[i].etag);
	}
	for (size_t i = 0; i < l->n_prefixes; i++)
		free(l->prefixes[i]);
	free(l->objs);
	free(l->prefixes);
	free(l->next_token);
	free(l->start_after);
	memset(l, 0, sizeof(*l));
}

/* Copy s into dst, truncated to fit; nothing when dst is NULL. */
static void copy_trunc(char *dst, size_t dstlen, const char *s)
{
	if (dst && dstlen)
		snprintf(dst, dstlen, "%s", s ? s : "");
}

int bb_s3_parse_error(const char *xml, size_t len, char *code, size_t codelen, char *msg,
		      size_t msglen)
{
	struct xp x;
	int rc;

	copy_trunc(code, codelen, "");
	copy_trunc(msg, msglen, "");
	memset(&x, 0, sizeof(x));
	x.roots = 1u << E_ERROR;
	rc = xp_run(&x, xml, len);
	if (rc)
		goto out;
	if (!x.code || !x.code[0]) {
		rc = BB_EPARSE;
		goto out;
	}
	copy_trunc(code, codelen, x.code);
	copy_trunc(msg, msglen, x.message);
out:
	xp_free(&x);
	return rc;
}

int bb_s3_parse_upload_id(const char *xml, size_t len, char *upload_id, size_t idlen)
{
	struct xp x;
	int rc;

	if (!upload_id || !idlen)
		return BB_EINVAL;
	upload_id[0] = '\0';
	memset(&x, 0, sizeof(x));
	x.roots = 1u << E_INITIATE;
	rc = xp_run(&x, xml, len);
	if (rc)
		goto out;
	if (!x.upload_id || !x.upload_id[0]) {
		rc = BB_EPARSE;
		goto out;
	}
	if (strlen(x.upload_id) >= idlen) {
		rc = BB_ERANGE;
		goto out;
	}
	strcpy(upload_id, x.upload_id);
out:
	xp_free(&x);
	return rc;
}

int bb_s3_parse_complete(const char *xml, size_t len, char *etag, size_t etaglen, char *code,
			 size_t codelen)
{
	struct xp x;
	int rc;

	if (!etag || !etaglen)
		return BB_EINVAL;
	etag[0] = '\0';
	copy_trunc(code, codelen, "");
	memset(&x, 0, sizeof(x));
	x.roots = 1u << E_COMPLETE | 1u << E_ERROR;
	rc = xp_run(&x, xml, len);
	if (rc)
		goto out;
	if (x.root == E_ERROR) {
		copy_trunc(code, codelen, x.code && x.code[0] ? x.code : "InternalError");
		rc = BB_EFILL;
		goto out;
	}
	if (!x.etag) {
		rc = BB_EPARSE;
		goto out;
	}
	strip_quotes(x.etag);
	if (!x.etag[0]) {
		rc = BB_EPARSE;
		goto out;
	}
	if (strlen(x.etag) >= etaglen) {
		rc = BB_ERANGE;
		goto out;
	}
	strcpy(etag, x.etag);
out:
	xp_free(&x);
	return rc;
}

struct sbuf {
	char *s;
	size_t len, cap;
	int rc;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->rc)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *t;

		while (cap < b->len + n + 1)
			cap *= 2;
		t = realloc(b->s, cap);
		if (!t) {
			b->rc = BB_ENOMEM;
			return;
		}
		b->s = t;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

int bb_s3_build_complete(const char *const *etags, size_t n_parts, char **xml_out,
			 size_t *len_out)
{
	struct sbuf b = {0};
	char num[32];
	int rc = BB_OK;

	if (xml_out)
		*xml_out = NULL;
	if (len_out)
		*len_out = 0;
	if (!etags || !xml_out || !n_parts || n_parts > BB_S3_PARTS_MAX) {
		rc = BB_EINVAL;
		goto out;
	}
	sb_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (size_t i = 0; i < n_parts; i++) {
		const char *e = etags[i];
		size_t n;

		if (!e) {
			rc = BB_EINVAL;
			goto out;
		}
		n = strlen(e);
		if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
			e++;
			n -= 2;
		}
		if (!n) {
			rc = BB_EINVAL;
			goto out;
		}
		snprintf(num, sizeof(num), "%zu", i + 1);
		sb_str(&b, "<Part><PartNumber>");
		sb_str(&b, num);
		sb_str(&b, "</PartNumber><ETag>&quot;");
		for (size_t j = 0; j < n; j++) {
			unsigned char c = (unsigned char)e[j];

			if (c < 0x20 || c == 0x7f) {
				rc = BB_EINVAL;
				goto out;
			}
			if (c == '&')
				sb_str(&b, "&amp;");
			else if (c == '<')
				sb_str(&b, "&lt;");
			else if (c == '>')
				sb_str(&b, "&gt;");
			else if (c == '"')
				sb_str(&b, "&quot;");
			else
				sb_add(&b, e + j, 1);
		}
		sb_str(&b, "&quot;</ETag></Part>");
	}
	sb_str(&b, "</CompleteMultipartUpload>");
	rc = b.rc;
	if (rc)
		goto out;
	*xml_out = b.s;
	b.s = NULL;
	if (len_out)
		*len_out = b.len;
out:
	free(b.s);
	return rc;
}

int bb_uri_encode(const char *in, size_t inlen, int encode_slash, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t w = 0;
	int rc = BB_OK;

	if ((!in && inlen) || !out || !outlen) {
		rc = BB_EINVAL;
		goto out;
	}
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
			   c == '~' || (c == '/' && !encode_slash);

		if (outlen - w < (keep ? 2u : 4u)) {
			rc = BB_ERANGE;
			goto out;
		}
		if (keep) {
			out[w++] = (char)c;
		} else {
			out[w++] = '%';
			out[w++] = hex[c >> 4];
			out[w++] = hex[c & 15];
		}
	}
out:
	if (out && outlen)
		out[rc ? 0 : w] = '\0';
	return rc;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dim[m - 1];
}

struct civil {
	int year, mon, day, hour, min, sec;
	int64_t frac_ns;
	int offset_s;		/* east of UTC */
};

static int civil_to_ns(const struct civil *c, int64_t *ns)
{
	int64_t secs, frac = c->frac_ns, r;

	if (c->mon < 1 || c->mon > 12 || c->day < 1 ||
	    c->day > days_in_month(c->year, c->mon) || c->hour > 23 || c->min > 59 ||
	    c->sec > 60)
		return BB_EPARSE;
	secs = days_from_civil(c->year, c->mon, c->day) * 86400 + c->hour * 3600 +
	       c->min * 60 + c->sec - c->offset_s;
	/* before the epoch, so that INT64_MIN itself is reachable */
	if (secs < 0 && frac > 0) {
		secs++;
		frac -= 1000000000;
	}
	if (__builtin_mul_overflow(secs, (int64_t)1000000000, &r) ||
	    __builtin_add_overflow(r, frac, &r))
		return BB_ERANGE;
	*ns = r;
	return BB_OK;
}

/* Exactly n decimal digits. */
static int fixed_digits(const char **p, int n, int *v)
{
	int r = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return BB_EPARSE;
		r = r * 10 + (c - '0');
	}
	*p += n;
	*v = r;
	return BB_OK;
}

static int expect(const char **p, char c)
{
	if (**p != c)
		return BB_EPARSE;
	(*p)++;
	return BB_OK;
}

int bb_parse_iso8601(const char *s, int64_t *ns)
{
	struct civil c = {0};
	const char *p = s;
	int rc = BB_EPARSE;
	int oh, om;

	if (!s || !ns) {
		rc = BB_EINVAL;
		goto out;
	}
	if (fixed_digits(&p, 4, &c.year) || expect(&p, '-') || fixed_digits(&p, 2, &c.mon) ||
	    expect(&p, '-') || fixed_digits(&p, 2, &c.day))
		goto out;
	if (*p != 'T' && *p != 't' && *p != ' ')
		goto out;
	p++;
	if (fixed_digits(&p, 2, &c.hour) || expect(&p, ':') || fixed_digits(&p, 2, &c.min) ||
	    expect(&p, ':') || fixed_digits(&p, 2, &c.sec))
		goto out;
	if (*p == '.' || *p == ',') {
		int64_t scale = 100000000;

		p++;
		if (*p < '0' || *p > '9')
			goto out;
		for (; *p >= '0' && *p <= '9'; p++) {
			c.frac_ns += (*p - '0') * scale;	/* digits past ns ignored */
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;

		if (fixed_digits(&p, 2, &oh))
			goto out;
		if (*p == ':')
			p++;
		if (fixed_digits(&p, 2, &om) || oh > 23 || om > 59)
			goto out;
		c.offset_s = sign * (oh * 3600 + om * 60);
	}
	if (*p)
		goto out;
	rc = civil_to_ns(&c, ns);
out:
	return rc;
}

static const char *const wkday_short[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const wkday_long[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
					 "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A name of names[0..n-1] at *p, matched whole and without case. */
static int match_name(const char **p, const char *const *names, int n)
{
	size_t len = 0;

	while (((*p)[len] >= 'A' && (*p)[len] <= 'Z') || ((*p)[len] >= 'a' && (*p)[len] <= 'z'))
		len++;
	for (int i = 0; i < n; i++) {
		if (strlen(names[i]) == len && !strncasecmp(*p, names[i], len)) {
			*p += len;
			return i;
		}
	}
	return -1;
}

static int parse_hms(const char **p, struct civil *c)
{
	if (fixed_digits(p, 2, &c->hour) || expect(p, ':') || fixed_digits(p, 2, &c->min) ||
	    expect(p, ':') || fixed_digits(p, 2, &c->sec))
		return BB_EPARSE;
	return BB_OK;
}

static int parse_gmt(const char **p)
{
	if (expect(p, ' ') || strncasecmp(*p, "GMT", 3))
		return BB_EPARSE;
	*p += 3;
	return BB_OK;
}

int bb_parse_http_date(const char *s, int64_t *ns)
{
	struct civil c = {0};
	const char *p = s;
	int rc = BB_EPARSE;

	if (!s || !ns) {
		rc = BB_EINVAL;
		goto out;
	}
	if (match_name(&p, wkday_short, 7) >= 0) {
		if (*p == ',') {
			/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
			p++;
			if (expect(&p, ' ') || fixed_digits(&p, 2, &c.day) || expect(&p, ' ') ||
			    (c.mon = match_name(&p, months, 12) + 1) == 0 || expect(&p, ' ') ||
			    fixed_digits(&p, 4, &c.year) || expect(&p, ' ') ||
			    parse_hms(&p, &c) || parse_gmt(&p))
				goto out;
		} else {
			/* asctime: Sun Nov  6 08:49:37 1994 */
			if (expect(&p, ' ') || (c.mon = match_name(&p, months, 12) + 1) == 0 ||
			    expect(&p, ' '))
				goto out;
			if (*p == ' ') {
				p++;
				if (fixed_digits(&p, 1, &c.day))
					goto out;
			} else if (fixed_digits(&p, 2, &c.day)) {
				goto out;
			}
			if (expect(&p, ' ') || parse_hms(&p, &c) || expect(&p, ' ') ||
			    fixed_digits(&p, 4, &c.year))
				goto out;
		}
	} else if (match_name(&p, wkday_long, 7) >= 0) {
		/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
		if (expect(&p, ',') || expect(&p, ' ') || fixed_digits(&p, 2, &c.day) ||
		    expect(&p, '-') || (c.mon = match_name(&p, months, 12) + 1) == 0 ||
		    expect(&p, '-') || fixed_digits(&p, 2, &c.year) || expect(&p, ' ') ||
		    parse_hms(&p, &c) || parse_gmt(&p))
			goto out;
		c.year += c.year < 70 ? 2000 : 1900;
	} else {
		goto out;
	}
	if (*p)
		goto out;
	rc = civil_to_ns(&c, ns);
out:
	return rc;
}
