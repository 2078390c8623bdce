/* An LD_PRELOAD shim for test_stage_http.sh: makes this machine look like
 * one where a stage-in cannot name its files the fast way, so that the
 * fallbacks are tested.
 *   BB_SHIM=no-tmpfile     open(O_TMPFILE) fails with EOPNOTSUPP (a file
 *                          system without unnamed files);
 *   BB_SHIM=no-empty-path  linkat(AT_EMPTY_PATH) fails with ENOENT (what a
 *                          process without CAP_DAC_READ_SEARCH gets);
 *   BB_SHIM=no-link        every linkat fails with EPERM (no /proc either).
 * Each refusal appends a line to $BB_SHIM_LOG, so the test can tell that the
 * shim was in the way. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

static int open_common(const char *sym, const char *path, int flags, mode_t mode)
{
	int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);

	if ((flags & O_TMPFILE) == O_TMPFILE && mode_is("no-tmpfile"))
		return refuse("open O_TMPFILE", EOPNOTSUPP);
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
