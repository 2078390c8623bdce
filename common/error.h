/* bbcache error codes.
 *
 * One X-macro table names every error, the errno it maps to at an API edge
 * (the interposer returns -1/errno, the CLI prints the message), and the
 * message.  Functions return an int rc: 0 (BB_OK) or one of these codes.
 */
#ifndef BB_COMMON_ERROR_H
#define BB_COMMON_ERROR_H

#include <errno.h>

#define BB_ERRORS(X)                                                          \
	X(BB_OK, 0, "success")                                                \
	X(BB_ENOMEM, ENOMEM, "out of memory")                                 \
	X(BB_EINVAL, EINVAL, "invalid argument")                              \
	X(BB_ESYS, EIO, "system call failed")                                 \
	X(BB_ENOSPC, ENOSPC, "no space left")                                 \
	X(BB_ENOENT, ENOENT, "no such entry")                                 \
	X(BB_EEXIST, EEXIST, "already exists")                                \
	X(BB_EPERM, EACCES, "permission denied")                              \
	X(BB_EBUSY, EBUSY, "resource busy")                                   \
	X(BB_EAGAIN, EAGAIN, "try again")                                     \
	X(BB_ETIMEDOUT, ETIMEDOUT, "timed out")                               \
	X(BB_ERANGE, ERANGE, "value out of range")                            \
	X(BB_EPARSE, EINVAL, "syntax error")                                  \
	X(BB_EBADSEG, EPROTO, "shared-memory segment has a bad magic or format") \
	X(BB_ETOOBIG, EFBIG, "object larger than the cache can hold")         \
	X(BB_EFILL, EIO, "filling the block failed")                          \
	X(BB_ECORRUPT, EIO, "data failed verification")                       \
	X(BB_ENOTSUP, ENOTSUP, "operation not supported")                     \
	X(BB_EDEAD, EIO, "the process doing this work died")                  \
	X(BB_ESTALE, ESTALE, "object changed or was removed")                 \
	X(BB_EPOLICY, EACCES, "not allowed by site policy")                   \
	X(BB_EPROTO, EPROTO, "malformed protocol message")

enum bb_rc {
#define BB_ERROR_ENUM(name, err, msg) name,
	BB_ERRORS(BB_ERROR_ENUM)
#undef BB_ERROR_ENUM
	BB_NERRORS
};

/* The message for rc (never NULL; "unknown error" for a bad code). */
const char *bb_strerror(int rc);
/* The errno an API edge sets for rc. */
int bb_errno(int rc);
/* The name of rc's enum constant ("BB_ENOSPC"), for logs and tests. */
const char *bb_errname(int rc);

#endif
