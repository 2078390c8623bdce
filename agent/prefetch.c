/* bbcached's prefetch: every file of every manifest, in manifest order,
 * through the stage-in driver (bb_stage_in_manifest: temp file, verify,
 * rename, load into shm), with the files readers missed first.  Each file
 * is staged by one thread only: the prefetch thread or, for a reader that
 * waits for a file nobody has started, that reader's own thread. */
#include "config.h"

#define BB_LOG_COMPONENT "bbcached"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/proto.h"
#include "shmcache/shmcache.h"
#include "stage/stage_util.h"

double agent_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Count an error, keep the first, log it. */
void agent_error(struct agent *a, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&a->lock);
	a->errors++;
	if (!a->first_error[0])
		snprintf(a->first_error, sizeof(a->first_error), "%s", msg);
	pthread_mutex_unlock(&a->lock);
	bb_error("%s", msg);
}

/* A reader missed a block of (d, e): stage that file next.  agent.lock held. */
static void do_prioritize(struct agent *a, uint64_t fid)
{
	for (uint32_t i = 0; i < a->n_prio; i++)
		if (a->prio[i] == fid)
			return;
	if (a->n_prio == AGENT_PRIO_MAX) { /* the oldest wish goes: newer readers matter more */
		memmove(a->prio, a->prio + 1, (AGENT_PRIO_MAX - 1) * sizeof(a->prio[0]));
		a->n_prio--;
	}
	a->prio[a->n_prio++] = fid;
}

void agent_prioritize(struct agent *a, uint32_t d, uint32_t e)
{
	pthread_mutex_lock(&a->lock);
	if (a->ds[d].state[e] == F_PENDING)
		do_prioritize(a, bbp_file_id(d, e));
	pthread_mutex_unlock(&a->lock);
}

struct run_ctx {
	struct agent *a;
	uint32_t d;
};

static int hook_claim(void *arg, uint32_t idx)
{
	struct run_ctx *r = arg;
	struct dataset *ds = &r->a->ds[r->d];
	int ok;

	pthread_mutex_lock(&r->a->lock);
	ok = ds->state[idx] == F_PENDING;
	if (ok)
		ds->state[idx] = F_ACTIVE;
	pthread_mutex_unlock(&r->a->lock);
	return ok;
}

/* The first file of this dataset a reader waits for and nobody stages yet
 * (the driver then claims it through hook_claim, like any other). */
static int hook_next(void *arg, uint32_t *idx)
{
	struct run_ctx *r = arg;
	struct agent *a = r->a;
	int found = 0;

	pthread_mutex_lock(&a->lock);
	for (uint32_t i = 0; i < a->n_prio && !found; i++) {
		if ((uint32_t)(a->prio[i] >> 32) != r->d)
			continue;
		*idx = (uint32_t)a->prio[i];
		memmove(a->prio + i, a->prio + i + 1, (a->n_prio - i - 1) * sizeof(a->prio[0]));
		a->n_prio--;
		i--;
		if (*idx < a->ds[r->d].count && a->ds[r->d].state[*idx] == F_PENDING)
			found = 1;
	}
	pthread_mutex_unlock(&a->lock);
	return found;
}

static void hook_done(void *arg, uint32_t idx, int rc, const char *err, int moved)
{
	struct run_ctx *r = arg;
	struct agent *a = r->a;
	struct dataset *ds = &a->ds[r->d];
	struct bb_mentry e;

	bb_manifest_entry(ds->m, idx, &e);
	pthread_mutex_lock(&a->lock);
	if (ds->state[idx] == F_FAILED)
		a->files_failed--;
	if (rc == BB_OK) {
		if (ds->state[idx] != F_DONE) {
			a->files_done++;
			a->bytes_done += e.size;
		}
		if (moved)
			a->bytes_moved += e.size;
		ds->state[idx] = F_DONE;
	} else {
		ds->state[idx] = F_FAILED;
		ds->rc[idx] = (int8_t)rc;
		a->files_failed++;
	}
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (rc != BB_OK && !atomic_load(&a->stopping))
		agent_error(a, "%s/%s (origin %s): %s", ds->mount, e.path, bb_manifest_source(ds->m),
			    err && *err ? err : bb_strerror(rc));
}

static int hook_stop(void *arg)
{
	struct run_ctx *r = arg;
	return atomic_load(&r->a->stopping);
}

/* How long background work holds still for waiting readers at most: a
 * reader of a slow origin must not stop it for good. */
#define YIELD_MAX_US 20000
#define YIELD_STEP_US 200

void agent_yield(struct agent *a)
{
	struct timespec d = {0, YIELD_STEP_US * 1000L};
	int us = 0;

	for (; us < YIELD_MAX_US && atomic_load(&a->n_waiting) > 0 && !atomic_load(&a->stopping);
	     us += YIELD_STEP_US)
		nanosleep(&d, NULL);
	if (us)
		atomic_fetch_add(&a->n_held, 1);
}

static void hook_hold(void *arg)
{
	agent_yield(((struct run_ctx *)arg)->a);
}

static int stage(struct agent *a, uint32_t d, int64_t only)
{
	struct run_ctx ctx = {a, d};
	struct bb_stage_xfer x = {0};
	struct bb_stage_summary s;
	char err[2048] = "";
	int rc;

	x.manifest = a->ds[d].manifest;
	x.root = a->ds[d].root;
	x.shm = a->shm;
	x.file_id_base = bbp_file_id(d, 0);
	x.only = only;
	x.claim = only >= 0 ? NULL : hook_claim;
	x.next = only >= 0 ? NULL : hook_next;
	x.done = hook_done;
	x.stop = hook_stop;
	x.hold = only >= 0 ? NULL : hook_hold; /* a reader's own stage-in does not wait for others */
	x.arg = &ctx;
	rc = bb_stage_in_manifest(&a->so, &x, &s, err, sizeof(err));
	/* Per-file failures were reported by hook_done; this is the rest
	 * (the manifest or the origin could not be opened). */
	if (rc != BB_OK && !s.failed && !atomic_load(&a->stopping)) {
		agent_error(a, "staging %s: %s", a->ds[d].mount, err);
		/* Its files will not come: say so to whoever waits for them. */
		struct dataset *ds = &a->ds[d];
		pthread_mutex_lock(&a->lock);
		for (uint32_t i = 0; i < ds->count; i++) {
			struct bb_mentry e;
			bb_manifest_entry(ds->m, i, &e);
			if ((e.mode & S_IFMT) == S_IFDIR || ds->state[i] != F_PENDING ||
			    (only >= 0 && i != (uint64_t)only))
				continue;
			ds->state[i] = F_FAILED;
			ds->rc[i] = (int8_t)rc;
			a->files_failed++;
		}
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
	}
	return rc;
}

static void *prefetch_main(void *arg)
{
	struct agent *a = arg;
	int failed = 0;

	agent_warm_origins(a);
	/* Background work: on a busy node the threads serving readers' misses
	 * get the CPU first.  SCHED_IDLE (this thread, and the stage-in's
	 * hashing and writing threads it starts, which inherit it): a thread
	 * woken to serve a miss preempts it at once, where with nice 10 it
	 * could wait milliseconds for a core (bench_preload's time to first
	 * byte, new process: median 4.5 ms over the round trip with nice 10,
	 * 0.9 ms with SCHED_IDLE, same minutes).  It still runs on any idle
	 * core, and a job that keeps every core busy gets its files by misses. */
	struct sched_param sp = {0};
	if (sched_setscheduler((pid_t)gettid(), SCHED_IDLE, &sp) != 0 &&
	    setpriority(PRIO_PROCESS, (id_t)gettid(), 10) != 0)
		bb_debug("cannot lower the prefetch thread's priority: %s", strerror(errno));

	for (uint32_t d = 0; d < a->n_ds && !atomic_load(&a->stopping); d++)
		if (stage(a, d, -1) != BB_OK)
			failed = 1;
	pthread_mutex_lock(&a->lock);
	/* Files readers' threads stage themselves may still be in flight:
	 * the prefetch is over when every file is done or failed. */
	while (!atomic_load(&a->stopping) && a->files_done + a->files_failed < a->files_total) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	}
	if (!atomic_load(&a->stopping))
		a->prefetch_state = failed || a->files_failed ? 2 : 1;
	a->t_end = agent_now();
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	bb_info("prefetch %s: %llu of %llu file(s) staged, %llu failed",
		a->prefetch_state == 1 ? "complete" : a->prefetch_state == 2 ? "failed" : "stopped",
		(unsigned long long)a->files_done, (unsigned long long)a->files_total,
		(unsigned long long)a->files_failed);
	return NULL;
}

int agent_prefetch_start(struct agent *a, pthread_t *thr)
{
	pthread_attr_t at;
	int rc;

	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 1u << 20);
	rc = pthread_create(thr, &at, prefetch_main, a);
	pthread_attr_destroy(&at);
	return rc ? BB_ESYS : BB_OK;
}

int agent_ensure_file(struct agent *a, uint32_t d, uint32_t e)
{
	struct dataset *ds = &a->ds[d];
	int tried = 0, rc;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		if (atomic_load(&a->stopping)) {
			rc = BB_EDEAD;
			break;
		}
		uint8_t st = ds->state[e];
		if (st == F_DONE) {
			rc = BB_OK;
			break;
		}
		if (st == F_FAILED && tried) {
			rc = ds->rc[e] ? ds->rc[e] : BB_EFILL;
			break;
		}
		if (st == F_ACTIVE) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&a->cond, &a->lock, &ts);
			continue;
		}
		/* Nobody stages it (or the last try failed): do it here, now. */
		ds->state[e] = F_ACTIVE;
		tried = 1;
		pthread_mutex_unlock(&a->lock);
		stage(a, d, e);
		pthread_mutex_lock(&a->lock);
		if (ds->state[e] == F_ACTIVE) { /* the driver never reported it (cancelled) */
			ds->state[e] = F_FAILED;
			ds->rc[e] = (int8_t)BB_EFILL;
			a->files_failed++;
			pthread_cond_broadcast(&a->cond);
		}
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* ---- status ------------------------------------------------------------------ */

static const char *state_name(int s)
{
	return s == 1 ? "complete" : s == 2 ? "failed" : "staging";
}

size_t agent_status(struct agent *a, int json, char *buf, size_t cap)
{
	struct bbc_stats st = {0};
	char err[2048];
	int n;

	if (a->shm)
		bbc_get_stats(a->shm, &st);
	pthread_mutex_lock(&a->lock);
	double end = a->prefetch_state ? a->t_end : agent_now();
	double secs = end - a->t0 > 1e-6 ? end - a->t0 : 1e-6;
	double pct = a->bytes_total ? 100.0 * (double)a->bytes_done / (double)a->bytes_total
				    : (a->files_total ? 100.0 * (double)a->files_done / (double)a->files_total
						      : 100.0);
	double rate = (double)a->bytes_moved / secs;
	uint64_t fd = a->files_done, ft = a->files_total, bd = a->bytes_done, bt = a->bytes_total;
	uint64_t ff = a->files_failed, ne = a->errors;
	int ps = a->prefetch_state;
	if (json)
		bb_json_escape(a->first_error, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", a->first_error);
	pthread_mutex_unlock(&a->lock);
	uint64_t shm = atomic_load(&a->n_shm), nvme = atomic_load(&a->n_nvme);
	uint64_t orig = atomic_load(&a->n_origin), disk = atomic_load(&a->n_disk);
	uint64_t ferr = atomic_load(&a->n_fetch_err);
	uint64_t served = shm + nvme + orig + disk;
	if (json) {
		char jd[2 * PATH_MAX];
		bb_json_escape(a->jobdir, jd, sizeof(jd));
		n = snprintf(buf, cap,
			     "{\"job\":%llu,\"job_dir\":\"%s\",\"pid\":%d,\"mode\":\"%s\",\"state\":\"%s\","
			     "\"datasets\":%u,\"files_staged\":%llu,\"files_total\":%llu,"
			     "\"bytes_staged\":%llu,\"bytes_total\":%llu,\"progress_pct\":%.1f,"
			     "\"seconds\":%.3f,\"throughput_bps\":%.0f,\"files_failed\":%llu,"
			     "\"shm_hits\":%llu,\"shm_misses\":%llu,\"shm_hit_rate\":%.4f,\"fetch\":{\"shm\":%llu,\"nvme\":%llu,"
			     "\"origin\":%llu,\"disk\":%llu,\"errors\":%llu,\"readahead\":%llu,"
			     "\"early_replies\":%llu,\"held\":%llu},"
			     "\"misses_served\":%llu,\"origin_bytes\":%llu,\"evictions\":%llu,"
			     "\"shm_bytes_used\":%llu,\"shm_bytes_total\":%llu,\"clients\":%u,"
			     "\"connections\":%d,\"errors\":%llu,\"first_error\":\"%s\"}",
			     (unsigned long long)a->job, jd, (int)getpid(),
			     a->wait_mode ? "wait" : "async", state_name(ps), a->n_ds,
			     (unsigned long long)fd, (unsigned long long)ft, (unsigned long long)bd,
			     (unsigned long long)bt, pct, secs, rate, (unsigned long long)ff,
			     (unsigned long long)st.hits, (unsigned long long)st.misses,
			     st.hits + st.misses ? (double)st.hits / (double)(st.hits + st.misses) : 0.0,
			     (unsigned long long)shm, (unsigned long long)nvme,
			     (unsigned long long)orig, (unsigned long long)disk,
			     (unsigned long long)ferr,
			     (unsigned long long)atomic_load(&a->n_nowait),
			     (unsigned long long)atomic_load(&a->n_inline),
			     (unsigned long long)atomic_load(&a->n_held),
			     (unsigned long long)(nvme + orig + disk),
			     (unsigned long long)atomic_load(&a->bytes_origin),
			     (unsigned long long)st.evictions, (unsigned long long)st.bytes_used,
			     (unsigned long long)st.bytes_total, st.clients,
			     atomic_load(&a->n_conns), (unsigned long long)ne, err);
	} else {
		char b1[32], b2[32], b3[32], b4[32], b5[32];
		n = snprintf(buf, cap,
			     "job %llu, %s (pid %d), mode %s: %s\n"
			     "  staged    %llu of %llu file(s), %s of %s (%.1f%%), %s/s over %.1f s\n"
			     "  fetches   %llu served: shm %llu, nvme %llu, origin %llu, disk %llu; "
			     "%llu error(s), %llu readahead, %llu early, %llu held\n"
			     "  shm       %llu hit(s), %llu miss(es) (%.1f%% hits), %llu eviction(s), %s of %s used, "
			     "%u client(s)\n"
			     "  errors    %llu (%llu file(s) failed)%s%s\n",
			     (unsigned long long)a->job, a->jobdir, (int)getpid(),
			     a->wait_mode ? "wait" : "async", state_name(ps), (unsigned long long)fd,
			     (unsigned long long)ft, bb_format_size(bd, b1, sizeof(b1)),
			     bb_format_size(bt, b2, sizeof(b2)), pct,
			     bb_format_size((uint64_t)rate, b3, sizeof(b3)), secs,
			     (unsigned long long)served, (unsigned long long)shm,
			     (unsigned long long)nvme, (unsigned long long)orig,
			     (unsigned long long)disk, (unsigned long long)ferr,
			     (unsigned long long)atomic_load(&a->n_nowait),
			     (unsigned long long)atomic_load(&a->n_inline),
			     (unsigned long long)atomic_load(&a->n_held),
			     (unsigned long long)st.hits, (unsigned long long)st.misses,
			     st.hits + st.misses ? 100.0 * (double)st.hits / (double)(st.hits + st.misses)
						 : 0.0,
			     (unsigned long long)st.evictions, bb_format_size(st.bytes_used, b4, sizeof(b4)),
			     bb_format_size(st.bytes_total, b5, sizeof(b5)), st.clients,
			     (unsigned long long)ne, (unsigned long long)ff, err[0] ? "; first: " : "",
			     err);
	}
	if (n < 0)
		return 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}
