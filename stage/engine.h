/* The transfer engine: a bounded window of HTTP(S) transfers on one libcurl
 * multi handle (connections and DNS shared, easy handles reused), with the
 * retry policy in one place: 408, 429, 5xx, connection errors, resets,
 * truncated bodies and wrong lengths are retried with capped exponential
 * backoff and jitter (or Retry-After), within a per-object and a per-run
 * attempt budget.  Callers never loop.
 *
 * Single-threaded: bb_engine_run() drives everything and calls the callbacks;
 * callbacks may submit more transfers.  Only bb_engine_wakeup() may be
 * called from another thread.
 */
#ifndef BB_STAGE_ENGINE_H
#define BB_STAGE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct bb_aws_cfg;

enum bb_method { BB_GET = 0, BB_HEAD, BB_PUT, BB_POST, BB_DELETE };

struct bb_xfer_result {
	int rc;                   /* BB_OK or why it failed */
	long status;              /* last HTTP status, 0 if none */
	int attempts;
	char etag[160];           /* without quotes; "" if none */
	int64_t last_modified_ns; /* -1 if unknown */
	uint64_t content_length;
	int has_length;
	uint64_t total_size;      /* object size: Content-Range total, or the 200 length */
	int ranged;               /* the server answered the range with 206 */
	int accept_ranges;        /* Accept-Ranges: bytes */
	uint64_t received;        /* body bytes delivered by the final attempt */
	char *body;               /* captured body (capture_body, or an error's first 64 KiB) */
	size_t body_len;
	char errmsg[512];         /* why, naming the object; never a credential */
};

struct bb_xfer_req {
	const char *url;          /* copied */
	enum bb_method method;
	uint64_t range_off, range_len; /* range_len 0: the whole object */
	const char *if_match;     /* ETag without quotes, or NULL; copied */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated; copied */
	const struct bb_aws_cfg *aws; /* non-NULL with keys: sign with SigV4 (outlives the transfer) */
	const void *body;         /* PUT/POST body (outlives the transfer) */
	size_t body_len;
	const char *body_sha256;  /* hex SHA-256 of the body for x-amz-content-sha256; NULL: UNSIGNED-PAYLOAD */
	int capture_body;         /* keep the body (<= 16 MiB) in result.body, no on_data */
	uint64_t expect_len;      /* nonzero: the body must be exactly this long */
	int priority;             /* 1: ahead of everything queued */
	int (*on_data)(void *arg, const void *buf, size_t n, uint64_t off); /* off: in the object */
	void (*on_reset)(void *arg); /* a retry starts: forget partial data and digests */
	/* A 2xx with a captured body that does not parse (a listing cut short
	 * under a wrong Content-Length) is retried like a truncated body. */
	int (*validate)(void *arg, const struct bb_xfer_result *r);
	void (*on_done)(void *arg, struct bb_xfer_result *r); /* r valid during the call */
	void *arg;
	const char *what;         /* the object, for messages; copied (default: url) */
};

struct bb_engine_opts {
	int max_parallel;         /* transfers in flight; default 32 */
	int max_attempts;         /* per request; default 6 */
	long attempt_budget;      /* retries per engine (job); default 10000 */
	int backoff_base_ms;      /* default 200 */
	int backoff_max_ms;       /* default 20000; also caps Retry-After */
	int connect_timeout_s;    /* default 15 */
	int stall_timeout_s;      /* no byte for this long: retry; default 30 */
	int verify_tls;           /* default 1 (set -1 to disable explicitly) */
	const char *ca_file;
};

struct bb_engine_stats {
	uint64_t requests, retries, failures, bytes_in, bytes_out;
};

struct bb_engine;
/* BB_OK, BB_ENOMEM, or BB_ESYS with errno set (no descriptor for epoll or eventfd). */
int bb_engine_new(const struct bb_engine_opts *o, struct bb_engine **out);
void bb_engine_free(struct bb_engine *e);
int bb_engine_submit(struct bb_engine *e, const struct bb_xfer_req *r);
/* Run until nothing is queued or in flight. */
int bb_engine_run(struct bb_engine *e);
/* Stop: queued transfers complete with BB_EINVAL "cancelled"; in-flight ones are aborted. */
void bb_engine_cancel(struct bb_engine *e);
void bb_engine_get_stats(const struct bb_engine *e, struct bb_engine_stats *st);
int bb_engine_pending(const struct bb_engine *e);

/* Work that is done outside the engine but ends in its thread (stage-in's
 * hashing thread): drain(arg) runs in the engine's thread on every turn of
 * bb_engine_run() and returns how many such items are still out; run() does
 * not return while any is, and waits for them with the sockets, a wait
 * that bb_engine_wakeup() (safe from any thread) ends.  NULL: none. */
void bb_engine_set_drain(struct bb_engine *e, unsigned (*drain)(void *arg), void *arg);
void bb_engine_wakeup(struct bb_engine *e);

/* Convenience: one request, run to completion (used for HEAD, listings, PUTs).
 * r->validate, if set, is called with r->arg; the fetch takes the argument of
 * on_done for itself, so on_data and on_reset must not be set. */
int bb_engine_fetch(struct bb_engine *e, const struct bb_xfer_req *r, struct bb_xfer_result *res);
void bb_xfer_result_free(struct bb_xfer_result *r);

#endif
