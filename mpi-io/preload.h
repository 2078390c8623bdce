/* libbbcache_preload.so internals: the staged namespace, the descriptor
 * table and the read path shared by the wrappers (preload_wrap.c).
 * docs/interposer.md describes the model. */
#ifndef BB_PRELOAD_H
#define BB_PRELOAD_H

#define _GNU_SOURCE 1
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <utime.h>

#include "mpi-io/preload_syms.h"

#define PL_LIKELY(x) __builtin_expect(!!(x), 1)
#define PL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PL_HIDDEN __attribute__((visibility("hidden")))

/* The real symbols, resolved with dlsym(RTLD_NEXT). */
struct pl_real {
#define PL_REAL_PTR(how, ret, name, params, args) ret(*name) params;
	PL_SYMBOLS(PL_REAL_PTR)
#undef PL_REAL_PTR
};
PL_HIDDEN extern struct pl_real pl_real;
PL_HIDDEN extern int pl_resolved;
PL_HIDDEN void pl_resolve_all(void);

/* Nonzero while this thread runs inside the interposer: calls then go
 * straight to the real symbols (our own file I/O, libc calling itself). */
PL_HIDDEN extern __thread int pl_guard __attribute__((tls_model("initial-exec")));

enum { PL_FILE = 1, PL_DIR = 2 };

/* An open staged file or directory, shared by dup'ed descriptors as an
 * open file description is (one offset). */
/* The offset lock of an open file: a futex word (0 free, 1 held, 2 held
 * with waiters).  Uncontended, a lock and an unlock are one atomic each,
 * where a pthread mutex costs a hundred instructions per read(). */
typedef struct {
	atomic_int v;
} pl_lock_t;

PL_HIDDEN void pl_lock_wait(pl_lock_t *l);
PL_HIDDEN void pl_lock_wake(pl_lock_t *l);

static inline void pl_lock(pl_lock_t *l)
{
	int c = 0;
	if (PL_UNLIKELY(!atomic_compare_exchange_strong_explicit(&l->v, &c, 1, memory_order_acquire,
								 memory_order_relaxed)))
		pl_lock_wait(l);
}

static inline void pl_unlock(pl_lock_t *l)
{
	if (PL_UNLIKELY(atomic_fetch_sub_explicit(&l->v, 1, memory_order_release) != 1))
		pl_lock_wake(l);
}

struct pl_file {
	atomic_int refs;
	int kind;
	uint32_t ds, entry;
	uint64_t file_id;
	uint64_t size;
	uint32_t bsize;
	int realfd; /* the whole NVMe copy, once needed; -1 (set once, atomically) */
	pl_lock_t lock; /* off */
	uint64_t off;
	struct pl_file *free_next; /* in a thread's cache of free records */
};

#define PL_MAX_FD (1 << 20)
PL_HIDDEN extern struct pl_file *_Atomic pl_fdtab[PL_MAX_FD];

static inline struct pl_file *pl_fd(int fd)
{
	if (PL_UNLIKELY((unsigned)fd >= PL_MAX_FD))
		return NULL;
	return atomic_load_explicit(&pl_fdtab[fd], memory_order_acquire);
}

/* Where a path leads. */
struct pl_where {
	uint32_t ds, entry;
	int is_dir;
	uint64_t size;
};

/* Is (dirfd, path) a staged path?  1: yes (w filled); 0: not ours, pass it
 * through; -1: below a dataset but not in its manifest (errno ENOENT or
 * ENOTDIR). */
PL_HIDDEN int pl_resolve(int dirfd, const char *path, struct pl_where *w);
/* The real (NVMe) path of a staged entry. */
PL_HIDDEN int pl_real_path(uint32_t ds, uint32_t entry, char *buf, size_t len);

/* Open a staged entry: a real descriptor (a dup of a private placeholder
 * for files, the NVMe directory for directories) entered in the table. */
PL_HIDDEN int pl_open_where(const struct pl_where *w, int flags);
PL_HIDDEN void pl_track(int fd, struct pl_file *f); /* takes a reference */
PL_HIDDEN void pl_untrack(int fd);                  /* drops it */
PL_HIDDEN void pl_file_put(struct pl_file *f);
/* The program closed or replaced descriptor fd: if it was our placeholder,
 * forget it (the next staged open makes a new one). */
PL_HIDDEN void pl_placeholder_gone(int fd);

/* Read n bytes at off of a staged file: hits from shm, misses through the
 * agent, the NVMe copy when shm cannot hold it.  -1 with errno. */
PL_HIDDEN ssize_t pl_pread_file(struct pl_file *f, void *buf, size_t n, uint64_t off);
/* Make sure the file is whole on NVMe and return a fresh O_RDONLY
 * descriptor of it (for mmap and exec); -1 with errno. */
PL_HIDDEN int pl_open_whole(struct pl_file *f);

PL_HIDDEN void pl_stat_entry(uint32_t ds, uint32_t entry, struct stat *st);
PL_HIDDEN void pl_statx_entry(uint32_t ds, uint32_t entry, struct statx *stx);
PL_HIDDEN int pl_entry_mode(uint32_t ds, uint32_t entry);

/* Directory streams over a manifest directory. */
PL_HIDDEN DIR *pl_opendir_fd(int fd, struct pl_file *f);
PL_HIDDEN int pl_is_our_dir(DIR *d);
PL_HIDDEN struct dirent64 *pl_readdir_ours(DIR *d);
PL_HIDDEN int pl_closedir_ours(DIR *d);
PL_HIDDEN void pl_rewinddir_ours(DIR *d);
PL_HIDDEN int pl_dirfd_ours(DIR *d);
PL_HIDDEN long pl_telldir_ours(DIR *d);
PL_HIDDEN void pl_seekdir_ours(DIR *d, long pos);

/* The current directory moved (chdir/fchdir succeeded). */
PL_HIDDEN void pl_cwd_changed(void);
/* Before exec: staged descriptors that stay open become real ones. */
PL_HIDDEN void pl_before_exec(void);

/* One line on stderr, at most a few per process. */
PL_HIDDEN void pl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
