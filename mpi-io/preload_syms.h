/* The one list of every libc symbol libbbcache_preload.so interposes.
 *
 * X(how, ret, name, params, args)
 *   how GEN:  the exported wrapper is generated (preload_wrap.c): it calls
 *             the handler pl_<name> args, or the real symbol when the
 *             calling thread is inside the interposer already;
 *   how HAND: variadic (or otherwise special) - the exported wrapper is
 *             written by hand in preload_wrap.c, and calls the real symbol
 *             the same way.
 * Every name here is resolved with dlsym(RTLD_NEXT) into pl_real.<name>;
 * tests/preload checks that the .so exports every one of them and that
 * docs/interposer.md lists every one.
 */
#ifndef BB_PRELOAD_SYMS_H
#define BB_PRELOAD_SYMS_H

#define PL_SYMBOLS(X)                                                                              \
	/* opening */                                                                              \
	X(HAND, int, open, (const char *path, int flags, ...), ())                                 \
	X(HAND, int, open64, (const char *path, int flags, ...), ())                               \
	X(HAND, int, openat, (int dirfd, const char *path, int flags, ...), ())                    \
	X(HAND, int, openat64, (int dirfd, const char *path, int flags, ...), ())                  \
	X(GEN, int, __open_2, (const char *path, int flags), (path, flags))                        \
	X(GEN, int, __open64_2, (const char *path, int flags), (path, flags))                      \
	X(GEN, int, __openat_2, (int dirfd, const char *path, int flags), (dirfd, path, flags))    \
	X(GEN, int, __openat64_2, (int dirfd, const char *path, int flags), (dirfd, path, flags))  \
	X(GEN, int, creat, (const char *path, mode_t mode), (path, mode))                          \
	X(GEN, int, creat64, (const char *path, mode_t mode), (path, mode))                        \
	/* reading */                                                                              \
	X(GEN, ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n))                         \
	X(GEN, ssize_t, __read_chk, (int fd, void *buf, size_t n, size_t buflen),                  \
	  (fd, buf, n, buflen))                                                                    \
	X(GEN, ssize_t, pread, (int fd, void *buf, size_t n, off_t off), (fd, buf, n, off))        \
	X(GEN, ssize_t, pread64, (int fd, void *buf, size_t n, off64_t off), (fd, buf, n, off))    \
	X(GEN, ssize_t, __pread_chk, (int fd, void *buf, size_t n, off_t off, size_t buflen),      \
	  (fd, buf, n, off, buflen))                                                               \
	X(GEN, ssize_t, __pread64_chk, (int fd, void *buf, size_t n, off64_t off, size_t buflen),  \
	  (fd, buf, n, off, buflen))                                                               \
	X(GEN, ssize_t, readv, (int fd, const struct iovec *iov, int n), (fd, iov, n))             \
	X(GEN, ssize_t, preadv, (int fd, const struct iovec *iov, int n, off_t off),               \
	  (fd, iov, n, off))                                                                       \
	X(GEN, ssize_t, preadv64, (int fd, const struct iovec *iov, int n, off64_t off),           \
	  (fd, iov, n, off))                                                                       \
	X(GEN, ssize_t, preadv2, (int fd, const struct iovec *iov, int n, off_t off, int fl),      \
	  (fd, iov, n, off, fl))                                                                   \
	X(GEN, ssize_t, preadv64v2, (int fd, const struct iovec *iov, int n, off64_t off, int fl), \
	  (fd, iov, n, off, fl))                                                                   \
	X(GEN, off_t, lseek, (int fd, off_t off, int whence), (fd, off, whence))                   \
	X(GEN, off64_t, lseek64, (int fd, off64_t off, int whence), (fd, off, whence))             \
	X(GEN, ssize_t, copy_file_range,                                                           \
	  (int in, off64_t *in_off, int out, off64_t *out_off, size_t n, unsigned int fl),         \
	  (in, in_off, out, out_off, n, fl))                                                       \
	X(GEN, ssize_t, sendfile, (int out, int in, off_t *off, size_t n), (out, in, off, n))      \
	X(GEN, ssize_t, sendfile64, (int out, int in, off64_t *off, size_t n), (out, in, off, n))  \
	X(GEN, void *, mmap, (void *a, size_t n, int prot, int fl, int fd, off_t off),             \
	  (a, n, prot, fl, fd, off))                                                               \
	X(GEN, void *, mmap64, (void *a, size_t n, int prot, int fl, int fd, off64_t off),         \
	  (a, n, prot, fl, fd, off))                                                               \
	/* descriptors */                                                                          \
	X(GEN, int, close, (int fd), (fd))                                                         \
	X(GEN, int, close_range, (unsigned int lo, unsigned int hi, int fl), (lo, hi, fl))         \
	X(GEN, int, dup, (int fd), (fd))                                                           \
	X(GEN, int, dup2, (int fd, int to), (fd, to))                                              \
	X(GEN, int, dup3, (int fd, int to, int fl), (fd, to, fl))                                  \
	X(HAND, int, fcntl, (int fd, int cmd, ...), ())                                            \
	X(HAND, int, fcntl64, (int fd, int cmd, ...), ())                                          \
	X(HAND, int, ioctl, (int fd, unsigned long req, ...), ())                                  \
	X(GEN, int, isatty, (int fd), (fd))                                                        \
	/* metadata */                                                                             \
	X(GEN, int, stat, (const char *path, struct stat *st), (path, st))                         \
	X(GEN, int, stat64, (const char *path, struct stat64 *st), (path, st))                     \
	X(GEN, int, lstat, (const char *path, struct stat *st), (path, st))                        \
	X(GEN, int, lstat64, (const char *path, struct stat64 *st), (path, st))                    \
	X(GEN, int, fstat, (int fd, struct stat *st), (fd, st))                                    \
	X(GEN, int, fstat64, (int fd, struct stat64 *st), (fd, st))                                \
	X(GEN, int, fstatat, (int dirfd, const char *path, struct stat *st, int fl),               \
	  (dirfd, path, st, fl))                                                                   \
	X(GEN, int, fstatat64, (int dirfd, const char *path, struct stat64 *st, int fl),           \
	  (dirfd, path, st, fl))                                                                   \
	X(GEN, int, __xstat, (int ver, const char *path, struct stat *st), (ver, path, st))        \
	X(GEN, int, __xstat64, (int ver, const char *path, struct stat64 *st), (ver, path, st))    \
	X(GEN, int, __lxstat, (int ver, const char *path, struct stat *st), (ver, path, st))       \
	X(GEN, int, __lxstat64, (int ver, const char *path, struct stat64 *st), (ver, path, st))   \
	X(GEN, int, __fxstat, (int ver, int fd, struct stat *st), (ver, fd, st))                   \
	X(GEN, int, __fxstat64, (int ver, int fd, struct stat64 *st), (ver, fd, st))               \
	X(GEN, int, __fxstatat, (int ver, int dirfd, const char *path, struct stat *st, int fl),   \
	  (ver, dirfd, path, st, fl))                                                              \
	X(GEN, int, __fxstatat64,                                                                  \
	  (int ver, int dirfd, const char *path, struct stat64 *st, int fl),                       \
	  (ver, dirfd, path, st, fl))                                                              \
	X(GEN, int, statx,                                                                         \
	  (int dirfd, const char *path, int fl, unsigned int mask, struct statx *stx),             \
	  (dirfd, path, fl, mask, stx))                                                            \
	X(GEN, int, access, (const char *path, int mode), (path, mode))                            \
	X(GEN, int, faccessat, (int dirfd, const char *path, int mode, int fl),                    \
	  (dirfd, path, mode, fl))                                                                 \
	/* directories */                                                                          \
	X(GEN, DIR *, opendir, (const char *path), (path))                                         \
	X(GEN, DIR *, fdopendir, (int fd), (fd))                                                   \
	X(GEN, struct dirent *, readdir, (DIR *d), (d))                                            \
	X(GEN, struct dirent64 *, readdir64, (DIR *d), (d))                                        \
	X(GEN, int, readdir_r, (DIR *d, struct dirent *e, struct dirent **r), (d, e, r))           \
	X(GEN, int, readdir64_r, (DIR *d, struct dirent64 *e, struct dirent64 **r), (d, e, r))     \
	X(GEN, int, closedir, (DIR *d), (d))                                                       \
	X(GEN, void, rewinddir, (DIR *d), (d))                                                     \
	X(GEN, int, dirfd, (DIR *d), (d))                                                          \
	X(GEN, long, telldir, (DIR *d), (d))                                                       \
	X(GEN, void, seekdir, (DIR *d, long pos), (d, pos))                                        \
	X(GEN, int, chdir, (const char *path), (path))                                             \
	X(GEN, int, fchdir, (int fd), (fd))                                                        \
	/* stdio */                                                                                \
	X(GEN, FILE *, fopen, (const char *path, const char *mode), (path, mode))                  \
	X(GEN, FILE *, fopen64, (const char *path, const char *mode), (path, mode))                \
	X(GEN, FILE *, fdopen, (int fd, const char *mode), (fd, mode))                             \
	/* changes to staged paths: EROFS */                                                       \
	X(GEN, int, truncate, (const char *path, off_t len), (path, len))                          \
	X(GEN, int, truncate64, (const char *path, off64_t len), (path, len))                      \
	X(GEN, int, unlink, (const char *path), (path))                                            \
	X(GEN, int, unlinkat, (int dirfd, const char *path, int fl), (dirfd, path, fl))            \
	X(GEN, int, rename, (const char *from, const char *to), (from, to))                        \
	X(GEN, int, renameat, (int fd1, const char *from, int fd2, const char *to),                \
	  (fd1, from, fd2, to))                                                                    \
	X(GEN, int, mkdir, (const char *path, mode_t mode), (path, mode))                          \
	X(GEN, int, mkdirat, (int dirfd, const char *path, mode_t mode), (dirfd, path, mode))      \
	X(GEN, int, rmdir, (const char *path), (path))                                             \
	X(GEN, int, renameat2, (int fd1, const char *from, int fd2, const char *to, unsigned fl),  \
	  (fd1, from, fd2, to, fl))                                                                \
	X(GEN, int, link, (const char *from, const char *to), (from, to))                          \
	X(GEN, int, linkat, (int fd1, const char *from, int fd2, const char *to, int fl),          \
	  (fd1, from, fd2, to, fl))                                                                \
	X(GEN, int, symlink, (const char *target, const char *to), (target, to))                   \
	X(GEN, int, symlinkat, (const char *target, int fd2, const char *to), (target, fd2, to))   \
	X(GEN, int, chmod, (const char *path, mode_t mode), (path, mode))                          \
	X(GEN, int, fchmodat, (int dirfd, const char *path, mode_t mode, int fl),                  \
	  (dirfd, path, mode, fl))                                                                 \
	X(GEN, int, fchmod, (int fd, mode_t mode), (fd, mode))                                     \
	X(GEN, int, chown, (const char *path, uid_t u, gid_t g), (path, u, g))                     \
	X(GEN, int, lchown, (const char *path, uid_t u, gid_t g), (path, u, g))                    \
	X(GEN, int, fchownat, (int dirfd, const char *path, uid_t u, gid_t g, int fl),             \
	  (dirfd, path, u, g, fl))                                                                 \
	X(GEN, int, fchown, (int fd, uid_t u, gid_t g), (fd, u, g))                                \
	X(GEN, int, utimensat, (int dirfd, const char *path, const struct timespec t[2], int fl),   \
	  (dirfd, path, t, fl))                                                                    \
	X(GEN, int, futimens, (int fd, const struct timespec t[2]), (fd, t))                       \
	X(GEN, int, utimes, (const char *path, const struct timeval t[2]), (path, t))              \
	X(GEN, int, utime, (const char *path, const struct utimbuf *t), (path, t))                 \
	/* exec: staged descriptors that survive become real ones */                               \
	X(GEN, int, execve, (const char *path, char *const argv[], char *const envp[]),            \
	  (path, argv, envp))                                                                      \
	X(GEN, int, execv, (const char *path, char *const argv[]), (path, argv))                   \
	X(GEN, int, execvp, (const char *file, char *const argv[]), (file, argv))                  \
	X(GEN, int, execvpe, (const char *file, char *const argv[], char *const envp[]),           \
	  (file, argv, envp))                                                                      \
	X(GEN, int, fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))

#endif
