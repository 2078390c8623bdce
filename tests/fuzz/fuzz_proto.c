/* libFuzzer target: the agent protocol's decoder (common/proto.h).  Any
 * bytes go to bbp_decode; what it accepts must be in canonical form, so
 * bbp_encode of the decoded message gives back exactly the input, which
 * decodes again to the same fields.  The input also seeds the fields of a
 * message of each op, which must survive encode and decode.  abort() on any
 * difference. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/proto.h"
#include "tests/fuzz/fuzz.h"

static unsigned char out[BBP_MAX_MSG], out2[BBP_MAX_MSG];

static void same(const struct bbp_msg *x, const struct bbp_msg *y)
{
	if (memcmp(&x->h, &y->h, sizeof(x->h)) || x->rc != y->rc || x->u32 != y->u32 ||
	    x->a != y->a || x->b != y->b || x->off != y->off || x->len != y->len ||
	    x->text_len != y->text_len ||
	    !x->text != !y->text || (x->text_len && memcmp(x->text, y->text, x->text_len)))
		abort();
}

static uint64_t take(const uint8_t **p, size_t *n, size_t k)
{
	uint64_t v = 0;

	for (size_t i = 0; i < k && *n; i++, (*p)++, (*n)--)
		v |= (uint64_t)**p << (8 * i);
	return v;
}

/* Encode a message of op with fields from the input, decode it, compare. */
static void fields_roundtrip(const uint8_t *data, size_t size)
{
	static const uint16_t ops[] = {BBP_HELLO, BBP_FETCH, BBP_FILE, BBP_STATUS, BBP_STOP,
				       BBP_READ};
	const uint8_t *p = data;
	size_t n = size;
	struct bbp_msg m, d;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.h.op = ops[take(&p, &n, 1) % 6];
	if (take(&p, &n, 1) & 1)
		m.h.op |= BBP_REPLY;
	m.h.seq = (uint32_t)take(&p, &n, 4);
	m.rc = (m.h.op & BBP_REPLY) ? (int32_t)take(&p, &n, 4) : 0;
	switch (m.h.op) {
	case BBP_HELLO:
	case BBP_STATUS:
	case BBP_FETCH | BBP_REPLY:
		m.u32 = (uint32_t)take(&p, &n, 4);
		break;
	case BBP_HELLO | BBP_REPLY:
		m.u32 = (uint32_t)take(&p, &n, 4);
		m.a = take(&p, &n, 8);
		break;
	case BBP_FETCH:
		m.a = take(&p, &n, 8);
		m.b = take(&p, &n, 8);
		m.u32 = (uint32_t)take(&p, &n, 4);
		break;
	case BBP_FILE:
		m.a = take(&p, &n, 8);
		break;
	case BBP_STATUS | BBP_REPLY:
		m.text = (const char *)p;
		m.text_len = (uint32_t)n;
		break;
	case BBP_READ:
		m.a = take(&p, &n, 8);
		m.b = take(&p, &n, 8);
		m.u32 = (uint32_t)take(&p, &n, 4);
		m.len = (uint32_t)take(&p, &n, 4);
		m.off = take(&p, &n, 8);
		break;
	case BBP_READ | BBP_REPLY:
		m.u32 = (uint32_t)take(&p, &n, 4);
		m.text = (const char *)p;
		m.text_len = (uint32_t)n;
		break;
	}
	len = bbp_encode(&m, out2, sizeof(out2));
	if (m.text_len > BBP_MAX_PAYLOAD - (m.h.op == (BBP_READ | BBP_REPLY) ? 8 : 4)) {
		if (len)
			abort();
		return;
	}
	if (!len || bbp_decode(out2, len, &d) != BB_OK)
		abort();
	m.h.magic = BBP_MAGIC;
	m.h.version = BBP_VERSION;
	m.h.len = (uint32_t)(len - BBP_HDR_SIZE);
	if ((m.h.op == (BBP_STATUS | BBP_REPLY) || m.h.op == (BBP_READ | BBP_REPLY)) && !m.text_len)
		m.text = d.text; /* an empty text: where it would start */
	same(&m, &d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bbp_msg m, d;
	size_t n;

	if (bbp_decode(data, size, &m) == BB_OK) {
		if (size < BBP_HDR_SIZE || size > BBP_MAX_MSG || m.h.len != size - BBP_HDR_SIZE ||
		    m.h.magic != BBP_MAGIC || m.h.version != BBP_VERSION || m.h.flags ||
		    m.h.reserved)
			abort();
		if (m.text && (m.text < (const char *)data + BBP_HDR_SIZE + 4 ||
			       m.text + m.text_len != (const char *)data + size))
			abort();
		n = bbp_encode(&m, out, sizeof(out));
		if (n != size || memcmp(out, data, size))
			abort();
		if (bbp_decode(out, n, &d) != BB_OK)
			abort();
		/* the same fields; text now points into out */
		if (d.text)
			d.text = (const char *)data + (d.text - (const char *)out);
		same(&m, &d);
	}
	fields_roundtrip(data, size);
	return 0;
}
