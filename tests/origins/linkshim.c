/* An LD_PRELOAD shim for test_stage_http.sh: makes this machine look like
 * one where a stage-in cannot name its files the fast way, so that the
 * fallbacks are tested.
 *   BB_SHIM=no-tmpfile     open(O_TMPFILE) fails with EOPNOTSUPP (a file
 *                          system without unnamed files);
 *   BB_SHIM=no-empty-path  linkat(AT_EMPTY_PATH) fails with ENOENT (what a
 *                          process without CAP_DAC_READ_SEARCH gets);
 *   BB_SHIM=no-link        every linkat fails with EPERM (no /proc either).
 * And like one whose file system refuses O_DIRECT, so that the range
 * writers' fallback to the page cache is tested:
 *   BB_SHIM=no-direct-open   open(O_DIRECT) fails with EINVAL;
 *   BB_SHIM=no-direct-write  the open works, every pwrite on the O_DIRECT
 *                            descriptor fails with EINVAL;
 *   BB_SHIM=no-direct-read   the open works, every pread on an O_DIRECT
 *                            descriptor fails with EINVAL (the hashing
 *                            thread's read-back).
 *   BB_SHIM=short-direct-read  every pread on an O_DIRECT descriptor
 *                            returns at most 1000 bytes (a short read, as
 *                            a network or FUSE file system may give).
 * It can also change a source file under a POSIX stage-in, at a set moment,
 * so that the check of its version (size, mtime, inode before and after the
 * copy) is tested:
 *   BB_SHIM=change-on-open  opening $BB_SHIM_FILE first appends a byte to it
 *                           (a file changed between listing and copy);
 *   BB_SHIM=change-on-read  the first pread of $BB_SHIM_FILE is followed by
 *                           a byte appended to it (changed during the copy).
 * Each refusal or change appends a line to $BB_SHIM_LOG, so the test can tell
 * that the shim was in the way. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int mode_is(const char *m)
{
	const char *s = getenv("BB_SHIM");
	return s && strcmp(s, m) == 0;
}

static int refuse(const char *what, int err)
{
	const char *log = getenv("BB_SHIM_LOG");
	if (log) {
		FILE *f = fopen(log, "a");
		if (f) {
			fprintf(f, "%s\n", what);
			fclose(f);
		}
	}
	errno = err;
	return -1;
}

static void note(const char *what)
{
	int e = errno;

	refuse(what, 0);
	errno = e;
}

/* Is path the file to change ($BB_SHIM_FILE)? */
static int is_target(const char *path)
{
	const char *t = getenv("BB_SHIM_FILE");
	return t && path && strcmp(path, t) == 0;
}

/* Append one byte to $BB_SHIM_FILE (through the real open: no recursion). */
static void change_target(int (*real_open)(const char *, int, ...), const char *why)
{
	int fd = real_open(getenv("BB_SHIM_FILE"), O_WRONLY | O_APPEND | O_CLOEXEC, 0);

	if (fd >= 0) {
		if (write(fd, "+", 1) == 1)
			note(why);
		close(fd);
	}
}

static int open_common(const char *sym, const char *path, int flags, mode_t mode)
{
	int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);
	static int changed;

	if ((flags & O_TMPFILE) == O_TMPFILE && mode_is("no-tmpfile"))
		return refuse("open O_TMPFILE", EOPNOTSUPP);
	if ((flags & O_DIRECT) && mode_is("no-direct-open"))
		return refuse("open O_DIRECT", EINVAL);
	if (mode_is("change-on-open") && is_target(path) &&
	    !__atomic_exchange_n(&changed, 1, __ATOMIC_SEQ_CST))
		change_target(real, "changed on open");
	return real(path, flags, mode);
}

/* open and open64; the mode is there only with O_CREAT or O_TMPFILE. */
#define OPEN_WRAPPER(name)                                                   \
	int name(const char *path, int flags, ...)                           \
	{                                                                    \
		mode_t mode = 0;                                             \
		if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) { \
			va_list ap;                                          \
			va_start(ap, flags);                                 \
			mode = va_arg(ap, mode_t);                           \
			va_end(ap);                                          \
		}                                                            \
		return open_common(#name, path, flags, mode);                \
	}
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

int linkat(int fd1, const char *from, int fd2, const char *to, int flags)
{
	int (*real)(int, const char *, int, const char *, int) =
		(int (*)(int, const char *, int, const char *, int))dlsym(RTLD_NEXT, "linkat");

	if (mode_is("no-link"))
		return refuse("linkat", EPERM);
	if ((flags & AT_EMPTY_PATH) && mode_is("no-empty-path"))
		return refuse("linkat AT_EMPTY_PATH", ENOENT);
	return real(fd1, from, fd2, to, flags);
}

/* pread and pread64 (the same function on LP64, two symbols). */
static ssize_t pread_common(const char *sym, int fd, void *buf, size_t n, off_t off)
{
	ssize_t (*real)(int, void *, size_t, off_t) =
		(ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, sym);
	static int changed;
	char link[64], path[PATH_MAX];
	ssize_t len, r;
	int fl;

	if (mode_is("no-direct-read") && (fl = fcntl(fd, F_GETFL)) >= 0 && (fl & O_DIRECT))
		return refuse("pread O_DIRECT", EINVAL);
	r = real(fd, buf, n, off);
	if (r > 1000 && mode_is("short-direct-read") && (fl = fcntl(fd, F_GETFL)) >= 0 &&
	    (fl & O_DIRECT)) {
		note("pread O_DIRECT short");
		return 1000;
	}

	if (!mode_is("change-on-read") || __atomic_load_n(&changed, __ATOMIC_SEQ_CST))
		return r;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	len = readlink(link, path, sizeof(path) - 1);
	if (len <= 0)
		return r;
	path[len] = '\0';
	if (is_target(path) && !__atomic_exchange_n(&changed, 1, __ATOMIC_SEQ_CST)) {
		int (*ropen)(const char *, int, ...) =
			(int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
		int e = errno;

		change_target(ropen, "changed on read");
		errno = e;
	}
	return r;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return pread_common("pread", fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread_common("pread64", fd, buf, n, off);
}

/* pwrite and pwrite64: no write on an O_DIRECT descriptor (no-direct-write). */
static ssize_t pwrite_common(const char *sym, int fd, const void *buf, size_t n, off_t off)
{
	ssize_t (*real)(int, const void *, size_t, off_t) =
		(ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, sym);
	int fl;

	if (mode_is("no-direct-write") && (fl = fcntl(fd, F_GETFL)) >= 0 && (fl & O_DIRECT))
		return refuse("pwrite O_DIRECT", EINVAL);
	return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite_common("pwrite", fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite_common("pwrite64", fd, buf, n, off);
}
