/* Putting the staged bytes on disk: temporaries and final names, the
 * writer thread for small files received into memory, and the range
 * writer for the ranges of large ones. */
#include "config.h"

#define BB_LOG_COMPONENT "stage-in"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "stage/stagein_int.h"

#define RANGE_BLOCK (256u << 10)  /* the range writer's blocks (one range's bytes each)... */
#define RANGE_BLOCK_DIRECT (512u << 10) /* ...in a run that writes O_DIRECT... */
#define RANGE_POOL (64u << 20)    /* ...of which at most this many bytes exist */
#define HUGE_ALIGN (2u << 20)     /* a transparent huge page */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23    /* Linux 5.14; older C libraries lack the name */
#endif

/* How the writer thread names a file it wrote unnamed (O_TMPFILE). */
enum {
	LINK_EMPTY_PATH = 0,      /* linkat(fd, "", AT_EMPTY_PATH): needs CAP_DAC_READ_SEARCH */
	LINK_PROC,                /* linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW) */
	LINK_NONE,                /* neither works here: a named temporary and rename() */
};

/* Create the directory of j's file (last_dir, PATH_MAX bytes, is the
 * calling thread's last directory made). */
int si_make_dir(struct file_job *j, char *last_dir)
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
int si_open_tmp(struct file_job *j, char *last_dir)
{
	const char *slash = strrchr(j->final, '/');

	if (si_make_dir(j, last_dir) != BB_OK)
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

/* Give the complete, verified temporary of j its mtime and final name;
 * closes j->fd. */
void si_date_and_rename(struct file_job *j)
{
	struct timespec ts[2] = {{0, UTIME_OMIT}, {j->mtime_ns / 1000000000, j->mtime_ns % 1000000000}};

	if (j->mtime_ns)
		futimens(j->fd, ts);
	if (close(j->fd) < 0)
		si_job_fail(j, BB_ESYS, "close failed");
	j->fd = -1;
	if (!j->failed && rename(j->tmp, j->final) < 0) {
		char msg[PATH_MAX + 100];
		snprintf(msg, sizeof(msg), "cannot rename into %s: %s", j->final, strerror(errno));
		si_job_fail(j, BB_ESYS, msg);
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
			si_job_fail(j, nospc ? BB_ENOSPC : BB_ESYS, msg);
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

	if (si_make_dir(j, q->last_dir) != BB_OK) {
		j->failed = 1; /* make_dir said why, in j->err */
		j->rc = BB_ESYS;
		return 1;
	}
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - j->final), j->final);
	j->fd = open(dir[0] ? dir : "/", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		if (errno == ENOSPC || errno == EDQUOT) {
			snprintf(msg, sizeof(msg), "%s: no space left", j->final);
			si_job_fail(j, BB_ENOSPC, msg);
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
			si_job_fail(j, BB_ESYS, msg); /* file_done unlinks j->tmp */
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
	si_job_fail(j, errno == ENOSPC ? BB_ENOSPC : BB_ESYS, msg);
out:
	if (close(j->fd) < 0 && !j->failed) {
		unlink(j->final);
		si_job_fail(j, BB_ESYS, "close failed");
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
	si_verify_digests(j, &e);
	if (j->failed)
		return; /* nothing was written */
	if (q->link_mode != LINK_NONE && write_unnamed(q, j))
		return;
	rc = si_open_tmp(j, q->last_dir);
	if (rc != BB_OK) {
		j->failed = 1;
		j->rc = rc;
		return;
	}
	if (write_mem(j) == BB_OK)
		si_date_and_rename(j);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

/* The MD5s of the n files in memory that want one, side by side
 * (bb_md5_update_lanes: up to four streams in portable C cost about what
 * one does on the test machine; docs/origins.md, section 6). */
static void md5_side_by_side(struct write_queue *q, struct file_job **js, unsigned n)
{
	struct bb_md5 c[BB_MD5_LANES], *cp[BB_MD5_LANES];
	const unsigned char *data[BB_MD5_LANES];
	size_t len[BB_MD5_LANES];
	struct file_job *of[BB_MD5_LANES];
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		struct bb_mentry e;
		bb_manifest_entry(js[i]->run->m, js[i]->idx, &e);
		if (js[i]->failed || !si_wants_md5(js[i]->run, &e))
			continue;
		bb_md5_init(&c[k]);
		cp[k] = &c[k];
		data[k] = (const unsigned char *)js[i]->mem;
		len[k] = (size_t)e.size;
		of[k++] = js[i];
	}
	if (k < 2)
		return; /* one alone: si_verify_digests hashes it as before */
	bb_md5_update_lanes(cp, data, len, k);
	q->md5_side += k;
	q->md5_passes++;
	for (unsigned i = 0; i < k; i++) {
		bb_md5_final(&c[i], of[i]->mem_md5);
		of[i]->mem_md5_ok = 1;
	}
}

/* The writer thread's step (h.lock held): take the files queued (up to
 * BB_MD5_LANES), hash them side by side, write each, hand them back. */
static int writer_step(struct bb_helper *hp)
{
	struct write_queue *q = bb_container_of(hp, struct write_queue, h);
	struct file_job *js[BB_MD5_LANES];
	struct bb_qnode *n;
	unsigned k = 0;

	while (k < BB_MD5_LANES && (n = bb_fifo_pop(&q->todo)))
		js[k++] = bb_container_of(n, struct file_job, qn);
	if (!k)
		return 0;
	pthread_mutex_unlock(&hp->lock);
	md5_side_by_side(q, js, k);
	for (unsigned i = 0; i < k; i++) {
		write_mem_file(q, js[i]);
		pthread_mutex_lock(&hp->lock);
		bb_helper_give_back(hp, &js[i]->qn);
		pthread_mutex_unlock(&hp->lock);
	}
	pthread_mutex_lock(&hp->lock);
	return 1;
}

int si_writer_start(struct write_queue *q, struct bb_engine *eng)
{
	if (q->h.started || q->h.broken)
		return q->h.started ? BB_OK : BB_ESYS;
	bb_fifo_init(&q->todo);
	if (bb_helper_start(&q->h, eng, writer_step) == BB_OK)
		return BB_OK;
	bb_debug("no writer thread; small files are written as they arrive");
	return BB_ESYS;
}

void si_writer_stop(struct write_queue *q)
{
	bb_helper_stop(&q->h);
	if (q->md5_passes)
		bb_debug("writer thread: %llu MD5s of files in memory side by side, in %llu passes",
			 (unsigned long long)q->md5_side, (unsigned long long)q->md5_passes);
	q->md5_side = q->md5_passes = 0;
}

void si_writer_push(struct write_queue *q, struct file_job *j)
{
	pthread_mutex_lock(&q->h.lock);
	bb_fifo_push(&q->todo, &j->qn);
	pthread_cond_signal(&q->h.cond);
	pthread_mutex_unlock(&q->h.lock);
	q->h.pending++;
}

/* The engine's drain hook, part: the files the writer thread wrote (or
 * failed) are done; how many are still with it. */
unsigned si_writer_drain(struct stage_run *run)
{
	struct write_queue *q = &run->wq;

	for (struct bb_qnode *n = bb_helper_take_back(&q->h), *next; n; n = next) {
		struct file_job *j = bb_container_of(n, struct file_job, qn);
		struct bb_mentry e;
		next = n->next;
		q->h.pending--;
		bb_manifest_entry(run->m, j->idx, &e);
		si_file_done(j, &e);
	}
	return q->h.pending;
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
 * block; the thread hands it back (si_range_drain) and only then is the range
 * complete: its bytes are in the file before part_done tells the hashing
 * thread or file_finish.  A retry (range_reset) drops the partial block of
 * the failed attempt; its queued blocks are written before the retry's (the
 * FIFO), which rewrites the whole range.  Blocks of RANGE_BLOCK rather than
 * 1 MiB: every range in flight holds one partly filled block, and with
 * --jobs 64 these should be a small part of the pool (measured, 1 MiB
 * blocks also cost about twice the system time).
 *
 * The pool is one mapping per range writer, marked for transparent huge
 * pages, and a new block's pages are allocated by one madvise call: in the
 * VM we measure on, every first-touch page fault is a trip to the
 * hypervisor, and faults on fresh 4 KiB pages of the blocks were 7.6% of
 * the engine thread's samples on nginx's 4 x 1 GiB.  With the pool so
 * mapped, the stage-in took 2.21-2.87 s against 2.98-3.73 s (four
 * alternating pairs) and the client's user time fell by a quarter
 * (probably fewer TLB misses in the copy too; not measured).
 *
 * A file that nothing reads back while it is staged (no digest computed
 * from the file, no --shm, not bbcached's) is written with O_DIRECT: its
 * bytes go from the block to the disk, not into newly allocated page-cache
 * pages.  On the test VM, filling fresh page cache cost up to 3.5 s of
 * system time per GiB (dd: 4 GiB buffered in 14.9 s, O_DIRECT 1.5-1.8 s);
 * nginx's 4 x 1 GiB took 7.1-7.3 s buffered, 3.2-3.5 s direct.  A direct
 * write waits for the device, not the CPU, so such a run has all
 * SI_RANGE_WRITERS threads and blocks of RANGE_BLOCK_DIRECT (fewer, larger
 * writes).  Only whole aligned pages go direct; a file's last partial page,
 * or a range that does not start on a page (an odd --chunk), goes through
 * the page cache, and so does everything when the file system refuses
 * O_DIRECT (open or the first write fails with EINVAL). */

/* The range writer's step (h.lock held): write the next block, or hand
 * back the next end marker. */
static int range_writer_step(struct bb_helper *hp)
{
	struct range_queue *q = bb_container_of(hp, struct range_queue, h);
	struct bb_qnode *n = bb_fifo_pop(&q->fifo);

	if (!n)
		return 0;
	struct range_block *b = bb_container_of(n, struct range_block, qn);
	struct range_state *rs = &b->ref->j->rs[b->ref->part];
	if (!b->data) { /* the range's end: every block before it is written */
		bb_helper_give_back(hp, n);
		return 1;
	}
	struct file_job *j = b->ref->j;
	int rc = rs->rc; /* a range that failed writes no more */
	q->busy = 1;
	pthread_mutex_unlock(&hp->lock);
	/* Whole aligned pages go straight to the disk when the file has its
	 * O_DIRECT descriptor; the last partial page through the page cache. */
	size_t direct = j->dfd >= 0 && !j->no_direct && b->off % DIO_ALIGN == 0
			    ? b->len & ~(size_t)(DIO_ALIGN - 1) : 0;
	for (size_t done = 0; rc == BB_OK && done < b->len;) {
		int d = done < direct;
		ssize_t w = pwrite(d ? j->dfd : j->fd, b->data + done, (d ? direct : b->len) - done,
				   (off_t)(b->off + done));
		if (w < 0 && d && errno == EINVAL) {
			direct = 0; /* the file system refuses it after all */
			j->no_direct = 1;
			bb_debug("%s: O_DIRECT write refused; through the page cache", j->final);
			continue;
		}
		if (w < 0 && errno != EINTR)
			rc = errno == ENOSPC || errno == EDQUOT ? BB_ENOSPC : BB_ESYS;
		else if (w > 0) {
			done += (size_t)w;
			*(d ? &q->direct_bytes : &q->paged_bytes) += (uint64_t)w;
		}
	}
	pthread_mutex_lock(&hp->lock);
	q->busy = 0;
	if (rc != BB_OK && rs->rc == BB_OK)
		rs->rc = rc;
	n->next = q->free;
	q->free = n;
	if (q->want_space) {
		q->want_space = 0;
		pthread_cond_signal(&q->space);
	}
	return 1;
}

/* The pool of q: one mapping of its max_blocks blocks, aligned to 2 MiB
 * and marked for transparent huge pages, which blocks are cut from as they
 * are needed (memory is used as they are first filled); their headers in
 * an array.  BB_OK, or BB_ENOMEM with nothing allocated. */
static int range_pool_map(struct range_queue *q)
{
	size_t bytes = (size_t)q->max_blocks * q->block, extra = HUGE_ALIGN;
	char *m = mmap(NULL, bytes + extra, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (m == MAP_FAILED)
		return BB_ENOMEM;
	size_t head = (HUGE_ALIGN - (uintptr_t)m % HUGE_ALIGN) % HUGE_ALIGN;
	if (head)
		munmap(m, head);
	if (extra - head)
		munmap(m + head + bytes, extra - head);
	q->region = m + head;
	q->region_bytes = bytes;
	if (!(q->blocks = calloc(q->max_blocks, sizeof(*q->blocks)))) {
		munmap(q->region, bytes);
		q->region = NULL;
		return BB_ENOMEM;
	}
	/* Not every kernel has them (or allows them): 4 KiB pages then. */
	(void)madvise(q->region, bytes, MADV_HUGEPAGE);
	return BB_OK;
}

static void range_pool_unmap(struct range_queue *q)
{
	if (q->region)
		munmap(q->region, q->region_bytes);
	free(q->blocks);
	q->region = NULL;
	q->blocks = NULL;
	q->n_blocks = 0;
}

/* Range writer i of run, started if it is not yet; NULL if it cannot be. */
static struct range_queue *range_writer_start(struct stage_run *run, unsigned i)
{
	struct range_queue *q = &run->rq[i];

	if (q->h.started || q->h.broken)
		return q->h.started ? q : NULL;
	bb_fifo_init(&q->fifo);
	q->block = run->direct ? RANGE_BLOCK_DIRECT : RANGE_BLOCK;
	q->max_blocks = RANGE_POOL / q->block / run->n_rq; /* the pool, shared */
	if (range_pool_map(q) != BB_OK)
		q->h.broken = 1;
	else if (pthread_cond_init(&q->space, NULL) != 0)
		q->h.broken = 1;
	else if (bb_helper_start(&q->h, run->org.eng, range_writer_step) == BB_OK) {
		bb_debug("range writer %u of %u started", i + 1, run->n_rq);
		return q;
	} else
		pthread_cond_destroy(&q->space);
	range_pool_unmap(q);
	bb_debug("no range writer thread; ranges are written as they arrive");
	return NULL;
}

/* After the engine's last request: every marker is back, the FIFO empty. */
static void range_writer_stop(struct range_queue *q)
{
	if (!q->h.started)
		return;
	bb_helper_stop(&q->h);
	pthread_cond_destroy(&q->space);
	q->filling = (struct bb_dlist){0}; /* empty, unless a request never ended */
	q->free = NULL;
	range_pool_unmap(q);
}

void si_range_writers_stop(struct stage_run *run)
{
	uint64_t direct = 0, paged = 0;
	for (unsigned i = 0; i < run->n_rq; i++) {
		range_writer_stop(&run->rq[i]);
		direct += run->rq[i].direct_bytes;
		paged += run->rq[i].paged_bytes;
		run->rq[i].direct_bytes = run->rq[i].paged_bytes = 0;
	}
	if (direct || paged)
		bb_debug("range writers: %llu bytes written O_DIRECT, %llu through the page cache",
			 (unsigned long long)direct, (unsigned long long)paged);
}

/* Give file j of `parts` ranges (refs made) to the next range writer in
 * turn; else (no thread) file_data writes its bytes as they arrive, as for
 * any file.  It is written O_DIRECT when the run allows it (run->direct:
 * no --shm, not bbcached); the hashing thread then reads it back O_DIRECT. */
void si_range_file_start(struct file_job *j, uint32_t parts)
{
	struct stage_run *run = j->run;
	struct range_queue *q = range_writer_start(run, run->next_rq);

	if (!q || !(j->rs = calloc(parts, sizeof(*j->rs))))
		return;
	j->rq = q;
	if (run->direct)
		j->dfd = open(j->tmp, O_WRONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
	run->next_rq = (run->next_rq + 1) % run->n_rq;
}

/* Queue b (engine thread; q->h.lock held); the range's write error so far. */
static int range_push_locked(struct range_queue *q, struct range_block *b)
{
	bb_fifo_push(&q->fifo, &b->qn);
	pthread_cond_signal(&q->h.cond);
	return b->ref->j->rs[b->ref->part].rc;
}

/* The range of b is done filling it: off the filling list, into the FIFO. */
static int range_push(struct range_queue *q, struct range_block *b)
{
	int rc;

	b->ref->j->rs[b->ref->part].fill = NULL;
	bb_dlist_remove(&q->filling, &b->fill_link);
	pthread_mutex_lock(&q->h.lock);
	rc = range_push_locked(q, b);
	pthread_mutex_unlock(&q->h.lock);
	return rc;
}

/* A free block for ref's range (now its fill block), waiting for one when
 * the pool is used up. */
static struct range_block *range_block_get(struct range_queue *q, struct part_ref *ref)
{
	struct range_block *b = NULL;

	pthread_mutex_lock(&q->h.lock);
	while (!q->free) {
		if (q->n_blocks < q->max_blocks) {
			/* A new block (only this thread cuts them): its pages
			 * allocated in one call, not one fault per page (costly
			 * in a VM); a kernel before 5.14 faults them in. */
			b = &q->blocks[q->n_blocks];
			b->data = q->region + (size_t)q->n_blocks++ * q->block;
			pthread_mutex_unlock(&q->h.lock);
			(void)madvise(b->data, q->block, MADV_POPULATE_WRITE);
			pthread_mutex_lock(&q->h.lock);
			break;
		}
		if (!q->fifo.head && !q->busy && q->filling.head) {
			/* Every block is partly filled (more ranges in flight
			 * than blocks): queue them, or nothing would free one. */
			struct bb_dnode *d;
			while ((d = q->filling.head)) {
				struct range_block *f = bb_container_of(d, struct range_block, fill_link);
				bb_dlist_remove(&q->filling, d);
				f->ref->j->rs[f->ref->part].fill = NULL;
				range_push_locked(q, f);
			}
			continue;
		}
		q->want_space = 1;
		pthread_cond_wait(&q->space, &q->h.lock);
	}
	if (!b) {
		b = bb_container_of(q->free, struct range_block, qn);
		q->free = q->free->next;
	}
	pthread_mutex_unlock(&q->h.lock);
	b->ref = ref;
	b->len = 0;
	bb_dlist_push_front(&q->filling, &b->fill_link);
	ref->j->rs[ref->part].fill = b;
	return b;
}

/* file_data for a range the range writer writes: copy, queue full blocks. */
int si_range_data(struct file_job *j, struct part_ref *ref, const char *buf, size_t n,
		  uint64_t off)
{
	struct range_queue *q = j->rq;
	struct range_state *rs = &j->rs[ref->part];
	size_t total = n;
	int rc = BB_OK;

	if (rs->fill && rs->fill->off + rs->fill->len != off)
		rc = range_push(q, rs->fill); /* not contiguous (the engine never does it) */
	while (n && rc == BB_OK) {
		struct range_block *b = rs->fill;
		if (!b) {
			b = range_block_get(q, ref);
			b->off = off;
		}
		size_t k = n < q->block - b->len ? n : q->block - b->len;
		memcpy(b->data + b->len, buf, k);
		b->len += k;
		buf += k;
		off += k;
		n -= k;
		if (b->len == q->block)
			rc = range_push(q, b); /* a failed write of this range ends its request */
	}
	if (rc == BB_OK)
		bb_progress_bytes(&j->run->prog, total);
	return rc;
}

/* A retry of ref's range starts: its partial block is dropped (its queued
 * ones are written before any of the retry's, which rewrites them all). */
void si_range_reset(struct file_job *j, struct part_ref *ref)
{
	struct range_queue *q = j->rq;
	struct range_block *b = j->rs[ref->part].fill;

	if (!b)
		return;
	j->rs[ref->part].fill = NULL;
	bb_dlist_remove(&q->filling, &b->fill_link);
	pthread_mutex_lock(&q->h.lock);
	b->qn.next = q->free;
	q->free = &b->qn;
	pthread_mutex_unlock(&q->h.lock);
}

/* part_done's entry for a range the range writer writes: queue its last
 * block and its end marker, keep the result; 1 (si_range_drain calls
 * part_done again when the marker is through). */
int si_range_end(struct part_ref *ref, const struct bb_xfer_result *r)
{
	struct range_queue *q = ref->j->rq;
	struct range_state *rs = &ref->j->rs[ref->part];

	if (rs->fill)
		range_push(q, rs->fill);
	rs->res_rc = r->rc;
	snprintf(rs->errmsg, sizeof(rs->errmsg), "%s", r->rc == BB_OK ? "" : r->errmsg);
	rs->end = (struct range_block){.ref = ref};
	pthread_mutex_lock(&q->h.lock);
	range_push_locked(q, &rs->end);
	pthread_mutex_unlock(&q->h.lock);
	q->h.pending++;
	return 1;
}

/* The engine's drain hook, part: ranges whose bytes are all written end
 * now (part_done); how many are still with the thread. */
static unsigned range_drain(struct stage_run *run, struct range_queue *q)
{
	for (struct bb_qnode *n = bb_helper_take_back(&q->h), *next; n; n = next) {
		struct part_ref *ref = bb_container_of(n, struct range_block, qn)->ref;
		struct range_state *rs = &ref->j->rs[ref->part];
		struct bb_xfer_result r = {.rc = rs->res_rc};
		next = n->next;
		snprintf(r.errmsg, sizeof(r.errmsg), "%s", rs->errmsg);
		if (r.rc == BB_OK && rs->rc != BB_OK) { /* as if file_data had failed */
			struct bb_mentry e;
			bb_manifest_entry(run->m, ref->j->idx, &e);
			r.rc = rs->rc;
			snprintf(r.errmsg, sizeof(r.errmsg), "%s: %s", e.path, bb_strerror(rs->rc));
		}
		q->h.pending--;
		rs->written = 1;
		si_part_done(ref, &r);
	}
	return q->h.pending;
}

unsigned si_range_drain(struct stage_run *run)
{
	unsigned out = 0;

	for (unsigned i = 0; i < run->n_rq; i++)
		out += range_drain(run, &run->rq[i]);
	return out;
}
