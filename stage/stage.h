/* Stage-in and stage-out drivers: list a source into a manifest (the job's
 * snapshot), move the bytes through the transfer engine (or POSIX reads),
 * verify, and give each file its final name only when it is complete. */
#ifndef BB_STAGE_STAGE_H
#define BB_STAGE_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/directive.h"

struct bb_conf;

struct bb_stage_opts {
	const char *source;         /* URL or path */
	const char *dest;           /* URL or path */
	int type;                   /* BB_STAGE_FILE / BB_STAGE_DIRECTORY; -1: from the URL (a trailing / is a directory) */
	enum bb_verify verify;
	const char *include, *exclude;
	int jobs;                   /* transfers in flight; 0: 32 */
	int json;                   /* one JSON object per event on stdout */
	int progress;               /* a progress line on stderr (when a terminal) */
	const char *manifest;       /* where to write the manifest; NULL: next to dest */
	const struct bb_conf *conf; /* site policy (allowed origins, endpoint, credentials) */
	uint64_t chunk;             /* ranged GET / multipart part size; 0: 8 MiB / 64 MiB */
	int max_attempts;           /* per request; 0: engine default */
	int stall_timeout_s;        /* 0: engine default */
	int no_verify_tls;          /* --no-verify-tls */
	int buffered;               /* --buffered: large files through the page cache, not O_DIRECT */
	uint64_t shm_bytes;         /* nonzero: also load every file into the job's shm cache */
	uint64_t job_id;            /* the cache segment's job id (with shm_bytes) */
	uint32_t block_size;        /* manifest/cache block size; 0: 4 MiB */
	int list_only;              /* stage-in: write the manifest, move nothing (bbcached will) */
	int sync_manifest;          /* fsync the manifest (a snapshot kept in Slurm's state_dir); 0: the
				     * rename alone, like the staged files (nothing else is fsync'ed) */
};

struct bb_stage_summary {
	uint64_t files, bytes;       /* moved by this run */
	uint64_t skipped, skipped_bytes; /* already there and complete (resume) */
	uint64_t failed;
	uint64_t total_files, total_bytes; /* in the manifest */
	uint64_t requests, retries;
	double seconds;
	char manifest[4096];
	char first_error[1024];
};

int bb_stage_in(const struct bb_stage_opts *o, struct bb_stage_summary *s, char *err,
		size_t errlen);

struct bbc_cache;

/* The transfer half of a stage-in, over a manifest that exists already
 * (bbcached prefetches with it, and stages one file on demand with it).
 * Every hook may be NULL; they are called from the calling thread. */
struct bb_stage_xfer {
	const char *manifest;      /* an existing manifest file */
	const char *root;          /* where its entries go (DIR/NAME; DIR for a single file) */
	struct bbc_cache *shm;     /* load each verified file into it, or NULL */
	uint64_t file_id_base;     /* shm key of entry e: file_id_base + e */
	int64_t only;              /* >= 0: this entry only; -1: all, in manifest order */
	/* May entry idx start?  0: skip it (someone else has it, or it is done). */
	int (*claim)(void *arg, uint32_t idx);
	/* An entry to start ahead of manifest order (a reader is waiting for
	 * it): 1 with *idx set, 0 when none.  Asked between files and while
	 * data flows; a claimed entry is started even when the window is full. */
	int (*next)(void *arg, uint32_t *idx);
	/* Entry idx is whole and verified under its final name (rc BB_OK;
	 * moved 0 when it was there already), or failed (rc, err says why). */
	void (*done)(void *arg, uint32_t idx, int rc, const char *err, int moved);
	/* Nonzero: stop starting files and cancel the transfers in flight. */
	int (*stop)(void *arg);
	/* Called before each piece of data is taken in: while it blocks, this
	 * stage-in moves nothing (bbcached's prefetch yields to a reader
	 * waiting for an origin block).  It must return by itself. */
	void (*hold)(void *arg);
	void *arg;
};

int bb_stage_in_manifest(const struct bb_stage_opts *o, const struct bb_stage_xfer *x,
			 struct bb_stage_summary *s, char *err, size_t errlen);
/* Entry e of a manifest is there under path, complete (size and mtime as a
 * stage-in sets them): the resume test, shared with bbcached. */
struct bb_mentry;
struct stat;
struct bb_engine;
int bb_stage_file_complete(const char *path, const struct bb_mentry *e);
/* A POSIX origin file st is still the version entry e was listed as (size,
 * mtime and, when listed, inode): checked before and after every copy. */
int bb_stage_same_version(const struct stat *st, const struct bb_mentry *e);
/* A transfer engine with o's retries, stall timeout and TLS settings and
 * at most max_parallel transfers (0: o->jobs, else 32). */
int bb_stage_engine_new(const struct bb_stage_opts *o, int max_parallel, struct bb_engine **eng);
int bb_stage_out(const struct bb_stage_opts *o, struct bb_stage_summary *s, char *err,
		 size_t errlen);
/* The default manifest path for a destination: DIR/.bbcache/NAME.manifest
 * beside it (never inside the dataset, where training code would see it). */
int bb_stage_manifest_path(const char *dest, char *buf, size_t len);

#endif
