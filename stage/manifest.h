/* The job's manifest: the consistent snapshot of a staged dataset.
 *
 * A stage-in lists its source (S3 prefix, HTTP listing, POSIX directory) into
 * a manifest with the builder; afterwards the CLI and the LD_PRELOAD
 * interposer answer stat, readdir and open from the file alone, with no
 * origin call.  The file is a versioned, little-endian, mmap-able binary
 * format described in docs/manifest.md.
 *
 * Entries are stored sorted by path (bytewise, "" = the root first), so the
 * entry index is stable for one manifest file and is the file id used as the
 * shmcache key; a lookup is a binary search over the entries and allocates
 * nothing.  Every parent directory exists as an entry.
 *
 * The reader (open, accessors, lookup, select) needs libc only (plus
 * bb_hash64 from common/hrw.c, itself libc-only), so the interposer can link
 * it.  Open validates every offset, length, index and string of the file,
 * the order of the paths and the tree structure; after a successful open no
 * accessor reads outside the file, whatever its bytes were.
 */
#ifndef BB_STAGE_MANIFEST_H
#define BB_STAGE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

/* Longest path, source or source URL including its NUL. */
#define BB_MANIFEST_MAX_PATH 4096
/* Longest ETag (without quotes and NUL). */
#define BB_MANIFEST_MAX_ETAG 128
#define BB_MANIFEST_SHA256_LEN 32

struct bb_manifest_file { /* builder input */
	const char
	    *path; /* relative, '/'-separated, no leading '/', no '.'/'..'/empty components */
	uint64_t size;
	int64_t mtime_ns;      /* origin's modification time */
	uint32_t mode;	       /* S_IFREG|0644 etc; directories are synthesized, but explicit
				* S_IFDIR entries (empty dirs) are allowed; 0 means S_IFREG|0644 */
	const char *etag;      /* NULL or origin ETag without quotes (<= 128 bytes) */
	const uint8_t *sha256; /* NULL or 32 bytes */
	const char *
	    source; /* the object's location relative to the manifest's source URL
		     * (S3 key suffix, URL path suffix, relative POSIX path); NULL = same as path */
	uint64_t
	    inode; /* POSIX origins: inode for the size+mtime+inode version check; 0 otherwise */
};

struct bb_manifest_builder;

/* A builder for a manifest of source_url (copied) with blocks of block_size
 * bytes (> 0).  BB_EINVAL, BB_ENOMEM. */
int bb_manifest_builder_new(const char *source_url, uint32_t block_size,
			    struct bb_manifest_builder **out);
/* Add one entry; strings are copied.  A bad path (absolute, empty, "//",
 * "." or ".." components, a trailing '/' on a file, too long), an ETag over
 * 128 bytes or a mode other than a regular file or directory: BB_EINVAL.
 * A directory may carry one trailing '/'; its size, etag and sha256 are
 * ignored.  A duplicate path or a file where a directory is needed is found
 * by bb_manifest_builder_write() (BB_EEXIST). */
int bb_manifest_builder_add(struct bb_manifest_builder *b, const struct bb_manifest_file *f);
/* Entries added so far (input entries, not counting synthesized directories). */
uint32_t bb_manifest_builder_count(const struct bb_manifest_builder *b);
/* Sort, synthesize the parent directories, and write the manifest to
 * path.tmp, fsync it, rename it to path (mode 0600) and fsync the directory
 * (no fsync after set_sync(b, 0)).
 * Errors: BB_EEXIST (duplicate path, file/directory conflict), BB_ERANGE
 * (more than 2^32-2 entries), BB_ENOSPC, BB_ESYS, BB_ENOMEM, each with a
 * message in err.  Nothing is left at path or path.tmp on failure.  The
 * builder stays usable (entries may be added and written again). */
int bb_manifest_builder_write(struct bb_manifest_builder *b, const char *path, char *err,
			      size_t errlen);
void bb_manifest_builder_free(struct bb_manifest_builder *b);
/* Mark the manifest as one file staged by itself (type=file): its only
 * entry below the root is that file, and the dataset's path is the file's. */
void bb_manifest_builder_set_single(struct bb_manifest_builder *b);
/* sync 0: write without msync/fsync of the file and its directory.  The
 * rename still makes it appear whole; only a crash of the machine may
 * leave an older or a torn file, which bb_manifest_open refuses
 * (checksums).  Default 1. */
void bb_manifest_builder_set_sync(struct bb_manifest_builder *b, int sync);

struct bb_manifest; /* an open (mmap'ed) manifest */

/* Map and validate a manifest file.  BB_ENOENT (no file), BB_EPERM,
 * BB_ESYS, BB_ENOMEM, BB_ECORRUPT (bad magic, version, checksum, bounds,
 * order, structure), each with a message naming the file and the fault.
 * The file must not be changed while it is open (manifests are written once,
 * to a new name, and renamed into place). */
int bb_manifest_open(const char *path, struct bb_manifest **out, char *err, size_t errlen);
/* The same validation over len bytes at buf, which are not copied and must
 * outlive the manifest; any alignment.  Used by the fuzz target and tests. */
int bb_manifest_open_mem(const void *buf, size_t len, struct bb_manifest **out, char *err,
			 size_t errlen);
void bb_manifest_close(struct bb_manifest *m);

uint32_t
bb_manifest_count(const struct bb_manifest *m); /* entries incl. directories; 0 = root "" */
const char *bb_manifest_source(const struct bb_manifest *m); /* source URL */
uint32_t bb_manifest_block_size(const struct bb_manifest *m);
int bb_manifest_is_single(const struct bb_manifest *m); /* built with set_single */
uint64_t bb_manifest_total_bytes(const struct bb_manifest *m); /* sum of file sizes */
uint32_t bb_manifest_n_files(const struct bb_manifest *m); /* entries that are not directories */

struct bb_mentry {	      /* a view into the mapping, filled by bb_manifest_entry() */
	uint32_t idx, parent; /* the root is its own parent */
	const char *path;
	uint32_t path_len; /* NUL-terminated in the file */
	const char *name;  /* last component ("" for the root) */
	uint64_t size;
	int64_t mtime_ns;
	uint32_t mode;
	uint64_t inode;
	const char *etag;      /* "" if none */
	const uint8_t *sha256; /* NULL if none */
	const char *source;
	uint64_t n_blocks;   /* ceil(size / block_size) for files, 0 for dirs */
	uint32_t n_children; /* directories */
};

/* Fill e for entry idx (< count; else BB_ENOENT).  The entry index is the
 * file id used as the shmcache key. */
int bb_manifest_entry(const struct bb_manifest *m, uint32_t idx, struct bb_mentry *e);
/* Find the entry of a relative path of len bytes ("" = root; a trailing
 * '/', repeated '/' and leading '/' are tolerated; "." and ".." are not
 * resolved).  Binary search, no allocation.  BB_ENOENT. */
int bb_manifest_lookup(const struct bb_manifest *m, const char *path, size_t len, uint32_t *idx);
/* The k-th child of directory dir_idx, children sorted by name (bytewise),
 * for readdir.  BB_ENOENT when k >= n_children, BB_EINVAL if dir_idx is not
 * a directory or out of range. */
int bb_manifest_child(const struct bb_manifest *m, uint32_t dir_idx, uint32_t k,
		      uint32_t *child_idx);
/* The child called name (len bytes, no '/') of directory dir_idx: a binary
 * search over its children, for *at() calls.  BB_ENOENT, BB_EINVAL. */
int bb_manifest_lookup_child(const struct bb_manifest *m, uint32_t dir_idx, const char *name,
			     size_t len, uint32_t *child_idx);

/* Include/exclude filters for the stage-in listing: fnmatch(3) of the
 * relative path without FNM_PATHNAME, so '*' matches '/' too and '**' works
 * like '*'.  NULL or "" = no filter.  Returns 1 if relpath is selected
 * (matches include, if any, and not exclude, if any), else 0. */
int bb_manifest_select(const char *include, const char *exclude, const char *relpath);

/* Recompute both checksums of a manifest image in place (len bytes; a
 * no-op if it is shorter than a header or its header's sizes do not fit).
 * For tests and the fuzz target, which corrupt a structure on purpose and
 * need open to look past the checksum. */
void bb_manifest_reseal(void *buf, size_t len);

#endif
