/* The digests of the staged files: streamed with the data for a file of
 * one request (stagein.c's file_data), computed by the hashing thread for a
 * file of several ranges, and checked against the manifest before a file
 * gets its final name. */
#include "config.h"

#define BB_LOG_COMPONENT "stage-in"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "stage/stagein_int.h"

#define HASH_PIECE (1u << 20)    /* the hashing thread reads this much of a file at a time */
#define HASH_AHEAD (32u << 20)   /* ...and waits for other files to have as much, unless one has this */

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
int si_digests_init(EVP_MD_CTX *md5, EVP_MD_CTX *sha256)
{
	return (!md5 || EVP_DigestInit_ex(md5, EVP_md5(), NULL)) &&
	       (!sha256 || EVP_DigestInit_ex(sha256, EVP_sha256(), NULL));
}

void si_digests_update(EVP_MD_CTX *md5, EVP_MD_CTX *sha256, const void *buf, size_t n)
{
	if (md5)
		EVP_DigestUpdate(md5, buf, n);
	if (sha256)
		EVP_DigestUpdate(sha256, buf, n);
}

/* Which digests verify entry e: MD5 against an S3 single-part ETag, SHA-256
 * against the manifest's. */
int si_wants_md5(const struct stage_run *run, const struct bb_mentry *e)
{
	return run->o->verify == BB_VERIFY_ETAG && run->org.url.scheme == BB_SCHEME_S3 &&
	       etag_is_md5(e->etag);
}

int si_wants_sha256(const struct stage_run *run, const struct bb_mentry *e)
{
	return run->o->verify != BB_VERIFY_NONE && e->sha256;
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
 * it is better to wait: other files fed in turn (feed) will soon have bytes
 * too, and MD5 costs little more for eight files than for one -- unless
 * one file is HASH_AHEAD ahead, or a file's last bytes are in.  Files not
 * fed in turn fill one after the other: no waiting for them. */
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
			now |= !h->fed || ready >= HASH_AHEAD || h->final == h->size;
		} else if (h->fed) {
			others++;
		}
	}
	return n && (now || !others || n == q->lanes || q->h.quit) ? n : 0;
}

/* Read the next len bytes of h's file to hash, at h->hashed, into the
 * lane's buffer b; bytes read, or -1 (errno).  A file written O_DIRECT is
 * read back O_DIRECT: its bytes are on the disk, not in the page cache,
 * and reading them into newly allocated page-cache pages would cost what
 * writing O_DIRECT saved.  Pieces are whole HASH_PIECEs from the start
 * (hash_pick), so such a read starts on a page; the last is rounded up to
 * one (the read stops at the end of the file).  The kernel writes back the
 * dirty pages of the range (a file's last partial page, the ranges of an
 * odd --chunk, written through the page cache) before such a read.  A
 * file system that refuses it (EINVAL) is read through the page cache. */
static ssize_t read_back(struct hash_queue *q, struct hash_job *h, char *b, size_t len)
{
	ssize_t r;

	if (h->dfd >= 0 && h->hashed % DIO_ALIGN == 0) {
		size_t want = (len + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
		while ((r = pread(h->dfd, b, want, (off_t)h->hashed)) < 0 && errno == EINTR)
			;
		if (r >= 0) {
			r = r < (ssize_t)len ? r : (ssize_t)len;
			q->direct_read += (uint64_t)r;
			return r;
		}
		if (errno != EINVAL)
			return -1;
		bb_debug("%s: O_DIRECT read refused; through the page cache", h->j->final);
		close(h->dfd);
		h->dfd = -1;
	}
	while ((r = pread(h->fd, b, len, (off_t)h->hashed)) < 0 && errno == EINTR)
		;
	if (r > 0)
		q->paged_read += (uint64_t)r;
	return r;
}

/* Hash the next piece of each file of lane[] (from its temporary), of
 * the bytes below final[] (lane[i]->final when picked: read under lock). */
static void hash_pieces(struct hash_queue *q, struct hash_job **lane, unsigned n,
			const uint64_t *final)
{
	struct bb_md5 *ctx[BB_MD5_LANES];
	const unsigned char *data[BB_MD5_LANES];
	size_t dlen[BB_MD5_LANES];
	unsigned nm = 0;

	for (unsigned i = 0; i < n; i++) {
		struct hash_job *h = lane[i];
		char *b = q->buf + (size_t)i * HASH_PIECE;
		uint64_t ready = final[i] - h->hashed;
		size_t len = ready < HASH_PIECE ? (size_t)ready : HASH_PIECE;
		ssize_t r = read_back(q, h, b, len);
		if (r <= 0) {
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
	for (unsigned i = 0; i < nm; i++)
		q->side[nm] += dlen[i];
}

/* The hashing thread's step (h.lock held): hand back a file whose every
 * request ended and that is hashed (or failed), else hash pieces. */
static int hasher_step(struct bb_helper *hp)
{
	struct hash_queue *q = bb_container_of(hp, struct hash_queue, h);
	struct hash_job *lane[BB_MD5_LANES], *h, **pp;
	uint64_t final[BB_MD5_LANES];
	unsigned n;

	for (pp = &q->jobs; (h = *pp); pp = &h->next) {
		if (!h->all_in || (!h->failed && h->rc == BB_OK && h->hashed < h->size))
			continue;
		*pp = h->next;
		if (!h->failed && h->rc == BB_OK) {
			if (h->md5_on)
				bb_md5_final(&h->md5, h->md5_d);
			if (h->sha256)
				EVP_DigestFinal_ex(h->sha256, h->sha256_d, NULL);
		}
		bb_helper_give_back(hp, &h->back);
		return 1;
	}
	n = hash_pick(q, lane);
	if (!n)
		return 0;
	for (unsigned i = 0; i < n; i++)
		final[i] = lane[i]->final;
	pthread_mutex_unlock(&hp->lock);
	hash_pieces(q, lane, n, final);
	pthread_mutex_lock(&hp->lock);
	return 1;
}

static int hasher_start(struct hash_queue *q, struct bb_engine *eng)
{
	if (q->h.started || q->h.broken)
		return q->h.started ? BB_OK : BB_ESYS;
	q->lanes = bb_md5_lanes();
	if (posix_memalign((void **)&q->buf, DIO_ALIGN, (size_t)q->lanes * HASH_PIECE) != 0) {
		q->buf = NULL;
		q->h.broken = 1;
	} else if (bb_helper_start(&q->h, eng, hasher_step) == BB_OK)
		return BB_OK;
	bb_debug("no hashing thread; large files are hashed when complete");
	free(q->buf);
	q->buf = NULL;
	return BB_ESYS;
}

/* After the engine's last request: nothing is left with the thread. */
void si_hasher_stop(struct hash_queue *q)
{
	uint64_t all = 0;

	bb_helper_stop(&q->h);
	for (unsigned n = 1; n <= BB_MD5_LANES; n++)
		all += q->side[n];
	if (all) { /* how well the files were fed side by side (section 5 of origins.md) */
		char line[200];
		int len = 0;
		for (unsigned n = 1; n <= BB_MD5_LANES && len < (int)sizeof(line); n++)
			if (q->side[n])
				len += snprintf(line + len, sizeof(line) - (size_t)len, ", %u at a time %.0f%%",
						n, 100.0 * (double)q->side[n] / (double)all);
		bb_debug("MD5 of %.1f MiB in ranges%s", (double)all / 1048576, line);
		memset(q->side, 0, sizeof(q->side));
	}
	if (q->direct_read || q->paged_read)
		bb_debug("hashing thread: %llu bytes read back O_DIRECT, %llu through the page cache",
			 (unsigned long long)q->direct_read, (unsigned long long)q->paged_read);
	q->direct_read = q->paged_read = 0;
	free(q->buf);
	q->buf = NULL;
}

void si_hash_job_free(struct hash_job *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->sha256);
	if (h->dfd >= 0)
		close(h->dfd);
	free(h->part_done);
	free(h);
}

/* Give file j of `parts` ranges to the hashing thread (fed: its ranges go
 * out in turn with other files'); NULL when that cannot be (file_finish
 * then hashes the file itself). */
struct hash_job *si_hash_job_new(struct file_job *j, const struct bb_mentry *e, uint32_t parts,
				 int md5, int sha256, int fed)
{
	struct stage_run *run = j->run;
	struct hash_queue *q = &run->hq;
	struct hash_job *h;

	if (hasher_start(q, run->org.eng) != BB_OK || !(h = calloc(1, sizeof(*h))))
		return NULL;
	h->j = j;
	h->fd = j->fd;
	/* Written O_DIRECT (j->dfd): read back so too (read_back). */
	h->dfd = j->dfd >= 0 ? open(j->tmp, O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW) : -1;
	h->size = e->size;
	h->chunk = run->chunk;
	h->parts = parts;
	h->part_done = calloc(parts, 1);
	h->md5_on = md5;
	h->fed = fed;
	bb_md5_init(&h->md5);
	h->sha256 = sha256 ? EVP_MD_CTX_new() : NULL;
	if (!h->part_done || (sha256 && !h->sha256) || !si_digests_init(NULL, h->sha256)) {
		si_hash_job_free(h);
		return NULL;
	}
	/* Read back with pread into the thread's buffer, not through a
	 * mapping of the file: the copy is bounded, a 1 MiB piece per lane
	 * that MD5 then reads from the cache, while the mapping's cost (page
	 * faults, and MD5's loads through 4 KiB pages) depends on the machine:
	 * on a PVM guest it cost 2.4-5.8 s more CPU (median 3.4 s) for
	 * s3rver's 4 x 1 GiB (docs/origins.md, section 6). */
	pthread_mutex_lock(&q->h.lock);
	struct hash_job **pp = &q->jobs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = h;
	pthread_mutex_unlock(&q->h.lock);
	q->h.pending++;
	return h;
}

/* Range p of h's file ended (ok: its request completed). */
void si_hash_part_done(struct hash_queue *q, struct hash_job *h, uint32_t p, int ok)
{
	uint32_t w = h->wm_part;

	if (!ok) {
		pthread_mutex_lock(&q->h.lock);
		h->failed = 1;
		pthread_mutex_unlock(&q->h.lock);
		return;
	}
	h->part_done[p] = 1;
	while (w < h->parts && h->part_done[w])
		w++;
	if (w == h->wm_part)
		return;
	h->wm_part = w;
	pthread_mutex_lock(&q->h.lock);
	h->final = w == h->parts ? h->size : (uint64_t)w * h->chunk;
	pthread_cond_signal(&q->h.cond);
	pthread_mutex_unlock(&q->h.lock);
}

/* Every request of h's file has ended: the thread hands it back when hashed. */
void si_hash_all_in(struct hash_queue *q, struct hash_job *h, int failed)
{
	pthread_mutex_lock(&q->h.lock);
	h->all_in = 1;
	if (failed)
		h->failed = 1;
	pthread_cond_signal(&q->h.cond);
	pthread_mutex_unlock(&q->h.lock);
}

/* The engine's drain hook, part: finish the files the thread handed back;
 * how many are still with it. */
unsigned si_hash_drain(struct stage_run *run)
{
	struct hash_queue *q = &run->hq;

	for (struct bb_qnode *n = bb_helper_take_back(&q->h), *next; n; n = next) {
		next = n->next;
		q->h.pending--;
		si_file_finish(bb_container_of(n, struct hash_job, back)->j);
	}
	return q->h.pending;
}

/* Check j's bytes against the digests of its entry e (MD5 against an S3
 * single-part ETag, SHA-256 against the manifest's).  Runs in the engine's
 * thread, or in the writer's for a file in memory (run is read only). */
void si_verify_digests(struct file_job *j, const struct bb_mentry *ep)
{
	const struct stage_run *run = j->run;
	struct bb_mentry e = *ep;

	if (!j->failed && j->hj && j->hj->rc != BB_OK) {
		char msg[PATH_MAX + 100];
		snprintf(msg, sizeof(msg), "reading back %s: %s", j->tmp, strerror(j->hj->read_errno));
		si_job_fail(j, j->hj->rc, msg);
	}
	if (!j->failed && si_wants_md5(run, &e)) {
		unsigned char d[16];
		char hex[33];
		if (j->hj && j->hj->md5_on)
			memcpy(d, j->hj->md5_d, sizeof(d));
		else if (j->md5 && j->stream_ok && j->stream_pos == e.size)
			EVP_DigestFinal_ex(j->md5, d, NULL);
		else if (j->mem && j->mem_md5_ok)
			memcpy(d, j->mem_md5, sizeof(d));
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
			si_job_fail(j, BB_ECORRUPT, msg);
		}
	}
	if (!j->failed && si_wants_sha256(run, &e)) {
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
			si_job_fail(j, BB_ECORRUPT, msg);
		}
	}
}

