/* The wrappers of libbbcache_preload.so.  Each exported symbol of
 * preload_syms.h either is generated below (GEN: guard check, then the
 * handler pl_<name>) or is written by hand (HAND: the variadic ones).  A
 * handler decides in one check whether the call is ours - a path below a
 * staged dataset, or a descriptor in the table - and passes everything
 * else to the real symbol. */
#include "mpi-io/preload.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define PL_EXPORT __attribute__((visibility("default")))

static inline int pl_ready(void)
{
	if (PL_UNLIKELY(!pl_resolved))
		pl_resolve_all();
	return !pl_guard;
}

/* ---- opening ----------------------------------------------------------------- */

static int wants_write(int flags)
{
	/* O_TMPFILE includes O_DIRECTORY's bit: compare it whole */
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) ||
	       (flags & O_TMPFILE) == O_TMPFILE;
}

/* open/openat of every flavour.  real: the call to make when not ours. */
static int open_common(int dirfd, const char *path, int flags, mode_t mode, int at)
{
	struct pl_where w;
	int r = pl_resolve(dirfd, path, &w);

	if (PL_LIKELY(r == 0))
		return at ? pl_real.openat(dirfd, path, flags, mode) : pl_real.open(path, flags, mode);
	if (r < 0) {
		if (flags & O_CREAT)
			errno = EROFS;
		return -1;
	}
	if (wants_write(flags)) {
		errno = (flags & O_CREAT) && (flags & O_EXCL) ? EEXIST : w.is_dir ? EISDIR : EROFS;
		return -1;
	}
	return pl_open_where(&w, flags);
}

#define OPEN_MODE(flags)                                        \
	mode_t mode = 0;                                        \
	if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { \
		va_list ap;                                     \
		va_start(ap, flags);                            \
		mode = (mode_t)va_arg(ap, int);                 \
		va_end(ap);                                     \
	}

PL_EXPORT int open(const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	if (!pl_ready())
		return pl_real.open(path, flags, mode);
	return open_common(AT_FDCWD, path, flags, mode, 0);
}

PL_EXPORT int open64(const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	if (!pl_ready())
		return pl_real.open64(path, flags, mode);
	return open_common(AT_FDCWD, path, flags | O_LARGEFILE, mode, 0);
}

PL_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	if (!pl_ready())
		return pl_real.openat(dirfd, path, flags, mode);
	return open_common(dirfd, path, flags, mode, 1);
}

PL_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	if (!pl_ready())
		return pl_real.openat64(dirfd, path, flags, mode);
	return open_common(dirfd, path, flags | O_LARGEFILE, mode, 1);
}

static int pl___open_2(const char *path, int flags)
{
	return open_common(AT_FDCWD, path, flags, 0, 0);
}

static int pl___open64_2(const char *path, int flags)
{
	return open_common(AT_FDCWD, path, flags | O_LARGEFILE, 0, 0);
}

static int pl___openat_2(int dirfd, const char *path, int flags)
{
	return open_common(dirfd, path, flags, 0, 1);
}

static int pl___openat64_2(int dirfd, const char *path, int flags)
{
	return open_common(dirfd, path, flags | O_LARGEFILE, 0, 1);
}

static int pl_creat(const char *path, mode_t mode)
{
	return open_common(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode, 0);
}

static int pl_creat64(const char *path, mode_t mode)
{
	return open_common(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_LARGEFILE, mode, 0);
}

/* ---- reading ----------------------------------------------------------------- */

/* read(2) at the shared offset: the offset moves by what was read. */
static ssize_t read_at_offset(struct pl_file *f, void *buf, size_t n)
{
	pl_lock(&f->lock);
	ssize_t r = pl_pread_file(f, buf, n, f->off);
	if (r > 0)
		f->off += (uint64_t)r;
	pl_unlock(&f->lock);
	return r;
}

static ssize_t pl_read(int fd, void *buf, size_t n)
{
	struct pl_file *f = pl_fd(fd);
	if (PL_LIKELY(!f))
		return pl_real.read(fd, buf, n);
	return read_at_offset(f, buf, n);
}

static ssize_t pl___read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	struct pl_file *f = pl_fd(fd);
	if (PL_LIKELY(!f))
		return pl_real.__read_chk(fd, buf, n, buflen);
	if (n > buflen)
		abort(); /* what __chk_fail does: the caller overflows its buffer */
	return read_at_offset(f, buf, n);
}

static ssize_t pread_common(int fd, void *buf, size_t n, off64_t off, int *ours)
{
	struct pl_file *f = pl_fd(fd);
	*ours = f != NULL;
	if (!f)
		return 0;
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return pl_pread_file(f, buf, n, (uint64_t)off);
}

static ssize_t pl_pread(int fd, void *buf, size_t n, off_t off)
{
	int ours;
	ssize_t r = pread_common(fd, buf, n, off, &ours);
	return ours ? r : pl_real.pread(fd, buf, n, off);
}

static ssize_t pl_pread64(int fd, void *buf, size_t n, off64_t off)
{
	int ours;
	ssize_t r = pread_common(fd, buf, n, off, &ours);
	return ours ? r : pl_real.pread64(fd, buf, n, off);
}

static ssize_t pl___pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	int ours;
	if (n > buflen && pl_fd(fd))
		abort();
	ssize_t r = pread_common(fd, buf, n, off, &ours);
	return ours ? r : pl_real.__pread_chk(fd, buf, n, off, buflen);
}

static ssize_t pl___pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
	int ours;
	if (n > buflen && pl_fd(fd))
		abort();
	ssize_t r = pread_common(fd, buf, n, off, &ours);
	return ours ? r : pl_real.__pread64_chk(fd, buf, n, off, buflen);
}

/* Scatter reads: each iovec in turn; off < 0: at (and moving) the offset. */
static ssize_t readv_common(struct pl_file *f, const struct iovec *iov, int cnt, off64_t off)
{
	ssize_t total = 0;
	int at_off = off < 0;

	if (cnt < 0 || cnt > IOV_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (at_off) {
		pl_lock(&f->lock);
		off = (off64_t)f->off;
	}
	for (int i = 0; i < cnt; i++) {
		if (!iov[i].iov_len)
			continue;
		ssize_t r = pl_pread_file(f, iov[i].iov_base, iov[i].iov_len, (uint64_t)off);
		if (r < 0) {
			if (!total)
				total = -1;
			break;
		}
		total += r;
		off += r;
		if ((size_t)r < iov[i].iov_len)
			break;
	}
	if (at_off) {
		if (total > 0)
			f->off = (uint64_t)off;
		pl_unlock(&f->lock);
	}
	return total;
}

static ssize_t pl_readv(int fd, const struct iovec *iov, int n)
{
	struct pl_file *f = pl_fd(fd);
	return f ? readv_common(f, iov, n, -1) : pl_real.readv(fd, iov, n);
}

static ssize_t pl_preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.preadv(fd, iov, n, off);
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return readv_common(f, iov, n, off);
}

static ssize_t pl_preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.preadv64(fd, iov, n, off);
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return readv_common(f, iov, n, off);
}

static ssize_t pl_preadv2(int fd, const struct iovec *iov, int n, off_t off, int fl)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.preadv2(fd, iov, n, off, fl);
	return readv_common(f, iov, n, off == -1 ? -1 : off);
}

static ssize_t pl_preadv64v2(int fd, const struct iovec *iov, int n, off64_t off, int fl)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.preadv64v2(fd, iov, n, off, fl);
	return readv_common(f, iov, n, off == -1 ? -1 : off);
}

static off64_t lseek_common(struct pl_file *f, off64_t off, int whence)
{
	off64_t base, r;

	if (f->kind == PL_DIR) {
		if (off == 0 && whence == SEEK_SET)
			return 0;
		errno = EINVAL;
		return -1;
	}
	pl_lock(&f->lock);
	switch (whence) {
	case SEEK_SET: base = 0; break;
	case SEEK_CUR: base = (off64_t)f->off; break;
	case SEEK_END: base = (off64_t)f->size; break;
	case SEEK_DATA:
	case SEEK_HOLE:
		if (off < 0 || (uint64_t)off >= f->size) {
			pl_unlock(&f->lock);
			errno = ENXIO;
			return -1;
		}
		r = whence == SEEK_DATA ? off : (off64_t)f->size;
		f->off = (uint64_t)r;
		pl_unlock(&f->lock);
		return r;
	default:
		pl_unlock(&f->lock);
		errno = EINVAL;
		return -1;
	}
	if ((off > 0 && base > INT64_MAX - off) || base + off < 0) {
		pl_unlock(&f->lock);
		errno = EINVAL;
		return -1;
	}
	r = base + off;
	f->off = (uint64_t)r;
	pl_unlock(&f->lock);
	return r;
}

static off_t pl_lseek(int fd, off_t off, int whence)
{
	struct pl_file *f = pl_fd(fd);
	return f ? lseek_common(f, off, whence) : pl_real.lseek(fd, off, whence);
}

static off64_t pl_lseek64(int fd, off64_t off, int whence)
{
	struct pl_file *f = pl_fd(fd);
	return f ? lseek_common(f, off, whence) : pl_real.lseek64(fd, off, whence);
}

/* copy_file_range/sendfile from a staged file: our reads, real writes. */
static ssize_t copy_out(struct pl_file *f, off64_t *in_off, int out, off64_t *out_off, size_t n)
{
	size_t cap = n < (1u << 20) ? n : (1u << 20);
	char *buf;
	ssize_t total = 0;
	uint64_t pos;

	if (pl_fd(out)) {
		errno = EBADF;
		return -1;
	}
	if (!n)
		return 0;
	buf = malloc(cap);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	if (!in_off)
		pl_lock(&f->lock);
	pos = in_off ? (uint64_t)*in_off : f->off;
	while ((size_t)total < n) {
		size_t want = n - (size_t)total < cap ? n - (size_t)total : cap;
		ssize_t r = pl_pread_file(f, buf, want, pos);
		if (r <= 0) {
			if (r < 0 && !total)
				total = -1;
			break;
		}
		ssize_t w = 0;
		while (w < r) {
			ssize_t k = out_off ? pwrite(out, buf + w, (size_t)(r - w), *out_off + w)
					    : write(out, buf + w, (size_t)(r - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			w += k;
		}
		if (out_off)
			*out_off += w;
		pos += (uint64_t)w;
		total += w;
		if (w < r) {
			if (!total)
				total = -1;
			break;
		}
	}
	if (in_off)
		*in_off = (off64_t)pos;
	else {
		f->off = pos;
		pl_unlock(&f->lock);
	}
	free(buf);
	return total;
}

static ssize_t pl_copy_file_range(int in, off64_t *in_off, int out, off64_t *out_off, size_t n,
				  unsigned int fl)
{
	struct pl_file *f = pl_fd(in);
	if (!f && !pl_fd(out))
		return pl_real.copy_file_range(in, in_off, out, out_off, n, fl);
	if (!f || fl) {
		errno = !f ? EBADF : EINVAL; /* writing into a staged file */
		return -1;
	}
	return copy_out(f, in_off, out, out_off, n);
}

static ssize_t pl_sendfile(int out, int in, off_t *off, size_t n)
{
	struct pl_file *f = pl_fd(in);
	if (!f && !pl_fd(out))
		return pl_real.sendfile(out, in, off, n);
	if (!f) {
		errno = EBADF;
		return -1;
	}
	off64_t o = off ? *off : 0;
	ssize_t r = copy_out(f, off ? &o : NULL, out, NULL, n);
	if (off)
		*off = (off_t)o;
	return r;
}

static ssize_t pl_sendfile64(int out, int in, off64_t *off, size_t n)
{
	struct pl_file *f = pl_fd(in);
	if (!f && !pl_fd(out))
		return pl_real.sendfile64(out, in, off, n);
	if (!f) {
		errno = EBADF;
		return -1;
	}
	return copy_out(f, off, out, NULL, n);
}

/* mmap of a staged file maps its whole NVMe copy. */
static void *mmap_common(void *a, size_t n, int prot, int fl, struct pl_file *f, off64_t off)
{
	if (f->kind != PL_FILE) {
		errno = ENODEV;
		return MAP_FAILED;
	}
	if ((prot & PROT_WRITE) && (fl & MAP_SHARED)) {
		errno = EACCES;
		return MAP_FAILED;
	}
	int fd = pl_open_whole(f);
	if (fd < 0)
		return MAP_FAILED;
	void *p = pl_real.mmap64(a, n, prot, fl, fd, off);
	int e = errno;
	pl_real.close(fd);
	errno = e;
	return p;
}

static void *pl_mmap(void *a, size_t n, int prot, int fl, int fd, off_t off)
{
	struct pl_file *f = (fl & MAP_ANONYMOUS) ? NULL : pl_fd(fd);
	return f ? mmap_common(a, n, prot, fl, f, off) : pl_real.mmap(a, n, prot, fl, fd, off);
}

static void *pl_mmap64(void *a, size_t n, int prot, int fl, int fd, off64_t off)
{
	struct pl_file *f = (fl & MAP_ANONYMOUS) ? NULL : pl_fd(fd);
	return f ? mmap_common(a, n, prot, fl, f, off) : pl_real.mmap64(a, n, prot, fl, fd, off);
}

/* ---- descriptors --------------------------------------------------------------- */

static int pl_close(int fd)
{
	if (PL_UNLIKELY(pl_fd(fd) != NULL))
		pl_untrack(fd);
	else
		pl_placeholder_gone(fd);
	return pl_real.close(fd);
}

static int pl_close_range(unsigned int lo, unsigned int hi, int fl)
{
	int r = pl_real.close_range(lo, hi, fl);
	if (r == 0 && !(fl & CLOSE_RANGE_CLOEXEC))
		for (unsigned int fd = lo; fd <= hi && fd < PL_MAX_FD; fd++) {
			pl_untrack((int)fd);
			pl_placeholder_gone((int)fd);
		}
	return r;
}

static int pl_dup(int fd)
{
	struct pl_file *f = pl_fd(fd);
	int r = pl_real.dup(fd);
	if (f && r >= 0)
		pl_track(r, f);
	return r;
}

static int dup_to(int fd, int to, int fl, int three)
{
	struct pl_file *f = pl_fd(fd);
	int r = three ? pl_real.dup3(fd, to, fl) : pl_real.dup2(fd, to);
	if (r >= 0 && fd != to) {
		pl_placeholder_gone(to);
		if (f)
			pl_track(to, f);
		else
			pl_untrack(to);
	}
	return r;
}

static int pl_dup2(int fd, int to)
{
	return dup_to(fd, to, 0, 0);
}

static int pl_dup3(int fd, int to, int fl)
{
	return dup_to(fd, to, fl, 1);
}

static int fcntl_common(int fd, int cmd, void *arg, int use64)
{
	struct pl_file *f = pl_fd(fd);
	int r;

	if (f && cmd == F_GETFL)
		return O_RDONLY | O_LARGEFILE;
	if (f && cmd == F_SETFL)
		return 0;
	r = use64 ? pl_real.fcntl64(fd, cmd, arg) : pl_real.fcntl(fd, cmd, arg);
	if (f && r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		pl_track(r, f);
	return r;
}

PL_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (!pl_ready())
		return pl_real.fcntl(fd, cmd, arg);
	return fcntl_common(fd, cmd, arg, 0);
}

PL_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (!pl_ready())
		return pl_real.fcntl64(fd, cmd, arg);
	return fcntl_common(fd, cmd, arg, 1);
}

/* A staged file's descriptor is an O_PATH placeholder, on which the kernel
 * answers every ioctl EBADF: answer what a regular file answers instead
 * (ENOTTY for the terminal requests, so isatty() - which Python calls in
 * every open() - needs no system call). */
static int ioctl_file(struct pl_file *f, int fd, unsigned long req, void *arg)
{
	switch (req) {
	case FIONREAD: {
		if (!arg) { /* the kernel's put_user would fail the same way */
			errno = EFAULT;
			return -1;
		}
		pl_lock(&f->lock);
		uint64_t off = f->off;
		pl_unlock(&f->lock);
		uint64_t left = off < f->size ? f->size - off : 0;
		*(int *)arg = left > INT_MAX ? INT_MAX : (int)left;
		return 0;
	}
	case FIOCLEX:
		return pl_real.fcntl(fd, F_SETFD, FD_CLOEXEC);
	case FIONCLEX:
		return pl_real.fcntl(fd, F_SETFD, 0);
	case FIONBIO:
	case FIOASYNC:
		return 0; /* as F_SETFL: a staged file never blocks */
	default:
		errno = ENOTTY;
		return -1;
	}
}

PL_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (!pl_ready())
		return pl_real.ioctl(fd, req, arg);
	struct pl_file *f = pl_fd(fd);
	if (PL_LIKELY(!f) || f->kind != PL_FILE)
		return pl_real.ioctl(fd, req, arg);
	return ioctl_file(f, fd, req, arg);
}

static int pl_isatty(int fd)
{
	struct pl_file *f = pl_fd(fd);
	if (PL_LIKELY(!f) || f->kind != PL_FILE)
		return pl_real.isatty(fd);
	errno = ENOTTY;
	return 0;
}

/* ---- metadata --------------------------------------------------------------- */

/* stat of (dirfd, path): 1 answered from the manifest, 0 not ours, -1 error. */
static int stat_path(int dirfd, const char *path, struct stat *st, int fl)
{
	struct pl_where w;
	int r;

	if ((fl & AT_EMPTY_PATH) && path && !*path) {
		struct pl_file *f = pl_fd(dirfd);
		if (!f)
			return 0;
		pl_stat_entry(f->ds, f->entry, st);
		return 1;
	}
	r = pl_resolve(dirfd, path, &w);
	if (r > 0)
		pl_stat_entry(w.ds, w.entry, st);
	return r;
}

static int pl_stat(const char *path, struct stat *st)
{
	int r = stat_path(AT_FDCWD, path, st, 0);
	return r == 0 ? pl_real.stat(path, st) : r > 0 ? 0 : -1;
}

static int pl_stat64(const char *path, struct stat64 *st)
{
	int r = stat_path(AT_FDCWD, path, (struct stat *)st, 0);
	return r == 0 ? pl_real.stat64(path, st) : r > 0 ? 0 : -1;
}

static int pl_lstat(const char *path, struct stat *st)
{
	int r = stat_path(AT_FDCWD, path, st, 0);
	return r == 0 ? pl_real.lstat(path, st) : r > 0 ? 0 : -1;
}

static int pl_lstat64(const char *path, struct stat64 *st)
{
	int r = stat_path(AT_FDCWD, path, (struct stat *)st, 0);
	return r == 0 ? pl_real.lstat64(path, st) : r > 0 ? 0 : -1;
}

static int pl_fstat(int fd, struct stat *st)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.fstat(fd, st);
	pl_stat_entry(f->ds, f->entry, st);
	return 0;
}

static int pl_fstat64(int fd, struct stat64 *st)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.fstat64(fd, st);
	pl_stat_entry(f->ds, f->entry, (struct stat *)st);
	return 0;
}

static int pl_fstatat(int dirfd, const char *path, struct stat *st, int fl)
{
	int r = stat_path(dirfd, path, st, fl);
	return r == 0 ? pl_real.fstatat(dirfd, path, st, fl) : r > 0 ? 0 : -1;
}

static int pl_fstatat64(int dirfd, const char *path, struct stat64 *st, int fl)
{
	int r = stat_path(dirfd, path, (struct stat *)st, fl);
	return r == 0 ? pl_real.fstatat64(dirfd, path, st, fl) : r > 0 ? 0 : -1;
}

static int pl___xstat(int ver, const char *path, struct stat *st)
{
	int r = stat_path(AT_FDCWD, path, st, 0);
	return r == 0 ? pl_real.__xstat(ver, path, st) : r > 0 ? 0 : -1;
}

static int pl___xstat64(int ver, const char *path, struct stat64 *st)
{
	int r = stat_path(AT_FDCWD, path, (struct stat *)st, 0);
	return r == 0 ? pl_real.__xstat64(ver, path, st) : r > 0 ? 0 : -1;
}

static int pl___lxstat(int ver, const char *path, struct stat *st)
{
	int r = stat_path(AT_FDCWD, path, st, 0);
	return r == 0 ? pl_real.__lxstat(ver, path, st) : r > 0 ? 0 : -1;
}

static int pl___lxstat64(int ver, const char *path, struct stat64 *st)
{
	int r = stat_path(AT_FDCWD, path, (struct stat *)st, 0);
	return r == 0 ? pl_real.__lxstat64(ver, path, st) : r > 0 ? 0 : -1;
}

static int pl___fxstat(int ver, int fd, struct stat *st)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.__fxstat(ver, fd, st);
	pl_stat_entry(f->ds, f->entry, st);
	return 0;
}

static int pl___fxstat64(int ver, int fd, struct stat64 *st)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.__fxstat64(ver, fd, st);
	pl_stat_entry(f->ds, f->entry, (struct stat *)st);
	return 0;
}

static int pl___fxstatat(int ver, int dirfd, const char *path, struct stat *st, int fl)
{
	int r = stat_path(dirfd, path, st, fl);
	return r == 0 ? pl_real.__fxstatat(ver, dirfd, path, st, fl) : r > 0 ? 0 : -1;
}

static int pl___fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int fl)
{
	int r = stat_path(dirfd, path, (struct stat *)st, fl);
	return r == 0 ? pl_real.__fxstatat64(ver, dirfd, path, st, fl) : r > 0 ? 0 : -1;
}

static int pl_statx(int dirfd, const char *path, int fl, unsigned int mask, struct statx *stx)
{
	struct pl_where w;
	int r;

	if ((fl & AT_EMPTY_PATH) && path && !*path) {
		struct pl_file *f = pl_fd(dirfd);
		if (!f)
			return pl_real.statx(dirfd, path, fl, mask, stx);
		pl_statx_entry(f->ds, f->entry, stx);
		return 0;
	}
	r = pl_resolve(dirfd, path, &w);
	if (r == 0)
		return pl_real.statx(dirfd, path, fl, mask, stx);
	if (r < 0)
		return -1;
	pl_statx_entry(w.ds, w.entry, stx);
	return 0;
}

static int access_common(int dirfd, const char *path, int mode, int fl, int at)
{
	struct pl_where w;
	int r = pl_resolve(dirfd, path, &w);

	if (r == 0)
		return at ? pl_real.faccessat(dirfd, path, mode, fl) : pl_real.access(path, mode);
	if (r < 0)
		return -1;
	if (mode & W_OK) {
		errno = EROFS;
		return -1;
	}
	if ((mode & X_OK) && !w.is_dir && !(pl_entry_mode(w.ds, w.entry) & 0111)) {
		errno = EACCES;
		return -1;
	}
	return 0;
}

static int pl_access(const char *path, int mode)
{
	return access_common(AT_FDCWD, path, mode, 0, 0);
}

static int pl_faccessat(int dirfd, const char *path, int mode, int fl)
{
	return access_common(dirfd, path, mode, fl, 1);
}

/* ---- directories --------------------------------------------------------------- */

static DIR *pl_opendir(const char *path)
{
	struct pl_where w;
	int r = pl_resolve(AT_FDCWD, path, &w);

	if (r == 0)
		return pl_real.opendir(path);
	if (r < 0)
		return NULL;
	if (!w.is_dir) {
		errno = ENOTDIR;
		return NULL;
	}
	int fd = pl_open_where(&w, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = pl_opendir_fd(fd, pl_fd(fd));
	if (!d)
		pl_close(fd);
	return d;
}

static DIR *pl_fdopendir(int fd)
{
	struct pl_file *f = pl_fd(fd);
	if (!f)
		return pl_real.fdopendir(fd);
	if (f->kind != PL_DIR) {
		errno = ENOTDIR;
		return NULL;
	}
	return pl_opendir_fd(fd, f);
}

static struct dirent *pl_readdir(DIR *d)
{
	if (!pl_is_our_dir(d))
		return pl_real.readdir(d);
	return (struct dirent *)pl_readdir_ours(d);
}

static struct dirent64 *pl_readdir64(DIR *d)
{
	if (!pl_is_our_dir(d))
		return pl_real.readdir64(d);
	return pl_readdir_ours(d);
}

static int pl_readdir_r(DIR *d, struct dirent *e, struct dirent **res)
{
	if (!pl_is_our_dir(d))
		return pl_real.readdir_r(d, e, res);
	struct dirent64 *x = pl_readdir_ours(d);
	if (x) {
		memcpy(e, x, sizeof(*e));
		*res = e;
	} else {
		*res = NULL;
	}
	return 0;
}

static int pl_readdir64_r(DIR *d, struct dirent64 *e, struct dirent64 **res)
{
	if (!pl_is_our_dir(d))
		return pl_real.readdir64_r(d, e, res);
	struct dirent64 *x = pl_readdir_ours(d);
	if (x) {
		memcpy(e, x, sizeof(*e));
		*res = e;
	} else {
		*res = NULL;
	}
	return 0;
}

static int pl_closedir(DIR *d)
{
	return pl_is_our_dir(d) ? pl_closedir_ours(d) : pl_real.closedir(d);
}

static void pl_rewinddir(DIR *d)
{
	if (pl_is_our_dir(d))
		pl_rewinddir_ours(d);
	else
		pl_real.rewinddir(d);
}

static int pl_dirfd(DIR *d)
{
	return pl_is_our_dir(d) ? pl_dirfd_ours(d) : pl_real.dirfd(d);
}

static long pl_telldir(DIR *d)
{
	return pl_is_our_dir(d) ? pl_telldir_ours(d) : pl_real.telldir(d);
}

static void pl_seekdir(DIR *d, long pos)
{
	if (pl_is_our_dir(d))
		pl_seekdir_ours(d, pos);
	else
		pl_real.seekdir(d, pos);
}

static int pl_chdir(const char *path)
{
	int r = pl_real.chdir(path);
	if (r == 0)
		pl_cwd_changed();
	return r;
}

static int pl_fchdir(int fd)
{
	int r = pl_real.fchdir(fd);
	if (r == 0)
		pl_cwd_changed();
	return r;
}

/* ---- stdio: a FILE over a staged descriptor ---------------------------------------- */

static ssize_t cookie_read(void *c, char *buf, size_t n)
{
	return pl_read((int)(intptr_t)c, buf, n);
}

static int cookie_seek(void *c, off64_t *off, int whence)
{
	off64_t r = pl_lseek64((int)(intptr_t)c, *off, whence);
	if (r < 0)
		return -1;
	*off = r;
	return 0;
}

static int cookie_close(void *c)
{
	return pl_close((int)(intptr_t)c);
}

static FILE *cookie_file(int fd, const char *mode)
{
	cookie_io_functions_t io = {
	    .read = cookie_read, .write = NULL, .seek = cookie_seek, .close = cookie_close};
	return fopencookie((void *)(intptr_t)fd, "r", io);
}

static int mode_writes(const char *mode)
{
	return strpbrk(mode, "wa+") != NULL;
}

static FILE *fopen_common(const char *path, const char *mode, int use64)
{
	struct pl_where w;
	int r = pl_resolve(AT_FDCWD, path, &w);

	if (r == 0)
		return use64 ? pl_real.fopen64(path, mode) : pl_real.fopen(path, mode);
	if (r < 0) {
		if (mode_writes(mode))
			errno = EROFS;
		return NULL;
	}
	if (mode_writes(mode)) {
		errno = w.is_dir ? EISDIR : EROFS;
		return NULL;
	}
	int fd = pl_open_where(&w, O_RDONLY | (strchr(mode, 'e') ? O_CLOEXEC : 0));
	if (fd < 0)
		return NULL;
	FILE *fp = cookie_file(fd, mode);
	if (!fp)
		pl_close(fd);
	return fp;
}

static FILE *pl_fopen(const char *path, const char *mode)
{
	return fopen_common(path, mode, 0);
}

static FILE *pl_fopen64(const char *path, const char *mode)
{
	return fopen_common(path, mode, 1);
}

static FILE *pl_fdopen(int fd, const char *mode)
{
	if (!pl_fd(fd))
		return pl_real.fdopen(fd, mode);
	if (mode_writes(mode)) {
		errno = EINVAL;
		return NULL;
	}
	return cookie_file(fd, mode);
}

/* ---- changes to staged paths ---------------------------------------------------- */

/* 0: not ours; -1 with errno EROFS (or what resolve said) otherwise. */
static int refuse(int dirfd, const char *path, int missing_errno)
{
	struct pl_where w;
	int r = pl_resolve(dirfd, path, &w);
	if (r == 0)
		return 0;
	errno = r > 0 ? EROFS : missing_errno ? missing_errno : errno;
	return -1;
}

static int pl_truncate(const char *path, off_t len)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.truncate(path, len);
}

static int pl_truncate64(const char *path, off64_t len)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.truncate64(path, len);
}

static int pl_unlink(const char *path)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.unlink(path);
}

static int pl_unlinkat(int dirfd, const char *path, int fl)
{
	return refuse(dirfd, path, 0) ? -1 : pl_real.unlinkat(dirfd, path, fl);
}

static int pl_rename(const char *from, const char *to)
{
	if (refuse(AT_FDCWD, from, 0) || refuse(AT_FDCWD, to, EROFS))
		return -1;
	return pl_real.rename(from, to);
}

static int pl_renameat(int fd1, const char *from, int fd2, const char *to)
{
	if (refuse(fd1, from, 0) || refuse(fd2, to, EROFS))
		return -1;
	return pl_real.renameat(fd1, from, fd2, to);
}

static int pl_mkdir(const char *path, mode_t mode)
{
	struct pl_where w;
	int r = pl_resolve(AT_FDCWD, path, &w);
	if (r == 0)
		return pl_real.mkdir(path, mode);
	errno = r > 0 ? EEXIST : EROFS;
	return -1;
}

static int pl_mkdirat(int dirfd, const char *path, mode_t mode)
{
	struct pl_where w;
	int r = pl_resolve(dirfd, path, &w);
	if (r == 0)
		return pl_real.mkdirat(dirfd, path, mode);
	errno = r > 0 ? EEXIST : EROFS;
	return -1;
}

static int pl_rmdir(const char *path)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.rmdir(path);
}

static int pl_renameat2(int fd1, const char *from, int fd2, const char *to, unsigned fl)
{
	if (refuse(fd1, from, 0) || refuse(fd2, to, EROFS))
		return -1;
	return pl_real.renameat2(fd1, from, fd2, to, fl);
}

static int pl_link(const char *from, const char *to)
{
	if (refuse(AT_FDCWD, from, 0) || refuse(AT_FDCWD, to, EROFS))
		return -1;
	return pl_real.link(from, to);
}

static int pl_linkat(int fd1, const char *from, int fd2, const char *to, int fl)
{
	if (refuse(fd1, from, 0) || refuse(fd2, to, EROFS))
		return -1;
	return pl_real.linkat(fd1, from, fd2, to, fl);
}

static int pl_symlink(const char *target, const char *to)
{
	return refuse(AT_FDCWD, to, EROFS) ? -1 : pl_real.symlink(target, to);
}

static int pl_symlinkat(const char *target, int fd2, const char *to)
{
	return refuse(fd2, to, EROFS) ? -1 : pl_real.symlinkat(target, fd2, to);
}

static int pl_chmod(const char *path, mode_t mode)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.chmod(path, mode);
}

static int pl_fchmodat(int dirfd, const char *path, mode_t mode, int fl)
{
	return refuse(dirfd, path, 0) ? -1 : pl_real.fchmodat(dirfd, path, mode, fl);
}

/* A staged descriptor: its changes are refused too. */
static int refuse_fd(int fd)
{
	if (!pl_fd(fd))
		return 0;
	errno = EROFS;
	return -1;
}

static int pl_fchmod(int fd, mode_t mode)
{
	return refuse_fd(fd) ? -1 : pl_real.fchmod(fd, mode);
}

static int pl_chown(const char *path, uid_t u, gid_t g)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.chown(path, u, g);
}

static int pl_lchown(const char *path, uid_t u, gid_t g)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.lchown(path, u, g);
}

static int pl_fchownat(int dirfd, const char *path, uid_t u, gid_t g, int fl)
{
	if ((fl & AT_EMPTY_PATH) && path && !*path)
		return refuse_fd(dirfd) ? -1 : pl_real.fchownat(dirfd, path, u, g, fl);
	return refuse(dirfd, path, 0) ? -1 : pl_real.fchownat(dirfd, path, u, g, fl);
}

static int pl_fchown(int fd, uid_t u, gid_t g)
{
	return refuse_fd(fd) ? -1 : pl_real.fchown(fd, u, g);
}

static int pl_utimensat(int dirfd, const char *path, const struct timespec t[2], int fl)
{
	if (!path) /* futimens(dirfd) */
		return refuse_fd(dirfd) ? -1 : pl_real.utimensat(dirfd, path, t, fl);
	return refuse(dirfd, path, 0) ? -1 : pl_real.utimensat(dirfd, path, t, fl);
}

static int pl_futimens(int fd, const struct timespec t[2])
{
	return refuse_fd(fd) ? -1 : pl_real.futimens(fd, t);
}

static int pl_utimes(const char *path, const struct timeval t[2])
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.utimes(path, t);
}

static int pl_utime(const char *path, const struct utimbuf *t)
{
	return refuse(AT_FDCWD, path, 0) ? -1 : pl_real.utime(path, t);
}

/* ---- exec ---------------------------------------------------------------------- */

static int pl_execve(const char *path, char *const argv[], char *const envp[])
{
	pl_before_exec();
	return pl_real.execve(path, argv, envp);
}

static int pl_execv(const char *path, char *const argv[])
{
	pl_before_exec();
	return pl_real.execv(path, argv);
}

static int pl_execvp(const char *file, char *const argv[])
{
	pl_before_exec();
	return pl_real.execvp(file, argv);
}

static int pl_execvpe(const char *file, char *const argv[], char *const envp[])
{
	pl_before_exec();
	return pl_real.execvpe(file, argv, envp);
}

static int pl_fexecve(int fd, char *const argv[], char *const envp[])
{
	pl_before_exec();
	return pl_real.fexecve(fd, argv, envp);
}

/* ---- the generated wrappers ------------------------------------------------------ */

#define PL_WRAP_GEN(ret, name, params, args)                                  \
	PL_EXPORT ret name params                                             \
	{                                                                     \
		if (PL_UNLIKELY(!pl_ready()))                                 \
			return pl_real.name args;                             \
		return pl_##name args;                                        \
	}
#define PL_WRAP_HAND(ret, name, params, args)
#define PL_WRAP(how, ret, name, params, args) PL_WRAP_##how(ret, name, params, args)
/* glibc declares only the public names; the __chk/__xstat ones are ABI. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
PL_SYMBOLS(PL_WRAP)
#pragma GCC diagnostic pop
#undef PL_WRAP
