/* The job's namespace file: what the LD_PRELOAD interposer needs to serve a
 * job's staged paths, written by bbcached when it starts, read by every
 * process of the job at its first access below the job directory.
 *
 * It lives at JOBDIR/.bbcache/agent.ns (the .bbcache directory is 0700, the
 * file 0600) and is a short text file, one record a line, fields separated
 * by one tab:
 *
 *   bbcache-ns	1
 *   job	ID
 *   shm	DIR          (the directory of the shm segment, /dev/shm)
 *   socket	PATH     (the agent's SOCK_SEQPACKET socket)
 *   dataset	MOUNT	MANIFEST   (one a dataset; its index is its order, from 0)
 *
 * MOUNT is the staged path: a directory for a directory dataset, the file
 * itself for a single-file one.  Paths hold no tab or newline.  libc only.
 */
#ifndef BB_COMMON_NS_H
#define BB_COMMON_NS_H

#include <stddef.h>
#include <stdint.h>

#define BB_NS_MAX_DATASETS 64
#define BB_NS_PATH 1024

struct bb_ns_dataset {
	char mount[BB_NS_PATH];
	char manifest[BB_NS_PATH];
};

struct bb_ns {
	uint64_t job_id;
	char shm_dir[BB_NS_PATH];
	char socket[108]; /* sizeof(sun_path) */
	uint32_t n;
	struct bb_ns_dataset ds[BB_NS_MAX_DATASETS];
};

/* JOBDIR/.bbcache/agent.ns, JOBDIR/.bbcache/agent.sock */
int bb_ns_file(const char *jobdir, char *buf, size_t len);
int bb_ns_socket(const char *jobdir, char *buf, size_t len);
/* Parse a namespace file: BB_OK; BB_ENOENT (none: no agent started yet);
 * BB_EPARSE with the line in err; BB_ESYS. */
int bb_ns_read(const char *path, struct bb_ns *ns, char *err, size_t errlen);
/* Write it to path.tmp (0600), fsync and rename into place. */
int bb_ns_write(const char *path, const struct bb_ns *ns, char *err, size_t errlen);

#endif
