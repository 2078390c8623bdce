#include "config.h"

#include "common/error.h"

static const struct {
	const char *name;
	int err;
	const char *msg;
} bb_error_table[BB_NERRORS] = {
#define BB_ERROR_ROW(name, err, msg) {#name, err, msg},
	BB_ERRORS(BB_ERROR_ROW)
#undef BB_ERROR_ROW
};

const char *bb_strerror(int rc)
{
	if (rc < 0 || rc >= BB_NERRORS)
		return "unknown error";
	return bb_error_table[rc].msg;
}

int bb_errno(int rc)
{
	if (rc < 0 || rc >= BB_NERRORS)
		return EIO;
	return bb_error_table[rc].err;
}

const char *bb_errname(int rc)
{
	if (rc < 0 || rc >= BB_NERRORS)
		return "BB_E?";
	return bb_error_table[rc].name;
}
