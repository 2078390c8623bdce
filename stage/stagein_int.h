/* The stage-in's internals, shared by its files:
 *   stagein.c  listing, the files in flight, feeding the engine, the run;
 *   digests.c  the digests of the files and the hashing thread;
 *   writer.c   putting bytes on disk: temporaries, the writer thread for
 *              small files, the range writer for large ones.
 * Functions shared between them are named si_. */
#ifndef BB_STAGE_STAGEIN_INT_H
#define BB_STAGE_STAGEIN_INT_H

#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>

#include "stage/engine.h"
#include "stage/helper.h"
#include "stage/manifest.h"
#include "stage/md5x.h"
#include "stage/origin.h"
#include "stage/stage.h"
#include "stage/stage_util.h"

struct file_job;
struct stage_run;

#define DIO_ALIGN 4096u /* O_DIRECT: offsets, lengths and buffers aligned so */

/* The argument of one request's callbacks: its file and which range. */
struct part_ref {
	struct file_job *j;
	uint32_t part;
};

/* A file of several ranges whose digest the hashing thread computes.
 * Fields are the engine thread's, or the hashing thread's while the job is
 * in hash_queue.jobs, unless marked "q->lock" (that is, q->h.lock). */
struct hash_job {
	struct hash_job *next;    /* q->lock: in q->jobs (oldest first) */
	struct bb_qnode back;     /* q->lock: handed back (q->h.back) */
	struct file_job *j;
	int fd;                   /* j's temporary file, open until j is handed back */
	int dfd;                  /* hashing thread: the same, O_RDONLY | O_DIRECT, or -1 */
	uint64_t size, chunk;
	uint32_t parts;
	uint8_t *part_done;       /* engine thread: range p completed */
	uint32_t wm_part;         /* engine thread: ranges [0, wm_part) completed */
	uint64_t final;           /* q->lock: bytes [0, final) are final (their requests completed) */
	int all_in;               /* q->lock: every request of j has ended */
	int failed;               /* q->lock: j failed; stop hashing it */
	int md5_on;               /* MD5 wanted: md5 is the digest */
	int fed;                  /* its ranges go out in turn with other files' (feed) */
	struct bb_md5 md5;        /* hashing thread (several files at once: bb_md5_update_lanes) */
	EVP_MD_CTX *sha256;       /* hashing thread */
	uint64_t hashed;          /* hashing thread: bytes [0, hashed) went into the digests */
	int rc;                   /* hashing thread: BB_OK, or reading back failed */
	int read_errno;
	unsigned char md5_d[16], sha256_d[32]; /* set when handed back complete */
};

/* One hashing thread per run, started with the first file that needs it.
 * It hashes up to BB_MD5_LANES files side by side, oldest files first; a
 * hashed file is handed back and the engine's thread verifies and renames
 * it (si_hash_drain).  h.cond: more bytes final, a file ended, or quit;
 * h.broken: files hash at their end. */
struct hash_queue {
	struct bb_helper h;
	struct hash_job *jobs;    /* h.lock */
	unsigned lanes;           /* files hashed in one pass (bb_md5_lanes()) */
	char *buf;                /* hashing thread: lanes * HASH_PIECE */
	uint64_t side[BB_MD5_LANES + 1]; /* hashing thread: bytes hashed n files at a time */
	uint64_t direct_read, paged_read; /* hashing thread: bytes read back O_DIRECT / not */
};

/* The writer thread: small files are received into memory and written,
 * dated and renamed there (open, write, futimens, close, rename: most of
 * the work per small file is these system calls), while the engine's
 * thread goes on receiving.  Started with the first such file. */
struct write_queue {
	struct bb_helper h;       /* h.broken: files go to disk directly */
	struct bb_fifo todo;      /* h.lock: files to write, in order (file_job.qn) */
	int link_mode;            /* writer thread: how an unnamed file gets its name (LINK_*) */
	char last_dir[PATH_MAX];  /* writer thread: the directory it made last */
	uint64_t md5_side, md5_passes; /* writer thread: MD5s computed side by side, in passes */
};

/* The range writer: the engine's thread copies the received bytes of a
 * file of several ranges into blocks, and a thread writes them (pwrite at
 * their offsets, in FIFO order), so that one thread no longer receives and
 * writes every byte (writing was about 70% of its time on 4 x 1 GiB from
 * nginx: docs/origins.md, section 5).  A block holds contiguous bytes of
 * one range; a range's end marker follows its last block through the FIFO,
 * and only then does the range count as complete (part_done). */
struct range_block {
	struct bb_qnode qn;       /* q->h.lock: in the FIFO, the free list or handed back */
	struct bb_dnode fill_link; /* engine thread: in q->filling */
	struct part_ref *ref;     /* its file and range */
	uint64_t off;             /* where data goes in the file */
	size_t len;
	char *data;               /* q->block bytes, page-aligned; NULL: the range's end marker */
};

/* One range of a file the range writer writes.  Engine thread's, unless
 * marked "q->h.lock". */
struct range_state {
	struct range_block *fill; /* the block being filled, or NULL */
	struct range_block end;   /* the end marker, queued by part_done */
	int written;              /* the marker came back: part_done does the rest */
	int rc;                   /* q->h.lock: BB_OK, or why a pwrite of the range failed */
	int res_rc;               /* the request's result, kept for part_done */
	char errmsg[512];
};

/* Range writers: one thread each, a file's blocks always in the same one.
 * A buffered write holds the file's inode lock, so two threads writing one
 * file would take turns; two files are written side by side. */
#define SI_RANGE_WRITERS 4

/* h.cond: a block or marker to write, or quit; h.broken: ranges are
 * written directly; h.pending: markers queued, not back yet. */
struct range_queue {
	struct bb_helper h;
	pthread_cond_t space;     /* a block is free again */
	struct bb_fifo fifo;      /* h.lock: blocks and markers to write */
	struct bb_qnode *free;    /* h.lock: free blocks (by qn.next) */
	int busy;                 /* h.lock: the thread is writing a block it took */
	int want_space;           /* h.lock: the engine's thread waits on space */
	unsigned n_blocks;        /* h.lock: blocks cut from the pool */
	unsigned max_blocks;      /* the pool's share of this queue */
	char *region;             /* the pool: max_blocks blocks' data (writer.c) */
	size_t region_bytes;
	struct range_block *blocks; /* their headers; [0, n_blocks) in use */
	struct bb_dlist filling;  /* engine thread: blocks being filled */
	size_t block;             /* bytes of each block */
	uint64_t direct_bytes, paged_bytes; /* the thread's: written O_DIRECT / not */
};

/* A file in flight.  Owned by the engine's thread, except while a helper
 * thread has it (in its queue, until it hands it back). */
struct file_job {
	struct stage_run *run;
	struct file_job *next;    /* the free slots */
	struct bb_qnode qn;       /* the writer thread's queue, then handed back */
	uint32_t idx;             /* manifest entry */
	int fd;
	int dfd;                  /* the same file, O_DIRECT, for the range writer; -1 none */
	int no_direct;            /* range writer's: the file system refused an O_DIRECT write */
	uint32_t parts_left;
	int failed;
	int rc;
	uint64_t size;
	int64_t mtime_ns;
	char *mem;                /* a small file's bytes (mem_buf, kept in memory), or NULL */
	unsigned char mem_md5[16]; /* the writer thread's MD5 of mem, when mem_md5_ok */
	int mem_md5_ok;
	struct part_ref one;      /* the refs of a single-request file */
	struct part_ref *refs;    /* the refs of a file of several ranges */
	struct range_state *rs;   /* its ranges, when a range writer writes them (else NULL) */
	struct range_queue *rq;   /* that range writer */
	/* Single-request files: the digests stream with the data. */
	EVP_MD_CTX *md5, *sha256;
	int stream_ok;            /* the digests saw every byte, in order */
	uint64_t stream_pos;
	struct hash_job *hj;      /* several ranges: the hashing thread's part */
	uint32_t parts;           /* ranges (requests) of the file */
	uint32_t next_part;       /* ranges [0, next_part) went to the engine (feed) */
	struct bb_dnode feed_link; /* in run->feed, while on_feed */
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
	struct range_queue rq[SI_RANGE_WRITERS]; /* the range writers, a file's ranges in one */
	unsigned n_rq, next_rq;   /* of them used; the next file's */
	struct bb_dlist feed;     /* files with ranges still to send, in turn */
	int feed_max;             /* send while fewer requests than this are in the engine */
	int few_cpus;             /* fewer than 4 usable: no range writer for MD5-checked files */
	int direct;               /* the range writers may write O_DIRECT (writer.c) */
	int feeding;
};

/* stagein.c */
void si_job_fail(struct file_job *j, int rc, const char *msg);
void si_part_done(void *arg, struct bb_xfer_result *r);
void si_file_finish(struct file_job *j);
void si_file_done(struct file_job *j, const struct bb_mentry *e);

/* digests.c */
int si_wants_md5(const struct stage_run *run, const struct bb_mentry *e);
int si_wants_sha256(const struct stage_run *run, const struct bb_mentry *e);
/* Start the digests of a file (either may be NULL: not wanted); 1 when both started. */
int si_digests_init(EVP_MD_CTX *md5, EVP_MD_CTX *sha256);
void si_digests_update(EVP_MD_CTX *md5, EVP_MD_CTX *sha256, const void *buf, size_t n);
void si_verify_digests(struct file_job *j, const struct bb_mentry *e);
struct hash_job *si_hash_job_new(struct file_job *j, const struct bb_mentry *e, uint32_t parts,
				 int md5, int sha256, int fed);
void si_hash_job_free(struct hash_job *h);
void si_hash_part_done(struct hash_queue *q, struct hash_job *h, uint32_t p, int ok);
void si_hash_all_in(struct hash_queue *q, struct hash_job *h, int failed);
unsigned si_hash_drain(struct stage_run *run);
void si_hasher_stop(struct hash_queue *q);

/* writer.c */
int si_make_dir(struct file_job *j, char *last_dir);
int si_open_tmp(struct file_job *j, char *last_dir);
void si_date_and_rename(struct file_job *j);
int si_writer_start(struct write_queue *q, struct bb_engine *eng);
void si_writer_push(struct write_queue *q, struct file_job *j);
unsigned si_writer_drain(struct stage_run *run);
void si_writer_stop(struct write_queue *q);
void si_range_file_start(struct file_job *j, uint32_t parts);
int si_range_data(struct file_job *j, struct part_ref *ref, const char *buf, size_t n,
		  uint64_t off);
void si_range_reset(struct file_job *j, struct part_ref *ref);
int si_range_end(struct part_ref *ref, const struct bb_xfer_result *r);
unsigned si_range_drain(struct stage_run *run);
void si_range_writers_stop(struct stage_run *run);

#endif
