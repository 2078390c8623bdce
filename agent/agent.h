/* bbcached: the node agent of one job.  It owns the job's shm segment,
 * prefetches the job's manifests into the job directory (and shm), and
 * serves local clients' misses over a UNIX socket (docs/agent-protocol.md).
 *
 * Threads: the main thread accepts connections and handles signals; one
 * prefetch thread stages the manifests in order; one thread per client
 * connection serves its requests (a miss fetches from the origin in that
 * thread, on an engine from a pool of warm ones, so one slow origin does
 * not hold up others' hits; once the reader has its bytes, a new thread
 * takes over the connection and this one finishes the block).  Shared state is in struct agent, under agent.lock unless
 * a field says otherwise.
 */
#ifndef BB_AGENT_AGENT_H
#define BB_AGENT_AGENT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/ns.h"
#include "stage/manifest.h"
#include "stage/origin.h"
#include "stage/stage.h"

struct bbc_cache;

/* The state of one manifest entry (a file), agent.lock. */
enum file_state {
	F_PENDING = 0, /* nobody has started it */
	F_ACTIVE,      /* a stage-in of it runs (prefetch or a waiting reader's thread) */
	F_DONE,        /* whole and verified under its final name */
	F_FAILED,      /* the last try failed: rc[] says why */
};

struct dataset {
	char manifest[PATH_MAX];
	char mount[PATH_MAX];  /* DIR/NAME: the staged path */
	char root[PATH_MAX];   /* where entries go: the mount, or DIR for a single file */
	struct bb_manifest *m; /* read-only after start */
	struct bb_origin org;  /* read-only after start: on-demand GETs are built from it */
	uint32_t count;        /* manifest entries */
	uint32_t block;        /* block size */
	uint8_t *state;        /* enum file_state per entry, agent.lock */
	int8_t *rc;            /* the failure of an F_FAILED entry, agent.lock */
};

#define AGENT_PRIO_MAX 1024

struct agent {
	/* options (set before any thread starts) */
	uint64_t job;
	char jobdir[PATH_MAX];
	char bbdir[PATH_MAX];   /* JOBDIR/.bbcache */
	char sock[108];
	char ns_path[PATH_MAX];
	char log_path[PATH_MAX];
	char shm_dir[PATH_MAX]; /* "" : /dev/shm */
	uint64_t shm_limit;
	int no_sign_request;    /* --no-sign-request: S3 unsigned, whatever the conf says */
	int wait_mode;
	int foreground;
	struct bb_conf conf;
	struct bb_stage_opts so; /* verify, jobs, conf, TLS for every stage-in */
	uint32_t n_ds;
	struct dataset *ds;
	struct bbc_cache *shm;

	pthread_mutex_t lock;
	pthread_cond_t cond;    /* an entry changed state, or stopping */
	uint64_t prio[AGENT_PRIO_MAX]; /* file ids readers missed, oldest first, agent.lock */
	uint32_t n_prio;

	/* progress, agent.lock */
	uint64_t files_total, bytes_total;
	uint64_t files_done, bytes_done;     /* whole and verified (incl. already there) */
	uint64_t bytes_moved;                /* by this agent's stage-ins */
	uint64_t files_failed;               /* entries F_FAILED now */
	uint64_t errors;                     /* every error seen (files, fetches) */
	char first_error[1024];
	int prefetch_state;                  /* 0 staging, 1 complete, 2 failed */
	double t0, t_end;                    /* start, end of the prefetch */

	/* counters without the lock */
	atomic_uint_fast64_t n_shm, n_nvme, n_origin, n_disk, n_fetch_err, n_nowait;
	atomic_uint_fast64_t n_inline; /* READs answered with their bytes while the block came */
	atomic_uint_fast64_t bytes_origin;
	atomic_int n_waiting;   /* readers waiting for an origin block's first bytes
				 * (serve.c): the prefetch moves nothing meanwhile */
	atomic_uint_fast64_t n_held; /* times background work held still for them */
	atomic_int stopping;
	atomic_int n_conns;
	int wake[2];            /* a byte here wakes the main loop: stop */
};

extern struct agent g_agent;

/* prefetch.c */
int agent_prefetch_start(struct agent *a, pthread_t *thr);
void agent_prioritize(struct agent *a, uint32_t d, uint32_t e);
/* Block until entry e of dataset d is whole and verified on NVMe (staging it
 * in the calling thread when nobody does); BB_OK or the failure's rc. */
int agent_ensure_file(struct agent *a, uint32_t d, uint32_t e);
/* Background work (the prefetch, the rest of a block whose reader has its
 * bytes) calls this between pieces of data: while a reader waits for the
 * first bytes of an origin block (n_waiting), it sleeps (at most 20 ms), so
 * the CPUs and the origin serve the miss first.  On 2 CPUs the prefetch's
 * transfers otherwise delay the miss's reply by milliseconds. */
void agent_yield(struct agent *a);
void agent_error(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The STATUS text (JSON or human) into buf; its length. */
size_t agent_status(struct agent *a, int json, char *buf, size_t cap);
double agent_now(void);

/* serve.c */
void *agent_conn_main(void *arg); /* arg: (intptr_t)fd */
/* Serve the new connection fd (n_conns counted already) on a parked thread,
 * woken, or else a new one; parked threads are made again afterwards, so
 * the next client's first request does not wait for a thread to be made.
 * BB_OK, or an error: the caller closes fd and uncounts it. */
int agent_conn_start(int fd);
/* Park the first threads for agent_conn_start (once the socket listens). */
void agent_serve_start(void);
/* Leave an idle engine with an open connection to each HTTP(S) origin in
 * the pool of on-demand engines (a HEAD of the dataset's URL, in a thread
 * of its own): a job's first miss then pays no TCP (or TLS) handshake.  The
 * prefetch thread calls it once, first. */
void agent_warm_origins(struct agent *a);

#endif
