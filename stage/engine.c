/* The transfer engine on libcurl multi.  See engine.h. */
#include "config.h"

#define BB_LOG_COMPONENT "engine"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/list.h"
#include "common/log.h"
#include "stage/awscfg.h"
#include "stage/engine.h"
#include "stage/s3xml.h"

#define CAPTURE_MAX (16u << 20)
#define ERRBODY_MAX (64u << 10)

enum xstate { XS_QUEUED, XS_WAITING, XS_ACTIVE };

struct xfer {
	struct bb_dnode link;     /* in the engine's queue, while queued or waiting */
	struct bb_engine *eng;
	struct bb_xfer_req req;
	char *url, *if_match, *what, **headers;
	enum xstate state;
	double ready_at;          /* XS_WAITING: monotonic seconds */
	CURL *easy;
	struct curl_slist *slist;
	char *userpwd_user, *userpwd_pass;
	char sigv4[128];
	size_t put_off;           /* PUT body read position */
	struct bb_xfer_result res;
	long retry_after_ms;      /* from the last response, -1 none */
	int range_done;           /* a 200 to a range request: we have our range */
	int cb_error;             /* on_data refused: its rc */
	int too_long;             /* more body than expected */
	int got_range_header;
	uint64_t cr_start;        /* Content-Range start of a 206 */
	uint64_t stream_pos;      /* bytes of a 200 body seen (range filtering) */
	char curl_err[CURL_ERROR_SIZE];
};

struct bb_engine {
	struct bb_engine_opts o;
	CURLM *multi;
	CURL **pool;              /* idle easy handles */
	int n_pool;
	struct bb_dlist q;        /* queued and waiting xfers (by link), in order */
	int n_queued, n_active;
	long budget;
	int running, cancelled;
	struct bb_engine_stats st;
	uint64_t rnd;
	unsigned (*drain)(void *arg); /* see bb_engine_set_drain */
	void *drain_arg;
	/* libcurl's multi_socket interface on epoll: a wait returns only the
	 * sockets with events, and libcurl reads only those.  (curl_multi_poll
	 * and curl_multi_perform poll every connection on every wake-up, which
	 * cost more CPU than the MD5 on 10,000 small objects.) */
	int epfd;
	int wakefd;               /* eventfd: bb_engine_wakeup() */
	double timer_at;          /* libcurl's next timeout (monotonic s), 0 none */
};

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* libcurl tells which events of socket s it waits for. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct bb_engine *e = arg;
	(void)easy;
	(void)sockp;
	if (what == CURL_POLL_REMOVE) {
		/* A socket closed already left the epoll set by itself. */
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	struct epoll_event ev = {0};
	ev.data.fd = s;
	if (what & CURL_POLL_IN)
		ev.events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, s, &ev) < 0 &&
	    (errno != ENOENT || epoll_ctl(e->epfd, EPOLL_CTL_ADD, s, &ev) < 0)) {
		bb_error("cannot watch socket %d: %s", (int)s, strerror(errno));
		return -1;
	}
	return 0;
}

/* libcurl wants CURL_SOCKET_TIMEOUT in timeout_ms (-1: no timer). */
static int timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct bb_engine *e = arg;
	(void)multi;
	e->timer_at = timeout_ms < 0 ? 0 : mono_now() + (double)timeout_ms / 1000;
	return 0;
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int bb_engine_new(const struct bb_engine_opts *o, struct bb_engine **out)
{
	struct bb_engine *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return BB_ENOMEM;
	pthread_once(&g_curl_once, curl_init_once);
	if (o)
		e->o = *o;
	if (e->o.max_parallel <= 0)
		e->o.max_parallel = 32;
	if (e->o.max_attempts <= 0)
		e->o.max_attempts = 6;
	if (e->o.attempt_budget <= 0)
		e->o.attempt_budget = 10000;
	if (e->o.backoff_base_ms <= 0)
		e->o.backoff_base_ms = 200;
	if (e->o.backoff_max_ms <= 0)
		e->o.backoff_max_ms = 20000;
	if (e->o.connect_timeout_s <= 0)
		e->o.connect_timeout_s = 15;
	if (e->o.stall_timeout_s <= 0)
		e->o.stall_timeout_s = 30;
	if (e->o.verify_tls == 0)
		e->o.verify_tls = 1;
	e->budget = e->o.attempt_budget;
	e->rnd = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL | 1;
	e->multi = curl_multi_init();
	e->pool = calloc((size_t)e->o.max_parallel, sizeof(*e->pool));
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = e->wakefd};
	if (!e->multi || !e->pool) {
		bb_engine_free(e);
		return BB_ENOMEM;
	}
	if (e->epfd < 0 || e->wakefd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) < 0) {
		int err = errno; /* out of descriptors (EMFILE), say, not of memory */
		bb_engine_free(e);
		errno = err;
		return BB_ESYS;
	}
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)e->o.max_parallel);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)e->o.max_parallel * 2);
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	*out = e;
	return BB_OK;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	free(x->url);
	free(x->if_match);
	free(x->what);
	if (x->headers) {
		for (char **h = x->headers; *h; h++)
			free(*h);
		free(x->headers);
	}
	curl_slist_free_all(x->slist);
	if (x->userpwd_pass) {
		explicit_bzero(x->userpwd_pass, strlen(x->userpwd_pass));
		free(x->userpwd_pass);
	}
	free(x->userpwd_user);
	free(x->res.body);
	free(x);
}

void bb_engine_free(struct bb_engine *e)
{
	if (!e)
		return;
	bb_engine_cancel(e);
	for (int i = 0; i < e->n_pool; i++)
		curl_easy_cleanup(e->pool[i]);
	free(e->pool);
	if (e->multi)
		curl_multi_cleanup(e->multi);
	if (e->epfd >= 0)
		close(e->epfd);
	if (e->wakefd >= 0)
		close(e->wakefd);
	free(e);
}

void bb_engine_get_stats(const struct bb_engine *e, struct bb_engine_stats *st)
{
	*st = e->st;
}

int bb_engine_pending(const struct bb_engine *e)
{
	return e->n_queued + e->n_active;
}

void bb_engine_set_drain(struct bb_engine *e, unsigned (*drain)(void *arg), void *arg)
{
	e->drain = drain;
	e->drain_arg = arg;
}

void bb_engine_wakeup(struct bb_engine *e)
{
	uint64_t one = 1;
	if (write(e->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		bb_error("cannot wake the transfer engine: %s", strerror(errno));
}

/* ---- queue ------------------------------------------------------------------ */

static void q_remove(struct bb_engine *e, struct xfer *x)
{
	bb_dlist_remove(&e->q, &x->link);
	e->n_queued--;
}

static void q_push(struct bb_engine *e, struct xfer *x, int front)
{
	if (front)
		bb_dlist_push_front(&e->q, &x->link);
	else
		bb_dlist_push_back(&e->q, &x->link);
	e->n_queued++;
}

/* The first queued xfer, or the one after x; NULL at the end. */
static struct xfer *q_first(const struct bb_engine *e)
{
	return e->q.head ? bb_container_of(e->q.head, struct xfer, link) : NULL;
}

static struct xfer *q_next(const struct xfer *x)
{
	return x->link.next ? bb_container_of(x->link.next, struct xfer, link) : NULL;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int bb_engine_submit(struct bb_engine *e, const struct bb_xfer_req *r)
{
	struct xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return BB_ENOMEM;
	x->eng = e;
	x->req = *r;
	x->url = xstrdup(r->url);
	x->if_match = xstrdup(r->if_match);
	x->what = xstrdup(r->what ? r->what : r->url);
	if (r->headers) {
		size_t n = 0;
		while (r->headers[n])
			n++;
		x->headers = calloc(n + 1, sizeof(char *));
		for (size_t i = 0; x->headers && i < n; i++)
			x->headers[i] = xstrdup(r->headers[i]);
	}
	if (!x->url || !x->what || (r->if_match && !x->if_match) || (r->headers && !x->headers)) {
		xfer_free(x);
		return BB_ENOMEM;
	}
	x->req.url = x->url;
	x->req.if_match = x->if_match;
	x->req.what = x->what;
	x->req.headers = (const char *const *)x->headers;
	x->res.last_modified_ns = -1;
	x->state = XS_QUEUED;
	q_push(e, x, r->priority);
	return BB_OK;
}

/* ---- curl callbacks --------------------------------------------------------- */

static int hdr_is(const char *line, size_t n, const char *name, const char **val)
{
	size_t l = strlen(name);
	if (n <= l || strncasecmp(line, name, l) != 0 || line[l] != ':')
		return 0;
	const char *v = line + l + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*val = v;
	return 1;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nitems;
	char line[1024];
	const char *v;

	if (n >= sizeof(line))
		return n; /* we need no long header */
	memcpy(line, buf, n);
	line[n] = '\0';
	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
		line[--n] = '\0';
	if (!strncmp(line, "HTTP/", 5)) { /* a new response (redirect, 100): start over */
		x->res.etag[0] = '\0';
		x->res.has_length = 0;
		x->res.last_modified_ns = -1;
		x->retry_after_ms = -1;
		x->got_range_header = 0;
		x->res.accept_ranges = 0;
		return size * nitems;
	}
	if (hdr_is(line, n, "ETag", &v)) {
		if (!strncmp(v, "W/", 2))
			v += 2;
		if (*v == '"')
			v++;
		snprintf(x->res.etag, sizeof(x->res.etag), "%s", v);
		size_t l = strlen(x->res.etag);
		if (l && x->res.etag[l - 1] == '"')
			x->res.etag[l - 1] = '\0';
	} else if (hdr_is(line, n, "Content-Length", &v)) {
		x->res.content_length = strtoull(v, NULL, 10);
		x->res.has_length = 1;
	} else if (hdr_is(line, n, "Content-Range", &v)) {
		unsigned long long a, b, t;
		if (sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
			x->res.total_size = t;
			x->cr_start = a;
			x->got_range_header = 1;
		}
	} else if (hdr_is(line, n, "Accept-Ranges", &v)) {
		x->res.accept_ranges = !strncasecmp(v, "bytes", 5);
	} else if (hdr_is(line, n, "Last-Modified", &v)) {
		int64_t ns;
		if (bb_parse_http_date(v, &ns) == BB_OK)
			x->res.last_modified_ns = ns;
	} else if (hdr_is(line, n, "Retry-After", &v)) {
		char *end;
		long s = strtol(v, &end, 10);
		if (end != v && s >= 0) {
			x->retry_after_ms = s * 1000;
		} else {
			int64_t ns;
			if (bb_parse_http_date(v, &ns) == BB_OK) {
				long d = (long)(ns / 1000000000 - time(NULL));
				x->retry_after_ms = d > 0 ? d * 1000 : 0;
			}
		}
	}
	return size * nitems;
}

static int capture(struct bb_xfer_result *r, const char *buf, size_t n, size_t cap)
{
	if (r->body_len + n > cap)
		n = cap > r->body_len ? cap - r->body_len : 0;
	if (!n)
		return 0;
	char *nb = realloc(r->body, r->body_len + n + 1);
	if (!nb)
		return -1;
	memcpy(nb + r->body_len, buf, n);
	r->body = nb;
	r->body_len += n;
	nb[r->body_len] = '\0';
	return 0;
}

static size_t write_cb(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300) {
		capture(&x->res, buf, n, ERRBODY_MAX);
		return n;
	}
	if (x->req.capture_body) {
		if (x->res.body_len + n > CAPTURE_MAX) {
			x->too_long = 1;
			return 0;
		}
		if (capture(&x->res, buf, n, CAPTURE_MAX) < 0) {
			x->cb_error = BB_ENOMEM;
			return 0;
		}
		x->res.received += n;
		x->eng->st.bytes_in += n;
		return n;
	}
	const char *p = buf;
	size_t len = n;
	uint64_t off;
	if (x->req.range_len && status == 200) {
		/* The server ignored Range: keep our part of the whole body. */
		uint64_t pos = x->stream_pos;
		uint64_t lo = x->req.range_off, hi = x->req.range_off + x->req.range_len;
		uint64_t s = pos > lo ? pos : lo, t = pos + n < hi ? pos + n : hi;
		x->stream_pos += n;
		if (s >= t) {
			if (pos + n >= hi) {
				x->range_done = 1;
				return 0;
			}
			return n;
		}
		p = buf + (s - pos);
		len = (size_t)(t - s);
		off = s;
	} else {
		off = x->req.range_off + x->res.received;
	}
	/* Never past the range asked for: a 206 longer than its range would
	 * otherwise write into the next range, which may be complete (and
	 * hashed) already, and its retry would not repair that. */
	uint64_t cap = x->req.expect_len ? x->req.expect_len : x->req.range_len;
	if (cap && x->res.received + len > cap) {
		x->too_long = 1;
		return 0;
	}
	if (x->req.on_data) {
		int rc = x->req.on_data(x->req.arg, p, len, off);
		if (rc != BB_OK) {
			x->cb_error = rc;
			return 0;
		}
	}
	x->res.received += len;
	x->eng->st.bytes_in += len;
	if (x->req.range_len && status == 200 && x->res.received >= x->req.range_len) {
		x->range_done = 1;
		return 0;
	}
	return n;
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nitems, left = x->req.body_len - x->put_off;

	if (n > left)
		n = left;
	memcpy(buf, (const char *)x->req.body + x->put_off, n);
	x->put_off += n;
	x->eng->st.bytes_out += n;
	return n;
}

static int seek_cb(void *arg, curl_off_t off, int origin)
{
	struct xfer *x = arg;
	if (origin != SEEK_SET || off < 0 || (size_t)off > x->req.body_len)
		return CURL_SEEKFUNC_FAIL;
	x->put_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* ---- starting and finishing ---------------------------------------------------- */

static int setup_easy(struct bb_engine *e, struct xfer *x)
{
	CURL *c = x->easy;
	char range[64];
	int no_expect = 0;

	curl_easy_reset(c);
	curl_slist_free_all(x->slist);
	x->slist = NULL;
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->curl_err);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)e->o.connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)e->o.stall_timeout_s);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	if (x->res.attempts > 1) /* a retry never reuses a connection that failed it */
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
	/* libcurl allocates this buffer for every transfer and frees it after.
	 * 64 KiB stays below glibc's mmap threshold, so the same memory comes
	 * back from the free lists; 256 KiB was mapped, or grew and trimmed
	 * the heap, faulting fresh pages in for every small object (~20 per
	 * 100 KiB file).  A body of 1 MiB or more gets 512 KiB: a quarter of
	 * the recv calls (and ACKs) of 64 KiB cost the stage-in of 4 x 1 GiB
	 * from nginx a fifth less system time (docs/origins.md, section 5),
	 * and one mapping per range of megabytes is nothing beside that. */
	uint64_t body = x->req.range_len ? x->req.range_len : x->req.expect_len;
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, body >= (1u << 20) ? 512L * 1024 : 64L * 1024);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, e->o.verify_tls > 0 ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, e->o.verify_tls > 0 ? 2L : 0L);
	if (e->o.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, e->o.ca_file);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");

	switch (x->req.method) {
	case BB_HEAD:
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		break;
	case BB_PUT:
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, x);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, x);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->req.body_len);
		no_expect = 1;
		break;
	case BB_POST:
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->req.body ? x->req.body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.body_len);
		no_expect = 1;
		x->slist = curl_slist_append(x->slist, "Content-Type: application/xml");
		break;
	case BB_DELETE:
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
		break;
	case BB_GET:
		break;
	}
	if (x->req.range_len) {
		snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)x->req.range_off,
			 (unsigned long long)(x->req.range_off + x->req.range_len - 1));
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	}
	if (x->if_match) {
		char h[200];
		snprintf(h, sizeof(h), "If-Match: \"%s\"", x->if_match);
		x->slist = curl_slist_append(x->slist, h);
	}
	for (char **h = x->headers; h && *h; h++)
		x->slist = curl_slist_append(x->slist, *h);
	const struct bb_aws_cfg *aws = x->req.aws;
	if (aws && aws->access_key[0] && aws->secret_key[0]) {
		char h[4200];
		snprintf(x->sigv4, sizeof(x->sigv4), "aws:amz:%s:s3",
			 aws->region[0] ? aws->region : "us-east-1");
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, x->sigv4);
		curl_easy_setopt(c, CURLOPT_USERNAME, aws->access_key);
		curl_easy_setopt(c, CURLOPT_PASSWORD, aws->secret_key);
		snprintf(h, sizeof(h), "x-amz-content-sha256: %s",
			 x->req.body_sha256 ? x->req.body_sha256 : "UNSIGNED-PAYLOAD");
		x->slist = curl_slist_append(x->slist, h);
		if (aws->session_token[0]) {
			snprintf(h, sizeof(h), "x-amz-security-token: %s", aws->session_token);
			x->slist = curl_slist_append(x->slist, h);
			explicit_bzero(h, sizeof(h));
		}
	}
	/* No "Expect: 100-continue" round trip before a body.  Removing the
	 * header with "Expect:" breaks SigV4 (libcurl 7.88 lists it among the
	 * signed headers without sending it), so signed requests keep it and
	 * only shorten the wait instead. */
	if (no_expect && !(aws && aws->access_key[0] && aws->secret_key[0]))
		x->slist = curl_slist_append(x->slist, "Expect:");
	else if (no_expect)
		curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 100L);
	if (x->slist)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->slist);
	return BB_OK;
}

static int start(struct bb_engine *e, struct xfer *x)
{
	x->easy = e->n_pool ? e->pool[--e->n_pool] : curl_easy_init();
	if (!x->easy)
		return BB_ENOMEM;
	x->res.received = 0;
	x->res.body_len = 0;
	free(x->res.body);
	x->res.body = NULL;
	x->range_done = x->cb_error = x->too_long = 0;
	x->cr_start = 0;
	x->stream_pos = 0;
	x->put_off = 0;
	x->retry_after_ms = -1;
	x->curl_err[0] = '\0';
	x->res.attempts++;
	setup_easy(e, x);
	if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK) {
		e->pool[e->n_pool++] = x->easy;
		x->easy = NULL;
		return BB_ESYS;
	}
	x->state = XS_ACTIVE;
	e->n_active++;
	e->st.requests++;
	return BB_OK;
}

static void release_easy(struct bb_engine *e, struct xfer *x)
{
	curl_multi_remove_handle(e->multi, x->easy);
	if (e->n_pool < e->o.max_parallel)
		e->pool[e->n_pool++] = x->easy;
	else
		curl_easy_cleanup(x->easy);
	x->easy = NULL;
	e->n_active--;
}

static void finish(struct bb_engine *e, struct xfer *x)
{
	if (x->res.rc != BB_OK)
		e->st.failures++;
	if (x->req.on_done)
		x->req.on_done(x->req.arg, &x->res);
	xfer_free(x);
}

/* The S3 error code and message of an error body, for the message. */
static void describe_error_body(struct xfer *x, char *buf, size_t len)
{
	char code[64] = "", msg[256] = "";

	buf[0] = '\0';
	if (x->res.body_len && x->res.body[0] == '<' &&
	    bb_s3_parse_error(x->res.body, x->res.body_len, code, sizeof(code), msg,
			      sizeof(msg)) == BB_OK && code[0])
		snprintf(buf, len, " (%s%s%s)", code, msg[0] ? ": " : "", msg);
}

static int status_rc(long s)
{
	switch (s) {
	case 401:
	case 403:
		return BB_EPERM;
	case 404:
	case 410:
		return BB_ENOENT;
	case 412:
		return BB_ESTALE;
	case 416:
		return BB_ERANGE;
	default:
		return BB_EINVAL;
	}
}

static int retryable_status(long s)
{
	return s == 408 || s == 429 || (s >= 500 && s <= 599);
}

/* What to do about a certificate the engine refused: a certificate for
 * another name is not cured by trusting its CA. */
static const char *tls_hint(CURLcode code, const char *err)
{
	if (code != CURLE_PEER_FAILED_VERIFICATION && code != CURLE_SSL_CACERT_BADFILE)
		return "";
	if (strstr(err, "subject name") || strstr(err, "does not match"))
		return " (TLS verification is on: the server's certificate is for another name; "
		       "use the name it was issued for)";
	return " (TLS verification is on: install the CA, or point $BBCACHE_CA_BUNDLE at a CA file)";
}

static int retryable_curl(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_WEIRD_SERVER_REPLY:
		return 1;
	default:
		return 0;
	}
}

static void schedule_retry(struct bb_engine *e, struct xfer *x, const char *why)
{
	long d;

	if (x->retry_after_ms >= 0) {
		d = x->retry_after_ms < e->o.backoff_max_ms ? x->retry_after_ms : e->o.backoff_max_ms;
	} else {
		long cap = (long)e->o.backoff_base_ms << (x->res.attempts < 16 ? x->res.attempts - 1 : 15);
		if (cap > e->o.backoff_max_ms || cap <= 0)
			cap = e->o.backoff_max_ms;
		e->rnd ^= e->rnd << 13;
		e->rnd ^= e->rnd >> 7;
		e->rnd ^= e->rnd << 17;
		d = cap / 2 + (long)(e->rnd % (uint64_t)(cap / 2 + 1)); /* jitter */
	}
	bb_debug("%s: %s; retry %d in %ld ms", x->what, why, x->res.attempts, d);
	e->budget--;
	e->st.retries++;
	if (x->req.on_reset)
		x->req.on_reset(x->req.arg);
	x->state = XS_WAITING;
	x->ready_at = mono_now() + (double)d / 1000.0;
	q_push(e, x, 1); /* a retry keeps its place ahead of new work */
}

static void complete(struct bb_engine *e, struct xfer *x, CURLcode code)
{
	long status = 0;
	char why[400] = "", detail[330];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	x->res.status = status;
	release_easy(e, x);
	int can_retry = x->res.attempts < e->o.max_attempts && e->budget > 0 && !e->cancelled;

	if (code == CURLE_WRITE_ERROR && x->range_done)
		code = CURLE_OK; /* we stopped a 200 once our range was in */
	if (code == CURLE_OK && status >= 200 && status < 300) {
		if (x->req.range_len && status == 206)
			x->res.ranged = 1;
		if (!x->res.total_size && x->res.has_length && !x->res.ranged)
			x->res.total_size = x->res.content_length;
		uint64_t want = x->req.expect_len ? x->req.expect_len : x->req.range_len;
		if (x->req.method == BB_GET && want && x->res.received != want) {
			snprintf(why, sizeof(why), "body of %llu bytes, expected %llu",
				 (unsigned long long)x->res.received, (unsigned long long)want);
			goto retry_or_fail;
		}
		if (x->res.ranged && x->got_range_header && x->cr_start != x->req.range_off) {
			snprintf(why, sizeof(why), "server sent range starting at %llu, asked %llu",
				 (unsigned long long)x->cr_start, (unsigned long long)x->req.range_off);
			goto retry_or_fail;
		}
		if (x->req.validate && x->req.validate(x->req.arg, &x->res) != BB_OK) {
			snprintf(why, sizeof(why), "a response body that does not parse (%llu bytes)",
				 (unsigned long long)x->res.body_len);
			goto retry_or_fail;
		}
		x->res.rc = BB_OK;
		finish(e, x);
		return;
	}
	if (code == CURLE_OK) {
		describe_error_body(x, detail, sizeof(detail));
		if (retryable_status(status)) {
			snprintf(why, sizeof(why), "HTTP %ld%s", status, detail);
			goto retry_or_fail;
		}
		x->res.rc = status_rc(status);
		if (status == 412)
			snprintf(x->res.errmsg, sizeof(x->res.errmsg),
				 "%s changed on the origin since it was listed (ETag %s no longer "
				 "matches)", x->what, x->if_match ? x->if_match : "?");
		else
			snprintf(x->res.errmsg, sizeof(x->res.errmsg), "%s: HTTP %ld%s", x->what,
				 status, detail[0] ? detail : status == 404 ? " (not found)"
							    : status == 403 ? " (access denied)"
									    : "");
		finish(e, x);
		return;
	}
	if (x->cb_error) {
		x->res.rc = x->cb_error;
		snprintf(x->res.errmsg, sizeof(x->res.errmsg), "%s: %s", x->what,
			 bb_strerror(x->cb_error));
		finish(e, x);
		return;
	}
	if (x->too_long) {
		snprintf(why, sizeof(why), "more data than the %llu bytes expected",
			 (unsigned long long)(x->req.expect_len ? x->req.expect_len
				 : x->req.range_len ? x->req.range_len : CAPTURE_MAX));
		goto retry_or_fail;
	}
	/* Garbage where a status line should be: the connection lost sync
	 * (a previous response longer than it said); retry on a new one. */
	if (retryable_curl(code) ||
	    (code == CURLE_UNSUPPORTED_PROTOCOL && strstr(x->curl_err, "HTTP/0.9"))) {
		snprintf(why, sizeof(why), "%s", x->curl_err[0] ? x->curl_err : curl_easy_strerror(code));
		goto retry_or_fail;
	}
	x->res.rc = code == CURLE_COULDNT_RESOLVE_HOST  ? BB_ENOENT
		    : code == CURLE_PEER_FAILED_VERIFICATION ? BB_EPERM
		    : code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL ? BB_EINVAL
											   : BB_ESYS;
	snprintf(x->res.errmsg, sizeof(x->res.errmsg), "%s: %s%s", x->what,
		 x->curl_err[0] ? x->curl_err : curl_easy_strerror(code), tls_hint(code, x->curl_err));
	finish(e, x);
	return;

retry_or_fail:
	if (can_retry) {
		schedule_retry(e, x, why);
		return;
	}
	x->res.rc = BB_EFILL;
	snprintf(x->res.errmsg, sizeof(x->res.errmsg), "%s: %s (gave up after %d attempt%s)",
		 x->what, why, x->res.attempts, x->res.attempts == 1 ? "" : "s");
	finish(e, x);
}

void bb_engine_cancel(struct bb_engine *e)
{
	e->cancelled = 1;
	for (struct xfer *x; (x = q_first(e));) {
		q_remove(e, x);
		x->res.rc = BB_EINVAL;
		snprintf(x->res.errmsg, sizeof(x->res.errmsg), "%s: cancelled", x->what);
		finish(e, x);
	}
	/* In-flight transfers end on their own; with cancelled set, none retries. */
}

/* libcurl's timer, when it is due (a handle just added is due at once). */
static void run_timer(struct bb_engine *e)
{
	int still;
	if (e->timer_at && e->timer_at <= mono_now()) {
		e->timer_at = 0;
		curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &still);
	}
}

/* Wait up to timeout_ms for a socket event, libcurl's timer or
 * bb_engine_wakeup(), and hand the events to libcurl. */
static void wait_events(struct bb_engine *e, int timeout_ms)
{
	struct epoll_event ev[64];
	int still;

	if (e->timer_at) {
		double ms = (e->timer_at - mono_now()) * 1000;
		if (ms < timeout_ms)
			timeout_ms = ms <= 0 ? 0 : ms < 1 ? 1 : (int)ms;
	}
	int n = epoll_wait(e->epfd, ev, 64, timeout_ms);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.fd == e->wakefd) {
			uint64_t v;
			if (read(e->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				bb_error("transfer engine wake-up: %s", strerror(errno));
			continue;
		}
		int flags = 0;
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
			flags |= CURL_CSELECT_IN;
		if (ev[i].events & EPOLLOUT)
			flags |= CURL_CSELECT_OUT;
		if (ev[i].events & EPOLLERR)
			flags |= CURL_CSELECT_ERR;
		curl_multi_socket_action(e->multi, ev[i].data.fd, flags, &still);
	}
	run_timer(e);
}

int bb_engine_run(struct bb_engine *e)
{
	if (e->running)
		return BB_EBUSY;
	e->running = 1;
	for (;;) {
		/* Work handed back from another thread first: it may queue more. */
		unsigned outside = e->drain ? e->drain(e->drain_arg) : 0;
		if (!e->n_queued && !e->n_active && !outside)
			break;
		double now = mono_now(), next_ready = 0;
		/* Fill the window with what is ready, in queue order. */
		for (struct xfer *x = q_first(e), *nx; x && e->n_active < e->o.max_parallel; x = nx) {
			nx = q_next(x);
			if (x->state == XS_WAITING && x->ready_at > now) {
				if (!next_ready || x->ready_at < next_ready)
					next_ready = x->ready_at;
				continue;
			}
			q_remove(e, x);
			if (start(e, x) != BB_OK) {
				x->res.rc = BB_ENOMEM;
				snprintf(x->res.errmsg, sizeof(x->res.errmsg), "%s: cannot start", x->what);
				finish(e, x);
			}
		}
		run_timer(e);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(e->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			complete(e, x, m->data.result);
		}
		if (!e->n_active && !e->n_queued) {
			unsigned out = e->drain ? e->drain(e->drain_arg) : 0;
			if (!e->n_active && !e->n_queued && !out)
				break;
		}
		/* Callbacks may have queued work the window has room for: start
		 * it now rather than after a poll timeout. */
		int startable = 0;
		if (e->n_active < e->o.max_parallel) {
			double t = mono_now();
			for (struct xfer *x = q_first(e); x && !startable; x = q_next(x))
				startable = x->state != XS_WAITING || x->ready_at <= t;
		}
		if (startable)
			continue;
		int timeout = 100;
		if (next_ready) {
			double wait = (next_ready - mono_now()) * 1000;
			if (wait < timeout)
				timeout = wait < 1 ? 1 : (int)wait;
		}
		if (e->n_active || e->drain) /* bb_engine_wakeup() ends the wait */
			wait_events(e, timeout);
		else {
			struct timespec ts = {timeout / 1000, (long)(timeout % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	e->running = 0;
	return BB_OK;
}

struct fetch_ctx {
	struct bb_xfer_result *res;
	int done;
	int (*validate)(void *arg, const struct bb_xfer_result *r); /* the caller's, */
	void *arg;                                                  /* with its arg */
};

static int fetch_validate(void *arg, const struct bb_xfer_result *r)
{
	struct fetch_ctx *f = arg;
	return f->validate(f->arg, r);
}

static void fetch_done(void *arg, struct bb_xfer_result *r)
{
	struct fetch_ctx *f = arg;
	*f->res = *r;
	r->body = NULL; /* the caller owns it now */
	f->done = 1;
}

int bb_engine_fetch(struct bb_engine *e, const struct bb_xfer_req *r, struct bb_xfer_result *res)
{
	struct bb_xfer_req q = *r;
	struct fetch_ctx f = {res, 0, r->validate, r->arg};
	int rc;

	memset(res, 0, sizeof(*res));
	if (e->running)
		return BB_EBUSY;
	q.on_done = fetch_done;
	q.arg = &f;
	if (r->validate)
		q.validate = fetch_validate; /* gets r->arg, as submitted */
	rc = bb_engine_submit(e, &q);
	if (rc != BB_OK)
		return rc;
	bb_engine_run(e);
	return f.done ? res->rc : BB_ESYS;
}

void bb_xfer_result_free(struct bb_xfer_result *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}
