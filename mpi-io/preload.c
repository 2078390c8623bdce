/* libbbcache_preload.so: the job's staged datasets, served to unmodified
 * programs.
 *
 * A process of the job finds $BBCACHE_JOB_DIR (or $BB_JOB_DIR) at start.
 * Paths below it that lie in a staged dataset are answered from the
 * dataset's manifest (stat, readdir, open) and the job's shm cache (read),
 * with the node agent bbcached filling misses; every other path goes to
 * the real libc at once.  This file is the model: namespace, descriptor
 * table, read path and agent client.  preload_wrap.c holds the wrappers,
 * preload_syms.h the list of symbols.  docs/interposer.md tells the story.
 *
 * It links libc only (libbbshm, the manifest reader and the protocol are
 * compiled in), never libcurl, OpenSSL, MPI or libnuma.
 */
#include "mpi-io/preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/hrw.h"
#include "common/log.h"
#include "common/ns.h"
#include "common/proto.h"
#include "shmcache/shmcache.h"
#include "stage/manifest.h"

struct pl_real pl_real;
int pl_resolved;
__thread int pl_guard __attribute__((tls_model("initial-exec")));
struct pl_file *_Atomic pl_fdtab[PL_MAX_FD];

struct pl_ds {
	char mount[BB_NS_PATH];
	size_t mlen;
	struct bb_manifest *m;
	int single;
	uint32_t bsize;
	/* path -> entry hash index, built after a few lookups (a process
	 * that stats one file does not pay for it; a training loop does) */
	uint32_t *_Atomic htab;
	uint32_t hmask;
	atomic_uint lookups;
};

#define PL_HASH_AFTER 64 /* lookups before the hash index is built */
#define PL_HASH_SEED 0x7072656c6f616478ull

static struct {
	/* from the environment, at load */
	char prefix[BB_NS_PATH], prefix2[BB_NS_PATH];
	size_t plen, plen2;
	int enabled;
	/* the current directory, when it lies below the prefix */
	pthread_mutex_t cwd_lock;
	char cwd[PATH_MAX];
	atomic_int cwd_in;
	/* loaded at the first staged access */
	pthread_mutex_t init_lock;
	atomic_int loaded;
	time_t next_try;
	struct bb_ns ns;
	struct pl_ds ds[BB_NS_MAX_DATASETS];
	uint32_t n_ds;
	dev_t dev;
	uid_t uid;
	gid_t gid;
	int placeholder;
	struct bbc_cache *_Atomic cache;
	atomic_int reattach;
	/* the agent connection */
	pthread_mutex_t conn_lock;
	int conn;
	uint32_t seq;
	unsigned char msg[BBP_MAX_MSG];
	int agent_timeout_s;
	int agent_gone; /* a call already waited the whole timeout: do not wait again */
	atomic_int warnings;
	atomic_int maxfd;
} pl = {
	.cwd_lock = PTHREAD_MUTEX_INITIALIZER,
	.init_lock = PTHREAD_MUTEX_INITIALIZER,
	.conn_lock = PTHREAD_MUTEX_INITIALIZER,
	.placeholder = -1,
	.conn = -1,
};

void pl_resolve_all(void)
{
#define PL_RESOLVE(how, ret, name, params, args) \
	pl_real.name = (ret(*) params)dlsym(RTLD_NEXT, #name);
	PL_SYMBOLS(PL_RESOLVE)
#undef PL_RESOLVE
	atomic_store(&pl_resolved, 1);
}

void pl_warn(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (atomic_fetch_add(&pl.warnings, 1) >= 20)
		return;
	n = snprintf(line, sizeof(line), "bbcache[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pl_guard++;
	ssize_t r = write(2, line, (size_t)n);
	(void)r;
	pl_guard--;
}

/* ---- set-up ---------------------------------------------------------------- */

static void normalize(char *p);
static int needs_normalize(const char *p);

static void set_prefix(char *dst, size_t *len, const char *src)
{
	size_t n = strlen(src);
	while (n > 1 && src[n - 1] == '/')
		n--;
	if (n >= BB_NS_PATH)
		return;
	memcpy(dst, src, n);
	dst[n] = '\0';
	*len = n;
}

static int under(const char *path, const char *prefix, size_t plen)
{
	return plen && !strncmp(path, prefix, plen) && (path[plen] == '/' || path[plen] == '\0');
}

static void child_after_fork(void)
{
	/* The parent's connection and cache handle are the parent's: the
	 * child makes its own when it needs them (fcntl liveness locks are
	 * not inherited, and two processes on one socket mix replies). */
	pthread_mutex_init(&pl.conn_lock, NULL);
	pthread_mutex_init(&pl.init_lock, NULL);
	pthread_mutex_init(&pl.cwd_lock, NULL);
	if (pl.conn >= 0)
		pl_real.close(pl.conn);
	pl.conn = -1;
	if (atomic_load(&pl.cache))
		atomic_store(&pl.reattach, 1);
}

__attribute__((constructor)) static void pl_load(void)
{
	const char *jd = getenv("BBCACHE_JOB_DIR");
	char rp[PATH_MAX];

	if (!pl_resolved)
		pl_resolve_all();
	if (!jd || !*jd)
		jd = getenv("BB_JOB_DIR");
	if (!jd || jd[0] != '/')
		return;
	pl_guard++;
	/* The program's stderr is not ours: the cache library says only what
	 * went wrong, unless $BBCACHE_LOG_LEVEL asks for more. */
	const char *lv = getenv("BBCACHE_LOG_LEVEL");
	bb_log_set_level(lv && bb_log_level_parse(lv) >= 0 ? bb_log_level_parse(lv) : BB_LOG_ERROR);
	set_prefix(pl.prefix, &pl.plen, jd);
	if (needs_normalize(pl.prefix)) { /* pl_resolve relies on a normal prefix */
		normalize(pl.prefix);
		pl.plen = strlen(pl.prefix);
	}
	if (realpath(pl.prefix, rp) && strcmp(rp, pl.prefix) != 0)
		set_prefix(pl.prefix2, &pl.plen2, rp);
	const char *t = getenv("BBCACHE_AGENT_TIMEOUT");
	pl.agent_timeout_s = t && atoi(t) > 0 ? atoi(t) : 60;
	pl.enabled = pl.plen > 0;
	pthread_atfork(NULL, NULL, child_after_fork);
	pl_cwd_changed();
	pl_guard--;
}

void pl_cwd_changed(void)
{
	char buf[PATH_MAX];

	if (!pl.enabled)
		return;
	pl_guard++;
	if (getcwd(buf, sizeof(buf)) &&
	    (under(buf, pl.prefix, pl.plen) || under(buf, pl.prefix2, pl.plen2))) {
		pthread_mutex_lock(&pl.cwd_lock);
		memcpy(pl.cwd, buf, strlen(buf) + 1);
		atomic_store(&pl.cwd_in, 1);
		pthread_mutex_unlock(&pl.cwd_lock);
	} else {
		atomic_store(&pl.cwd_in, 0);
	}
	pl_guard--;
}

/* Read the namespace file, open the manifests, attach the cache.  Until an
 * agent has written the namespace, staged paths pass through (retried
 * once a second). */
static int pl_ensure_loaded(void)
{
	char path[BB_NS_PATH + 32], err[512];
	struct stat st;

	if (PL_LIKELY(atomic_load_explicit(&pl.loaded, memory_order_acquire)))
		return 1;
	pl_guard++;
	pthread_mutex_lock(&pl.init_lock);
	if (atomic_load(&pl.loaded))
		goto out;
	time_t now = time(NULL);
	if (now < pl.next_try)
		goto out;
	pl.next_try = now + 1;
	if (bb_ns_file(pl.prefix, path, sizeof(path)) != BB_OK ||
	    bb_ns_read(path, &pl.ns, err, sizeof(err)) != BB_OK)
		goto out;
	for (uint32_t i = 0; i < pl.ns.n; i++) {
		struct pl_ds *d = &pl.ds[i];
		if (bb_manifest_open(pl.ns.ds[i].manifest, &d->m, err, sizeof(err)) != BB_OK) {
			pl_warn("cannot open the manifest of %s: %s", pl.ns.ds[i].mount, err);
			d->m = NULL;
			continue;
		}
		memcpy(d->mount, pl.ns.ds[i].mount, sizeof(d->mount));
		d->mlen = strlen(d->mount);
		d->single = bb_manifest_is_single(d->m);
		d->bsize = bb_manifest_block_size(d->m);
	}
	pl.n_ds = pl.ns.n;
	pl.dev = stat(pl.prefix, &st) == 0 ? st.st_dev : 0;
	pl.uid = getuid();
	pl.gid = getgid();
	snprintf(path, sizeof(path), "%s/.bbcache", pl.prefix);
	pl.placeholder = pl_real.open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct bbc_cache *c = NULL;
	if (bbc_attach(pl.ns.shm_dir, pl.ns.job_id, &c) == BB_OK)
		atomic_store(&pl.cache, c);
	atomic_store_explicit(&pl.loaded, 1, memory_order_release);
out:
	pthread_mutex_unlock(&pl.init_lock);
	pl_guard--;
	return atomic_load(&pl.loaded);
}

/* The cache handle of this process (a fresh one after fork or an agent
 * restart; the old mapping stays, as another thread may be reading it). */
static struct bbc_cache *pl_cache(void)
{
	if (PL_UNLIKELY(atomic_load_explicit(&pl.reattach, memory_order_relaxed))) {
		struct bbc_cache *c = NULL;
		pl_guard++;
		pthread_mutex_lock(&pl.init_lock);
		if (atomic_load(&pl.reattach)) {
			if (bbc_attach(pl.ns.shm_dir, pl.ns.job_id, &c) != BB_OK)
				c = NULL;
			atomic_store(&pl.cache, c);
			atomic_store(&pl.reattach, 0);
		}
		pthread_mutex_unlock(&pl.init_lock);
		pl_guard--;
	}
	return atomic_load_explicit(&pl.cache, memory_order_relaxed);
}

/* ---- paths ----------------------------------------------------------------- */

/* Lexically normalize an absolute path in place: "//", "/./", "/../". */
static void normalize(char *p)
{
	char *out = p, *s = p;

	while (*s) {
		while (*s == '/')
			s++;
		char *e = s;
		while (*e && *e != '/')
			e++;
		size_t n = (size_t)(e - s);
		if (n == 0)
			break;
		if (n == 1 && s[0] == '.') {
			/* skip */
		} else if (n == 2 && s[0] == '.' && s[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, s, n);
			out += n;
		}
		s = e;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

/* Does p hold "//", "/./" or "/../" (or end in "/." or "/..")? */
static int needs_normalize(const char *p)
{
	for (const char *s = p; *s; s++)
		if (s[0] == '/' && (s[1] == '/' || (s[1] == '.' && (s[2] == '/' || s[2] == '\0' ||
								    (s[2] == '.' && (s[3] == '/' || s[3] == '\0'))))))
			return 1;
	return 0;
}

int pl_real_path(uint32_t ds, uint32_t entry, char *buf, size_t len)
{
	const struct pl_ds *d = &pl.ds[ds];
	struct bb_mentry e;
	int n;

	if (d->single || bb_manifest_entry(d->m, entry, &e) != BB_OK || entry == 0)
		n = snprintf(buf, len, "%s", d->mount);
	else
		n = snprintf(buf, len, "%s/%s", d->mount, e.path);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The hash of the dataset index: a word at a time (a path is hashed on
 * every open; bb_hash64's byte-wise mixing cost three times as much).  The
 * index lives in this process only, so any good mix will do. */
static uint64_t pl_hash(const char *s, size_t n)
{
	uint64_t h = PL_HASH_SEED ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);

	uint64_t w;

	if (n >= 8) {
		const char *last = s + n - 8; /* the last word may overlap */
		for (; s < last; s += 8) {
			memcpy(&w, s, 8);
			h = (h ^ w) * 0xff51afd7ed558ccdull;
			h ^= h >> 32;
		}
		memcpy(&w, last, 8);
	} else if (n >= 4) { /* two words of 4, which may overlap */
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		w = (uint64_t)a | (uint64_t)b << 32;
	} else {
		w = 0;
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)(unsigned char)s[i] << (8 * i);
	}
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

/* Build the hash index of a dataset (open addressing, entry + 1 per slot). */
static void build_htab(struct pl_ds *d)
{
	uint32_t n = bb_manifest_count(d->m), size = 1024;
	struct bb_mentry e;

	if (n > (1u << 26))
		return;
	while (size < 2 * n)
		size <<= 1;
	pl_guard++;
	pthread_mutex_lock(&pl.init_lock);
	if (!atomic_load(&d->htab)) {
		uint32_t *t = calloc(size, sizeof(*t));
		for (uint32_t i = 0; t && i < n; i++) {
			if (bb_manifest_entry(d->m, i, &e) != BB_OK)
				continue;
			uint32_t h = (uint32_t)pl_hash(e.path, e.path_len) & (size - 1);
			while (t[h])
				h = (h + 1) & (size - 1);
			t[h] = i + 1;
		}
		if (t) {
			d->hmask = size - 1;
			atomic_store_explicit(&d->htab, t, memory_order_release);
		}
	}
	pthread_mutex_unlock(&pl.init_lock);
	pl_guard--;
}

/* A thread's last lookup, for scans in manifest order: after two lookups
 * of consecutive entries of one dataset (an epoch in file order, tar,
 * cp -r, find), the next lookup first tries the entry after the last.  In
 * such a scan the manifest's entries and path strings are read in order,
 * which the hardware prefetcher follows, while the hash index's slot is a
 * random line that the data read since pushed out of the caches.  In any
 * other order the guess is never armed, and costs one comparison. */
struct pl_seq {
	const struct pl_ds *d;
	uint32_t last;  /* entry of the thread's last lookup in d */
	uint32_t armed; /* the last two were consecutive */
};
static __thread struct pl_seq pl_seq __attribute__((tls_model("initial-exec")));

static inline int same_path(const struct bb_mentry *e, const char *rel, size_t len)
{
	return e->path_len == len && !memcmp(e->path, rel, len);
}

static inline void seq_note(const struct pl_ds *d, uint32_t i)
{
	if (pl_seq.d == d && i == pl_seq.last)
		return; /* the same file again (a stat, then an open): no change */
	pl_seq.armed = pl_seq.d == d && i == pl_seq.last + 1;
	pl_seq.d = d;
	pl_seq.last = i;
}

/* The entry of rel (no leading '/', no "//"): the hash index once built,
 * the manifest's binary search before. */
static int lookup(struct pl_ds *d, const char *rel, uint32_t *idx, struct bb_mentry *out)
{
	size_t len = strlen(rel);
	uint32_t *t = atomic_load_explicit(&d->htab, memory_order_acquire);

	while (len && rel[len - 1] == '/')
		len--;
	if (!t) {
		if (atomic_fetch_add_explicit(&d->lookups, 1, memory_order_relaxed) == PL_HASH_AFTER)
			build_htab(d);
		int rc = bb_manifest_lookup(d->m, rel, len, idx);
		return rc == BB_OK ? bb_manifest_entry(d->m, *idx, out) : rc;
	}
	if (pl_seq.armed && pl_seq.d == d) {
		uint32_t i = pl_seq.last + 1;
		if (bb_manifest_entry(d->m, i, out) == BB_OK && same_path(out, rel, len)) {
			pl_seq.last = *idx = i;
			return BB_OK;
		}
	}
	for (uint32_t h = (uint32_t)pl_hash(rel, len) & d->hmask;; h = (h + 1) & d->hmask) {
		if (!t[h])
			return BB_ENOENT; /* a probe for a name that is not there: no change */
		if (bb_manifest_entry(d->m, t[h] - 1, out) == BB_OK && same_path(out, rel, len)) {
			*idx = t[h] - 1;
			seq_note(d, *idx);
			return BB_OK;
		}
	}
}

/* Does a leading part of rel name a file ("f/x" where f is a file)? */
static int below_file(const struct pl_ds *d, const char *rel)
{
	struct bb_mentry e;
	uint32_t idx;

	for (const char *s = strchr(rel, '/'); s; s = strchr(s + 1, '/'))
		if (bb_manifest_lookup(d->m, rel, (size_t)(s - rel), &idx) == BB_OK &&
		    bb_manifest_entry(d->m, idx, &e) == BB_OK && !S_ISDIR(e.mode))
			return 1;
	return 0;
}

int pl_resolve(int dirfd, const char *path, struct pl_where *w)
{
	char abs[PATH_MAX];
	const char *p = path;

	if (PL_UNLIKELY(!path) || !pl.enabled)
		return 0;
	if (path[0] != '/') {
		struct pl_file *df = NULL;
		size_t n;
		if (dirfd == AT_FDCWD) {
			if (PL_LIKELY(!atomic_load_explicit(&pl.cwd_in, memory_order_relaxed)))
				return 0;
			pthread_mutex_lock(&pl.cwd_lock);
			n = strlen(pl.cwd);
			memcpy(abs, pl.cwd, n);
			pthread_mutex_unlock(&pl.cwd_lock);
		} else {
			df = pl_fd(dirfd);
			if (!df || df->kind != PL_DIR)
				return 0;
			if (pl_real_path(df->ds, df->entry, abs, sizeof(abs)) < 0)
				return 0;
			n = strlen(abs);
		}
		size_t pl_ = strlen(path);
		if (n + 1 + pl_ >= sizeof(abs))
			return 0;
		abs[n] = '/';
		memcpy(abs + n + 1, path, pl_ + 1);
		p = abs;
	}
	/* The prefixes are normal paths: below one, only the rest can need
	 * normalizing. */
	size_t skip = under(p, pl.prefix, pl.plen) ? pl.plen : under(p, pl.prefix2, pl.plen2) ? pl.plen2 : 0;
	int in = skip != 0;
	int norm = (in || p == abs) && needs_normalize(p + (p == abs ? 0 : skip));
	if (!in && !norm) /* the common case: one prefix compare */
		return 0;
	if (!pl_ensure_loaded())
		return 0;
	if (norm) {
		if (p != abs) {
			size_t n = strlen(p);
			if (n >= sizeof(abs))
				return 0;
			memcpy(abs, p, n + 1);
			p = abs;
		}
		normalize(abs);
		if (!under(p, pl.prefix, pl.plen) && !under(p, pl.prefix2, pl.plen2))
			return 0;
	}
	/* Below the real path of the job directory: the same, by its name. */
	if (pl.plen2 && under(p, pl.prefix2, pl.plen2)) {
		char tmp[PATH_MAX];
		int r = snprintf(tmp, sizeof(tmp), "%s%s", pl.prefix, p + pl.plen2);
		if (r < 0 || (size_t)r >= sizeof(tmp))
			return 0;
		memcpy(abs, tmp, (size_t)r + 1);
		p = abs;
	}
	for (uint32_t i = 0; i < pl.n_ds; i++) {
		struct pl_ds *d = &pl.ds[i];
		if (!d->m || !under(p, d->mount, d->mlen))
			continue;
		const char *rel = p + d->mlen;
		while (*rel == '/')
			rel++;
		struct bb_mentry e;
		w->ds = i;
		if (d->single) {
			if (*rel) {
				errno = ENOTDIR;
				return -1;
			}
			w->entry = 1;
		} else if (lookup(d, rel, &w->entry, &e) != BB_OK) {
			errno = below_file(d, rel) ? ENOTDIR : ENOENT;
			return -1;
		}
		if (d->single && bb_manifest_entry(d->m, w->entry, &e) != BB_OK) {
			errno = ENOENT;
			return -1;
		}
		w->is_dir = S_ISDIR(e.mode);
		w->size = e.size;
		return 1;
	}
	return 0;
}

int pl_entry_mode(uint32_t ds, uint32_t entry)
{
	struct bb_mentry e;
	if (bb_manifest_entry(pl.ds[ds].m, entry, &e) != BB_OK)
		return 0;
	return (int)e.mode;
}

/* ---- descriptors ----------------------------------------------------------- */

void pl_track(int fd, struct pl_file *f)
{
	if ((unsigned)fd >= PL_MAX_FD)
		return;
	atomic_fetch_add(&f->refs, 1);
	struct pl_file *old = atomic_exchange(&pl_fdtab[fd], f);
	if (old)
		pl_file_put(old);
	int m = atomic_load_explicit(&pl.maxfd, memory_order_relaxed);
	while (fd > m && !atomic_compare_exchange_weak(&pl.maxfd, &m, fd))
		;
}

void pl_untrack(int fd)
{
	if ((unsigned)fd >= PL_MAX_FD)
		return;
	struct pl_file *old = atomic_exchange(&pl_fdtab[fd], NULL);
	if (old)
		pl_file_put(old);
}

void pl_lock_wait(pl_lock_t *l)
{
	int c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
	while (c != 0) {
		syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
	}
}

void pl_lock_wake(pl_lock_t *l)
{
	atomic_store_explicit(&l->v, 0, memory_order_release);
	syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Open-file records come from a small per-thread cache: an open of a
 * staged file then costs no malloc and no free (a hot small-file loop pays
 * them on every file).  A thread's cache is freed when the thread exits. */
#define PL_FILE_CACHE 16
static __thread struct pl_file *pl_free_files __attribute__((tls_model("initial-exec")));
static __thread int pl_n_free_files __attribute__((tls_model("initial-exec")));
static __thread int pl_files_keyed __attribute__((tls_model("initial-exec")));
static pthread_key_t pl_files_key;
static pthread_once_t pl_files_once = PTHREAD_ONCE_INIT;

static void free_file_cache(void *unused)
{
	(void)unused;
	pl_files_keyed = 0;
	while (pl_free_files) {
		struct pl_file *f = pl_free_files;
		pl_free_files = f->free_next;
		free(f);
	}
	pl_n_free_files = 0;
}

static void files_key_init(void)
{
	pthread_key_create(&pl_files_key, free_file_cache);
}

static struct pl_file *file_alloc(void)
{
	struct pl_file *f = pl_free_files;
	if (PL_LIKELY(f != NULL)) {
		pl_free_files = f->free_next;
		pl_n_free_files--;
		return f;
	}
	return malloc(sizeof(*f));
}

void pl_file_put(struct pl_file *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	if (f->realfd >= 0)
		pl_real.close(f->realfd);
	if (pl_n_free_files >= PL_FILE_CACHE) {
		free(f);
		return;
	}
	if (PL_UNLIKELY(!pl_files_keyed)) {
		/* a non-NULL value makes the key's destructor run at exit */
		pthread_once(&pl_files_once, files_key_init);
		pthread_setspecific(pl_files_key, &pl_files_key);
		pl_files_keyed = 1;
	}
	f->free_next = pl_free_files;
	pl_free_files = f;
	pl_n_free_files++;
}

/* A fresh descriptor on the placeholder (an O_PATH descriptor of the job's
 * .bbcache directory: reading it without the interposer fails with EBADF
 * instead of returning wrong bytes). */
static int dup_placeholder(int cloexec)
{
	for (int tries = 0; tries < 2; tries++) {
		int ph = pl.placeholder;
		int fd = ph < 0 ? -1 : cloexec ? pl_real.fcntl(ph, F_DUPFD_CLOEXEC, 0) : pl_real.dup(ph);
		if (fd >= 0 || (ph >= 0 && errno != EBADF))
			return fd;
		char path[BB_NS_PATH + 16];
		snprintf(path, sizeof(path), "%s/.bbcache", pl.prefix);
		pthread_mutex_lock(&pl.init_lock);
		if (pl.placeholder == ph)
			pl.placeholder = pl_real.open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		pthread_mutex_unlock(&pl.init_lock);
	}
	return -1;
}

void pl_placeholder_gone(int fd)
{
	if (fd == pl.placeholder && fd >= 0)
		pl.placeholder = -1;
}

int pl_open_where(const struct pl_where *w, int flags)
{
	int fd;

	if (w->is_dir) {
		char path[PATH_MAX];
		fd = -1;
		if (pl_real_path(w->ds, w->entry, path, sizeof(path)) == 0)
			fd = pl_real.open(path, O_RDONLY | O_DIRECTORY | (flags & O_CLOEXEC));
		if (fd < 0)
			fd = dup_placeholder(flags & O_CLOEXEC);
	} else {
		if (flags & O_DIRECTORY) {
			errno = ENOTDIR;
			return -1;
		}
		fd = dup_placeholder(flags & O_CLOEXEC);
	}
	if (fd < 0)
		return -1;
	if (fd >= PL_MAX_FD) {
		pl_real.close(fd);
		errno = EMFILE;
		return -1;
	}
	struct pl_file *f = file_alloc();
	if (!f) {
		pl_real.close(fd);
		errno = ENOMEM;
		return -1;
	}
	atomic_init(&f->refs, 0);
	f->kind = w->is_dir ? PL_DIR : PL_FILE;
	f->ds = w->ds;
	f->entry = w->entry;
	f->file_id = bbp_file_id(w->ds, w->entry);
	f->size = w->is_dir ? 0 : w->size;
	f->bsize = pl.ds[w->ds].bsize;
	f->realfd = -1;
	f->off = 0;
	atomic_init(&f->lock.v, 0);
	pl_track(fd, f);
	return fd;
}

/* ---- the agent ------------------------------------------------------------- */

/* Send m on fd (pl.msg is the buffer), as bbp_call does. */
static int pl_send(int fd, const struct bbp_msg *m)
{
	size_t n = bbp_encode(m, pl.msg, sizeof(pl.msg));
	ssize_t r;

	if (!n)
		return BB_EINVAL;
	while ((r = send(fd, pl.msg, n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN ? BB_EDEAD : BB_ESYS;
	return BB_OK;
}

/* The reply to req (sent already) into rep, as bbp_call waits for it. */
static int pl_recv(int fd, const struct bbp_msg *req, struct bbp_msg *rep, int timeout_ms)
{
	for (;;) {
		if (timeout_ms >= 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int pr = poll(&p, 1, timeout_ms);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0)
				return pr < 0 ? BB_ESYS : BB_ETIMEDOUT;
		}
		ssize_t r = recv(fd, pl.msg, sizeof(pl.msg), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 && errno != ECONNRESET ? BB_ESYS : BB_EDEAD;
		if (bbp_decode(pl.msg, (size_t)r, rep) != BB_OK)
			return BB_EPROTO;
		if (rep->h.seq != req->h.seq)
			continue; /* a late reply to an earlier, timed-out call */
		return rep->h.op == (req->h.op | BBP_REPLY) ? BB_OK : BB_EPROTO;
	}
}

/* One request to the agent, reconnecting (the agent may be restarting)
 * for up to BBCACHE_AGENT_TIMEOUT seconds.  BB_EDEAD when it stays away.
 * A reply's data (READ) is copied to data (cap bytes) before the shared
 * message buffer is let go; rep->text_len says how much. */
static int pl_agent_call(struct bbp_msg *req, struct bbp_msg *rep, void *data, size_t cap)
{
	struct timespec t0, now;
	int rc, delay_ms = 10;

	pl_guard++;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&pl.conn_lock);
	for (;;) {
		int sent = 0;
		if (pl.conn < 0) {
			rc = bbp_connect(pl.ns.socket, &pl.conn);
			if (rc == BB_OK) {
				/* HELLO and the request go out together (the agent
				 * answers in order): a new process's first reply
				 * comes a round trip sooner.  The request's reply
				 * counts only once HELLO's has checked out. */
				struct bbp_msg h = {.h = {.op = BBP_HELLO, .seq = ++pl.seq}, .u32 = BBP_VERSION};
				rc = pl_send(pl.conn, &h);
				req->h.seq = ++pl.seq;
				if (rc == BB_OK && pl_send(pl.conn, req) == BB_OK)
					sent = 1;
				if (rc == BB_OK)
					rc = pl_recv(pl.conn, &h, rep, 10000);
				if (rc == BB_OK && rep->rc != BB_OK)
					rc = rep->rc;
				if (rc == BB_OK && rep->a != pl.ns.job_id)
					rc = BB_EPROTO;
				if (rc != BB_OK) {
					pl_real.close(pl.conn);
					pl.conn = -1;
				} else {
					/* a restarted agent may have rebuilt the segment */
					atomic_store(&pl.reattach, 1);
					pl.agent_gone = 0;
				}
			}
		}
		if (pl.conn >= 0) {
			if (sent) {
				rc = pl_recv(pl.conn, req, rep, -1);
			} else {
				req->h.seq = ++pl.seq;
				rc = bbp_call(pl.conn, req, rep, pl.msg, sizeof(pl.msg), -1);
			}
			if (rc == BB_OK) {
				if (rep->text_len > (data ? cap : 0))
					rep->text_len = 0; /* more than asked: ignore it */
				if (rep->text_len)
					memcpy(data, rep->text, rep->text_len);
				rep->text = data;
				break;
			}
			pl_real.close(pl.conn);
			pl.conn = -1;
		}
		if (rc == BB_EPERM || rc == BB_ERANGE || rc == BB_EPROTO)
			break;
		/* Stopped for good (bbcache stop removes the socket, then the
		 * namespace), or already waited for once: no wait. */
		char ns[BB_NS_PATH + 32];
		if (pl.agent_gone ||
		    (rc == BB_ENOENT && bb_ns_file(pl.prefix, ns, sizeof(ns)) == BB_OK &&
		     access(ns, F_OK) != 0)) {
			rc = BB_EDEAD;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= pl.agent_timeout_s) {
			pl.agent_gone = 1;
			rc = BB_EDEAD;
			break;
		}
		struct timespec d = {0, delay_ms * 1000000L};
		nanosleep(&d, NULL);
		if (delay_ms < 500)
			delay_ms *= 2;
	}
	pthread_mutex_unlock(&pl.conn_lock);
	pl_guard--;
	return rc;
}

/* The file is whole on NVMe when its final name has the manifest's size
 * (the agent renames it there only after verifying it). */
static int open_if_whole(struct pl_file *f)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (pl_real_path(f->ds, f->entry, path, sizeof(path)) < 0)
		return -1;
	fd = pl_real.open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pl_real.fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
		pl_real.close(fd);
		return -1;
	}
	return fd;
}

int pl_open_whole(struct pl_file *f)
{
	int fd = open_if_whole(f);
	if (fd >= 0)
		return fd;
	struct bbp_msg req = {.h = {.op = BBP_FILE}, .a = f->file_id}, rep;
	int rc = pl_agent_call(&req, &rep, NULL, 0);
	if (rc == BB_OK)
		rc = rep.rc;
	if (rc == BB_OK && (fd = open_if_whole(f)) >= 0)
		return fd;
	char path[PATH_MAX];
	pl_real_path(f->ds, f->entry, path, sizeof(path));
	pl_warn("%s: the agent could not make the file whole on local disk: %s", path,
		bb_strerror(rc == BB_OK ? BB_ENOENT : rc));
	errno = rc == BB_OK ? EIO : bb_errno(rc);
	return -1;
}

/* Read from the whole NVMe copy (opened once per open file). */
static ssize_t read_disk(struct pl_file *f, void *buf, size_t n, uint64_t off)
{
	/* No lock here: read() calls this holding f->lock for the offset. */
	if (__atomic_load_n(&f->realfd, __ATOMIC_ACQUIRE) < 0) {
		int fd = pl_open_whole(f), none = -1;
		if (fd < 0)
			return -1;
		if (!__atomic_compare_exchange_n(&f->realfd, &none, fd, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			pl_real.close(fd); /* another thread opened it first */
	}
	size_t done = 0;
	while (done < n) {
		ssize_t r = pl_real.pread(f->realfd, (char *)buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return done ? (ssize_t)done : -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t pl_pread_file(struct pl_file *f, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	int tries = 0;

	if (PL_UNLIKELY(f->kind != PL_FILE)) {
		errno = EISDIR;
		return -1;
	}
	if (off >= f->size)
		return 0;
	if (n > f->size - off)
		n = (size_t)(f->size - off);
	if (PL_UNLIKELY(__atomic_load_n(&f->realfd, __ATOMIC_RELAXED) >= 0))
		return read_disk(f, buf, n, off);
	while (done < n) {
		uint64_t pos = off + done;
		uint64_t b = pos / f->bsize;
		struct bbc_cache *c = pl_cache();
		long r = c ? bbc_read(c, f->file_id, b, pos - b * f->bsize, (char *)buf + done,
				      n - done)
			   : -BB_ENOENT;
		if (PL_LIKELY(r > 0)) {
			done += (size_t)r;
			tries = 0;
			continue;
		}
		if (r == 0) { /* a block shorter than the manifest says */
			char path[PATH_MAX];
			pl_real_path(f->ds, f->entry, path, sizeof(path));
			pl_warn("%s: block %llu in the cache is short", path, (unsigned long long)b);
			errno = EIO;
			return done ? (ssize_t)done : -1;
		}
		/* A miss: one request to the agent, then read again.  A block
		 * still on its way from the origin comes back with the bytes
		 * asked for as soon as they are here (time to first byte). */
		uint64_t boff = pos - b * f->bsize;
		size_t want = n - done < BBP_MAX_INLINE ? n - done : BBP_MAX_INLINE;
		struct bbp_msg req = {.h = {.op = BBP_READ}, .a = f->file_id, .b = b,
				      .off = boff, .len = (uint32_t)want}, rep;
		int rc = c ? pl_agent_call(&req, &rep, (char *)buf + done, want) : BB_OK;
		if (rc == BB_OK && c)
			rc = rep.rc;
		if (rc == BB_OK && c && rep.u32 == BBP_TIER_INLINE && rep.text_len) {
			done += rep.text_len;
			tries = 0;
			continue;
		}
		if (rc == BB_OK && c && rep.u32 != BBP_TIER_DISK && ++tries < 4)
			continue;
		if (rc == BB_OK || rc == BB_EDEAD) {
			/* shm cannot hold it (or there is no cache, or no agent):
			 * the whole NVMe copy, if there is one */
			ssize_t d = read_disk(f, (char *)buf + done, n - done, pos);
			if (d < 0)
				return done ? (ssize_t)done : -1;
			return (ssize_t)(done + (size_t)d);
		}
		char path[PATH_MAX];
		pl_real_path(f->ds, f->entry, path, sizeof(path));
		pl_warn("%s: block %llu: %s", path, (unsigned long long)b, bb_strerror(rc));
		errno = bb_errno(rc);
		return done ? (ssize_t)done : -1;
	}
	return (ssize_t)done;
}

/* ---- metadata from the manifest ---------------------------------------------- */

static uint64_t entry_ino(uint32_t ds, uint32_t entry)
{
	return (1ull << 62) | ((uint64_t)ds << 32) | entry;
}

static uint32_t dir_nlink(const struct pl_ds *d, uint32_t idx, uint32_t n_children)
{
	uint32_t n = 2, c;
	struct bb_mentry e;
	for (uint32_t k = 0; k < n_children; k++)
		if (bb_manifest_child(d->m, idx, k, &c) == BB_OK &&
		    bb_manifest_entry(d->m, c, &e) == BB_OK && S_ISDIR(e.mode))
			n++;
	return n;
}

void pl_stat_entry(uint32_t ds, uint32_t entry, struct stat *st)
{
	const struct pl_ds *d = &pl.ds[ds];
	struct bb_mentry e;

	memset(st, 0, sizeof(*st));
	bb_manifest_entry(d->m, entry, &e);
	st->st_dev = pl.dev;
	st->st_ino = entry_ino(ds, entry);
	st->st_mode = (e.mode ? e.mode : (S_IFREG | 0644)) & ~(mode_t)0222;
	st->st_nlink = S_ISDIR(e.mode) ? dir_nlink(d, entry, e.n_children) : 1;
	st->st_uid = pl.uid;
	st->st_gid = pl.gid;
	st->st_size = S_ISDIR(e.mode) ? 4096 : (off_t)e.size;
	st->st_blksize = 4096; /* see docs/interposer.md, Metadata */
	st->st_blocks = (blkcnt_t)((e.size + 511) / 512);
	st->st_mtim.tv_sec = e.mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = e.mtime_ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

void pl_statx_entry(uint32_t ds, uint32_t entry, struct statx *stx)
{
	struct stat st;

	pl_stat_entry(ds, entry, &st);
	memset(stx, 0, sizeof(*stx));
	stx->stx_mask = STATX_BASIC_STATS;
	stx->stx_blksize = (uint32_t)st.st_blksize;
	stx->stx_nlink = (uint32_t)st.st_nlink;
	stx->stx_uid = st.st_uid;
	stx->stx_gid = st.st_gid;
	stx->stx_mode = (uint16_t)st.st_mode;
	stx->stx_ino = st.st_ino;
	stx->stx_size = (uint64_t)st.st_size;
	stx->stx_blocks = (uint64_t)st.st_blocks;
	stx->stx_atime.tv_sec = st.st_atim.tv_sec;
	stx->stx_atime.tv_nsec = (uint32_t)st.st_atim.tv_nsec;
	stx->stx_mtime = stx->stx_atime;
	stx->stx_ctime = stx->stx_atime;
	stx->stx_dev_major = major(st.st_dev);
	stx->stx_dev_minor = minor(st.st_dev);
}

/* ---- directory streams ------------------------------------------------------- */

#define PL_DIR_MAGIC 0x62626364fffffffeull /* fd -2 where a real DIR keeps its fd */

struct pl_dirstream {
	uint64_t magic;
	int fd;
	struct pl_file *f;
	uint32_t pos; /* 0 ".", 1 "..", then children */
	struct dirent64 ent;
};

int pl_is_our_dir(DIR *d)
{
	return d && ((struct pl_dirstream *)d)->magic == PL_DIR_MAGIC;
}

DIR *pl_opendir_fd(int fd, struct pl_file *f)
{
	struct pl_dirstream *s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->magic = PL_DIR_MAGIC;
	s->fd = fd;
	s->f = f;
	return (DIR *)s;
}

struct dirent64 *pl_readdir_ours(DIR *d)
{
	struct pl_dirstream *s = (struct pl_dirstream *)d;
	const struct pl_ds *ds = &pl.ds[s->f->ds];
	struct bb_mentry e;
	uint32_t idx;

	if (s->pos < 2) {
		uint32_t self = s->f->entry;
		bb_manifest_entry(ds->m, self, &e);
		idx = s->pos == 0 ? self : e.parent;
		memset(&s->ent, 0, sizeof(s->ent));
		s->ent.d_ino = s->pos == 1 && self == 0 ? 2 : entry_ino(s->f->ds, idx);
		s->ent.d_type = DT_DIR;
		strcpy(s->ent.d_name, s->pos == 0 ? "." : "..");
	} else {
		if (bb_manifest_child(ds->m, s->f->entry, s->pos - 2, &idx) != BB_OK ||
		    bb_manifest_entry(ds->m, idx, &e) != BB_OK)
			return NULL; /* the end; errno untouched */
		size_t nl = strlen(e.name);
		if (nl >= sizeof(s->ent.d_name))
			nl = sizeof(s->ent.d_name) - 1;
		s->ent.d_ino = entry_ino(s->f->ds, idx);
		s->ent.d_type = S_ISDIR(e.mode) ? DT_DIR : DT_REG;
		memcpy(s->ent.d_name, e.name, nl);
		s->ent.d_name[nl] = '\0';
	}
	s->pos++;
	s->ent.d_off = s->pos;
	s->ent.d_reclen = sizeof(s->ent);
	return &s->ent;
}

int pl_closedir_ours(DIR *d)
{
	struct pl_dirstream *s = (struct pl_dirstream *)d;
	int fd = s->fd;
	s->magic = 0;
	free(s);
	pl_untrack(fd);
	return pl_real.close(fd);
}

void pl_rewinddir_ours(DIR *d)
{
	((struct pl_dirstream *)d)->pos = 0;
}

int pl_dirfd_ours(DIR *d)
{
	return ((struct pl_dirstream *)d)->fd;
}

long pl_telldir_ours(DIR *d)
{
	return (long)((struct pl_dirstream *)d)->pos;
}

void pl_seekdir_ours(DIR *d, long pos)
{
	((struct pl_dirstream *)d)->pos = pos < 0 ? 0 : (uint32_t)pos;
}

/* ---- exec ------------------------------------------------------------------- */

void pl_before_exec(void)
{
	int maxfd = atomic_load(&pl.maxfd);

	pl_guard++;
	for (int fd = 0; fd <= maxfd && fd < PL_MAX_FD; fd++) {
		struct pl_file *f = pl_fd(fd);
		if (!f || f->kind != PL_FILE)
			continue;
		int fl = pl_real.fcntl(fd, F_GETFD);
		if (fl < 0 || (fl & FD_CLOEXEC))
			continue;
		/* The new program will not know the table: give it the real file
		 * at the same offset. */
		int real = pl_open_whole(f);
		if (real < 0)
			continue; /* it keeps the placeholder: reads fail, never lie */
		pl_real.lseek(real, (off_t)f->off, SEEK_SET);
		if (pl_real.dup2(real, fd) >= 0)
			pl_untrack(fd);
		pl_real.close(real);
	}
	pl_guard--;
}
