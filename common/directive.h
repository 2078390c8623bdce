/* The `#BB` directive grammar of job scripts (the user contract, see
 * DESIGN.md):
 *
 *   #BB stage_in  source=URL destination=PATH type=file|directory
 *                 [replicas=all|N] [mode=async|wait]
 *                 [verify=etag|sha256|none] [include=GLOB] [exclude=GLOB]
 *   #BB stage_out source=PATH destination=URL type=file|directory
 *   #BB cache     shm=SIZE nvme=SIZE [numa=local|interleave|replicate]
 *
 * Which lines count: like Slurm's own #SBATCH/#BB scanning, only the leading
 * comment block of the script is read, i.e. the lines before the first line
 * that is neither blank nor a comment (a first `#!` line is fine).  Within
 * it, a directive is a line that starts in column 1 with `#BB` followed by a
 * blank; `#BB_LUA ...` and other words that merely begin with "BB" (Slurm's
 * Directive=BB matches by prefix) are not ours and are skipped, as are
 * `#BB` lines after the leading block.
 *
 * Tokens are separated by blanks; a value may be enclosed whole in double
 * quotes (with \" and \\ escapes) or single quotes (literal) to hold blanks.
 * In source= and destination= values, $BB_JOB_DIR and ${BB_JOB_DIR} expand
 * to ctx->bb_job_dir, %j to the job id, %u to the user name and %% to %; any
 * other %X is kept as written and any other $ is an error.
 *
 * The URL side (stage_in source, stage_out destination) must be s3://BUCKET/..,
 * http(s)://HOST/.. or file:///PATH, without user@ credentials or `.`/`..`
 * segments, and allowed by the site's allowed_origins.  The local side
 * (stage_in destination, stage_out source) must after expansion be
 * $BB_JOB_DIR itself or lie below it, with no `.`, `..` or empty (`//`)
 * component.  Symbolic links inside $BB_JOB_DIR cannot be judged from the
 * text: the node agent resolves the paths (O_NOFOLLOW / openat2
 * RESOLVE_BENEATH) when it creates them.
 *
 * capacity= and pool= are reserved words of Slurm's burst_buffer/lua plugin
 * and are rejected.
 */
#ifndef BB_COMMON_DIRECTIVE_H
#define BB_COMMON_DIRECTIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"

enum bb_stage_type {
	BB_STAGE_FILE = 0,
	BB_STAGE_DIRECTORY,
};

enum bb_stage_mode {
	BB_MODE_ASYNC = 0,	/* default: the job starts while staging runs */
	BB_MODE_WAIT,		/* the job starts when the data is staged */
};

enum bb_verify {
	BB_VERIFY_ETAG = 0,	/* default: origin version (ETag, size+mtime) */
	BB_VERIFY_SHA256,
	BB_VERIFY_NONE,
};

/* One stage_in or stage_out line, values expanded. */
struct bb_stage {
	int line;			/* 1-based line in the script */
	char *source;
	char *destination;
	enum bb_stage_type type;
	uint32_t replicas;		/* stage_in: BB_REPLICAS_ALL or 1..65535 */
	enum bb_stage_mode mode;
	enum bb_verify verify;
	char *include;			/* NULL when absent */
	char *exclude;			/* NULL when absent */
};

struct bb_cache_spec {
	bool present;			/* a cache line was given */
	int line;
	uint64_t shm_bytes;
	uint64_t nvme_bytes;
	enum bb_numa_policy numa;	/* default conf->numa, else local */
};

struct bb_job_spec {
	struct bb_stage *stage_in;
	size_t n_stage_in;
	struct bb_stage *stage_out;
	size_t n_stage_out;
	struct bb_cache_spec cache;
};

struct bb_directive_ctx {
	const char *job_id;		/* for %j; NULL: job_id_num is used */
	uint64_t job_id_num;
	const char *user;		/* for %u */
	const char *bb_job_dir;		/* absolute, no ., .. or // components */
	const struct bb_conf *conf;	/* site policy; NULL: none */
};

/*
 * Parse the directives of a job script (len bytes; need not be
 * NUL-terminated) into out, which is overwritten.  Returns BB_OK; BB_EINVAL
 * for a bad ctx; BB_EPARSE for a grammar error; BB_ERANGE for a value out of
 * range; BB_EPOLICY for an origin or a size the site does not allow;
 * BB_ENOMEM.  On error err holds "line N: reason" naming the key and value,
 * and out is empty (freeing it is harmless).
 */
int bb_directives_parse(const char *script, size_t len, const struct bb_directive_ctx *ctx,
			struct bb_job_spec *out, char *err, size_t errlen);

void bb_job_spec_free(struct bb_job_spec *spec);

const char *bb_stage_type_name(enum bb_stage_type type);
const char *bb_stage_mode_name(enum bb_stage_mode mode);
const char *bb_verify_name(enum bb_verify verify);

#endif
