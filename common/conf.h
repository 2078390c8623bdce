/* The site configuration, /etc/bbcache/bbcache.conf (see bbcache.conf(5)).
 *
 * Format: one `key = value` per line; blank lines and lines whose first
 * non-blank character is `#` are ignored; an unquoted value ends at a `#`
 * that follows a blank (a comment) and has its surrounding blanks trimmed;
 * a value in double quotes keeps blanks and `#`, with \" and \\ as escapes.
 * Lines are at most BB_CONF_LINE_MAX bytes, files BB_CONF_FILE_MAX bytes.
 * Every key except allowed_origins may appear once.
 *
 * Keys and defaults:
 *   nvme_root          absolute path         /var/tmp/bbcache
 *   shm_dir            absolute path         /dev/shm
 *   state_dir          absolute path         /var/spool/bbcache (Slurm controller side)
 *   shm_limit_per_job  size, 0 = no limit    0
 *   shm_limit_per_node size, 0 = no limit    0  (>= shm_limit_per_job)
 *   nvme_limit_per_job size, 0 = no limit    0
 *   allowed_origins    URL globs, repeatable, comma/blank separated;
 *                      "*" allows all, "none" denies all   *
 *   default_replicas   all | 1..65535        all
 *   credentials_file   absolute path or ""   "" (users' own credentials)
 *   s3_endpoint_url    http(s) URL or ""     "" (the site's S3 endpoint; wins over users')
 *   s3_region          region name or ""     ""
 *   s3_profile         profile name or ""    "" (the profile to read, in users' files)
 *   s3_no_sign_request bool                  no (yes: S3 requests unsigned, no credentials read)
 *   log_level          error|warn|info|debug info
 *   log_syslog         bool                  no
 *   block_size         power of two, 4KiB..64MiB   4MiB
 *   numa               local|interleave|replicate  local
 * Sizes use bb_parse_size() (so "64G" is 64 GiB); bools bb_parse_bool().
 */
#ifndef BB_COMMON_CONF_H
#define BB_COMMON_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BB_CONF_DEFAULT_PATH "/etc/bbcache/bbcache.conf"
#define BB_CONF_PATH_MAX 4096
#define BB_CONF_LINE_MAX 4096
#define BB_CONF_FILE_MAX (1024 * 1024)

#define BB_CONF_DEFAULT_NVME_ROOT "/var/tmp/bbcache"
#define BB_CONF_DEFAULT_SHM_DIR "/dev/shm"
#define BB_CONF_DEFAULT_STATE_DIR "/var/spool/bbcache"
#define BB_CONF_DEFAULT_BLOCK_SIZE (4ULL << 20)
#define BB_CONF_MIN_BLOCK_SIZE (4ULL << 10)
#define BB_CONF_MAX_BLOCK_SIZE (64ULL << 20)

/* replicas: every node holds a full copy. */
#define BB_REPLICAS_ALL 0
#define BB_REPLICAS_MAX 65535

enum bb_numa_policy {
	BB_NUMA_LOCAL = 0,	/* each block on the NUMA node of its first reader */
	BB_NUMA_INTERLEAVE,	/* blocks spread over the NUMA nodes */
	BB_NUMA_REPLICATE,	/* a copy per NUMA node */
};

/* "local", "interleave", "replicate" -> BB_OK, else BB_EPARSE. */
int bb_numa_parse(const char *s, enum bb_numa_policy *out);
const char *bb_numa_name(enum bb_numa_policy numa);

struct bb_conf {
	char nvme_root[BB_CONF_PATH_MAX];
	char shm_dir[BB_CONF_PATH_MAX];
	char state_dir[BB_CONF_PATH_MAX];	/* the Slurm glue's per-job state */
	uint64_t shm_limit_per_job;	/* bytes, 0 = no limit */
	uint64_t shm_limit_per_node;	/* bytes, 0 = no limit */
	uint64_t nvme_limit_per_job;	/* bytes, 0 = no limit */
	/* Patterns from allowed_origins lines, in order (malloc'd). */
	char **allowed_origins;
	size_t n_allowed_origins;
	/* false: no allowed_origins line, every origin is allowed ("*"). */
	bool origins_restricted;
	/* Where the patterns came from, "path:LINE" of the first line, for
	 * error messages; "built-in default" when none. */
	char origins_source[BB_CONF_PATH_MAX + 32];
	uint32_t default_replicas;	/* BB_REPLICAS_ALL or 1..65535 */
	char credentials_file[BB_CONF_PATH_MAX];	/* "" = none */
	char s3_endpoint_url[BB_CONF_PATH_MAX];	/* "" = users' own (AWS_*, ~/.aws) */
	char s3_region[64];				/* "" = users' own */
	char s3_profile[128];				/* "" = users' own */
	bool s3_no_sign_request;	/* S3 requests unsigned (public buckets), no credentials read */
	int log_level;			/* enum bb_log_level */
	bool log_syslog;
	uint64_t block_size;
	enum bb_numa_policy numa;
};

/* Fill every field with its default; owns no memory afterwards. */
void bb_conf_defaults(struct bb_conf *conf);

/*
 * Parse text (len bytes, need not be NUL-terminated) over conf, which the
 * caller has initialised with bb_conf_defaults() (so files can be layered;
 * duplicate-key detection is per call).  On error returns BB_EPARSE (syntax,
 * unknown or duplicate key, bad value), BB_ERANGE (a value out of range) or
 * BB_ENOMEM, and writes "source_name:LINE: reason" to err; conf may then be
 * partly updated but is still safe to bb_conf_free().
 */
int bb_conf_parse_string(struct bb_conf *conf, const char *text, size_t len,
			 const char *source_name, char *err, size_t errlen);

/* Read and parse path (NULL: BB_CONF_DEFAULT_PATH) over conf.  A missing
 * file is BB_ENOENT; other read failures BB_ESYS; larger than
 * BB_CONF_FILE_MAX is BB_ETOOBIG; each with a message in err. */
int bb_conf_load(struct bb_conf *conf, const char *path, char *err, size_t errlen);

/* As bb_conf_load(), but a missing file is BB_OK and leaves conf as is:
 * for daemons and tools that run with defaults when no site file exists. */
int bb_conf_load_optional(struct bb_conf *conf, const char *path, char *err,
			  size_t errlen);

/* Free what parsing allocated; conf keeps its scalar settings but no
 * patterns (n_allowed_origins = 0). */
void bb_conf_free(struct bb_conf *conf);

/*
 * 1 if url may be used as a stage-in source or stage-out destination,
 * else 0.  A pattern is matched with fnmatch(FNM_PATHNAME), so `*` does not
 * cross a `/`, except that a pattern whose last two characters are `/`
 * and `*` matches everything below its prefix: "s3://datasets/<star>"
 * admits s3://datasets/a/b/c, and "https://<star>.example.org/<star>"
 * admits https://cdn.example.org/x but not https://evil.com/x.example.org/.
 * The single pattern `*` matches every URL.  Regardless of the patterns,
 * URLs with `.`/`..` path segments (also percent-encoded), a backslash, or
 * `@`, `?` or `#` before the path are refused, so a prefix cannot be
 * escaped by a crafted URL.
 */
int bb_conf_origin_allowed(const struct bb_conf *conf, const char *url);

#endif
