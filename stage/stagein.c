/* Stage-in: list the source into a manifest, then move every file through
 * the engine (http, s3) or POSIX reads (file), verify it, and rename it into
 * place.  A file exists under its final name only when complete and
 * verified; an interrupted stage-in resumes by skipping those. */
#include "config.h"

#define BB_LOG_COMPONENT "stage-in"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "stage/manifest.h"
#include "stage/md5x.h"
#include "stage/origin.h"
#include "stage/stage.h"
#include "stage/stage_util.h"
#include "shmcache/shmcache.h"
#include "shmcache/topology.h"

#define SMALL_CHUNK (8u << 20)
#define HASH_PIECE (1u << 20)    /* the hashing thread reads this much of a file at a time */
#define HASH_AHEAD (32u << 20)   /* ...and waits for other files to have as much, unless one has this */
#define MEM_FILE_MAX (1u << 20)   /* files up to this size are kept in memory... */
#define MEM_BUDGET (64u << 20)    /* ...while fewer bytes than this are, and written by the writer thread */
#define RANGE_BLOCK (256u << 10)  /* the range writer's blocks (one range's bytes each)... */
#define RANGE_POOL (64u << 20)    /* ...of which at most this many bytes exist */

struct file_job;

/* The argument of one request's callbacks: its file and which range. */
struct part_ref {
	struct file_job *j;
	uint32_t part;
};

/* A file of several ranges whose digest the hashing thread computes.
 * Fields are the engine thread's, or the hashing thread's while the job is
 * in hash_queue.jobs, unless marked "q->lock". */
struct hash_job {
	struct hash_job *next;    /* q->lock: in q->jobs (oldest first), then in q->done */
	struct file_job *j;
	int fd;                   /* j's temporary file, open until j is handed back */
	uint64_t size, chunk;
	uint32_t parts;
	uint8_t *part_done;       /* engine thread: range p completed */
	uint32_t wm_part;         /* engine thread: ranges [0, wm_part) completed */
	uint64_t final;           /* q->lock: bytes [0, final) are final (their requests completed) */
	int all_in;               /* q->lock: every request of j has ended */
	int failed;               /* q->lock: j failed; stop hashing it */
	int md5_on;               /* MD5 wanted: md5 is the digest */
	struct bb_md5 md5;        /* hashing thread (several files at once: bb_md5_update_lanes) */
	EVP_MD_CTX *sha256;       /* hashing thread */
	uint64_t hashed;          /* hashing thread: bytes [0, hashed) went into the digests */
	int rc;                   /* hashing thread: BB_OK, or reading back failed */
	int read_errno;
	unsigned char md5_d[16], sha256_d[32]; /* set when handed back complete */
};

/* One hashing thread per run, started with the first file that needs it.
 * It hashes up to BB_MD5_LANES files side by side, oldest files first; a
 * hashed file goes on q->done and the engine's thread is woken to verify
 * and rename it (hash_drain). */
struct hash_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* more bytes final, a file ended, or quit */
	pthread_t thread;
	int started, broken;      /* broken: could not start; files hash at their end */
	int quit;                 /* lock */
	struct hash_job *jobs;    /* lock */
	struct hash_job *done;    /* lock */
	uint32_t pending;         /* engine thread: handed to the thread, not back yet */
	struct bb_engine *eng;
	unsigned lanes;           /* files hashed in one pass (bb_md5_lanes()) */
	char *buf;                /* hashing thread: lanes * HASH_PIECE */
};

/* The writer thread: small files are received into memory and written,
 * dated and renamed there (open, write, futimens, close, rename: most of
 * the work per small file is these system calls), while the engine's
 * thread goes on receiving.  Started with the first such file. */
struct write_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* a file to write, or quit */
	pthread_t thread;
	int started, broken;      /* broken: could not start; files go to disk directly */
	int quit;                 /* lock */
	struct file_job *todo, **todo_tail; /* lock: to write, in order */
	struct file_job *done;    /* lock: written (or failed), for the engine's thread */
	uint32_t pending;         /* engine thread: handed to the thread, not back yet */
	struct bb_engine *eng;
	int link_mode;            /* writer thread: how an unnamed file gets its name (LINK_*) */
	char last_dir[PATH_MAX];  /* writer thread: the directory it made last */
};

/* How the writer thread names a file it wrote unnamed (O_TMPFILE). */
enum {
	LINK_EMPTY_PATH = 0,      /* linkat(fd, "", AT_EMPTY_PATH): needs CAP_DAC_READ_SEARCH */
	LINK_PROC,                /* linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW) */
	LINK_NONE,                /* neither works here: a named temporary and rename() */
};

/* The range writer: the engine's thread copies the received bytes of a
 * file of several ranges into blocks, and a thread writes them (pwrite at
 * their offsets, in FIFO order), so that one thread no longer receives and
 * writes every byte (writing was about 70% of its time on 4 x 1 GiB from
 * nginx: docs/origins.md, section 5).  A block holds contiguous bytes of
 * one range; a range's end marker follows its last block through the FIFO,
 * and only then does the range count as complete (part_done). */
struct range_block {
	struct range_block *next; /* q->lock: in the FIFO, the free list or q->done */
	struct range_block *fnext, **fprev; /* engine thread: in q->filling */
	struct part_ref *ref;     /* its file and range */
	uint64_t off;             /* where data goes in the file */
	size_t len;
	char *data;               /* RANGE_BLOCK bytes; NULL: the range's end marker */
};

/* One range of a file the range writer writes.  Engine thread's, unless
 * marked "q->lock". */
struct range_state {
	struct range_block *fill; /* the block being filled, or NULL */
	struct range_block end;   /* the end marker, queued by part_done */
	int written;              /* the marker came back: part_done does the rest */
	int rc;                   /* q->lock: BB_OK, or why a pwrite of the range failed */
	int res_rc;               /* the request's result, kept for part_done */
	char errmsg[512];
};

struct range_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* a block or marker to write, or quit */
	pthread_cond_t space;     /* a block is free again */
	pthread_t thread;
	int started, broken;      /* broken: could not start; ranges are written directly */
	int quit;                 /* lock */
	struct range_block *head, **tail; /* lock: the FIFO */
	struct range_block *free; /* lock */
	struct range_block *done, **done_tail; /* lock: markers reached, in order */
	int busy;                 /* lock: the thread is writing a block it took */
	int want_space;           /* lock: the engine's thread waits on space */
	unsigned n_blocks;        /* engine thread: blocks allocated */
	int no_alloc;             /* engine thread: malloc failed, make do with n_blocks */
	struct range_block *filling; /* engine thread: blocks being filled */
	uint32_t pending;         /* engine thread: markers queued, not back yet */
	struct bb_engine *eng;
};

/* A file in flight.  Owned by the engine's thread, except while a helper
 * thread has it (in its queue, until it hands it back). */
struct file_job {
	struct stage_run *run;
	struct file_job *next;    /* a helper queue's list, or the free slots */
	uint32_t idx;             /* manifest entry */
	int fd;
	uint32_t parts_left;
	int failed;
	int rc;
	uint64_t size;
	int64_t mtime_ns;
	char *mem;                /* a small file's bytes (mem_buf, kept in memory), or NULL */
	struct part_ref one;      /* the refs of a single-request file */
	struct part_ref *refs;    /* the refs of a file of several ranges */
	struct range_state *rs;   /* its ranges, when the range writer writes them (else NULL) */
	/* Single-request files: the digests stream with the data. */
	EVP_MD_CTX *md5, *sha256;
	int stream_ok;            /* the digests saw every byte, in order */
	uint64_t stream_pos;
	struct hash_job *hj;      /* several ranges: the hashing thread's part */
	uint32_t parts;           /* ranges (requests) of the file */
	uint32_t next_part;       /* ranges [0, next_part) went to the engine (feed) */
	struct file_job *feed_prev, *feed_next; /* in run's feed list */
	int on_feed;
	/* Not cleared when a slot is reused (written before they are read): */
	char final[PATH_MAX];
	char *mem_buf;            /* the slot's buffer for small files, kept for the next */
	size_t mem_cap;
	char tmp[PATH_MAX];
	char url[8192];
	char err[600];
};

struct stage_run {
	const struct bb_stage_opts *o;
	struct bb_stage_summary *s;
	struct bb_origin org;
	struct bb_manifest *m;
	struct bb_progress prog;
	struct file_job *slots;   /* the files in flight: 2 * max_active slots */
	struct file_job *free_slots;
	int first_rc;             /* why the first failed file failed */
	uint64_t mem_bytes;       /* bytes of the slots' buffers (mem_cap) */
	uint32_t active_files;
	uint32_t next;            /* next manifest entry to start */
	uint32_t count;
	uint64_t chunk;
	char root[PATH_MAX];      /* destination directory (root of the manifest) */
	struct bbc_cache *shm;    /* the job's node cache, or NULL (not owned) */
	int shm_off;              /* it was full: stop loading it */
	uint64_t fid_base;        /* shm key of entry e: fid_base + e */
	const struct bb_stage_xfer *x; /* hooks (bbcached) */
	int cancelled;            /* x->stop said so: the engine is cancelled */
	uint32_t ticks;           /* data callbacks, to ask x->next now and then */
	uint32_t end;             /* entries [next, end) start in order */
	int prio;                 /* the file starting now is one a reader waits for */
	uint32_t block;           /* manifest block size */
	uint64_t no_sha;          /* verify=sha256 asked, no SHA-256 known */
	uint32_t max_active;      /* files open at once */
	int fresh_root;           /* this run created root: no file under it to resume */
	int pumping;
	char last_dir[PATH_MAX];  /* the directory open_tmp made last */
	struct hash_queue hq;
	struct write_queue wq;
	struct range_queue rq;
	struct file_job *feed_head, *feed_tail; /* files with ranges still to send, in turn */
	int feed_max;             /* send while fewer requests than this are in the engine */
	int few_cpus;             /* fewer than 4 online: no range writer for MD5-checked files */
	int feeding;
};

static void pump(struct stage_run *run);
static void feed(struct stage_run *run);
static void part_done(void *arg, struct bb_xfer_result *r);
static void start_file(struct stage_run *run, uint32_t idx);
static void file_finish(struct file_job *j);
static void file_done(struct file_job *j, const struct bb_mentry *e);
static void writer_push(struct write_queue *q, struct file_job *j);
static int range_data(struct file_job *j, struct part_ref *ref, const char *buf, size_t n,
		      uint64_t off);
static void range_reset(struct file_job *j, struct part_ref *ref);
static int range_end(struct part_ref *ref, const struct bb_xfer_result *r);
static void part_done(void *arg, struct bb_xfer_result *r);
static void verify_digests(struct file_job *j, const struct bb_mentry *e);
static int make_dir(struct file_job *j, char *last_dir);
static int open_tmp(struct file_job *j, char *last_dir);

/* Load a verified file into the shm cache, block by block (single flight:
 * a block someone else is loading is waited for, not loaded twice).  A
 * full cache stops the loading, not the stage-in: the file is on disk. */
static void load_shm(struct stage_run *run, struct file_job *j, const struct bb_mentry *e)
{
	for (uint64_t b = 0; run->shm && !run->shm_off && b < e->n_blocks; b++) {
		uint64_t off = b * run->block;
		uint32_t len = (uint32_t)(e->size - off < run->block ? e->size - off : run->block);
		struct bbc_ref ref;
		int rc = bbc_get(run->shm, run->fid_base + j->idx, b, len, -1, 0, 60000, &ref);
		if (rc != BB_OK) {
			bb_warn("shm cache: %s block %llu: %s; the rest stays on disk only", e->path,
				(unsigned long long)b, bb_strerror(rc));
			if (rc == BB_ENOSPC || rc == BB_ETOOBIG)
				run->shm_off = 1;
			return;
		}
		if (ref.filling) {
			if (pread(j->fd, ref.data, len, (off_t)off) == (ssize_t)len)
				bbc_fill_commit(run->shm, &ref);
			else
				bbc_fill_abort(run->shm, &ref, BB_ESYS);
		}
		bbc_unpin(run->shm, &ref);
	}
}

int bb_stage_same_version(const struct stat *st, const struct bb_mentry *e)
{
	return (uint64_t)st->st_size == e->size &&
	       (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec == e->mtime_ns &&
	       (!e->inode || st->st_ino == e->inode);
}

/* Is a file already there, complete (resume)?  Size and mtime as we set them. */
int bb_stage_file_complete(const char *path, const struct bb_mentry *e)
{
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size)
		return 0;
	int64_t ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return e->mtime_ns == 0 || ns == e->mtime_ns;
}

/* S3 ETags of single-part uploads are the MD5 of the object. */
static int etag_is_md5(const char *etag)
{
	if (strlen(etag) != 32)
		return 0;
	for (int i = 0; i < 32; i++)
		if (!((etag[i] >= '0' && etag[i] <= '9') || (etag[i] >= 'a' && etag[i] <= 'f')))
			return 0;
	return 1;
}

/* The digests of a file (either may be NULL: not wanted): start them
 * (1 when both started), and add bytes to them. */
static int digests_init(EVP_MD_CTX *md5, EVP_MD_CTX *sha256)
{
	return (!md5 || EVP_DigestInit_ex(md5, EVP_md5(), NULL)) &&
	       (!sha256 || EVP_DigestInit_ex(sha256, EVP_sha256(), NULL));
}

static void digests_update(EVP_MD_CTX *md5, EVP_MD_CTX *sha256, const void *buf, size_t n)
{
	if (md5)
		EVP_DigestUpdate(md5, buf, n);
	if (sha256)
		EVP_DigestUpdate(sha256, buf, n);
}

/* Which digests verify entry e: MD5 against an S3 single-part ETag, SHA-256
 * against the manifest's. */
static int wants_md5(const struct stage_run *run, const struct bb_mentry *e)
{
	return run->o->verify == BB_VERIFY_ETAG && run->org.url.scheme == BB_SCHEME_S3 &&
	       etag_is_md5(e->etag);
}

static int wants_sha256(const struct stage_run *run, const struct bb_mentry *e)
{
	return run->o->verify != BB_VERIFY_NONE && e->sha256;
}

static int file_data(void *arg, const void *buf, size_t n, uint64_t off)
{
	struct file_job *j = ((struct part_ref *)arg)->j;
	struct stage_run *run = j->run;
	size_t done = 0;

	if (run->x && run->x->hold)
		run->x->hold(run->x->arg);
	if (run->x && run->x->stop && run->x->stop(run->x->arg)) {
		if (!run->cancelled) {
			run->cancelled = 1;
			bb_engine_cancel(run->org.eng);
		}
		return BB_EINVAL;
	}
	/* A reader waits for a file while big ones flow: start it now, not
	 * when the next file ends (pump starts it even in a full window). */
	if (run->x && run->x->next && ++run->ticks % 32 == 0)
		pump(run);
	if (j->rs) /* the range writer writes it */
		return range_data(j, arg, buf, n, off);
	if (j->mem) {
		if (off > j->size || n > j->size - off)
			return BB_ERANGE; /* the engine holds bodies to the listed size */
		memcpy(j->mem + off, buf, n);
		done = n;
	}
	while (done < n) {
		ssize_t w = pwrite(j->fd, (const char *)buf + done, n - done, (off_t)(off + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == ENOSPC || errno == EDQUOT ? BB_ENOSPC : BB_ESYS;
		}
		done += (size_t)w;
	}
	if (j->stream_ok) {
		if (off == j->stream_pos) {
			digests_update(j->md5, j->sha256, buf, n);
			j->stream_pos += n;
		} else {
			j->stream_ok = 0; /* out of order: hash the file at the end */
		}
	}
	bb_progress_bytes(&j->run->prog, n);
	return BB_OK;
}

static void file_reset(void *arg)
{
	struct file_job *j = ((struct part_ref *)arg)->j;

	if (j->rs)
		range_reset(j, arg);
	/* A retry rewrites the object; the streaming digests start over.  (A
	 * range of a larger file needs nothing: the hashing thread takes only
	 * ranges whose request completed, and those are never retried.) */
	if (j->md5 || j->sha256) {
		digests_init(j->md5, j->sha256);
		j->stream_pos = 0;
		j->stream_ok = 1;
	}
}

/* ---- the hashing thread --------------------------------------------------------
 * The ranges of a large object arrive out of order, so its digest cannot
 * stream with the data.  Hashing the file at its end, in the engine's
 * thread, stopped every transfer for about 1.5 s per GiB; instead a thread
 * hashes each such file from its temporary (just written, so in the page
 * cache) as the prefix of completed ranges grows, and hands the file back
 * right after its last range.  Only bytes of completed requests are read:
 * a request being retried rewrites its range, a completed one never does
 * (and the engine never writes past a range), so the digest covers exactly
 * the bytes the file keeps.  The file is verified and renamed in the
 * engine's thread (file_finish), as every other file. */

/* The files of q->jobs to hash now (up to q->lanes, into lane[]): those
 * with HASH_PIECE bytes final and not hashed, or their last bytes.  0 when
 * it is better to wait: other files still to hash will soon have bytes
 * too (the ranges go out to the files in turn: feed), and MD5 costs little
 * more for eight files than for one -- unless one file is HASH_AHEAD
 * ahead, or a file's last bytes are in. */
static unsigned hash_pick(struct hash_queue *q, struct hash_job **lane)
{
	unsigned n = 0, others = 0;
	int now = 0;

	for (struct hash_job *h = q->jobs; h; h = h->next) {
		if (h->failed || h->rc != BB_OK || h->hashed == h->size)
			continue;
		uint64_t ready = h->final - h->hashed;
		if (n < q->lanes && (ready >= HASH_PIECE || (ready && h->final == h->size))) {
			lane[n++] = h;
			now |= ready >= HASH_AHEAD || h->final == h->size;
		} else {
			others++;
		}
	}
	return n && (now || !others || n == q->lanes || q->quit) ? n : 0;
}

static void *hasher_main(void *arg)
{
	struct hash_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct hash_job *lane[BB_MD5_LANES], *h, **pp;
		uint64_t off[BB_MD5_LANES];
		size_t len[BB_MD5_LANES];
		unsigned n;
		int back = 0;

		/* Hand back the files whose every request ended and that are
		 * hashed (or failed). */
		for (pp = &q->jobs; (h = *pp);) {
			if (!h->all_in || (!h->failed && h->rc == BB_OK && h->hashed < h->size)) {
				pp = &h->next;
				continue;
			}
			*pp = h->next;
			if (!h->failed && h->rc == BB_OK) {
				if (h->md5_on)
					bb_md5_final(&h->md5, h->md5_d);
				if (h->sha256)
					EVP_DigestFinal_ex(h->sha256, h->sha256_d, NULL);
			}
			h->next = q->done;
			q->done = h;
			back = 1;
		}
		if (back) {
			pthread_mutex_unlock(&q->lock);
			bb_engine_wakeup(q->eng);
			pthread_mutex_lock(&q->lock);
			continue;
		}
		n = hash_pick(q, lane);
		if (!n) {
			if (q->quit)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		for (unsigned i = 0; i < n; i++) {
			uint64_t ready = lane[i]->final - lane[i]->hashed;
			off[i] = lane[i]->hashed;
			len[i] = ready < HASH_PIECE ? (size_t)ready : HASH_PIECE;
		}
		pthread_mutex_unlock(&q->lock);
		struct bb_md5 *ctx[BB_MD5_LANES];
		const unsigned char *data[BB_MD5_LANES];
		size_t dlen[BB_MD5_LANES];
		unsigned nm = 0;
		for (unsigned i = 0; i < n; i++) {
			h = lane[i];
			char *b = q->buf + (size_t)i * HASH_PIECE;
			ssize_t r = pread(h->fd, b, len[i], (off_t)off[i]);
			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				h->rc = BB_ESYS;
				h->read_errno = r == 0 ? EIO : errno;
				continue;
			}
			if (h->md5_on) {
				ctx[nm] = &h->md5;
				data[nm] = (const unsigned char *)b;
				dlen[nm++] = (size_t)r;
			}
			if (h->sha256)
				EVP_DigestUpdate(h->sha256, b, (size_t)r);
			h->hashed += (uint64_t)r;
		}
		bb_md5_update_lanes(ctx, data, dlen, nm);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* A helper thread (the hashing or the writer thread) with its lock and
 * condition: 0 when it runs, -1 (nothing left initialised) when not. */
static int helper_start(pthread_mutex_t *lock, pthread_cond_t *cond, pthread_t *t,
			void *(*fn)(void *), void *arg)
{
	if (pthread_mutex_init(lock, NULL) != 0)
		return -1;
	if (pthread_cond_init(cond, NULL) != 0) {
		pthread_mutex_destroy(lock);
		return -1;
	}
	if (pthread_create(t, NULL, fn, arg) != 0) {
		pthread_cond_destroy(cond);
		pthread_mutex_destroy(lock);
		return -1;
	}
	return 0;
}

/* Tell a helper thread to quit (*quit, under lock), wait for it, and
 * destroy its lock and condition. */
static void helper_stop(pthread_mutex_t *lock, pthread_cond_t *cond, pthread_t t, int *quit)
{
	pthread_mutex_lock(lock);
	*quit = 1;
	pthread_cond_signal(cond);
	pthread_mutex_unlock(lock);
	pthread_join(t, NULL);
	pthread_cond_destroy(cond);
	pthread_mutex_destroy(lock);
}

static int hasher_start(struct hash_queue *q, struct bb_engine *eng)
{
	if (q->started || q->broken)
		return q->started ? BB_OK : BB_ESYS;
	q->eng = eng;
	q->lanes = bb_md5_lanes();
	q->buf = malloc((size_t)q->lanes * HASH_PIECE);
	if (!q->buf || helper_start(&q->lock, &q->cond, &q->thread, hasher_main, q) != 0)
		goto broken;
	q->started = 1;
	return BB_OK;
broken:
	bb_debug("no hashing thread; large files are hashed when complete");
	free(q->buf);
	q->buf = NULL;
	q->broken = 1;
	return BB_ESYS;
}

/* After the engine's last request: nothing is left with the thread. */
static void hasher_stop(struct hash_queue *q)
{
	if (!q->started)
		return;
	helper_stop(&q->lock, &q->cond, q->thread, &q->quit);
	free(q->buf);
	q->buf = NULL;
	q->started = 0;
}

static void hash_job_free(struct hash_job *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->sha256);
	free(h->part_done);
	free(h);
}

/* Give file j of `parts` ranges to the hashing thread; NULL when that
 * cannot be (file_finish then hashes the file itself). */
static struct hash_job *hash_job_new(struct file_job *j, const struct bb_mentry *e,
				     uint32_t parts, int md5, int sha256)
{
	struct stage_run *run = j->run;
	struct hash_queue *q = &run->hq;
	struct hash_job *h;

	if (hasher_start(q, run->org.eng) != BB_OK || !(h = calloc(1, sizeof(*h))))
		return NULL;
	h->j = j;
	h->fd = j->fd;
	h->size = e->size;
	h->chunk = run->chunk;
	h->parts = parts;
	h->part_done = calloc(parts, 1);
	h->md5_on = md5;
	bb_md5_init(&h->md5);
	h->sha256 = sha256 ? EVP_MD_CTX_new() : NULL;
	if (!h->part_done || (sha256 && !h->sha256) || !digests_init(NULL, h->sha256)) {
		hash_job_free(h);
		return NULL;
	}
	pthread_mutex_lock(&q->lock);
	struct hash_job **pp = &q->jobs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = h;
	pthread_mutex_unlock(&q->lock);
	q->pending++;
	return h;
}

/* Range p of h's file ended (ok: its request completed). */
static void hash_part_done(struct hash_queue *q, struct hash_job *h, uint32_t p, int ok)
{
	uint32_t w = h->wm_part;

	if (!ok) {
		pthread_mutex_lock(&q->lock);
		h->failed = 1;
		pthread_mutex_unlock(&q->lock);
		return;
	}
	h->part_done[p] = 1;
	while (w < h->parts && h->part_done[w])
		w++;
	if (w == h->wm_part)
		return;
	h->wm_part = w;
	pthread_mutex_lock(&q->lock);
	h->final = w == h->parts ? h->size : (uint64_t)w * h->chunk;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Every request of h's file has ended: the thread hands it back when hashed. */
static void hash_all_in(struct hash_queue *q, struct hash_job *h, int failed)
{
	pthread_mutex_lock(&q->lock);
	h->all_in = 1;
	if (failed)
		h->failed = 1;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* The engine's drain hook: finish the files the thread handed back. */
static unsigned hash_drain(void *arg)
{
	struct stage_run *run = arg;
	struct hash_queue *q = &run->hq;
	struct hash_job *h;

	if (!q->pending)
		return 0;
	pthread_mutex_lock(&q->lock);
	h = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->lock);
	while (h) {
		struct hash_job *next = h->next;
		q->pending--;
		file_finish(h->j);
		h = next;
	}
	return q->pending;
}

static void job_fail(struct file_job *j, int rc, const char *msg)
{
	if (!j->failed) {
		j->failed = 1;
		j->rc = rc;
		snprintf(j->err, sizeof(j->err), "%s", msg);
	}
}

/* Give the complete, verified temporary of j its mtime and final name;
 * closes j->fd. */
static void date_and_rename(struct file_job *j)
{
	struct timespec ts[2] = {{0, UTIME_OMIT}, {j->mtime_ns / 1000000000, j->mtime_ns % 1000000000}};

	if (j->mtime_ns)
		futimens(j->fd, ts);
	if (close(j->fd) < 0)
		job_fail(j, BB_ESYS, "close failed");
	j->fd = -1;
	if (!j->failed && rename(j->tmp, j->final) < 0) {
		char msg[PATH_MAX + 100];
		snprintf(msg, sizeof(msg), "cannot rename into %s: %s", j->final, strerror(errno));
		job_fail(j, BB_ESYS, msg);
	}
}

/* ---- the writer thread ---------------------------------------------------------- */

/* Write j's bytes (j->mem) to j->fd; BB_OK or j failed. */
static int write_mem(struct file_job *j)
{
	uint64_t done = 0;

	while (done < j->size) {
		ssize_t w = write(j->fd, j->mem + done, (size_t)(j->size - done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			char msg[PATH_MAX + 100];
			int nospc = errno == ENOSPC || errno == EDQUOT;
			snprintf(msg, sizeof(msg), "%s: %s", j->final,
				 nospc ? "no space left" : strerror(errno));
			job_fail(j, nospc ? BB_ENOSPC : BB_ESYS, msg);
			return j->rc;
		}
		done += (uint64_t)w;
	}
	return BB_OK;
}

/* Give the unnamed file j->fd the name `path` (LINK_* in *mode, which
 * moves on when this system refuses a way); 0 or -1 with errno. */
static int link_unnamed(int fd, const char *path, int *mode)
{
	char proc[64];

	if (*mode == LINK_EMPTY_PATH) {
		if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
			return 0;
		if (errno != ENOENT && errno != EPERM)
			return -1;
		*mode = LINK_PROC; /* without CAP_DAC_READ_SEARCH: ENOENT */
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/* The fast way for a verified file in memory: write it to an unnamed file
 * (O_TMPFILE) in its directory, date it, and link it under its final name.
 * No temporary name is made, looked up, renamed or left behind (a failed
 * or killed write leaves nothing); it costs the file system about a sixth
 * less than a named temporary and rename() (10,000 files of 100 KiB).
 * 1 when the file was handled (staged or failed), 0 when this system
 * cannot do it (q->link_mode is then LINK_NONE): use a named temporary. */
static int write_unnamed(struct write_queue *q, struct file_job *j)
{
	const char *slash = strrchr(j->final, '/');
	char dir[PATH_MAX], msg[PATH_MAX + 100];
	struct timespec ts[2] = {{0, UTIME_OMIT}, {j->mtime_ns / 1000000000, j->mtime_ns % 1000000000}};

	if (make_dir(j, q->last_dir) != BB_OK) {
		j->failed = 1; /* make_dir said why, in j->err */
		j->rc = BB_ESYS;
		return 1;
	}
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - j->final), j->final);
	j->fd = open(dir[0] ? dir : "/", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		if (errno == ENOSPC || errno == EDQUOT) {
			snprintf(msg, sizeof(msg), "%s: no space left", j->final);
			job_fail(j, BB_ENOSPC, msg);
			return 1;
		}
		q->link_mode = LINK_NONE; /* EOPNOTSUPP, EISDIR (old kernel), ... */
		return 0;
	}
	if (write_mem(j) != BB_OK)
		goto out; /* closing the unnamed file frees it */
	if (j->mtime_ns)
		futimens(j->fd, ts);
	if (link_unnamed(j->fd, j->final, &q->link_mode) == 0)
		goto out;
	if (errno == EEXIST) {
		/* A file is there (resume: its version changed): replace it in
		 * one step, through a temporary name, as open_tmp's files. */
		snprintf(j->tmp, sizeof(j->tmp), "%s/.%s.bbtmp", dir, slash + 1);
		unlink(j->tmp);
		if (link_unnamed(j->fd, j->tmp, &q->link_mode) == 0) {
			if (rename(j->tmp, j->final) == 0) {
				j->tmp[0] = '\0';
				goto out;
			}
			snprintf(msg, sizeof(msg), "cannot rename into %s: %s", j->final, strerror(errno));
			job_fail(j, BB_ESYS, msg); /* file_done unlinks j->tmp */
			goto out;
		}
		j->tmp[0] = '\0';
	}
	if (q->link_mode == LINK_PROC && (errno == ENOENT || errno == EPERM || errno == EACCES)) {
		/* No /proc either: this file and the next go the named way. */
		q->link_mode = LINK_NONE;
		close(j->fd);
		j->fd = -1;
		return 0;
	}
	snprintf(msg, sizeof(msg), "cannot link into %s: %s", j->final, strerror(errno));
	job_fail(j, errno == ENOSPC ? BB_ENOSPC : BB_ESYS, msg);
out:
	if (close(j->fd) < 0 && !j->failed) {
		unlink(j->final);
		job_fail(j, BB_ESYS, "close failed");
	}
	j->fd = -1;
	return 1;
}

/* Verify j's bytes (j->mem); write them to disk under its final name
 * (write_unnamed, else a temporary, dated and renamed). */
static void write_mem_file(struct write_queue *q, struct file_job *j)
{
	struct bb_mentry e;
	int rc;

	bb_manifest_entry(j->run->m, j->idx, &e); /* the mapping is read only */
	verify_digests(j, &e);
	if (j->failed)
		return; /* nothing was written */
	if (q->link_mode != LINK_NONE && write_unnamed(q, j))
		return;
	rc = open_tmp(j, q->last_dir);
	if (rc != BB_OK) {
		j->failed = 1;
		j->rc = rc;
		return;
	}
	if (write_mem(j) == BB_OK)
		date_and_rename(j);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

static void *writer_main(void *arg)
{
	struct write_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct file_job *j = q->todo;
		if (!j) {
			if (q->quit)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		q->todo = j->next;
		if (!q->todo)
			q->todo_tail = &q->todo;
		pthread_mutex_unlock(&q->lock);
		write_mem_file(q, j);
		pthread_mutex_lock(&q->lock);
		/* Wake the engine's thread only for the first file on an
		 * empty list: until it takes the list (run_drain), that
		 * wakeup is pending and it takes the later files too. */
		int wake = !q->done;
		j->next = q->done;
		q->done = j;
		pthread_mutex_unlock(&q->lock);
		if (wake)
			bb_engine_wakeup(q->eng);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static int writer_start(struct write_queue *q, struct bb_engine *eng)
{
	if (q->started || q->broken)
		return q->started ? BB_OK : BB_ESYS;
	q->eng = eng;
	q->todo = NULL;
	q->todo_tail = &q->todo;
	if (helper_start(&q->lock, &q->cond, &q->thread, writer_main, q) != 0)
		goto broken;
	q->started = 1;
	return BB_OK;
broken:
	bb_debug("no writer thread; small files are written as they arrive");
	q->broken = 1;
	return BB_ESYS;
}

static void writer_stop(struct write_queue *q)
{
	if (!q->started)
		return;
	helper_stop(&q->lock, &q->cond, q->thread, &q->quit);
	q->started = 0;
}

static void writer_push(struct write_queue *q, struct file_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&q->lock);
	*q->todo_tail = j;
	q->todo_tail = &j->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	q->pending++;
}

/* ---- the range writer ------------------------------------------------------------
 * Receiving and writing (pwrite into the page cache) every byte of a large
 * object cost the engine's thread one core on a fast origin; writing was
 * most of it.  The engine's thread now copies the bytes of each range into
 * a block of its own (RANGE_BLOCK), queues the block when full, and a
 * thread writes the queue in order.  When no block is free the engine's
 * thread waits (the pool is the bound on memory; a slow disk slows the
 * transfers, as before): it never writes itself, since that could overtake
 * queued bytes of the same range.  A range's end marker follows its last
 * block; the thread hands it back (range_drain) and only then is the range
 * complete: its bytes are in the file before part_done tells the hashing
 * thread or file_finish.  A retry (range_reset) drops the partial block of
 * the failed attempt; its queued blocks are written before the retry's (the
 * FIFO), which rewrites the whole range.  Blocks of RANGE_BLOCK rather than
 * 1 MiB: every range in flight holds one partly filled block, and with
 * --jobs 64 these should be a small part of the pool (measured, 1 MiB
 * blocks also cost about twice the system time). */

static void *range_writer_main(void *arg)
{
	struct range_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct range_block *b = q->head;
		if (!b) {
			if (q->quit)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		q->head = b->next;
		if (!q->head)
			q->tail = &q->head;
		b->next = NULL;
		struct range_state *rs = &b->ref->j->rs[b->ref->part];
		if (!b->data) { /* the range's end: every block before it is written */
			int wake = !q->done;
			*q->done_tail = b;
			q->done_tail = &b->next;
			pthread_mutex_unlock(&q->lock);
			if (wake) /* else the engine's thread has not taken the list yet */
				bb_engine_wakeup(q->eng);
			pthread_mutex_lock(&q->lock);
			continue;
		}
		int rc = rs->rc, fd = b->ref->j->fd; /* a range that failed writes no more */
		q->busy = 1;
		pthread_mutex_unlock(&q->lock);
		for (size_t done = 0; rc == BB_OK && done < b->len;) {
			ssize_t w = pwrite(fd, b->data + done, b->len - done, (off_t)(b->off + done));
			if (w < 0 && errno != EINTR)
				rc = errno == ENOSPC || errno == EDQUOT ? BB_ENOSPC : BB_ESYS;
			else if (w > 0)
				done += (size_t)w;
		}
		pthread_mutex_lock(&q->lock);
		q->busy = 0;
		if (rc != BB_OK && rs->rc == BB_OK)
			rs->rc = rc;
		b->next = q->free;
		q->free = b;
		if (q->want_space) {
			q->want_space = 0;
			pthread_cond_signal(&q->space);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static int range_writer_start(struct range_queue *q, struct bb_engine *eng)
{
	if (q->started || q->broken)
		return q->started ? BB_OK : BB_ESYS;
	q->eng = eng;
	q->tail = &q->head;
	q->done_tail = &q->done;
	if (pthread_cond_init(&q->space, NULL) != 0)
		goto broken;
	if (helper_start(&q->lock, &q->cond, &q->thread, range_writer_main, q) != 0) {
		pthread_cond_destroy(&q->space);
		goto broken;
	}
	q->started = 1;
	return BB_OK;
broken:
	bb_debug("no range writer thread; ranges are written as they arrive");
	q->broken = 1;
	return BB_ESYS;
}

/* After the engine's last request: every marker is back, the FIFO empty. */
static void range_writer_stop(struct range_queue *q)
{
	struct range_block *b;

	if (!q->started)
		return;
	helper_stop(&q->lock, &q->cond, q->thread, &q->quit);
	pthread_cond_destroy(&q->space);
	while ((b = q->filling)) { /* none, unless a request never ended */
		q->filling = b->fnext;
		free(b);
	}
	while ((b = q->free)) {
		q->free = b->next;
		free(b);
	}
	q->n_blocks = 0;
	q->started = 0;
}

/* Give file j of `parts` ranges (refs made) to the range writer; else
 * (no thread) file_data writes its bytes as they arrive, as for any file. */
static void range_file_start(struct file_job *j, uint32_t parts)
{
	struct stage_run *run = j->run;

	if (range_writer_start(&run->rq, run->org.eng) == BB_OK)
		j->rs = calloc(parts, sizeof(*j->rs));
}

/* Queue b (engine thread; q->lock held); the range's write error so far. */
static int range_push_locked(struct range_queue *q, struct range_block *b)
{
	b->next = NULL;
	*q->tail = b;
	q->tail = &b->next;
	pthread_cond_signal(&q->cond);
	return b->ref->j->rs[b->ref->part].rc;
}

/* The range of b is done filling it: off the filling list, into the FIFO. */
static int range_push(struct range_queue *q, struct range_block *b)
{
	int rc;

	b->ref->j->rs[b->ref->part].fill = NULL;
	if ((*b->fprev = b->fnext))
		b->fnext->fprev = b->fprev;
	pthread_mutex_lock(&q->lock);
	rc = range_push_locked(q, b);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* A free block for ref's range (now its fill block), waiting for one when
 * the pool is used up; NULL only when none could ever be allocated. */
static struct range_block *range_block_get(struct range_queue *q, struct part_ref *ref)
{
	struct range_block *b;

	pthread_mutex_lock(&q->lock);
	while (!(b = q->free)) {
		if (!q->no_alloc && q->n_blocks < RANGE_POOL / RANGE_BLOCK) {
			pthread_mutex_unlock(&q->lock);
			b = malloc(sizeof(*b) + RANGE_BLOCK);
			pthread_mutex_lock(&q->lock);
			if (b) {
				b->data = (char *)(b + 1);
				q->n_blocks++;
				break;
			}
			q->no_alloc = 1;
			if (!q->n_blocks) {
				pthread_mutex_unlock(&q->lock);
				return NULL;
			}
		}
		if (!q->head && !q->busy && q->filling) {
			/* Every block is partly filled (more ranges in flight
			 * than blocks): queue them, or nothing would free one. */
			while (q->filling) {
				struct range_block *f = q->filling;
				q->filling = f->fnext;
				f->ref->j->rs[f->ref->part].fill = NULL;
				range_push_locked(q, f);
			}
			continue;
		}
		q->want_space = 1;
		pthread_cond_wait(&q->space, &q->lock);
	}
	if (b == q->free)
		q->free = b->next;
	pthread_mutex_unlock(&q->lock);
	b->ref = ref;
	b->len = 0;
	if ((b->fnext = q->filling))
		q->filling->fprev = &b->fnext;
	b->fprev = &q->filling;
	q->filling = b;
	ref->j->rs[ref->part].fill = b;
	return b;
}

/* file_data for a range the range writer writes: copy, queue full blocks. */
static int range_data(struct file_job *j, struct part_ref *ref, const char *buf, size_t n,
		      uint64_t off)
{
	struct range_queue *q = &j->run->rq;
	struct range_state *rs = &j->rs[ref->part];
	size_t total = n;
	int rc = BB_OK;

	if (rs->fill && rs->fill->off + rs->fill->len != off)
		rc = range_push(q, rs->fill); /* not contiguous (the engine never does it) */
	while (n && rc == BB_OK) {
		struct range_block *b = rs->fill;
		if (!b) {
			if (!(b = range_block_get(q, ref)))
				return BB_ENOMEM;
			b->off = off;
		}
		size_t k = n < RANGE_BLOCK - b->len ? n : RANGE_BLOCK - b->len;
		memcpy(b->data + b->len, buf, k);
		b->len += k;
		buf += k;
		off += k;
		n -= k;
		if (b->len == RANGE_BLOCK)
			rc = range_push(q, b); /* a failed write of this range ends its request */
	}
	if (rc == BB_OK)
		bb_progress_bytes(&j->run->prog, total);
	return rc;
}

/* A retry of ref's range starts: its partial block is dropped (its queued
 * ones are written before any of the retry's, which rewrites them all). */
static void range_reset(struct file_job *j, struct part_ref *ref)
{
	struct range_queue *q = &j->run->rq;
	struct range_block *b = j->rs[ref->part].fill;

	if (!b)
		return;
	j->rs[ref->part].fill = NULL;
	if ((*b->fprev = b->fnext))
		b->fnext->fprev = b->fprev;
	pthread_mutex_lock(&q->lock);
	b->next = q->free;
	q->free = b;
	pthread_mutex_unlock(&q->lock);
}

/* part_done's entry for a range the range writer writes: queue its last
 * block and its end marker, keep the result; 1 (range_drain calls
 * part_done again when the marker is through). */
static int range_end(struct part_ref *ref, const struct bb_xfer_result *r)
{
	struct range_queue *q = &ref->j->run->rq;
	struct range_state *rs = &ref->j->rs[ref->part];

	if (rs->fill)
		range_push(q, rs->fill);
	rs->res_rc = r->rc;
	snprintf(rs->errmsg, sizeof(rs->errmsg), "%s", r->rc == BB_OK ? "" : r->errmsg);
	rs->end = (struct range_block){.ref = ref};
	pthread_mutex_lock(&q->lock);
	range_push_locked(q, &rs->end);
	pthread_mutex_unlock(&q->lock);
	q->pending++;
	return 1;
}

/* The engine's drain hook, part: ranges whose bytes are all written end
 * now (part_done); how many are still with the thread. */
static unsigned range_drain(struct stage_run *run)
{
	struct range_queue *q = &run->rq;
	struct range_block *b;

	if (!q->pending)
		return 0;
	pthread_mutex_lock(&q->lock);
	b = q->done;
	q->done = NULL;
	q->done_tail = &q->done;
	pthread_mutex_unlock(&q->lock);
	while (b) {
		struct range_block *next = b->next;
		struct part_ref *ref = b->ref;
		struct range_state *rs = &ref->j->rs[ref->part];
		struct bb_xfer_result r = {.rc = rs->res_rc};
		snprintf(r.errmsg, sizeof(r.errmsg), "%s", rs->errmsg);
		if (r.rc == BB_OK && rs->rc != BB_OK) { /* as if file_data had failed */
			struct bb_mentry e;
			bb_manifest_entry(run->m, ref->j->idx, &e);
			r.rc = rs->rc;
			snprintf(r.errmsg, sizeof(r.errmsg), "%s: %s", e.path, bb_strerror(rs->rc));
		}
		q->pending--;
		rs->written = 1;
		part_done(ref, &r);
		b = next;
	}
	return q->pending;
}

/* The engine's drain hook: files the writer and the hashing thread handed back. */
static unsigned run_drain(void *arg)
{
	struct stage_run *run = arg;
	struct write_queue *q = &run->wq;
	unsigned ranges = range_drain(run); /* first: a range's end may end its file */
	if (run->feed_head)
		feed(run);
	hash_drain(run);
	if (!q->pending)
		return run->hq.pending + ranges;
	pthread_mutex_lock(&q->lock);
	struct file_job *j = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->lock);
	while (j) {
		struct file_job *next = j->next;
		struct bb_mentry e;
		q->pending--;
		bb_manifest_entry(run->m, j->idx, &e);
		file_done(j, &e);
		j = next;
	}
	return q->pending + run->hq.pending + ranges;
}

/* All parts in: verify, date, rename. */
static void file_finish(struct file_job *j)
{
	struct stage_run *run = j->run;
	struct bb_mentry e;

	bb_manifest_entry(run->m, j->idx, &e);
	if (!j->failed && run->o->verify == BB_VERIFY_SHA256 && !e.sha256)
		run->no_sha++;
	if (!j->failed && j->mem) { /* the writer thread verifies it and puts it on disk */
		writer_push(&run->wq, j);
		return;
	}
	verify_digests(j, &e);
	if (!j->failed)
		load_shm(run, j, &e);
	if (!j->failed)
		date_and_rename(j);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	file_done(j, &e);
}

/* Check j's bytes against the digests of its entry e (MD5 against an S3
 * single-part ETag, SHA-256 against the manifest's).  Runs in the engine's
 * thread, or in the writer's for a file in memory (run is read only). */
static void verify_digests(struct file_job *j, const struct bb_mentry *ep)
{
	const struct stage_run *run = j->run;
	struct bb_mentry e = *ep;

	if (!j->failed && j->hj && j->hj->rc != BB_OK) {
		char msg[PATH_MAX + 100];
		snprintf(msg, sizeof(msg), "reading back %s: %s", j->tmp, strerror(j->hj->read_errno));
		job_fail(j, j->hj->rc, msg);
	}
	if (!j->failed && wants_md5(run, &e)) {
		unsigned char d[16];
		char hex[33];
		if (j->hj && j->hj->md5_on)
			memcpy(d, j->hj->md5_d, sizeof(d));
		else if (j->md5 && j->stream_ok && j->stream_pos == e.size)
			EVP_DigestFinal_ex(j->md5, d, NULL);
		else if (j->mem)
			EVP_Digest(j->mem, e.size, d, NULL, EVP_md5(), NULL);
		else
			bb_digest_fd(j->fd, e.size, "MD5", d);
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
		if (strcmp(hex, e.etag) != 0) {
			char msg[600];
			snprintf(msg, sizeof(msg), "%s: MD5 %s does not match the ETag %s", e.path,
				 hex, e.etag);
			job_fail(j, BB_ECORRUPT, msg);
		}
	}
	if (!j->failed && wants_sha256(run, &e)) {
		char msg[600];
		uint8_t d[32];
		int rc = BB_OK;
		if (j->hj && j->hj->sha256)
			memcpy(d, j->hj->sha256_d, sizeof(d));
		else if (j->sha256 && j->stream_ok && j->stream_pos == e.size)
			EVP_DigestFinal_ex(j->sha256, d, NULL);
		else if (j->mem)
			rc = EVP_Digest(j->mem, e.size, d, NULL, EVP_sha256(), NULL) ? BB_OK : BB_ENOMEM;
		else
			rc = bb_sha256_fd(j->fd, e.size, d);
		if (rc != BB_OK || memcmp(d, e.sha256, sizeof(d)) != 0) {
			snprintf(msg, sizeof(msg), "%s: SHA-256 does not match the manifest", e.path);
			job_fail(j, BB_ECORRUPT, msg);
		}
	}
}

/* j is on disk under its final name, or failed: count it, free its slot. */
static void file_done(struct file_job *j, const struct bb_mentry *e)
{
	struct stage_run *run = j->run;

	if (run->x && run->x->done)
		run->x->done(run->x->arg, j->idx, j->failed ? (j->rc ? j->rc : BB_EFILL) : BB_OK,
			     j->err, 1);
	if (j->failed) {
		if (j->tmp[0])
			unlink(j->tmp);
		run->s->failed++;
		if (!run->s->first_error[0])
			snprintf(run->s->first_error, sizeof(run->s->first_error), "%s", j->err);
		if (!run->first_rc && j->rc)
			run->first_rc = j->rc;
		bb_progress_error(&run->prog, e->path, j->err);
	} else {
		run->s->files++;
		run->s->bytes += e->size;
		bb_progress_file(&run->prog, e->path, e->size);
	}
	EVP_MD_CTX_free(j->md5);
	EVP_MD_CTX_free(j->sha256);
	j->md5 = j->sha256 = NULL;
	hash_job_free(j->hj);
	j->hj = NULL;
	free(j->refs);
	j->refs = NULL;
	free(j->rs);
	j->rs = NULL;
	j->mem = NULL; /* mem_buf stays with the slot */
	j->next = run->free_slots;
	run->free_slots = j;
	run->active_files--;
	pump(run);
}

/* Start files while fewer than max_active are open: each open file holds a
 * descriptor and its parts' requests, so a directory of a million files
 * never opens a million descriptors.  Not reentrant: a nested call (a file
 * finished while starting another) returns and the outer loop goes on. */
static int stopping(struct stage_run *run)
{
	const struct bb_stage_xfer *x = run->x;

	if (!x || !x->stop || !x->stop(x->arg))
		return 0;
	if (!run->cancelled) {
		run->cancelled = 1;
		bb_engine_cancel(run->org.eng);
	}
	return 1;
}

/* May file i start?  Directories always may; the hook decides for files. */
static int claim(struct stage_run *run, uint32_t i, const struct bb_mentry *e)
{
	if ((e->mode & S_IFMT) == S_IFDIR || !run->x || !run->x->claim)
		return 1;
	return run->x->claim(run->x->arg, i);
}

static void pump(struct stage_run *run)
{
	const struct bb_stage_xfer *x = run->x;
	uint32_t i;

	if (run->pumping || stopping(run))
		return;
	run->pumping = 1;
	/* Files a reader waits for go first, beyond the window (a bounded
	 * few: the hook hands out what readers asked for). */
	while (x && x->next && run->active_files < 2 * run->max_active && x->next(x->arg, &i)) {
		struct bb_mentry e;
		if (i < run->count && bb_manifest_entry(run->m, i, &e) == BB_OK &&
		    (e.mode & S_IFMT) != S_IFDIR && claim(run, i, &e)) {
			run->prio = 1;
			start_file(run, i);
			run->prio = 0;
		}
	}
	while (run->next < run->end && run->active_files < run->max_active && !stopping(run)) {
		i = run->next++;
		struct bb_mentry e;
		bb_manifest_entry(run->m, i, &e);
		if (!claim(run, i, &e))
			continue;
		if ((e.mode & S_IFMT) == S_IFDIR) {
			char d[PATH_MAX];
			if (i == 0 || e.n_children)
				continue;
			snprintf(d, sizeof(d), "%s/%s/x", run->root, e.path); /* an empty directory */
			bb_mkdirs_for(d);
			continue;
		}
		start_file(run, i);
	}
	run->pumping = 0;
}

/* Every request of j has ended (or will never be sent). */
static void parts_end(struct file_job *j)
{
	if (j->hj) /* the hashing thread hands it back (hash_drain) */
		hash_all_in(&j->run->hq, j->hj, j->failed);
	else
		file_finish(j);
}

/* ---- feeding ranges ------------------------------------------------------------
 * The ranges of a file checked by MD5 go to the engine a few at a time, in
 * turn with the other such files in flight, rather than all of one file
 * and then the next: the files then fill side by side, and the hashing
 * thread hashes them side by side (bb_md5_update_lanes), at about the CPU
 * cost of one.  Every file then ends later than the first would have, so
 * not under bbcached (run->x), where a reader may wait for the first; and
 * not without MD5, where nothing is gained.  Those files send every range
 * at once, in order.  feed() runs whenever a request ends, and on every
 * turn of the engine (run_drain). */

static void feed_append(struct stage_run *run, struct file_job *j)
{
	j->feed_next = NULL;
	j->feed_prev = run->feed_tail;
	if (run->feed_tail)
		run->feed_tail->feed_next = j;
	else
		run->feed_head = j;
	run->feed_tail = j;
	j->on_feed = 1;
}

static void feed_unlink(struct stage_run *run, struct file_job *j)
{
	if (!j->on_feed)
		return;
	if (j->feed_prev)
		j->feed_prev->feed_next = j->feed_next;
	else
		run->feed_head = j->feed_next;
	if (j->feed_next)
		j->feed_next->feed_prev = j->feed_prev;
	else
		run->feed_tail = j->feed_prev;
	j->feed_prev = j->feed_next = NULL;
	j->on_feed = 0;
}

/* j failed: its ranges not sent yet never will be.  0 when requests of j
 * are still out; else j is ended (and may be gone). */
static int drop_unsent(struct file_job *j)
{
	feed_unlink(j->run, j);
	j->parts_left -= j->parts - j->next_part;
	j->next_part = j->parts;
	if (j->parts_left > 0)
		return 0;
	parts_end(j);
	return 1;
}

static int submit_part(struct stage_run *run, struct file_job *j, const struct bb_mentry *e,
		       uint32_t p)
{
	struct bb_xfer_req r;
	uint64_t chunk = run->chunk;
	uint64_t off = j->parts == 1 ? 0 : (uint64_t)p * chunk;
	uint64_t len = j->parts == 1 ? 0 : (e->size - off < chunk ? e->size - off : chunk);

	bb_origin_request(&run->org, j->url, off, len, e->etag, &r);
	r.expect_len = j->parts == 1 ? e->size : 0;
	r.on_data = file_data;
	r.on_reset = file_reset;
	r.on_done = part_done;
	r.arg = j->refs ? &j->refs[p] : &j->one;
	r.what = e->path;
	r.priority = run->prio;
	return bb_engine_submit(run->org.eng, &r);
}

static void feed(struct stage_run *run)
{
	struct file_job *j;

	if (run->feeding)
		return;
	run->feeding = 1;
	while ((j = run->feed_head) &&
	       (j->failed || run->cancelled || bb_engine_pending(run->org.eng) < run->feed_max)) {
		struct bb_mentry e;
		bb_manifest_entry(run->m, j->idx, &e);
		if (!j->failed && run->cancelled) {
			char msg[600];
			snprintf(msg, sizeof(msg), "%s: cancelled", e.path);
			job_fail(j, BB_EINVAL, msg);
		}
		if (j->failed) {
			if (j->hj)
				hash_part_done(&run->hq, j->hj, 0, 0);
			drop_unsent(j);
			continue;
		}
		uint32_t p = j->next_part++;
		feed_unlink(run, j);
		if (j->next_part < j->parts)
			feed_append(run, j); /* its next range after the other files' */
		if (submit_part(run, j, &e, p) != BB_OK) {
			job_fail(j, BB_ENOMEM, "out of memory");
			part_done(&j->refs[p], &(struct bb_xfer_result){.rc = BB_ENOMEM});
		}
	}
	run->feeding = 0;
}

static void part_done(void *arg, struct bb_xfer_result *r)
{
	struct part_ref *ref = arg;
	struct file_job *j = ref->j;
	struct stage_run *run = j->run;

	if (j->rs && !j->rs[ref->part].written && range_end(ref, r))
		return; /* complete once its bytes are written: range_drain calls again */
	if (r->rc != BB_OK)
		job_fail(j, r->rc, r->errmsg);
	if (j->hj)
		hash_part_done(&run->hq, j->hj, ref->part, r->rc == BB_OK);
	j->parts_left--;
	if (j->failed && j->next_part < j->parts)
		drop_unsent(j);
	else if (j->parts_left == 0)
		parts_end(j);
	feed(run);
}

/* Create the directory of j's file (last_dir, PATH_MAX bytes, is the
 * calling thread's last directory made). */
static int make_dir(struct file_job *j, char *last_dir)
{
	const char *slash = strrchr(j->final, '/');
	size_t dl = (size_t)(slash - j->final);

	/* Files arrive in path order: their directory is usually the last one
	 * made, so mkdir -p runs once per directory, not once per file. */
	if ((dl != strlen(last_dir) || memcmp(last_dir, j->final, dl) != 0) &&
	    bb_mkdirs_for(j->final) != BB_OK) {
		snprintf(j->err, sizeof(j->err), "cannot create the directory of %s: %s", j->final,
			 strerror(errno));
		return BB_ESYS;
	}
	if (dl < PATH_MAX) {
		memcpy(last_dir, j->final, dl);
		last_dir[dl] = '\0';
	}
	return BB_OK;
}

/* Open the temporary file of j (creating parent directories, make_dir). */
static int open_tmp(struct file_job *j, char *last_dir)
{
	const char *slash = strrchr(j->final, '/');

	if (make_dir(j, last_dir) != BB_OK)
		return BB_ESYS;
	snprintf(j->tmp, sizeof(j->tmp), "%.*s/.%s.bbtmp", (int)(slash - j->final), j->final,
		 slash + 1);
	j->fd = open(j->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0) {
		snprintf(j->err, sizeof(j->err), "cannot create %s: %s", j->tmp, strerror(errno));
		return errno == ENOSPC ? BB_ENOSPC : BB_ESYS;
	}
	/* Reserve large files up front: a full disk fails at once, not after
	 * gigabytes (small ones fail at their first write just as clearly). */
	if (j->size >= (1u << 20) && posix_fallocate(j->fd, 0, (off_t)j->size) == ENOSPC) {
		snprintf(j->err, sizeof(j->err), "%s: no space left for %llu bytes", j->final,
			 (unsigned long long)j->size);
		close(j->fd);
		unlink(j->tmp);
		j->fd = -1;
		return BB_ENOSPC;
	}
	return BB_OK;
}

/* Copy a POSIX file, checking its version (size, mtime, inode) before and after. */
static void copy_posix(struct file_job *j, const struct bb_mentry *e)
{
	struct stage_run *run = j->run;
	char src[PATH_MAX], msg[PATH_MAX + 200];
	struct stat st;
	/* Per call, not static: bbcached copies files in several threads. */
	size_t cap = e->size < (4u << 20) ? (size_t)e->size + 1 : 4u << 20;
	char *buf = malloc(cap);

	if (!buf) {
		job_fail(j, BB_ENOMEM, "out of memory");
		return;
	}

	snprintf(src, sizeof(src), "%s%s%s", run->org.base,
		 run->org.single ? "" : "/", run->org.single ? "" : e->source);
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "cannot open %s: %s", src, strerror(errno));
		job_fail(j, errno == ENOENT ? BB_ENOENT : errno == EACCES ? BB_EPERM : BB_ESYS, msg);
		free(buf);
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		if (fstat(fd, &st) < 0 || !bb_stage_same_version(&st, e)) {
			snprintf(msg, sizeof(msg), "%s changed on the origin since it was listed "
				 "(size, mtime or inode differ)", src);
			job_fail(j, BB_ESTALE, msg);
			break;
		}
		if (pass == 1)
			break;
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		for (uint64_t off = 0; off < e->size;) {
			ssize_t r = pread(fd, buf, cap, (off_t)off);
			if (r <= 0) {
				snprintf(msg, sizeof(msg), "reading %s: %s", src,
					 r == 0 ? "file shrank" : strerror(errno));
				job_fail(j, r == 0 ? BB_ESTALE : BB_ESYS, msg);
				break;
			}
			int rc = file_data(&j->one, buf, (size_t)r, off);
			if (rc != BB_OK) {
				snprintf(msg, sizeof(msg), "writing %s: %s", j->tmp, bb_strerror(rc));
				job_fail(j, rc, msg);
				break;
			}
			off += (uint64_t)r;
		}
		if (j->failed)
			break;
	}
	close(fd);
	free(buf);
}

/* Slot j's buffer, grown to hold size bytes within MEM_BUDGET, or NULL.
 * Kept for the slot's next file: no allocation (and no fresh pages to
 * fault in) per small file. */
static char *slot_buffer(struct stage_run *run, struct file_job *j, uint64_t size)
{
	size_t cap = (size_t)((size + 65535) & ~(uint64_t)65535);

	if (!cap)
		cap = 65536;
	if (j->mem_cap >= size && j->mem_buf)
		return j->mem_buf;
	if (run->mem_bytes - j->mem_cap + cap > MEM_BUDGET)
		return NULL;
	free(j->mem_buf);
	run->mem_bytes -= j->mem_cap;
	j->mem_buf = malloc(cap);
	j->mem_cap = j->mem_buf ? cap : 0;
	run->mem_bytes += j->mem_cap;
	return j->mem_buf;
}

/* Start the transfers of manifest entry idx. */
static void start_file(struct stage_run *run, uint32_t idx)
{
	struct bb_mentry e;
	struct file_job *j;

	bb_manifest_entry(run->m, idx, &e);
	j = run->free_slots; /* there is one: pump keeps active_files below the slots */
	snprintf(j->final, sizeof(j->final), "%s/%s", run->root, e.path);
	/* Resume: a file already there is skipped.  In a destination this
	 * run created there is none, and no stat() per file is needed. */
	if (!run->fresh_root && bb_stage_file_complete(j->final, &e)) {
		run->s->skipped++;
		run->s->skipped_bytes += e.size;
		bb_progress_skip(&run->prog, e.size);
		if (run->x && run->x->done)
			run->x->done(run->x->arg, idx, BB_OK, "", 0);
		return;
	}
	run->free_slots = j->next;
	memset(j, 0, offsetof(struct file_job, final)); /* not the path buffers: 17 KiB */
	j->tmp[0] = j->err[0] = '\0';
	j->run = run;
	j->idx = idx;
	j->fd = -1;
	j->size = e.size;
	j->mtime_ns = e.mtime_ns;
	j->one = (struct part_ref){j, 0};
	run->active_files++;
	/* A small object from the network is received into memory; the writer
	 * thread creates, writes, dates and renames its file after it is
	 * verified.  (Not with --shm: load_shm reads the open file.) */
	if (run->org.url.scheme != BB_SCHEME_FILE && !run->shm && e.size <= MEM_FILE_MAX &&
	    e.size <= run->chunk && writer_start(&run->wq, run->org.eng) == BB_OK)
		j->mem = slot_buffer(run, j, e.size);
	int rc = j->mem ? BB_OK : open_tmp(j, run->last_dir);
	if (rc != BB_OK) {
		j->failed = 1;
		j->rc = rc;
		j->parts_left = 0;
		file_finish(j);
		return;
	}
	if (run->org.url.scheme == BB_SCHEME_FILE) {
		j->parts_left = 1;
		copy_posix(j, &e);
		file_finish(j);
		return;
	}
	rc = bb_origin_object_url(&run->org, e.source, j->url, sizeof(j->url));
	if (rc != BB_OK) {
		job_fail(j, rc, "object URL too long");
		file_finish(j);
		return;
	}
	uint64_t chunk = run->chunk;
	uint32_t parts = e.size <= chunk || (!e.etag[0] && run->org.url.scheme != BB_SCHEME_S3)
				 ? 1 : (uint32_t)((e.size + chunk - 1) / chunk);
	j->parts_left = j->parts = parts;
	int md5 = wants_md5(run, &e), sha256 = wants_sha256(run, &e);
	struct part_ref *refs = &j->one;
	if (parts == 1 && (md5 || sha256) && !j->mem) {
		/* (A file in memory is hashed by the writer thread, in one go.)
		 * A failed allocation leaves the digest to file_finish's read-back. */
		j->md5 = md5 ? EVP_MD_CTX_new() : NULL;
		j->sha256 = sha256 ? EVP_MD_CTX_new() : NULL;
		j->stream_ok = (!md5 || j->md5) && (!sha256 || j->sha256) &&
			       digests_init(j->md5, j->sha256);
	} else if (parts > 1) {
		refs = j->refs = calloc(parts, sizeof(*refs));
		if (!refs) {
			job_fail(j, BB_ENOMEM, "out of memory");
			j->parts_left = 0;
			file_finish(j);
			return;
		}
		for (uint32_t p = 0; p < parts; p++)
			refs[p] = (struct part_ref){j, p};
		/* Not with the MD5 check on fewer than 4 CPUs: with the
		 * hashing thread busy too, a third busy thread (and a third
		 * copy of every byte) cost s3rver's 4 x 1 GiB more than it
		 * gave (docs/origins.md, section 5). */
		if (!md5 || !run->few_cpus)
			range_file_start(j, parts);
		if (md5 || sha256)
			j->hj = hash_job_new(j, &e, parts, md5, sha256);
	}
	if (parts > 1 && j->hj && j->hj->md5_on && !run->prio && !run->x) {
		feed_append(run, j);
		feed(run);
		return;
	}
	for (uint32_t p = 0; p < parts; p++) {
		j->next_part = p + 1;
		if (submit_part(run, j, &e, p) != BB_OK) {
			job_fail(j, BB_ENOMEM, "out of memory");
			part_done(&refs[p], &(struct bb_xfer_result){.rc = BB_ENOMEM});
			break;
		}
	}
}

/* Move every file of run->m (opened, with its origin) through the engine. */
static int transfer(struct stage_run *run, struct bb_engine *eng, int max_parallel, char *err,
		    size_t errlen)
{
	struct bb_stage_summary *s = run->s;
	int rc;

	run->count = bb_manifest_count(run->m);
	run->end = run->count;
	if (run->x && run->x->only >= 0) {
		if ((uint64_t)run->x->only >= run->count) {
			snprintf(err, errlen, "entry %lld is not in the manifest",
				 (long long)run->x->only);
			return BB_ENOENT;
		}
		run->next = (uint32_t)run->x->only;
		run->end = run->next + 1;
	}
	run->block = bb_manifest_block_size(run->m);
	s->total_files = bb_manifest_n_files(run->m);
	s->total_bytes = bb_manifest_total_bytes(run->m);
	/* Queue every file; the engine's window bounds what is in flight.
	 * Files a reader waits for may take up to twice max_active (pump). */
	run->max_active = (uint32_t)max_parallel * 2;
	run->feed_max = max_parallel + max_parallel / 4 + 1;
	run->few_cpus = sysconf(_SC_NPROCESSORS_ONLN) < 4;
	run->slots = calloc(2 * (size_t)run->max_active, sizeof(*run->slots));
	if (!run->slots)
		return BB_ENOMEM;
	for (uint32_t i = 2 * run->max_active; i-- > 0;) {
		run->slots[i].next = run->free_slots;
		run->free_slots = &run->slots[i];
	}
	bb_progress_start(&run->prog, s->total_files, s->total_bytes);
	if (mkdir(run->root, 0700) == 0) {
		/* Nothing can be there to resume: no stat() per file.  Not
		 * under bbcached (run->x), whose other threads may stage files
		 * of the same root at the same time. */
		run->fresh_root = !run->x;
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", run->root, strerror(errno));
		return errno == ENOSPC ? BB_ENOSPC : BB_ESYS;
	}
	/* Directories are created as their files arrive; empty ones here. */
	bb_engine_set_drain(eng, run_drain, run);
	pump(run);
	bb_engine_run(eng);
	bb_engine_set_drain(eng, NULL, NULL);
	hasher_stop(&run->hq);
	writer_stop(&run->wq);
	range_writer_stop(&run->rq);
	bb_progress_end(&run->prog);
	if (run->no_sha)
		bb_warn("verify=sha256: the origin gave no SHA-256 for %llu file(s) (a listing file "
			"can); those were checked by size%s only",
			(unsigned long long)run->no_sha,
			run->org.url.scheme == BB_SCHEME_S3 ? " and ETag" : "");
	rc = BB_OK;
	if (s->failed) {
		rc = run->first_rc ? run->first_rc : BB_EFILL;
		snprintf(err, errlen, "%llu of %llu file(s) failed; first: %s",
			 (unsigned long long)s->failed, (unsigned long long)s->total_files,
			 s->first_error);
	}
	return rc;
}

int bb_stage_engine_new(const struct bb_stage_opts *o, int max_parallel, struct bb_engine **eng)
{
	struct bb_engine_opts eo = {0};

	eo.max_parallel = max_parallel > 0 ? max_parallel : o->jobs > 0 ? o->jobs : 32;
	eo.max_attempts = o->max_attempts;
	eo.stall_timeout_s = o->stall_timeout_s;
	eo.verify_tls = o->no_verify_tls ? -1 : 1;
	eo.ca_file = getenv("BBCACHE_CA_BUNDLE");
	return bb_engine_new(&eo, eng);
}

static int new_engine(const struct bb_stage_opts *o, struct bb_engine **eng, int *parallel)
{
	*parallel = o->jobs > 0 ? o->jobs : 32;
	return bb_stage_engine_new(o, *parallel, eng);
}

static void begin_run(struct stage_run *run, const struct bb_stage_opts *o,
		      struct bb_stage_summary *s, struct timespec *t0)
{
	memset(s, 0, sizeof(*s));
	memset(run, 0, sizeof(*run));
	clock_gettime(CLOCK_MONOTONIC, t0);
	run->o = o;
	run->s = s;
	run->chunk = o->chunk ? o->chunk : SMALL_CHUNK;
}

static void end_run(struct stage_run *run, struct bb_engine *eng, const struct timespec *t0)
{
	struct timespec t1;

	if (eng) {
		struct bb_engine_stats es;
		bb_engine_get_stats(eng, &es);
		run->s->requests = es.requests;
		run->s->retries = es.retries;
	}
	hasher_stop(&run->hq);
	writer_stop(&run->wq);
	range_writer_stop(&run->rq);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	run->s->seconds =
	    (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
	for (uint32_t i = 0; run->slots && i < 2 * run->max_active; i++)
		free(run->slots[i].mem_buf);
	free(run->slots);
	run->slots = NULL;
	if (run->m)
		bb_manifest_close(run->m);
	run->m = NULL;
	bb_origin_close(&run->org);
	bb_engine_free(eng);
}

int bb_stage_in_manifest(const struct bb_stage_opts *o, const struct bb_stage_xfer *x,
			 struct bb_stage_summary *s, char *err, size_t errlen)
{
	struct stage_run run;
	struct bb_engine *eng = NULL;
	struct timespec t0;
	int rc, parallel;

	begin_run(&run, o, s, &t0);
	run.x = x;
	run.shm = x->shm;
	run.fid_base = x->file_id_base;
	snprintf(s->manifest, sizeof(s->manifest), "%s", x->manifest);
	snprintf(run.root, sizeof(run.root), "%s", x->root);
	bb_progress_init(&run.prog, o->progress, o->json, "staging");
	rc = new_engine(o, &eng, &parallel);
	if (rc != BB_OK) {
		snprintf(err, errlen, "cannot start the transfer engine");
		return rc;
	}
	rc = bb_manifest_open(x->manifest, &run.m, err, errlen);
	if (rc == BB_OK)
		rc = bb_origin_open(&run.org, bb_manifest_source(run.m),
				    bb_manifest_is_single(run.m) ? BB_STAGE_FILE : BB_STAGE_DIRECTORY,
				    o->conf, eng, err, errlen);
	if (rc == BB_OK)
		rc = transfer(&run, eng, parallel, err, errlen);
	end_run(&run, eng, &t0);
	return rc;
}

int bb_stage_manifest_path(const char *dest, char *buf, size_t len)
{
	char d[PATH_MAX];
	snprintf(d, sizeof(d), "%s", dest);
	size_t n = strlen(d);
	while (n > 1 && d[n - 1] == '/')
		d[--n] = '\0';
	const char *slash = strrchr(d, '/');
	int r = slash ? snprintf(buf, len, "%.*s/.bbcache/%s.manifest", (int)(slash - d), d, slash + 1)
		      : snprintf(buf, len, ".bbcache/%s.manifest", d);
	return r < 0 || (size_t)r >= len ? BB_ERANGE : BB_OK;
}

/* The job's shm cache for stage-in --shm: created, or attached when it exists. */
static int open_shm(const struct bb_stage_opts *o, const struct bb_manifest *m,
		    struct bbc_cache **c, char *err, size_t errlen)
{
	struct bbc_topology topo;
	struct bbc_params p = {0};
	int rc;

	bbc_numa_topology(&topo);
	p.job_id = o->job_id;
	p.byte_limit = o->shm_bytes;
	p.topo = &topo;
	p.owner = (uid_t)-1;
	p.n_entries = (uint32_t)(bb_manifest_count(m) + 1024);
	rc = bbc_create(&p, c);
	if (rc == BB_EEXIST)
		rc = bbc_attach(NULL, o->job_id, c);
	if (rc != BB_OK)
		snprintf(err, errlen, "cannot set up the shm cache of job %llu (%s): %s",
			 (unsigned long long)o->job_id, "/dev/shm", bb_strerror(rc));
	return rc;
}

/* Large HTTP objects are fetched in ranges, which must all be of one
 * version: learn their ETag (and whether Range works) now, so that the
 * manifest has it and every ranged GET carries If-Match. */
static void learn_etags(struct stage_run *run, struct bb_engine *eng, struct bb_listing *l)
{
	if (run->org.url.scheme != BB_SCHEME_HTTP && run->org.url.scheme != BB_SCHEME_HTTPS)
		return;
	for (size_t i = 0; i < l->n; i++) {
		struct bb_listed *x = &l->v[i];
		struct bb_xfer_req r;
		struct bb_xfer_result res;
		char url[8192];
		if (x->size <= run->chunk || x->etag ||
		    bb_origin_object_url(&run->org, x->src, url, sizeof(url)) != BB_OK)
			continue;
		bb_origin_request(&run->org, url, 0, 0, NULL, &r);
		r.method = BB_HEAD;
		r.what = x->rel;
		if (bb_engine_fetch(eng, &r, &res) == BB_OK && res.accept_ranges && res.etag[0] &&
		    res.content_length == x->size)
			x->etag = strdup(res.etag);
		bb_xfer_result_free(&res);
	}
}

/* List the source and write the manifest (s->manifest names it). */
static int write_manifest(struct stage_run *run, struct bb_engine *eng, const char *dest_name,
			  const char *dest_path, char *err, size_t errlen)
{
	const struct bb_stage_opts *o = run->o;
	struct bb_stage_summary *s = run->s;
	struct bb_listing l = {0};
	struct bb_manifest_builder *b = NULL;
	int rc;

	bb_progress_init(&run->prog, o->progress, o->json, "listing");
	rc = bb_origin_list(&run->org, o->include, o->exclude, &l, err, errlen);
	if (rc != BB_OK)
		goto out;
	learn_etags(run, eng, &l);
	if (o->manifest)
		snprintf(s->manifest, sizeof(s->manifest), "%s", o->manifest);
	else
		bb_stage_manifest_path(dest_path, s->manifest, sizeof(s->manifest));
	rc = bb_manifest_builder_new(o->source, o->block_size ? o->block_size : 4u << 20, &b);
	if (rc == BB_OK && dest_name)
		bb_manifest_builder_set_single(b);
	for (size_t i = 0; rc == BB_OK && i < l.n; i++) {
		struct bb_manifest_file f = {0};
		f.path = dest_name ? dest_name : l.v[i].rel;
		f.size = l.v[i].size;
		f.mtime_ns = l.v[i].mtime_ns;
		f.etag = l.v[i].etag;
		f.source = l.v[i].src;
		f.inode = l.v[i].inode;
		f.sha256 = l.v[i].has_sha256 ? l.v[i].sha256 : NULL;
		rc = bb_manifest_builder_add(b, &f);
		if (rc != BB_OK)
			snprintf(err, errlen, "%s: a name the manifest cannot hold", l.v[i].rel);
	}
	if (rc == BB_OK && bb_mkdirs_for(s->manifest) != BB_OK) {
		snprintf(err, errlen, "cannot create the directory of %s: %s", s->manifest,
			 strerror(errno));
		rc = BB_ESYS;
	}
	if (rc == BB_OK)
		rc = bb_manifest_builder_write(b, s->manifest, err, errlen);
out:
	bb_manifest_builder_free(b);
	bb_listing_free(&l);
	return rc;
}

int bb_stage_in(const struct bb_stage_opts *o, struct bb_stage_summary *s, char *err,
		size_t errlen)
{
	struct stage_run run;
	struct bb_engine *eng = NULL;
	struct timespec t0;
	struct bbc_cache *shm = NULL;
	int rc, parallel;

	begin_run(&run, o, s, &t0);
	rc = new_engine(o, &eng, &parallel);
	if (rc != BB_OK) {
		snprintf(err, errlen, "cannot start the transfer engine");
		return rc;
	}
	rc = bb_origin_open(&run.org, o->source, o->type, o->conf, eng, err, errlen);
	if (rc != BB_OK)
		goto out;

	/* The destination: a directory for a directory source; for one file,
	 * its parent is the manifest's root and the file its only entry. */
	struct bb_url du;
	rc = bb_url_parse(o->dest, &du, err, errlen);
	if (rc != BB_OK)
		goto out;
	if (du.scheme != BB_SCHEME_FILE) {
		snprintf(err, errlen, "stage-in destination %s must be a local path", o->dest);
		rc = BB_EINVAL;
		goto out;
	}
	snprintf(run.root, sizeof(run.root), "%s", du.path);
	size_t rl = strlen(run.root);
	while (rl > 1 && run.root[rl - 1] == '/')
		run.root[--rl] = '\0';
	const char *dest_name = NULL;
	if (run.org.single) {
		char *slash = strrchr(run.root, '/');
		dest_name = slash + 1;
		*slash = '\0';
		if (!run.root[0])
			strcpy(run.root, "/");
	}
	rc = write_manifest(&run, eng, dest_name, du.path, err, errlen);
	if (rc == BB_OK)
		rc = bb_manifest_open(s->manifest, &run.m, err, errlen);
	if (rc == BB_OK && o->shm_bytes)
		rc = open_shm(o, run.m, &shm, err, errlen);
	if (rc != BB_OK || o->list_only)
		goto out;
	run.shm = shm;
	run.fid_base = 0;
	rc = transfer(&run, eng, parallel, err, errlen);
out:
	end_run(&run, eng, &t0);
	if (shm)
		bbc_detach(shm);
	return rc;
}
