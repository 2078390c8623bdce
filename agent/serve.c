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
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* One client connection.  One thread serves its requests, one at a time;
 * while a thread finishes a block whose reader already has its bytes (an
 * early READ reply), a spare one waits in recv, so the client's next
 * request is not held up by that block, nor by making or waking a thread. */
struct link {
	int fd;
	pthread_mutex_t lock;
	int threads; /* serving fd, lock */
	int idle;    /* of them, waiting for a request (or about to), lock */
	int misses;  /* origin misses served: a client that missed will again, lock */
};

#define LINK_THREADS 4 /* at most, per connection */

/* One thread serving a link. */
struct conn {
	struct link *l;
	int fd;
	unsigned char *in, *out;
	int background; /* it finishes a block nobody waits for: nice 10, then it leaves */
};

/* Engines idle between misses, their connections to the origins still
 * open: a miss takes the one used last (no new TCP or TLS handshake before
 * its GET), whichever client it comes from, and gives it back when its
 * block is in.  A new process's first miss then costs what a running
 * client's does. */
#define ENGINE_POOL 8
static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bb_engine *g_pool[ENGINE_POOL]; /* g_pool_lock */
static int g_n_pool;                          /* g_pool_lock */

static int engine_get(struct bb_engine **eng)
{
	*eng = NULL;
	pthread_mutex_lock(&g_pool_lock);
	if (g_n_pool)
		*eng = g_pool[--g_n_pool];
	pthread_mutex_unlock(&g_pool_lock);
	return *eng ? BB_OK : bb_stage_engine_new(&g_agent.so, 4, eng);
}

static void engine_put(struct bb_engine *eng)
{
	pthread_mutex_lock(&g_pool_lock);
	if (g_n_pool < ENGINE_POOL) {
		g_pool[g_n_pool++] = eng;
		eng = NULL;
	}
	pthread_mutex_unlock(&g_pool_lock);
	bb_engine_free(eng);
}

/* A READ waiting for its bytes while the block arrives (time to first
 * byte: the reader gets its range as soon as it is here, not the block). */
struct early {
	struct conn *c;
	const struct bbp_msg *q; /* the READ */
	uint32_t end;            /* want [q->off, end) of the block */
	int replied;
	int waiting;             /* counted in agent.n_waiting */
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
static void link_spare(struct link *l, int make);
static void park_fill(void);

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
	atomic_fetch_add(&g_agent.n_inline, 1);
	if (e->waiting) {
		atomic_fetch_sub(&g_agent.n_waiting, 1);
		e->waiting = 0;
	}
	/* The rest of the block goes on arriving in this thread, as background
	 * work (like the prefetch's), while a spare serves the client.  Threads
	 * are made here, where nobody waits for this one (and before it lowers
	 * its priority, which they would inherit). */
	struct link *l = e->c->l;
	link_spare(l, 1);
	park_fill();
	pthread_mutex_lock(&l->lock);
	int spare = l->idle > 0;
	pthread_mutex_unlock(&l->lock);
	/* An unprivileged thread cannot raise its priority back: it leaves
	 * after this block, so only with a spare to take over. */
	if (spare && setpriority(PRIO_PROCESS, (id_t)gettid(), 10) == 0)
		e->c->background = 1;
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
	else if (b->early && b->early->replied)
		agent_yield(&g_agent); /* nobody waits for the rest of this block yet */
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

static int origin_block(const struct dataset *ds, const struct bb_mentry *e, uint64_t off,
			uint32_t len, void *dst, struct early *early, char *err, size_t errlen)
{
	struct agent *a = &g_agent;
	char url[8192];
	struct bb_xfer_req r;
	struct bb_engine *eng;
	int rc;

	if (ds->org.url.scheme == BB_SCHEME_FILE)
		return posix_block(ds, e, off, len, dst, err, errlen);
	rc = bb_origin_object_url(&ds->org, e->source, url, sizeof(url));
	if (rc != BB_OK) {
		snprintf(err, errlen, "%s: object URL too long", e->path);
		return rc;
	}
	rc = engine_get(&eng);
	if (rc != BB_OK) {
		snprintf(err, errlen, "cannot start a transfer engine");
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
	rc = bb_engine_submit(eng, &r);
	/* After the early reply this thread is busy with the block: have a
	 * spare wait for the client's next request by then (woken now, while
	 * the GET is on its way: a woken thread may wait milliseconds for a
	 * CPU on a busy node).  A new thread is made here only for a client
	 * that missed before: a process that reads one block needs none. */
	if (rc == BB_OK && early) {
		struct link *l = early->c->l;
		pthread_mutex_lock(&l->lock);
		int again = l->misses++ > 0;
		pthread_mutex_unlock(&l->lock);
		link_spare(l, again);
	}
	if (rc == BB_OK) {
		bb_engine_run(eng);
		rc = b.done ? b.rc : BB_ESYS;
	}
	engine_put(eng);
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
		struct early ea = {c, rq, 0, 0, 0};
		if (rq && rq->off < len && rq->len) {
			uint64_t end = rq->off + (rq->len < BBP_MAX_INLINE ? rq->len : BBP_MAX_INLINE);
			ea.end = (uint32_t)(end < len ? end : len);
			/* A reader waits for its first bytes: the prefetch holds
			 * its transfers until they are here (prefetch.c). */
			atomic_fetch_add(&a->n_waiting, 1);
			ea.waiting = 1;
		}
		rc = origin_block(ds, &e, off, len, ref.data, ea.end ? &ea : NULL, err,
				  sizeof(err));
		if (ea.waiting)
			atomic_fetch_sub(&a->n_waiting, 1);
		if (ea.replied)
			*replied = 1;
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

/* One message of n bytes in c->in: 0 when the connection is to be closed. */
static int serve_one(struct conn *c, ssize_t n)
{
	struct bbp_msg q;

	if ((size_t)n > BBP_MAX_MSG || bbp_decode(c->in, (size_t)n, &q) != BB_OK) {
		bb_warn("a malformed request (%zd bytes%s) on fd %d: answered %s", n,
			(size_t)n > BBP_MAX_MSG ? ", oversized" : "", c->fd,
			n >= (ssize_t)BBP_HDR_SIZE ? "BB_EPROTO" : "by closing it");
		if (n < (ssize_t)BBP_HDR_SIZE)
			return 0;
		reply_eproto(c, c->in);
		return 1;
	}
	if (q.h.op & BBP_REPLY) {
		q.h.op &= (uint16_t)~BBP_REPLY;
		struct bbp_msg m = {0};
		m.h.op = (uint16_t)(q.h.op | BBP_REPLY);
		m.h.seq = q.h.seq;
		m.rc = BB_EPROTO;
		bb_warn("a client sent a reply (op 0x%x) as a request", q.h.op);
		reply(c, &m);
		return 1;
	}
	handle(c, &q);
	return 1;
}

/* Serve l until the client goes (or, for a thread that is not needed any
 * more, until its request is answered).  The last thread closes it.  1: this
 * thread finished a block in the background (nice 10): it must end. */
static int serve(struct link *l)
{
	struct agent *a = &g_agent;
	struct conn c = {l, l->fd, malloc(BBP_MAX_MSG), malloc(BBP_MAX_MSG), 0};

	while (c.in && c.out && !atomic_load(&a->stopping)) {
		/* SOCK_SEQPACKET: one recv is one message; MSG_TRUNC gives its
		 * real length, so an oversized one is seen as such. */
		ssize_t n = recv(c.fd, c.in, BBP_MAX_MSG, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&l->lock);
		l->idle--;
		pthread_mutex_unlock(&l->lock);
		if (n <= 0 || !serve_one(&c, n))
			break;
		/* Another thread waits for the next request already: this one
		 * is not needed (and a background one must not serve). */
		pthread_mutex_lock(&l->lock);
		int leave = (c.background || l->idle > 0) && l->threads > 1;
		if (!leave)
			l->idle++;
		pthread_mutex_unlock(&l->lock);
		if (leave)
			break;
	}
	free(c.in);
	free(c.out);
	pthread_mutex_lock(&l->lock);
	int last = --l->threads == 0;
	pthread_mutex_unlock(&l->lock);
	if (last) {
		close(l->fd);
		pthread_mutex_destroy(&l->lock);
		free(l);
		atomic_fetch_sub(&a->n_conns, 1);
	}
	return c.background;
}

/* Threads parked for the next spare: taking one is a wake-up, not a
 * clone (tens of microseconds, and more before a new thread first runs on
 * a busy node).  Connection threads park when their client goes. */
#define PARK_MAX 2

struct parked {
	pthread_cond_t cond;
	struct link *l; /* set by link_spare: serve it */
	struct parked *next;
};

static pthread_mutex_t g_park_lock = PTHREAD_MUTEX_INITIALIZER;
static struct parked *g_parked; /* g_park_lock */
static int g_n_parked;          /* parked or on their way, g_park_lock */

/* Serve l (when not NULL), then wait parked for another link, until there
 * are enough parked threads or this one lowered its priority. */
static void serve_and_park(struct link *l)
{
	struct parked p = {.l = l};

	pthread_cond_init(&p.cond, NULL);
	for (;;) {
		if (p.l && serve(p.l))
			break;
		pthread_mutex_lock(&g_park_lock);
		if (p.l && (g_n_parked >= PARK_MAX || atomic_load(&g_agent.stopping))) {
			pthread_mutex_unlock(&g_park_lock);
			break;
		}
		if (p.l) /* a thread from park_fill is counted already */
			g_n_parked++;
		p.l = NULL;
		p.next = g_parked;
		g_parked = &p;
		while (!p.l)
			pthread_cond_wait(&p.cond, &g_park_lock);
		pthread_mutex_unlock(&g_park_lock);
	}
	pthread_cond_destroy(&p.cond);
}

static void *thread_main(void *arg)
{
	serve_and_park(arg);
	return NULL;
}

static int thread_start(struct link *l)
{
	pthread_t t;
	pthread_attr_t at;
	int rc;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 1u << 20);
	rc = pthread_create(&t, &at, thread_main, l);
	pthread_attr_destroy(&at);
	return rc;
}

/* Hand l to a parked thread: 1 when one took it, 0 when none is parked. */
static int unpark(struct link *l)
{
	pthread_mutex_lock(&g_park_lock);
	struct parked *p = g_parked;
	if (p) {
		g_parked = p->next;
		g_n_parked--;
		p->l = l;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&g_park_lock);
	return p != NULL;
}

/* Have PARK_MAX threads parked (made by a thread nobody waits for). */
static void park_fill(void)
{
	pthread_mutex_lock(&g_park_lock);
	int n = PARK_MAX - g_n_parked;
	if (n > 0)
		g_n_parked += n;
	pthread_mutex_unlock(&g_park_lock);
	for (; n > 0; n--)
		if (thread_start(NULL) != 0) {
			pthread_mutex_lock(&g_park_lock);
			g_n_parked -= n;
			pthread_mutex_unlock(&g_park_lock);
			break;
		}
}

/* Make sure a thread of l waits for its next request (when none does and
 * there are fewer than LINK_THREADS): a parked one, else (make) a new one. */
static void link_spare(struct link *l, int make)
{
	pthread_mutex_lock(&l->lock);
	int need = l->idle == 0 && l->threads < LINK_THREADS;
	if (need) { /* counted now: a second call does not add another */
		l->threads++;
		l->idle++;
	}
	pthread_mutex_unlock(&l->lock);
	if (!need)
		return;
	if (unpark(l))
		return;
	if (!make || thread_start(l) != 0) {
		if (make)
			bb_debug("no spare thread for fd %d: its next request waits for the block",
				 l->fd);
		pthread_mutex_lock(&l->lock);
		l->threads--;
		l->idle--;
		pthread_mutex_unlock(&l->lock);
	}
}

static struct link *link_new(int fd)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->fd = fd;
	pthread_mutex_init(&l->lock, NULL);
	l->threads = 1;
	l->idle = 1;
	return l;
}

void *agent_conn_main(void *arg)
{
	struct link *l = link_new((int)(intptr_t)arg);

	if (!l) {
		close((int)(intptr_t)arg);
		atomic_fetch_sub(&g_agent.n_conns, 1);
		return NULL;
	}
	serve_and_park(l);
	return NULL;
}

static void *warm_main(void *arg)
{
	struct agent *a = arg;

	for (uint32_t d = 0; d < a->n_ds && d < ENGINE_POOL / 2 && !atomic_load(&a->stopping); d++) {
		const struct bb_origin *o = &a->ds[d].org;
		struct bb_engine *eng;
		struct bb_xfer_req r;
		struct bb_xfer_result res;
		/* HTTP(S) only: a HEAD of the dataset's URL, whatever it
		 * answers, leaves a kept-alive connection in the engine. */
		if ((o->url.scheme != BB_SCHEME_HTTP && o->url.scheme != BB_SCHEME_HTTPS) ||
		    engine_get(&eng) != BB_OK)
			continue;
		bb_origin_request(o, o->base, 0, 0, NULL, &r);
		r.method = BB_HEAD;
		r.what = a->ds[d].mount;
		if (bb_engine_fetch(eng, &r, &res) != BB_OK)
			bb_debug("warming a connection to the origin of %s: %s", a->ds[d].mount,
				 res.errmsg[0] ? res.errmsg : "failed");
		bb_xfer_result_free(&res);
		engine_put(eng);
	}
	return NULL;
}

void agent_warm_origins(struct agent *a)
{
	pthread_t t;
	pthread_attr_t at;

	/* In a thread of its own: an origin that is down (retries, connect
	 * timeouts) must not hold up the prefetch. */
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 1u << 20);
	if (pthread_create(&t, &at, warm_main, a) != 0)
		bb_debug("no thread to warm connections to the origins");
	pthread_attr_destroy(&at);
}

void agent_serve_start(void)
{
	park_fill();
}

int agent_conn_start(int fd)
{
	struct link *l = link_new(fd);

	if (!l)
		return BB_ENOMEM;
	if (!unpark(l) && thread_start(l) != 0) {
		pthread_mutex_destroy(&l->lock);
		free(l);
		return BB_ESYS;
	}
	park_fill(); /* for the next client, while this one is served */
	return BB_OK;
}
