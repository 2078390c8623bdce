/* The agent protocol's wire format (common/proto.h, docs/agent-protocol.md). */
#include "common/proto.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

static void st16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void st32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void st64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t ld16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t ld32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const unsigned char *p)
{
	return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

/* The payload size of each message; -1: variable (STATUS reply: rc + text),
 * -3: variable (READ reply: rc, tier + data), -2: unknown op. */
static long payload_size(uint16_t op)
{
	switch (op) {
	case BBP_HELLO: return 4;
	case BBP_HELLO | BBP_REPLY: return 16;
	case BBP_FETCH: return 20;
	case BBP_FETCH | BBP_REPLY: return 8;
	case BBP_FILE: return 8;
	case BBP_FILE | BBP_REPLY: return 4;
	case BBP_STATUS: return 4;
	case BBP_STATUS | BBP_REPLY: return -1;
	case BBP_STOP: return 0;
	case BBP_STOP | BBP_REPLY: return 4;
	case BBP_READ: return 32;
	case BBP_READ | BBP_REPLY: return -3;
	default: return -2;
	}
}

size_t bbp_encode(const struct bbp_msg *m, void *buf, size_t cap)
{
	unsigned char *p = buf, *q = p + BBP_HDR_SIZE;
	long n = payload_size(m->h.op);

	if (n == -2 || (n >= 0 && cap < BBP_HDR_SIZE + (size_t)n))
		return 0;
	if (n == -1 || n == -3) {
		size_t fixed = n == -1 ? 4 : 8;
		if (m->text_len > BBP_MAX_PAYLOAD - fixed ||
		    cap < BBP_HDR_SIZE + fixed + (size_t)m->text_len)
			return 0;
		n = (long)(fixed + m->text_len);
	}
	st32(p, BBP_MAGIC);
	st32(p + 4, BBP_VERSION);
	st16(p + 8, m->h.op);
	st16(p + 10, 0);
	st32(p + 12, m->h.seq);
	st32(p + 16, (uint32_t)n);
	st32(p + 20, 0);
	if (m->h.op & BBP_REPLY) {
		st32(q, (uint32_t)m->rc);
		q += 4;
	}
	switch (m->h.op) {
	case BBP_HELLO:
		st32(q, m->u32);
		break;
	case BBP_HELLO | BBP_REPLY:
		st32(q, m->u32);
		st64(q + 4, m->a);
		break;
	case BBP_FETCH:
		st64(q, m->a);
		st64(q + 8, m->b);
		st32(q + 16, m->u32);
		break;
	case BBP_FETCH | BBP_REPLY:
		st32(q, m->u32);
		break;
	case BBP_FILE:
		st64(q, m->a);
		break;
	case BBP_STATUS:
		st32(q, m->u32);
		break;
	case BBP_STATUS | BBP_REPLY:
		if (m->text_len)
			memcpy(q, m->text, m->text_len);
		break;
	case BBP_READ:
		st64(q, m->a);
		st64(q + 8, m->b);
		st32(q + 16, m->u32);
		st32(q + 20, m->len);
		st64(q + 24, m->off);
		break;
	case BBP_READ | BBP_REPLY:
		st32(q, m->u32);
		if (m->text_len)
			memcpy(q + 4, m->text, m->text_len);
		break;
	}
	return BBP_HDR_SIZE + (size_t)n;
}

int bbp_decode(const void *buf, size_t len, struct bbp_msg *m)
{
	const unsigned char *p = buf, *q;

	memset(m, 0, sizeof(*m));
	if (!buf || len < BBP_HDR_SIZE || len > BBP_MAX_MSG)
		return BB_EPROTO;
	m->h.magic = ld32(p);
	m->h.version = ld32(p + 4);
	m->h.op = ld16(p + 8);
	m->h.flags = ld16(p + 10);
	m->h.seq = ld32(p + 12);
	m->h.len = ld32(p + 16);
	m->h.reserved = ld32(p + 20);
	if (m->h.magic != BBP_MAGIC || m->h.version != BBP_VERSION || m->h.flags ||
	    m->h.reserved || m->h.len != len - BBP_HDR_SIZE)
		return BB_EPROTO;
	long n = payload_size(m->h.op);
	if (n == -2 || (n >= 0 && m->h.len != (uint32_t)n) || (n == -1 && m->h.len < 4) ||
	    (n == -3 && m->h.len < 8))
		return BB_EPROTO;
	q = p + BBP_HDR_SIZE;
	if (m->h.op & BBP_REPLY) {
		m->rc = (int32_t)ld32(q);
		q += 4;
	}
	switch (m->h.op) {
	case BBP_HELLO:
	case BBP_STATUS:
		m->u32 = ld32(q);
		break;
	case BBP_HELLO | BBP_REPLY:
		m->u32 = ld32(q);
		m->a = ld64(q + 4);
		break;
	case BBP_FETCH:
		m->a = ld64(q);
		m->b = ld64(q + 8);
		m->u32 = ld32(q + 16);
		break;
	case BBP_FETCH | BBP_REPLY:
		m->u32 = ld32(q);
		break;
	case BBP_FILE:
		m->a = ld64(q);
		break;
	case BBP_STATUS | BBP_REPLY:
		m->text = (const char *)q;
		m->text_len = m->h.len - 4;
		break;
	case BBP_READ:
		m->a = ld64(q);
		m->b = ld64(q + 8);
		m->u32 = ld32(q + 16);
		m->len = ld32(q + 20);
		m->off = ld64(q + 24);
		break;
	case BBP_READ | BBP_REPLY:
		m->u32 = ld32(q);
		m->text = (const char *)q + 4;
		m->text_len = m->h.len - 8;
		break;
	}
	return BB_OK;
}

int bbp_connect(const char *path, int *fd)
{
	struct sockaddr_un sa;
	size_t n = strlen(path);
	int s, e;

	*fd = -1;
	if (n >= sizeof(sa.sun_path))
		return BB_ERANGE;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n + 1);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return BB_ESYS;
	while (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		e = errno;
		close(s);
		return e == ENOENT ? BB_ENOENT : e == ECONNREFUSED ? BB_EAGAIN
		       : e == EACCES || e == EPERM ? BB_EPERM : BB_ESYS;
	}
	*fd = s;
	return BB_OK;
}

int bbp_call(int fd, const struct bbp_msg *req, struct bbp_msg *rep, void *buf, size_t cap,
	     int timeout_ms)
{
	size_t n = bbp_encode(req, buf, cap);
	ssize_t r;

	if (!n)
		return BB_EINVAL;
	while ((r = send(fd, buf, n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN ? BB_EDEAD : BB_ESYS;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (timeout_ms >= 0) {
			/* one deadline for the call, however many stale replies come */
			clock_gettime(CLOCK_MONOTONIC, &t);
			long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 +
						  (t.tv_nsec - t0.tv_nsec) / 1000000);
			if (left < 0)
				return BB_ETIMEDOUT;
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int pr = poll(&p, 1, (int)left);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0)
				return BB_ESYS;
			if (pr == 0)
				return BB_ETIMEDOUT;
		}
		r = recv(fd, buf, cap, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == ECONNRESET ? BB_EDEAD : BB_ESYS;
		if (r == 0)
			return BB_EDEAD;
		if (bbp_decode(buf, (size_t)r, rep) != BB_OK)
			return BB_EPROTO;
		if (rep->h.seq != req->h.seq)
			continue; /* a late reply to an earlier, timed-out call */
		if (rep->h.op != (req->h.op | BBP_REPLY))
			return BB_EPROTO;
		return BB_OK;
	}
}
