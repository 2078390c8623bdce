/* bbcached's clients: one thread per connection reads requests, one at a
 * time, and answers each (common/proto.h, docs/agent-protocol.md).
 *
 * A FETCH is served from the nearest tier: READY in shm; else filled into
 * shm from the file on NVMe when it is whole there; else one ranged GET of
 * exactly that block from the origin (If-Match its ETag), filled into shm,
 * and the file jumps the prefetch queue.  bbc_get() is single flight: of
 * many readers of one block, the one that gets ref.filling fetches, the
 * others wait inside bbc_get().  A full cache makes the file whole on NVMe
 * and answers DISK: the client reads the file itself. */
#include "config.h"

#define BB_LOG_COMPONENT "bbcached"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/error.h"
#include "common/log.h"
#include "common/proto.h"
#include "shmcache/shmcache.h"
#include "stage/engine.h"

/* How long a reader waits for another's fill of the same block: longer
 * than the engine takes to give up on an origin (its retries are bounded). */
#define FILL_WAIT_MS (300 * 1000)

struct conn {
	int fd;
	struct bb_engine *eng; /* this thread's, for on-demand GETs; made at the first miss */
	unsigned char *in, *out;
};

/* A READ waiting for its bytes while the block arrives (time to first
 * byte: the reader gets its range as soon as it is here, not the block). */
struct early {
	struct conn *c;
	const struct bbp_msg *q; /* the READ */
	uint32_t end;            /* want [q->off, end) of the block */
	int replied;
};

struct block_dst {
	unsigned char *data;
	uint64_t off; /* of the block in the object */
	uint32_t len;
	uint32_t got; /* bytes from the block's start that are here, in order */
	struct early *early;
	int done, rc;
	char errmsg[512];
};

static void reply(struct conn *c, struct bbp_msg *m);

static void early_reply(struct block_dst *b)
{
	struct early *e = b->early;
	struct bbp_msg m = {0};

	m.h.op = BBP_READ | BBP_REPLY;
	m.h.seq = e->q->h.seq;
	m.rc = BB_OK;
	m.u32 = BBP_TIER_INLINE;
	m.text = (const char *)b->data + e->q->off;
	m.text_len = e->end - (uint32_t)e->q->off;
	reply(e->c, &m);
	e->replied = 1;
}

static int block_data(void *arg, const void *buf, size_t n, uint64_t off)
{
	struct block_dst *b = arg;

	if (off < b->off || off - b->off > b->len || n > b->len - (off - b->off))
		return BB_ERANGE; /* a server that sent what we did not ask for */
	memcpy(b->data + (off - b->off), buf, n);
	if (off - b->off == b->got)
		b->got += (uint32_t)n;
	if (b->early && !b->early->replied && b->got >= b->early->end)
		early_reply(b);
	return BB_OK;
}

static void block_reset(void *arg)
{
	((struct block_dst *)arg)->got = 0; /* a retry starts the range over */
}

static void block_done(void *arg, struct bb_xfer_result *r)
{
	struct block_dst *b = arg;

	b->done = 1;
	b->rc = r->rc;
	snprintf(b->errmsg, sizeof(b->errmsg), "%s", r->errmsg);
}

/* [off, off+len) of a POSIX origin file, checking its version (size, mtime,
 * inode as listed) before and after, as stage-in does. */
static int posix_block(const struct dataset *ds, const struct bb_mentry *e, uint64_t off,
		       uint32_t len, void *dst, char *err, size_t errlen)
{
	char src[PATH_MAX + 8192];
	struct stat st;
	int rc = BB_OK;

	snprintf(src, sizeof(src), "%s%s%s", ds->org.base, ds->org.single ? "" : "/",
		 ds->org.single ? "" : e->source);
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", src, strerror(errno));
		return errno == ENOENT ? BB_ESTALE : errno == EACCES ? BB_EPERM : BB_ESYS;
	}
	for (int pass = 0; pass < 2 && rc == BB_OK; pass++) {
		if (fstat(fd, &st) < 0 || !bb_stage_same_version(&st, e)) {
			snprintf(err, errlen, "%s changed on the origin since it was listed", src);
			rc = BB_ESTALE;
			break;
		}
		if (pass == 1)
			break;
		for (uint32_t got = 0; got < len;) {
			ssize_t r = pread(fd, (char *)dst + got, len - got, (off_t)(off + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				snprintf(err, errlen, "reading %s: %s", src,
					 r == 0 ? "file shrank" : strerror(errno));
				rc = r == 0 ? BB_ESTALE : BB_ESYS;
				break;
			}
			got += (uint32_t)r;
		}
	}
	close(fd);
	return rc;
}

static int origin_block(struct conn *c, const struct dataset *ds, const struct bb_mentry *e,
			uint64_t off, uint32_t len, void *dst, struct early *early, char *err,
			size_t errlen)
{
	struct agent *a = &g_agent;
	char url[8192];
	struct bb_xfer_req r;
	int rc;

	if (ds->org.url.scheme == BB_SCHEME_FILE)
		return posix_block(ds, e, off, len, dst, err, errlen);
	if (!c->eng) {
		rc = bb_stage_engine_new(&a->so, 4, &c->eng);
		if (rc != BB_OK) {
			snprintf(err, errlen, "cannot start a transfer engine");
			return rc;
		}
	}
	rc = bb_origin_object_url(&ds->org, e->source, url, sizeof(url));
	if (rc != BB_OK) {
		snprintf(err, errlen, "%s: object URL too long", e->path);
		return rc;
	}
	/* One ranged GET of exactly the block, run to completion here (not
	 * bb_engine_fetch: it takes the callbacks' argument for itself). */
	struct block_dst b = {dst, off, len, 0, early, 0, BB_ESYS, ""};
	bb_origin_request(&ds->org, url, off, len, e->etag, &r);
	r.on_data = block_data;
	r.on_reset = block_reset;
	r.on_done = block_done;
	r.arg = &b;
	r.what = e->path;
	rc = bb_engine_submit(c->eng, &r);
	if (rc == BB_OK) {
		bb_engine_run(c->eng);
		rc = b.done ? b.rc : BB_ESYS;
	}
	if (rc != BB_OK)
		snprintf(err, errlen, "%s", b.errmsg[0] ? b.errmsg : bb_strerror(rc));
	else
		atomic_fetch_add(&a->bytes_origin, len);
	return rc;
}

/* The NVMe copy of e, when it is whole: its final name exists only then. */
static int nvme_block(const struct dataset *ds, const struct bb_mentry *e, uint64_t off,
		      uint32_t len, void *dst)
{
	char path[2 * PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", ds->root, e->path);
	if (!bb_stage_file_complete(path, e))
		return BB_ENOENT;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return BB_ENOENT;
	int rc = pread(fd, dst, len, (off_t)off) == (ssize_t)len ? BB_OK : BB_ESYS;
	close(fd);
	return rc;
}

/* What a client is told of an origin failure: the object changed or went
 * away since it was listed (ESTALE), a local failure (ESYS), else EFILL. */
static int wire_rc(int rc)
{
	if (rc == BB_ESTALE || rc == BB_ENOENT)
		return BB_ESTALE;
	return rc == BB_ESYS || rc == BB_OK ? rc : BB_EFILL;
}

static int lookup(uint64_t fid, uint64_t block, struct dataset **dsp, struct bb_mentry *e,
		  uint32_t *len)
{
	struct agent *a = &g_agent;
	uint32_t d = (uint32_t)(fid >> 32), idx = (uint32_t)fid;

	if (d >= a->n_ds || idx >= a->ds[d].count)
		return BB_ENOENT;
	*dsp = &a->ds[d];
	if (bb_manifest_entry((*dsp)->m, idx, e) != BB_OK || (e->mode & S_IFMT) == S_IFDIR)
		return BB_ENOENT;
	if (block >= e->n_blocks)
		return BB_ENOENT;
	uint64_t off = block * (*dsp)->block;
	*len = (uint32_t)(e->size - off < (*dsp)->block ? e->size - off : (*dsp)->block);
	return BB_OK;
}

/* FETCH, and READ (rq): a READ of a block that comes from the origin is
 * answered from inside the transfer as soon as its range is here
 * (*replied = 1); the block goes on filling into shm. */
static int fetch(struct conn *c, uint64_t fid, uint64_t block, uint32_t *tier,
		 const struct bbp_msg *rq, int *replied)
{
	struct agent *a = &g_agent;
	struct dataset *ds;
	struct bb_mentry e;
	struct bbc_ref ref;
	uint32_t len, d = (uint32_t)(fid >> 32);
	char err[1024] = "";
	int rc;

	*tier = 0;
	rc = lookup(fid, block, &ds, &e, &len);
	if (rc != BB_OK)
		return rc;
	uint64_t off = block * ds->block;
	rc = a->shm ? bbc_get(a->shm, fid, block, len, -1, 0, FILL_WAIT_MS, &ref)
		    : BB_ENOSPC; /* no shm cache at all: /dev/shm was full */
	if (rc == BB_ENOSPC || rc == BB_ETOOBIG) {
		/* No room in shm: the reader reads the NVMe copy itself. */
		rc = agent_ensure_file(a, d, e.idx);
		if (rc == BB_OK) {
			*tier = BBP_TIER_DISK;
			atomic_fetch_add(&a->n_disk, 1);
		}
		return wire_rc(rc);
	}
	if (rc != BB_OK)
		return rc;
	if (!ref.filling) {
		bbc_unpin(a->shm, &ref);
		*tier = BBP_TIER_SHM;
		atomic_fetch_add(&a->n_shm, 1);
		return BB_OK;
	}
	if (nvme_block(ds, &e, off, len, ref.data) == BB_OK) {
		*tier = BBP_TIER_NVME;
		atomic_fetch_add(&a->n_nvme, 1);
	} else {
		/* Not staged yet: this block now, the rest of its file next. */
		agent_prioritize(a, d, e.idx);
		struct early ea = {c, rq, 0, 0};
		if (rq && rq->off < len && rq->len) {
			uint64_t end = rq->off + (rq->len < BBP_MAX_INLINE ? rq->len : BBP_MAX_INLINE);
			ea.end = (uint32_t)(end < len ? end : len);
		}
		rc = origin_block(c, ds, &e, off, len, ref.data, ea.end ? &ea : NULL, err,
				  sizeof(err));
		if (ea.replied) {
			*replied = 1;
			atomic_fetch_add(&a->n_inline, 1);
		}
		if (rc == BB_OK) {
			*tier = BBP_TIER_ORIGIN;
			atomic_fetch_add(&a->n_origin, 1);
		}
	}
	if (rc == BB_OK)
		rc = bbc_fill_commit(a->shm, &ref);
	else
		bbc_fill_abort(a->shm, &ref, wire_rc(rc));
	bbc_unpin(a->shm, &ref);
	if (rc != BB_OK) {
		*tier = 0;
		agent_error(a, "fetch %s/%s block %llu (origin %s): %s", ds->mount, e.path,
			    (unsigned long long)block, bb_manifest_source(ds->m),
			    err[0] ? err : bb_strerror(rc));
		rc = wire_rc(rc);
	}
	return rc;
}

static int file(uint64_t fid)
{
	struct agent *a = &g_agent;
	uint32_t d = (uint32_t)(fid >> 32), idx = (uint32_t)fid;
	struct bb_mentry e;

	if (d >= a->n_ds || idx >= a->ds[d].count ||
	    bb_manifest_entry(a->ds[d].m, idx, &e) != BB_OK || (e.mode & S_IFMT) == S_IFDIR)
		return BB_ENOENT;
	return wire_rc(agent_ensure_file(a, d, idx));
}

static void reply(struct conn *c, struct bbp_msg *m)
{
	size_t n = bbp_encode(m, c->out, BBP_MAX_MSG);
	if (n && send(c->fd, c->out, n, MSG_NOSIGNAL) < 0)
		bb_debug("reply to fd %d: %s", c->fd, strerror(errno));
}

/* A malformed request whose header could be read: BB_EPROTO in a reply of
 * its op (a reply of an unknown op is the header and the rc alone). */
static void reply_eproto(struct conn *c, const unsigned char *h)
{
	struct bbp_msg m = {0};
	uint16_t op = (uint16_t)(h[8] | h[9] << 8);

	m.h.op = (uint16_t)(op | BBP_REPLY);
	m.h.seq = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 |
		  (uint32_t)h[15] << 24;
	m.rc = BB_EPROTO;
	if (bbp_encode(&m, c->out, BBP_MAX_MSG)) {
		reply(c, &m);
		return;
	}
	unsigned char raw[BBP_HDR_SIZE + 4] = {0};
	uint32_t v[6] = {BBP_MAGIC, BBP_VERSION, 0, m.h.seq, 4, 0};
	for (int i = 0; i < 6; i++)
		for (int k = 0; k < 4; k++)
			raw[4 * i + k] = (unsigned char)(v[i] >> (8 * k));
	raw[8] = (unsigned char)m.h.op;
	raw[9] = (unsigned char)(m.h.op >> 8);
	raw[10] = raw[11] = 0;
	raw[24] = (unsigned char)BB_EPROTO;
	if (send(c->fd, raw, sizeof(raw), MSG_NOSIGNAL) < 0)
		bb_debug("reply to fd %d: %s", c->fd, strerror(errno));
}

static void handle(struct conn *c, const struct bbp_msg *q)
{
	struct agent *a = &g_agent;
	struct bbp_msg m = {0};

	m.h.op = (uint16_t)(q->h.op | BBP_REPLY);
	m.h.seq = q->h.seq;
	switch (q->h.op) {
	case BBP_HELLO:
		m.rc = BB_OK;
		m.u32 = BBP_VERSION;
		m.a = a->job;
		break;
	case BBP_FETCH:
		if (q->u32 & BBP_FETCH_NOWAIT) {
			struct dataset *ds;
			struct bb_mentry e;
			uint32_t len;
			m.rc = lookup(q->a, q->b, &ds, &e, &len);
			if (m.rc == BB_OK) {
				agent_prioritize(a, (uint32_t)(q->a >> 32), e.idx);
				atomic_fetch_add(&a->n_nowait, 1);
			}
			break;
		}
		m.rc = fetch(c, q->a, q->b, &m.u32, NULL, NULL);
		if (m.rc != BB_OK)
			atomic_fetch_add(&a->n_fetch_err, 1);
		break;
	case BBP_READ: {
		int replied = 0;
		m.rc = fetch(c, q->a, q->b, &m.u32, q, &replied);
		if (m.rc != BB_OK)
			atomic_fetch_add(&a->n_fetch_err, 1);
		if (replied)
			return; /* the bytes went out while the block arrived */
		break;
	}
	case BBP_FILE:
		m.rc = file(q->a);
		break;
	case BBP_STATUS: {
		char *t = malloc(BBP_MAX_PAYLOAD - 4);
		m.rc = t ? BB_OK : BB_ENOMEM;
		if (t) {
			m.text_len = (uint32_t)agent_status(a, q->u32 & BBP_STATUS_JSON, t,
							    BBP_MAX_PAYLOAD - 4);
			m.text = t;
		}
		reply(c, &m);
		free(t);
		return;
	}
	case BBP_STOP:
		m.rc = BB_OK;
		reply(c, &m);
		bb_info("stop requested by a client");
		atomic_store(&a->stopping, 1);
		if (write(a->wake[1], "s", 1) < 0)
			bb_warn("cannot wake the main loop: %s", strerror(errno));
		return;
	default: /* a reply sent as a request */
		m.rc = BB_EPROTO;
		bb_warn("a client sent op 0x%x, which is not a request", q->h.op);
		break;
	}
	reply(c, &m);
}

void *agent_conn_main(void *arg)
{
	struct agent *a = &g_agent;
	struct conn c = {0};

	c.fd = (int)(intptr_t)arg;
	c.in = malloc(BBP_MAX_MSG);
	c.out = malloc(BBP_MAX_MSG);
	while (c.in && c.out && !atomic_load(&a->stopping)) {
		/* SOCK_SEQPACKET: one recv is one message; MSG_TRUNC gives its
		 * real length, so an oversized one is seen as such. */
		ssize_t n = recv(c.fd, c.in, BBP_MAX_MSG, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		struct bbp_msg q;
		if ((size_t)n > BBP_MAX_MSG || bbp_decode(c.in, (size_t)n, &q) != BB_OK) {
			bb_warn("a malformed request (%zd bytes%s) on fd %d: answered %s", n,
				(size_t)n > BBP_MAX_MSG ? ", oversized" : "", c.fd,
				n >= (ssize_t)BBP_HDR_SIZE ? "BB_EPROTO" : "by closing it");
			if (n < (ssize_t)BBP_HDR_SIZE)
				break;
			reply_eproto(&c, c.in);
			continue;
		}
		if (q.h.op & BBP_REPLY) {
			q.h.op &= (uint16_t)~BBP_REPLY;
			struct bbp_msg m = {0};
			m.h.op = (uint16_t)(q.h.op | BBP_REPLY);
			m.h.seq = q.h.seq;
			m.rc = BB_EPROTO;
			bb_warn("a client sent a reply (op 0x%x) as a request", q.h.op);
			reply(&c, &m);
			continue;
		}
		handle(&c, &q);
	}
	close(c.fd);
	free(c.in);
	free(c.out);
	bb_engine_free(c.eng);
	atomic_fetch_sub(&a->n_conns, 1);
	return NULL;
}
