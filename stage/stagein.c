/* Stage-in: list the source into a manifest, then move every file through
 * the engine (http, s3) or POSIX reads (file), verify it, and rename it into
 * place.  A file exists under its final name only when complete and
 * verified; an interrupted stage-in resumes by skipping those. */
#include "config.h"

#define BB_LOG_COMPONENT "stage-in"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
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
#include "stage/stagein_int.h"
#include "shmcache/shmcache.h"
#include "shmcache/topology.h"

#define SMALL_CHUNK (8u << 20)
#define MEM_FILE_MAX (1u << 20)   /* files up to this size are kept in memory... */
#define MEM_BUDGET (64u << 20)    /* ...while fewer bytes than this are, and written by the writer thread */

static void pump(struct stage_run *run);
static void feed(struct stage_run *run);
static void start_file(struct stage_run *run, uint32_t idx);

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
		return si_range_data(j, arg, buf, n, off);
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
			si_digests_update(j->md5, j->sha256, buf, n);
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
		si_range_reset(j, arg);
	/* A retry rewrites the object; the streaming digests start over.  (A
	 * range of a larger file needs nothing: the hashing thread takes only
	 * ranges whose request completed, and those are never retried.) */
	if (j->md5 || j->sha256) {
		si_digests_init(j->md5, j->sha256);
		j->stream_pos = 0;
		j->stream_ok = 1;
	}
}

void si_job_fail(struct file_job *j, int rc, const char *msg)
{
	if (!j->failed) {
		j->failed = 1;
		j->rc = rc;
		snprintf(j->err, sizeof(j->err), "%s", msg);
	}
}

/* The engine's drain hook: what the helper threads handed back; how many
 * items are still with them. */
static unsigned run_drain(void *arg)
{
	struct stage_run *run = arg;
	unsigned ranges = si_range_drain(run); /* first: a range's end may end its file */

	if (run->feed.head)
		feed(run);
	unsigned hashing = si_hash_drain(run);
	return ranges + hashing + si_writer_drain(run);
}

/* All parts in: verify, date, rename. */
void si_file_finish(struct file_job *j)
{
	struct stage_run *run = j->run;
	struct bb_mentry e;

	bb_manifest_entry(run->m, j->idx, &e);
	if (!j->failed && run->o->verify == BB_VERIFY_SHA256 && !e.sha256)
		run->no_sha++;
	if (!j->failed && j->mem) { /* the writer thread verifies it and puts it on disk */
		si_writer_push(&run->wq, j);
		return;
	}
	if (j->dfd >= 0)
		close(j->dfd);
	j->dfd = -1;
	si_verify_digests(j, &e);
	if (!j->failed)
		load_shm(run, j, &e);
	if (!j->failed)
		si_date_and_rename(j);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	si_file_done(j, &e);
}

/* j is on disk under its final name, or failed: count it, free its slot. */
void si_file_done(struct file_job *j, const struct bb_mentry *e)
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
	si_hash_job_free(j->hj);
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
	/* The ranges of the files started here go out in turn from the first:
	 * fed as each file started, the first would take the whole window. */
	if (run->feed.head)
		feed(run);
}

/* Every request of j has ended (or will never be sent). */
static void parts_end(struct file_job *j)
{
	if (j->hj) /* the hashing thread hands it back (si_hash_drain) */
		si_hash_all_in(&j->run->hq, j->hj, j->failed);
	else
		si_file_finish(j);
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
	bb_dlist_push_back(&run->feed, &j->feed_link);
	j->on_feed = 1;
}

static void feed_unlink(struct stage_run *run, struct file_job *j)
{
	if (!j->on_feed)
		return;
	bb_dlist_remove(&run->feed, &j->feed_link);
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
	r.on_done = si_part_done;
	r.arg = j->refs ? &j->refs[p] : &j->one;
	r.what = e->path;
	r.priority = run->prio;
	return bb_engine_submit(run->org.eng, &r);
}

static void feed(struct stage_run *run)
{
	if (run->feeding)
		return;
	run->feeding = 1;
	while (run->feed.head) {
		struct file_job *j = bb_container_of(run->feed.head, struct file_job, feed_link);
		if (!j->failed && !run->cancelled &&
		    bb_engine_pending(run->org.eng) >= run->feed_max)
			break;
		struct bb_mentry e;
		bb_manifest_entry(run->m, j->idx, &e);
		if (!j->failed && run->cancelled) {
			char msg[600];
			snprintf(msg, sizeof(msg), "%s: cancelled", e.path);
			si_job_fail(j, BB_EINVAL, msg);
		}
		if (j->failed) {
			if (j->hj)
				si_hash_part_done(&run->hq, j->hj, 0, 0);
			drop_unsent(j);
			continue;
		}
		uint32_t p = j->next_part++;
		feed_unlink(run, j);
		if (j->next_part < j->parts)
			feed_append(run, j); /* its next range after the other files' */
		if (submit_part(run, j, &e, p) != BB_OK) {
			si_job_fail(j, BB_ENOMEM, "out of memory");
			si_part_done(&j->refs[p], &(struct bb_xfer_result){.rc = BB_ENOMEM});
		}
	}
	run->feeding = 0;
}

void si_part_done(void *arg, struct bb_xfer_result *r)
{
	struct part_ref *ref = arg;
	struct file_job *j = ref->j;
	struct stage_run *run = j->run;

	if (j->rs && !j->rs[ref->part].written && si_range_end(ref, r))
		return; /* complete once its bytes are written: range_drain calls again */
	if (r->rc != BB_OK)
		si_job_fail(j, r->rc, r->errmsg);
	if (j->hj)
		si_hash_part_done(&run->hq, j->hj, ref->part, r->rc == BB_OK);
	j->parts_left--;
	if (j->failed && j->next_part < j->parts)
		drop_unsent(j);
	else if (j->parts_left == 0)
		parts_end(j);
	feed(run);
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
		si_job_fail(j, BB_ENOMEM, "out of memory");
		return;
	}

	snprintf(src, sizeof(src), "%s%s%s", run->org.base,
		 run->org.single ? "" : "/", run->org.single ? "" : e->source);
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "cannot open %s: %s", src, strerror(errno));
		si_job_fail(j, errno == ENOENT ? BB_ENOENT : errno == EACCES ? BB_EPERM : BB_ESYS, msg);
		free(buf);
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		if (fstat(fd, &st) < 0 || !bb_stage_same_version(&st, e)) {
			snprintf(msg, sizeof(msg), "%s changed on the origin since it was listed "
				 "(size, mtime or inode differ)", src);
			si_job_fail(j, BB_ESTALE, msg);
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
				si_job_fail(j, r == 0 ? BB_ESTALE : BB_ESYS, msg);
				break;
			}
			int rc = file_data(&j->one, buf, (size_t)r, off);
			if (rc != BB_OK) {
				snprintf(msg, sizeof(msg), "writing %s: %s", j->tmp, bb_strerror(rc));
				si_job_fail(j, rc, msg);
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
	j->fd = j->dfd = -1;
	j->size = e.size;
	j->mtime_ns = e.mtime_ns;
	j->one = (struct part_ref){j, 0};
	run->active_files++;
	/* A small object from the network is received into memory; the writer
	 * thread creates, writes, dates and renames its file after it is
	 * verified.  (Not with --shm: load_shm reads the open file.) */
	if (run->org.url.scheme != BB_SCHEME_FILE && !run->shm && e.size <= MEM_FILE_MAX &&
	    e.size <= run->chunk && si_writer_start(&run->wq, run->org.eng) == BB_OK)
		j->mem = slot_buffer(run, j, e.size);
	int rc = j->mem ? BB_OK : si_open_tmp(j, run->last_dir);
	if (rc != BB_OK) {
		j->failed = 1;
		j->rc = rc;
		j->parts_left = 0;
		si_file_finish(j);
		return;
	}
	if (run->org.url.scheme == BB_SCHEME_FILE) {
		j->parts_left = 1;
		copy_posix(j, &e);
		si_file_finish(j);
		return;
	}
	rc = bb_origin_object_url(&run->org, e.source, j->url, sizeof(j->url));
	if (rc != BB_OK) {
		si_job_fail(j, rc, "object URL too long");
		si_file_finish(j);
		return;
	}
	uint64_t chunk = run->chunk;
	uint32_t parts = e.size <= chunk || (!e.etag[0] && run->org.url.scheme != BB_SCHEME_S3)
				 ? 1 : (uint32_t)((e.size + chunk - 1) / chunk);
	j->parts_left = j->parts = parts;
	int md5 = si_wants_md5(run, &e), sha256 = si_wants_sha256(run, &e);
	int fed = md5 && !run->prio && !run->x; /* feed: its ranges in turn with others' */
	struct part_ref *refs = &j->one;
	if (parts == 1 && (md5 || sha256) && !j->mem) {
		/* (A file in memory is hashed by the writer thread, in one go.)
		 * A failed allocation leaves the digest to file_finish's read-back. */
		j->md5 = md5 ? EVP_MD_CTX_new() : NULL;
		j->sha256 = sha256 ? EVP_MD_CTX_new() : NULL;
		j->stream_ok = (!md5 || j->md5) && (!sha256 || j->sha256) &&
			       si_digests_init(j->md5, j->sha256);
	} else if (parts > 1) {
		refs = j->refs = calloc(parts, sizeof(*refs));
		if (!refs) {
			si_job_fail(j, BB_ENOMEM, "out of memory");
			j->parts_left = 0;
			si_file_finish(j);
			return;
		}
		for (uint32_t p = 0; p < parts; p++)
			refs[p] = (struct part_ref){j, p};
		/* Not with the MD5 check on fewer than 4 CPUs, unless the
		 * file is written O_DIRECT: with the hashing thread busy too,
		 * a third busy thread (and a third copy of every byte) cost
		 * s3rver's 4 x 1 GiB more than it gave through the page
		 * cache (docs/origins.md, section 5). */
		if (!md5 || !run->few_cpus || run->direct)
			si_range_file_start(j, parts);
		if (md5 || sha256)
			j->hj = si_hash_job_new(j, &e, parts, md5, sha256, fed);
	}
	/* Ranges of several files in turn: their range writers work side by
	 * side (not for bbcached's reads, which want their file first).  pump,
	 * which started this file, sends them when it has started the others. */
	if (parts > 1 && ((j->hj && fed) || (j->rs && run->n_rq > 1 && !run->prio && !run->x))) {
		feed_append(run, j);
		return;
	}
	for (uint32_t p = 0; p < parts; p++) {
		j->next_part = p + 1;
		if (submit_part(run, j, &e, p) != BB_OK) {
			si_job_fail(j, BB_ENOMEM, "out of memory");
			si_part_done(&refs[p], &(struct bb_xfer_result){.rc = BB_ENOMEM});
			break;
		}
	}
}

/* The CPUs this process may run on: a Slurm job confined to a few CPUs
 * of a large node (cpuset cgroup, affinity) gets those few, not the
 * node's count. */
static long usable_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	return sysconf(_SC_NPROCESSORS_ONLN);
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
	long cpus = usable_cpus();
	run->few_cpus = cpus < 4;
	/* O_DIRECT writes wait for the disk, not a CPU: all the threads. */
	run->direct = !run->o->buffered && !run->shm && !run->x;
	run->n_rq = run->direct || cpus >= SI_RANGE_WRITERS ? SI_RANGE_WRITERS
		    : cpus < 2 ? 1 : (unsigned)cpus;
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
	si_hasher_stop(&run->hq);
	si_writer_stop(&run->wq);
	si_range_writers_stop(run);
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
	si_hasher_stop(&run->hq);
	si_writer_stop(&run->wq);
	si_range_writers_stop(run);
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
		snprintf(err, errlen, "cannot start the transfer engine: %s",
			 rc == BB_ESYS ? strerror(errno) : bb_strerror(rc));
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
	if (rc == BB_OK)
		bb_manifest_builder_set_sync(b, o->sync_manifest);
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
		snprintf(err, errlen, "cannot start the transfer engine: %s",
			 rc == BB_ESYS ? strerror(errno) : bb_strerror(rc));
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

