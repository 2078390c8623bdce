/* The job's manifest: builder (stage-in side) and validating mmap reader
 * (CLI, interposer).  Layout and rules: docs/manifest.md. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/hrw.h"
#include "stage/manifest.h"

/*
 * On-disk format, version 1.  Every integer is little-endian and read or
 * written byte by byte (ld32/ld64, st32/st64), so the format is the same on
 * every host and a buffer of any alignment can be read.  The structs below
 * only fix the offsets; they are never overlaid on the mapping.
 *
 *   [header 152][entries count*96][pad][children (count-1)*4][pad]
 *   [digests n_digests*32][pad][string table]
 *
 * Sections follow one another in this order, each starting at the next
 * multiple of 8; the file ends with the string table.
 */
#define BBM_MAGIC "BBMANIF\0"
#define BBM_VERSION 1u
#define BBM_F_PATH_SORTED 0x1u /* entries are in path order: no sorted index */
#define BBM_F_SINGLE 0x2u      /* the dataset is one file: the root's only child */
#define BBM_KNOWN_FLAGS (BBM_F_PATH_SORTED | BBM_F_SINGLE)
#define BBM_HASH_SEED 0x74736566696e616dULL /* "manifest" */
#define BBM_MAX_ENTRIES (UINT32_MAX - 1u)

struct bbm_header {
	char magic[8];	      /* "BBMANIF\0" */
	uint32_t version;     /* BBM_VERSION */
	uint32_t header_size; /* sizeof(struct bbm_header) */
	uint32_t flags;	      /* BBM_F_* */
	uint32_t entry_size;  /* sizeof(struct bbm_entry) */
	uint32_t count;	      /* entries, >= 1 (the root) */
	uint32_t n_files;     /* entries that are not directories */
	uint32_t block_size;  /* > 0 */
	uint32_t n_digests;   /* SHA-256 digests in the digest table */
	uint64_t total_bytes; /* sum of file sizes */
	uint64_t file_size;   /* length of the whole file */
	uint64_t entries_off, entries_len;
	uint64_t children_off, children_len;
	uint64_t digests_off, digests_len;
	uint64_t strtab_off, strtab_len;
	uint64_t source_off; /* source URL, in the string table */
	uint32_t source_len;
	uint32_t reserved;    /* 0 */
	uint64_t body_hash;   /* bb_hash64(file[header_size..file_size)) */
	uint64_t header_hash; /* bb_hash64(header with header_hash = 0) */
};
_Static_assert(sizeof(struct bbm_header) == 152, "manifest header is 152 bytes");
_Static_assert(offsetof(struct bbm_header, total_bytes) == 40, "header layout");
_Static_assert(offsetof(struct bbm_header, source_len) == 128, "header layout");
_Static_assert(offsetof(struct bbm_header, header_hash) == 144, "header layout");

struct bbm_entry {
	uint64_t size; /* bytes; 0 for directories */
	int64_t mtime_ns;
	uint64_t inode;
	uint64_t n_blocks; /* ceil(size / block_size) */
	uint64_t path_off; /* string table offsets */
	uint64_t source_off;
	uint64_t etag_off; /* 0 (the empty string) if none */
	uint32_t path_len;
	uint32_t name_pos;    /* the last component starts at path + name_pos */
	uint32_t parent;      /* entry index; the root's is 0 */
	uint32_t mode;	      /* S_IFREG or S_IFDIR | permission bits */
	uint32_t first_child; /* directories: index into the children array */
	uint32_t n_children;
	uint32_t digest; /* index + 1 into the digest table, 0 = none */
	uint32_t source_len;
	uint32_t etag_len;
	uint32_t reserved; /* 0 */
};
_Static_assert(sizeof(struct bbm_entry) == 96, "manifest entry is 96 bytes");
_Static_assert(offsetof(struct bbm_entry, path_len) == 56, "entry layout");
_Static_assert(offsetof(struct bbm_entry, reserved) == 92, "entry layout");

#define BBM_HDR_SIZE ((uint64_t)sizeof(struct bbm_header))
#define BBM_ENT_SIZE ((uint64_t)sizeof(struct bbm_entry))
#define HOFF(f) offsetof(struct bbm_header, f)
#define EOFF(f) offsetof(struct bbm_entry, f)

static inline uint32_t ld32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t ld64(const unsigned char *p)
{
	return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static inline void st32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static inline void st64(unsigned char *p, uint64_t v)
{
	st32(p, (uint32_t)v);
	st32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t align8(uint64_t x)
{
	return (x + 7) & ~(uint64_t)7;
}

static inline int is_dir_mode(uint32_t mode)
{
	return (mode & S_IFMT) == S_IFDIR;
}

static inline uint64_t blocks_of(uint64_t size, uint32_t block_size)
{
	return size / block_size + (size % block_size != 0);
}

/* Bytewise order, a prefix first: strcmp order for NUL-free strings. */
static inline int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t header_hash(const unsigned char *hdr)
{
	unsigned char tmp[sizeof(struct bbm_header)];

	memcpy(tmp, hdr, sizeof(tmp));
	memset(tmp + HOFF(header_hash), 0, sizeof(uint64_t));
	return bb_hash64(tmp, sizeof(tmp), BBM_HASH_SEED);
}

void bb_manifest_reseal(void *buf, size_t len)
{
	unsigned char *p = buf;

	if (!p || len < BBM_HDR_SIZE)
		return;
	st64(p + HOFF(body_hash),
	     bb_hash64(p + BBM_HDR_SIZE, len - (size_t)BBM_HDR_SIZE, BBM_HASH_SEED));
	st64(p + HOFF(header_hash), header_hash(p));
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */

struct bb_manifest {
	const unsigned char *base; /* the image: the mapping or the caller's buffer */
	size_t len;
	void *map; /* non-NULL if we mapped it */
	const unsigned char *entries;
	const unsigned char *children;
	const unsigned char *digests;
	const char *strtab;
	uint64_t strtab_len;
	const char *source;
	uint64_t total_bytes;
	uint32_t count, n_files, block_size;
	int single;
};

static inline const unsigned char *ent(const struct bb_manifest *m, uint32_t i)
{
	return m->entries + (size_t)i * BBM_ENT_SIZE;
}

static inline uint32_t ent32(const struct bb_manifest *m, uint32_t i, size_t off)
{
	return ld32(ent(m, i) + off);
}

static inline uint64_t ent64(const struct bb_manifest *m, uint32_t i, size_t off)
{
	return ld64(ent(m, i) + off);
}

static inline const char *ent_path(const struct bb_manifest *m, uint32_t i, uint32_t *len)
{
	*len = ent32(m, i, EOFF(path_len));
	return m->strtab + ent64(m, i, EOFF(path_off));
}

static inline uint32_t child_at(const struct bb_manifest *m, uint64_t slot)
{
	return ld32(m->children + slot * 4);
}

/* A string of len bytes at off: inside the table, NUL right after it, no
 * NUL inside it.  Returns a static description of the fault or NULL. */
static const char *check_str(const struct bb_manifest *m, uint64_t off, uint64_t len)
{
	if (off >= m->strtab_len || len >= m->strtab_len - off)
		return "outside the string table";
	if (m->strtab[off + len] != '\0')
		return "not NUL-terminated";
	if (memchr(m->strtab + off, '\0', (size_t)len))
		return "contains a NUL byte";
	return NULL;
}

/* Section [off, off+len) starts at the 8-aligned end of the previous one
 * (at) and ends inside the file. */
static int check_section(const char *what, uint64_t off, uint64_t len, uint64_t at,
			 uint64_t file_size, const char *name, char *err, size_t errlen)
{
	if (off != align8(at)) {
		seterr(err, errlen, "%s: %s section at offset %llu, expected %llu", name, what,
		       (unsigned long long)off, (unsigned long long)align8(at));
		return BB_ECORRUPT;
	}
	if (off > file_size || len > file_size - off) {
		seterr(err, errlen, "%s: %s section [%llu, +%llu) runs past the end (%llu bytes)",
		       name, what, (unsigned long long)off, (unsigned long long)len,
		       (unsigned long long)file_size);
		return BB_ECORRUPT;
	}
	return BB_OK;
}

static int validate_header(struct bb_manifest *m, const char *name, char *err, size_t errlen)
{
	const unsigned char *h = m->base;
	uint64_t file_size, off, len, at;
	uint32_t count, n_digests, flags;
	int rc = BB_ECORRUPT;

	if (m->len < BBM_HDR_SIZE) {
		seterr(err, errlen, "%s: truncated: %zu bytes, a header needs %llu", name, m->len,
		       (unsigned long long)BBM_HDR_SIZE);
		goto out;
	}
	if (memcmp(h, BBM_MAGIC, 8)) {
		seterr(err, errlen, "%s: bad magic: not a bbcache manifest", name);
		goto out;
	}
	if (ld32(h + HOFF(version)) != BBM_VERSION) {
		seterr(err, errlen, "%s: unsupported format version %u (this build reads %u)", name,
		       ld32(h + HOFF(version)), BBM_VERSION);
		goto out;
	}
	if (ld32(h + HOFF(header_size)) != BBM_HDR_SIZE ||
	    ld32(h + HOFF(entry_size)) != BBM_ENT_SIZE) {
		seterr(err, errlen, "%s: header size %u / entry size %u, expected %llu / %llu",
		       name, ld32(h + HOFF(header_size)), ld32(h + HOFF(entry_size)),
		       (unsigned long long)BBM_HDR_SIZE, (unsigned long long)BBM_ENT_SIZE);
		goto out;
	}
	if (ld64(h + HOFF(header_hash)) != header_hash(h)) {
		seterr(err, errlen, "%s: header checksum mismatch", name);
		goto out;
	}
	file_size = ld64(h + HOFF(file_size));
	if (file_size != m->len) {
		seterr(err, errlen, "%s: %s: the header says %llu bytes, there are %zu", name,
		       file_size > m->len ? "truncated" : "trailing bytes",
		       (unsigned long long)file_size, m->len);
		goto out;
	}
	if (ld64(h + HOFF(body_hash)) !=
	    bb_hash64(h + BBM_HDR_SIZE, m->len - (size_t)BBM_HDR_SIZE, BBM_HASH_SEED)) {
		seterr(err, errlen, "%s: body checksum mismatch", name);
		goto out;
	}
	flags = ld32(h + HOFF(flags));
	if ((flags & ~BBM_KNOWN_FLAGS) || !(flags & BBM_F_PATH_SORTED)) {
		seterr(err, errlen, "%s: unsupported flags 0x%x", name, flags);
		goto out;
	}
	m->single = (flags & BBM_F_SINGLE) != 0;
	if (ld32(h + HOFF(reserved))) {
		seterr(err, errlen, "%s: reserved header field is not zero", name);
		goto out;
	}
	count = ld32(h + HOFF(count));
	n_digests = ld32(h + HOFF(n_digests));
	if (count < 1 || count > BBM_MAX_ENTRIES) {
		seterr(err, errlen, "%s: entry count %u out of range", name, count);
		goto out;
	}
	m->block_size = ld32(h + HOFF(block_size));
	if (m->block_size == 0) {
		seterr(err, errlen, "%s: block size 0", name);
		goto out;
	}

	off = ld64(h + HOFF(entries_off));
	len = ld64(h + HOFF(entries_len));
	if (len != (uint64_t)count * BBM_ENT_SIZE) {
		seterr(err, errlen, "%s: entries section is %llu bytes, %u entries need %llu", name,
		       (unsigned long long)len, count, (unsigned long long)count * BBM_ENT_SIZE);
		goto out;
	}
	if ((rc = check_section("entries", off, len, BBM_HDR_SIZE, file_size, name, err, errlen)))
		goto out;
	m->entries = m->base + off;
	at = off + len;

	rc = BB_ECORRUPT;
	off = ld64(h + HOFF(children_off));
	len = ld64(h + HOFF(children_len));
	if (len != ((uint64_t)count - 1) * 4) {
		seterr(err, errlen, "%s: children section is %llu bytes, expected %llu", name,
		       (unsigned long long)len, ((unsigned long long)count - 1) * 4);
		goto out;
	}
	if ((rc = check_section("children", off, len, at, file_size, name, err, errlen)))
		goto out;
	m->children = m->base + off;
	at = off + len;

	rc = BB_ECORRUPT;
	off = ld64(h + HOFF(digests_off));
	len = ld64(h + HOFF(digests_len));
	if (len != (uint64_t)n_digests * BB_MANIFEST_SHA256_LEN) {
		seterr(err, errlen, "%s: digest section is %llu bytes, %u digests need %llu", name,
		       (unsigned long long)len, n_digests,
		       (unsigned long long)n_digests * BB_MANIFEST_SHA256_LEN);
		goto out;
	}
	if ((rc = check_section("digest", off, len, at, file_size, name, err, errlen)))
		goto out;
	m->digests = m->base + off;
	at = off + len;

	rc = BB_ECORRUPT;
	off = ld64(h + HOFF(strtab_off));
	len = ld64(h + HOFF(strtab_len));
	if ((rc = check_section("string", off, len, at, file_size, name, err, errlen)))
		goto out;
	rc = BB_ECORRUPT;
	if (off + len != file_size) {
		seterr(err, errlen, "%s: %llu bytes after the string table", name,
		       (unsigned long long)(file_size - off - len));
		goto out;
	}
	if (len < 1 || m->base[off] != '\0') {
		seterr(err, errlen, "%s: the string table does not start with the empty string",
		       name);
		goto out;
	}
	m->strtab = (const char *)m->base + off;
	m->strtab_len = len;

	off = ld64(h + HOFF(source_off));
	len = ld32(h + HOFF(source_len));
	if (len >= BB_MANIFEST_MAX_PATH || check_str(m, off, len)) {
		seterr(err, errlen, "%s: source URL: %s", name,
		       len >= BB_MANIFEST_MAX_PATH ? "too long" : check_str(m, off, len));
		goto out;
	}
	m->source = m->strtab + off;
	m->count = count;
	m->n_files = ld32(h + HOFF(n_files));
	m->total_bytes = ld64(h + HOFF(total_bytes));
	rc = BB_OK;
out:
	return rc;
}

/* One entry's own fields and its link to its parent.  The parent (< i) has
 * been checked already. */
static int validate_entry(const struct bb_manifest *m, uint32_t i, uint32_t n_digests,
			  const char *name, char *err, size_t errlen)
{
	uint32_t path_len, name_pos, parent, mode, plen, nlen;
	uint64_t size = ent64(m, i, EOFF(size));
	const char *path, *pp, *nm, *why;
	int rc = BB_ECORRUPT;

	path_len = ent32(m, i, EOFF(path_len));
	if (path_len >= BB_MANIFEST_MAX_PATH) {
		seterr(err, errlen, "%s: entry %u: path length %u too long", name, i, path_len);
		goto out;
	}
	if ((why = check_str(m, ent64(m, i, EOFF(path_off)), path_len))) {
		seterr(err, errlen, "%s: entry %u: path %s", name, i, why);
		goto out;
	}
	path = ent_path(m, i, &path_len);
	if ((why = check_str(m, ent64(m, i, EOFF(source_off)), ent32(m, i, EOFF(source_len))))) {
		seterr(err, errlen, "%s: entry %u: source %s", name, i, why);
		goto out;
	}
	if (ent32(m, i, EOFF(etag_len)) > BB_MANIFEST_MAX_ETAG) {
		seterr(err, errlen, "%s: entry %u: etag longer than %d bytes", name, i,
		       BB_MANIFEST_MAX_ETAG);
		goto out;
	}
	if ((why = check_str(m, ent64(m, i, EOFF(etag_off)), ent32(m, i, EOFF(etag_len))))) {
		seterr(err, errlen, "%s: entry %u: etag %s", name, i, why);
		goto out;
	}
	if (ent32(m, i, EOFF(digest)) > n_digests) {
		seterr(err, errlen, "%s: entry %u: digest %u out of range (%u digests)", name, i,
		       ent32(m, i, EOFF(digest)), n_digests);
		goto out;
	}
	if (ent32(m, i, EOFF(reserved))) {
		seterr(err, errlen, "%s: entry %u: reserved field is not zero", name, i);
		goto out;
	}
	mode = ent32(m, i, EOFF(mode));
	if (((mode & S_IFMT) != S_IFREG && (mode & S_IFMT) != S_IFDIR) ||
	    (mode & ~(uint32_t)(S_IFMT | 07777))) {
		seterr(err, errlen, "%s: entry %u: bad mode 0%o", name, i, mode);
		goto out;
	}
	parent = ent32(m, i, EOFF(parent));
	name_pos = ent32(m, i, EOFF(name_pos));
	if (i == 0 && (path_len || parent || name_pos || !is_dir_mode(mode))) {
		seterr(err, errlen, "%s: entry 0 is not the root directory", name);
		goto out;
	}
	if (is_dir_mode(mode)) {
		if (size || ent64(m, i, EOFF(n_blocks)) || ent32(m, i, EOFF(digest)) ||
		    ent32(m, i, EOFF(etag_len))) {
			seterr(err, errlen,
			       "%s: entry %u: directory with a size, blocks or checksum", name, i);
			goto out;
		}
	} else {
		if (ent64(m, i, EOFF(n_blocks)) != blocks_of(size, m->block_size)) {
			seterr(err, errlen, "%s: entry %u: %llu blocks, size %llu needs %llu", name,
			       i, (unsigned long long)ent64(m, i, EOFF(n_blocks)),
			       (unsigned long long)size,
			       (unsigned long long)blocks_of(size, m->block_size));
			goto out;
		}
		if (ent32(m, i, EOFF(n_children)) || ent32(m, i, EOFF(first_child))) {
			seterr(err, errlen, "%s: entry %u: a file with children", name, i);
			goto out;
		}
	}

	if (i == 0) {
		rc = BB_OK;
		goto out;
	}
	if (parent >= i) {
		seterr(err, errlen, "%s: entry %u: parent %u does not precede it", name, i, parent);
		goto out;
	}
	if (!is_dir_mode(ent32(m, parent, EOFF(mode)))) {
		seterr(err, errlen, "%s: entry %u: parent %u is not a directory", name, i, parent);
		goto out;
	}
	pp = ent_path(m, parent, &plen);
	if (name_pos != (parent ? plen + 1 : 0) || name_pos >= path_len || memcmp(path, pp, plen) ||
	    (parent && path[plen] != '/')) {
		seterr(err, errlen, "%s: entry %u: path is not its parent's path plus a name", name,
		       i);
		goto out;
	}
	nm = path + name_pos;
	nlen = path_len - name_pos;
	if (memchr(nm, '/', nlen) || (nlen == 1 && nm[0] == '.') ||
	    (nlen == 2 && nm[0] == '.' && nm[1] == '.')) {
		seterr(err, errlen, "%s: entry %u: bad name", name, i);
		goto out;
	}
	/* Sorted paths make the binary search correct (and, with the parent
	 * check, rule out duplicates). */
	pp = ent_path(m, i - 1, &plen);
	if (cmp_bytes(pp, plen, path, path_len) >= 0) {
		seterr(err, errlen, "%s: entry %u: paths not strictly sorted", name, i);
		goto out;
	}
	rc = BB_OK;
out:
	return rc;
}

/*
 * Children ranges are laid out directory after directory in entry order and
 * together cover the array; a range lists entries whose parent is that
 * directory, ascending (= by name).  Then every non-root entry appears once.
 */
static int validate_children(const struct bb_manifest *m, const char *name, char *err,
			     size_t errlen)
{
	uint64_t next = 0;
	int rc = BB_ECORRUPT;

	for (uint32_t d = 0; d < m->count; d++) {
		uint32_t first, n, prev = 0;

		if (!is_dir_mode(ent32(m, d, EOFF(mode))))
			continue;
		first = ent32(m, d, EOFF(first_child));
		n = ent32(m, d, EOFF(n_children));
		if (first != next || n > (uint64_t)m->count - 1 - next) {
			seterr(err, errlen, "%s: entry %u: children range [%u, +%u) is misplaced",
			       name, d, first, n);
			goto out;
		}
		for (uint32_t k = 0; k < n; k++) {
			uint32_t c = child_at(m, (uint64_t)first + k);

			if (c == 0 || c >= m->count || ent32(m, c, EOFF(parent)) != d ||
			    (k && c <= prev)) {
				seterr(err, errlen, "%s: entry %u: child %u (entry %u) is wrong",
				       name, d, k, c);
				goto out;
			}
			prev = c;
		}
		next += n;
	}
	if (next != (uint64_t)m->count - 1) {
		seterr(err, errlen, "%s: children cover %llu of %u entries", name,
		       (unsigned long long)next, m->count - 1);
		goto out;
	}
	rc = BB_OK;
out:
	return rc;
}

static int validate(struct bb_manifest *m, const char *name, char *err, size_t errlen)
{
	uint32_t n_digests, n_files = 0;
	uint64_t total = 0;
	int rc;

	if ((rc = validate_header(m, name, err, errlen)))
		goto out;
	n_digests = ld32(m->base + HOFF(n_digests));
	for (uint32_t i = 0; i < m->count; i++) {
		if ((rc = validate_entry(m, i, n_digests, name, err, errlen)))
			goto out;
		if (!is_dir_mode(ent32(m, i, EOFF(mode)))) {
			uint64_t size = ent64(m, i, EOFF(size));

			n_files++;
			if (size > UINT64_MAX - total) {
				rc = BB_ECORRUPT;
				seterr(err, errlen, "%s: total size overflows", name);
				goto out;
			}
			total += size;
		}
	}
	if ((rc = validate_children(m, name, err, errlen)))
		goto out;
	rc = BB_ECORRUPT;
	if (n_files != m->n_files || total != m->total_bytes) {
		seterr(err, errlen,
		       "%s: header counts %u files / %llu bytes, entries have %u / %llu", name,
		       m->n_files, (unsigned long long)m->total_bytes, n_files,
		       (unsigned long long)total);
		goto out;
	}
	if (m->single && (m->count != 2 || m->n_files != 1)) {
		seterr(err, errlen, "%s: a single-file manifest with %u entries", name, m->count);
		goto out;
	}
	rc = BB_OK;
out:
	return rc;
}

static int open_image(const void *buf, size_t len, void *map, const char *name,
		      struct bb_manifest **out, char *err, size_t errlen)
{
	struct bb_manifest *m;
	int rc;

	m = calloc(1, sizeof(*m));
	if (!m) {
		seterr(err, errlen, "%s: out of memory", name);
		rc = BB_ENOMEM;
		goto out;
	}
	m->base = buf;
	m->len = len;
	rc = validate(m, name, err, errlen);
	if (rc) {
		free(m);
		goto out;
	}
	m->map = map;
	*out = m;
out:
	return rc;
}

int bb_manifest_open_mem(const void *buf, size_t len, struct bb_manifest **out, char *err,
			 size_t errlen)
{
	if (!out || (!buf && len)) {
		seterr(err, errlen, "bb_manifest_open_mem: invalid argument");
		return BB_EINVAL;
	}
	*out = NULL;
	return open_image(buf, len, NULL, "(memory)", out, err, errlen);
}

int bb_manifest_open(const char *path, struct bb_manifest **out, char *err, size_t errlen)
{
	void *map = MAP_FAILED;
	struct stat st;
	size_t len = 0;
	int fd = -1;
	int rc;

	if (!path || !out) {
		seterr(err, errlen, "bb_manifest_open: invalid argument");
		rc = BB_EINVAL;
		goto out;
	}
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = (errno == ENOENT || errno == ENOTDIR) ? BB_ENOENT
		     : (errno == EACCES || errno == EPERM) ? BB_EPERM
							   : BB_ESYS;
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st)) {
		rc = BB_ESYS;
		seterr(err, errlen, "%s: fstat: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = BB_ECORRUPT;
		seterr(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size < BBM_HDR_SIZE || (uint64_t)st.st_size > SIZE_MAX) {
		rc = BB_ECORRUPT;
		seterr(err, errlen, "%s: %s: %lld bytes", path,
		       (uint64_t)st.st_size < BBM_HDR_SIZE ? "truncated" : "too large",
		       (long long)st.st_size);
		goto out;
	}
	len = (size_t)st.st_size;
	map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = errno == ENOMEM ? BB_ENOMEM : BB_ESYS;
		seterr(err, errlen, "%s: mmap: %s", path, strerror(errno));
		goto out;
	}
	rc = open_image(map, len, map, path, out, err, errlen);
	if (rc == BB_OK)
		map = MAP_FAILED; /* owned by the manifest now */
out:
	if (map != MAP_FAILED)
		munmap(map, len);
	if (fd >= 0)
		close(fd);
	return rc;
}

void bb_manifest_close(struct bb_manifest *m)
{
	if (!m)
		return;
	if (m->map)
		munmap(m->map, m->len);
	free(m);
}

uint32_t bb_manifest_count(const struct bb_manifest *m)
{
	return m->count;
}

const char *bb_manifest_source(const struct bb_manifest *m)
{
	return m->source;
}

int bb_manifest_is_single(const struct bb_manifest *m)
{
	return m->single;
}

uint32_t bb_manifest_block_size(const struct bb_manifest *m)
{
	return m->block_size;
}

uint64_t bb_manifest_total_bytes(const struct bb_manifest *m)
{
	return m->total_bytes;
}

uint32_t bb_manifest_n_files(const struct bb_manifest *m)
{
	return m->n_files;
}

int bb_manifest_entry(const struct bb_manifest *m, uint32_t idx, struct bb_mentry *e)
{
	uint32_t digest;

	if (!m || !e || idx >= m->count)
		return BB_ENOENT;
	e->idx = idx;
	e->parent = ent32(m, idx, EOFF(parent));
	e->path = ent_path(m, idx, &e->path_len);
	e->name = e->path + ent32(m, idx, EOFF(name_pos));
	e->size = ent64(m, idx, EOFF(size));
	e->mtime_ns = (int64_t)ent64(m, idx, EOFF(mtime_ns));
	e->mode = ent32(m, idx, EOFF(mode));
	e->inode = ent64(m, idx, EOFF(inode));
	e->etag = m->strtab + ent64(m, idx, EOFF(etag_off));
	digest = ent32(m, idx, EOFF(digest));
	e->sha256 = digest ? m->digests + (size_t)(digest - 1) * BB_MANIFEST_SHA256_LEN : NULL;
	e->source = m->strtab + ent64(m, idx, EOFF(source_off));
	e->n_blocks = ent64(m, idx, EOFF(n_blocks));
	e->n_children = ent32(m, idx, EOFF(n_children));
	return BB_OK;
}

/* Copy path without leading, trailing and repeated '/' to buf (cap bytes);
 * the length, or cap if it does not fit. */
static size_t normalize(const char *path, size_t len, char *buf, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (path[i] == '/' && (n == 0 || buf[n - 1] == '/'))
			continue;
		if (n == cap)
			return cap;
		buf[n++] = path[i];
	}
	if (n && buf[n - 1] == '/')
		n--;
	return n;
}

int bb_manifest_lookup(const struct bb_manifest *m, const char *path, size_t len, uint32_t *idx)
{
	char buf[BB_MANIFEST_MAX_PATH];
	uint32_t lo = 0, hi;
	int clean = 1;

	if (!m || !idx || (!path && len))
		return BB_EINVAL;
	if (len) {
		clean = path[0] != '/' && path[len - 1] != '/';
		for (size_t i = 1; clean && i < len; i++)
			clean = !(path[i] == '/' && path[i - 1] == '/');
	}
	if (!clean) {
		len = normalize(path, len, buf, sizeof(buf));
		path = buf;
	}
	if (len >= BB_MANIFEST_MAX_PATH)
		return BB_ENOENT;
	hi = m->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2, plen;
		const char *p = ent_path(m, mid, &plen);
		int c = cmp_bytes(p, plen, path, len);

		if (c == 0) {
			*idx = mid;
			return BB_OK;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return BB_ENOENT;
}

int bb_manifest_child(const struct bb_manifest *m, uint32_t dir_idx, uint32_t k,
		      uint32_t *child_idx)
{
	if (!m || !child_idx || dir_idx >= m->count || !is_dir_mode(ent32(m, dir_idx, EOFF(mode))))
		return BB_EINVAL;
	if (k >= ent32(m, dir_idx, EOFF(n_children)))
		return BB_ENOENT;
	*child_idx = child_at(m, (uint64_t)ent32(m, dir_idx, EOFF(first_child)) + k);
	return BB_OK;
}

int bb_manifest_lookup_child(const struct bb_manifest *m, uint32_t dir_idx, const char *name,
			     size_t len, uint32_t *child_idx)
{
	uint32_t lo = 0, hi, first;

	if (!m || !child_idx || (!name && len) || dir_idx >= m->count ||
	    !is_dir_mode(ent32(m, dir_idx, EOFF(mode))))
		return BB_EINVAL;
	first = ent32(m, dir_idx, EOFF(first_child));
	hi = ent32(m, dir_idx, EOFF(n_children));
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2, plen;
		uint32_t c = child_at(m, (uint64_t)first + mid);
		const char *p = ent_path(m, c, &plen);
		uint32_t pos = ent32(m, c, EOFF(name_pos));
		int r = cmp_bytes(p + pos, plen - pos, name, len);

		if (r == 0) {
			*child_idx = c;
			return BB_OK;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return BB_ENOENT;
}

int bb_manifest_select(const char *include, const char *exclude, const char *relpath)
{
	if (!relpath)
		return 0;
	/* Without FNM_PATHNAME '*' crosses '/', so "**" already means "*". */
	if (include && *include && fnmatch(include, relpath, 0) != 0)
		return 0;
	if (exclude && *exclude && fnmatch(exclude, relpath, 0) == 0)
		return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Builder                                                             */
/* ------------------------------------------------------------------ */

#define BENT_SYNTH 0x1 /* a synthesized parent directory (removed before each write) */
#define BENT_DROP 0x2  /* merged into an explicit entry of the same path */
#define CHUNK_SIZE (1u << 20)

struct bent {
	const char *path;   /* in the arena; a synthesized dir points into a child's path */
	const char *source; /* NULL = same as path */
	const char *etag;   /* NULL = none */
	uint64_t size, inode;
	int64_t mtime_ns;
	uint32_t path_len, source_len, etag_len, mode;
	uint32_t digest; /* index + 1 into the builder's digests, 0 = none */
	uint32_t flags;	 /* BENT_* */
};

struct chunk {
	struct chunk *next;
	size_t used, cap;
	char data[];
};

struct bb_manifest_builder {
	char *source_url;
	size_t source_len;
	uint32_t block_size;
	struct bent *ents;
	size_t n, cap;
	uint8_t *digests;
	size_t n_digests, cap_digests;
	struct chunk *chunks;
	int single;
	int no_sync;              /* write without msync/fsync (set_sync) */
};

static char *arena_dup(struct bb_manifest_builder *b, const char *s, size_t len)
{
	struct chunk *c = b->chunks;
	char *p;

	if (!c || c->cap - c->used < len + 1) {
		size_t cap = len + 1 > CHUNK_SIZE ? len + 1 : CHUNK_SIZE;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = b->chunks;
		b->chunks = c;
	}
	p = c->data + c->used;
	memcpy(p, s, len);
	p[len] = '\0';
	c->used += len + 1;
	return p;
}

/* The capacity (doubling from 64) that holds need elements. */
static size_t grown(size_t cap, size_t need)
{
	size_t ncap = cap ? cap : 64;

	while (ncap < need)
		ncap *= 2;
	return ncap;
}

static int reserve_ents(struct bb_manifest_builder *b, size_t need)
{
	size_t cap = grown(b->cap, need);
	struct bent *p;

	if (need <= b->cap)
		return BB_OK;
	p = realloc(b->ents, cap * sizeof(*p));
	if (!p)
		return BB_ENOMEM;
	b->ents = p;
	b->cap = cap;
	return BB_OK;
}

static int reserve_digests(struct bb_manifest_builder *b, size_t need)
{
	size_t cap = grown(b->cap_digests, need);
	uint8_t *p;

	if (need <= b->cap_digests)
		return BB_OK;
	p = realloc(b->digests, cap * BB_MANIFEST_SHA256_LEN);
	if (!p)
		return BB_ENOMEM;
	b->digests = p;
	b->cap_digests = cap;
	return BB_OK;
}

void bb_manifest_builder_set_single(struct bb_manifest_builder *b)
{
	b->single = 1;
}

void bb_manifest_builder_set_sync(struct bb_manifest_builder *b, int sync)
{
	b->no_sync = !sync;
}

int bb_manifest_builder_new(const char *source_url, uint32_t block_size,
			    struct bb_manifest_builder **out)
{
	struct bb_manifest_builder *b = NULL;
	int rc = BB_EINVAL;

	if (!out)
		goto out;
	*out = NULL;
	if (!source_url || block_size == 0 || strlen(source_url) >= BB_MANIFEST_MAX_PATH)
		goto out;
	rc = BB_ENOMEM;
	b = calloc(1, sizeof(*b));
	if (!b)
		goto out;
	b->source_len = strlen(source_url);
	b->source_url = strdup(source_url);
	if (!b->source_url)
		goto out;
	b->block_size = block_size;
	*out = b;
	b = NULL;
	rc = BB_OK;
out:
	bb_manifest_builder_free(b);
	return rc;
}

void bb_manifest_builder_free(struct bb_manifest_builder *b)
{
	if (!b)
		return;
	while (b->chunks) {
		struct chunk *c = b->chunks;

		b->chunks = c->next;
		free(c);
	}
	free(b->ents);
	free(b->digests);
	free(b->source_url);
	free(b);
}

uint32_t bb_manifest_builder_count(const struct bb_manifest_builder *b)
{
	size_t n = 0;

	for (size_t i = 0; b && i < b->n; i++)
		n += !(b->ents[i].flags & BENT_SYNTH);
	return (uint32_t)n;
}

/* A relative path: components non-empty, not "." or "..", no leading '/'.
 * A directory may end in one '/', which is dropped from *len. */
static int check_path(const char *p, size_t *len, int is_dir)
{
	size_t n = *len, start = 0;

	if (is_dir && n > 1 && p[n - 1] == '/')
		n--;
	if (n == 0 || n >= BB_MANIFEST_MAX_PATH)
		return BB_EINVAL;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		if (i == start || (i - start == 1 && p[start] == '.') ||
		    (i - start == 2 && p[start] == '.' && p[start + 1] == '.'))
			return BB_EINVAL;
		start = i + 1;
	}
	*len = n;
	return BB_OK;
}

int bb_manifest_builder_add(struct bb_manifest_builder *b, const struct bb_manifest_file *f)
{
	struct bent e = {0};
	size_t len;
	uint32_t mode;
	int rc = BB_EINVAL;

	if (!b || !f || !f->path)
		goto out;
	mode = f->mode ? f->mode : (uint32_t)(S_IFREG | 0644);
	if (!(mode & S_IFMT))
		mode |= S_IFREG;
	if (((mode & S_IFMT) != S_IFREG && (mode & S_IFMT) != S_IFDIR) ||
	    (mode & ~(uint32_t)(S_IFMT | 07777)))
		goto out;
	len = strlen(f->path);
	if ((rc = check_path(f->path, &len, is_dir_mode(mode))))
		goto out;
	rc = BB_EINVAL;
	e.mode = mode;
	e.path_len = (uint32_t)len;
	e.mtime_ns = f->mtime_ns;
	e.inode = f->inode;
	if (!is_dir_mode(mode)) {
		e.size = f->size;
		if (f->etag && *f->etag) {
			len = strlen(f->etag);
			if (len > BB_MANIFEST_MAX_ETAG)
				goto out;
			e.etag_len = (uint32_t)len;
		}
	}
	if (f->source) {
		len = strlen(f->source);
		if (len >= BB_MANIFEST_MAX_PATH)
			goto out;
		e.source_len = (uint32_t)len;
	}
	rc = BB_ERANGE;
	if (b->n >= BBM_MAX_ENTRIES)
		goto out;
	rc = BB_ENOMEM;
	if (reserve_ents(b, b->n + 1))
		goto out;
	if (!(e.path = arena_dup(b, f->path, e.path_len)))
		goto out;
	if (f->source && !(e.source = arena_dup(b, f->source, e.source_len)))
		goto out;
	if (e.etag_len && !(e.etag = arena_dup(b, f->etag, e.etag_len)))
		goto out;
	if (f->sha256 && !is_dir_mode(mode)) {
		if (reserve_digests(b, b->n_digests + 1))
			goto out;
		memcpy(b->digests + b->n_digests * BB_MANIFEST_SHA256_LEN, f->sha256,
		       BB_MANIFEST_SHA256_LEN);
		e.digest = (uint32_t)++b->n_digests;
	}
	b->ents[b->n++] = e;
	rc = BB_OK;
out:
	return rc;
}

static int bent_cmp(const void *a, const void *b)
{
	const struct bent *x = a, *y = b;

	return cmp_bytes(x->path, x->path_len, y->path, y->path_len);
}

static int add_synth(struct bb_manifest_builder *b, const char *path, uint32_t len)
{
	struct bent e = {0};

	if (b->n >= BBM_MAX_ENTRIES)
		return BB_ERANGE;
	if (reserve_ents(b, b->n + 1))
		return BB_ENOMEM;
	e.path = path;
	e.path_len = len;
	e.mode = S_IFDIR | 0755;
	e.mtime_ns = INT64_MIN; /* the newest child's, set later */
	e.flags = BENT_SYNTH;
	b->ents[b->n++] = e;
	return BB_OK;
}

/* Merge the sorted runs ents[0..n1) and ents[n1..n) into a new array. */
static int merge_sorted(struct bb_manifest_builder *b, size_t n1)
{
	struct bent *out = malloc(b->n * sizeof(*out));
	size_t i = 0, j = n1, k = 0;

	if (!out)
		return BB_ENOMEM;
	while (i < n1 && j < b->n)
		out[k++] = bent_cmp(&b->ents[i], &b->ents[j]) <= 0 ? b->ents[i++] : b->ents[j++];
	while (i < n1)
		out[k++] = b->ents[i++];
	while (j < b->n)
		out[k++] = b->ents[j++];
	free(b->ents);
	b->ents = out;
	b->cap = b->n;
	return BB_OK;
}

/*
 * Sort the input, add every missing parent directory, merge synthesized
 * directories into explicit ones and reject duplicates and file/directory
 * conflicts.  In sorted order the paths under a directory are contiguous,
 * so a directory is new exactly when it is not an ancestor of the previous
 * path: its '/' lies at or past the common prefix of the two paths.
 */
static int resolve(struct bb_manifest_builder *b, char *err, size_t errlen)
{
	size_t n_in, j = 0;
	int rc;

	for (size_t i = 0; i < b->n; i++) {
		if (b->ents[i].flags & BENT_SYNTH)
			continue;
		b->ents[i].flags = 0;
		b->ents[j++] = b->ents[i];
	}
	b->n = n_in = j;
	/* Listings (S3, sorted readdir) mostly arrive sorted already. */
	for (j = 1; j < n_in && bent_cmp(&b->ents[j - 1], &b->ents[j]) <= 0; j++)
		;
	if (j < n_in)
		qsort(b->ents, n_in, sizeof(*b->ents), bent_cmp);
	if ((rc = add_synth(b, "", 0)))
		goto out;
	for (size_t i = 0; i < n_in; i++) {
		const char *p = b->ents[i].path;
		uint32_t len = b->ents[i].path_len, common = 0;

		if (i > 0) {
			const struct bent *q = &b->ents[i - 1];

			while (common < len && common < q->path_len && p[common] == q->path[common])
				common++;
		}
		for (uint32_t k = common; k < len; k++) {
			if (p[k] == '/' && (rc = add_synth(b, p, k)))
				goto out;
		}
	}
	/* The directories are few: sort them and merge them in. */
	qsort(b->ents + n_in, b->n - n_in, sizeof(*b->ents), bent_cmp);
	if ((rc = merge_sorted(b, n_in)))
		goto out;

	for (size_t i = 0; i < b->n;) {
		size_t e = i, n_expl = 0, expl = 0, synth = 0;

		while (e < b->n && !bent_cmp(&b->ents[i], &b->ents[e]))
			e++;
		for (size_t k = i; k < e; k++) {
			if (b->ents[k].flags & BENT_SYNTH) {
				synth++;
			} else {
				n_expl++;
				expl = k;
			}
		}
		rc = BB_EEXIST;
		if (n_expl > 1) {
			seterr(err, errlen, "duplicate path '%.*s'", (int)b->ents[i].path_len,
			       b->ents[i].path);
			goto out;
		}
		if (n_expl && synth && !is_dir_mode(b->ents[expl].mode)) {
			seterr(err, errlen,
			       "'%.*s' is a file but other entries need it to be a directory",
			       (int)b->ents[i].path_len, b->ents[i].path);
			goto out;
		}
		/* keep the explicit entry, or the first synthesized one */
		for (size_t k = i; k < e; k++) {
			if (n_expl ? k != expl : k != i)
				b->ents[k].flags |= BENT_DROP;
		}
		i = e;
	}
	j = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (!(b->ents[i].flags & BENT_DROP))
			b->ents[j++] = b->ents[i];
	}
	b->n = j;
	rc = BB_OK;
out:
	if (rc == BB_ERANGE)
		seterr(err, errlen, "more than %u entries", BBM_MAX_ENTRIES);
	else if (rc == BB_ENOMEM)
		seterr(err, errlen, "out of memory");
	return rc;
}

/* The index of the entry with exactly this path among ents[0..hi). */
static uint32_t find_sorted(const struct bent *ents, uint32_t hi, const char *p, uint32_t len)
{
	uint32_t lo = 0;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = cmp_bytes(ents[mid].path, ents[mid].path_len, p, len);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return UINT32_MAX;
}

static uint32_t name_pos_of(const struct bent *e)
{
	for (uint32_t k = e->path_len; k > 0; k--) {
		if (e->path[k - 1] == '/')
			return k;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, rc = BB_OK;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return BB_ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (fsync(fd) && errno != EINVAL && errno != EROFS))
		rc = BB_ESYS;
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

/* Lay out and fill the image at map (size bytes, zeroed).  nch[] (children
 * per directory) is used up as the fill cursor of the children array. */
static void fill_image(const struct bb_manifest_builder *b, unsigned char *map, uint64_t size,
		       const uint32_t *parent, const uint32_t *first, uint32_t *nch, uint64_t total,
		       uint32_t n_files, uint32_t n_digests)
{
	uint32_t count = (uint32_t)b->n;
	uint64_t ent_off = BBM_HDR_SIZE;
	uint64_t ch_off = align8(ent_off + count * BBM_ENT_SIZE);
	uint64_t dg_off = align8(ch_off + ((uint64_t)count - 1) * 4);
	uint64_t st_off = align8(dg_off + (uint64_t)n_digests * BB_MANIFEST_SHA256_LEN);
	uint64_t st = 1; /* offset 0 is the empty string */
	uint32_t dg = 0;
	char *strtab = (char *)map + st_off;
	unsigned char *h = map;

	memcpy(strtab + st, b->source_url, b->source_len);
	st64(h + HOFF(source_off), st);
	st32(h + HOFF(source_len), (uint32_t)b->source_len);
	st += b->source_len + 1;

	for (uint32_t i = 0; i < count; i++) {
		const struct bent *e = &b->ents[i];
		unsigned char *r = map + ent_off + (uint64_t)i * BBM_ENT_SIZE;
		int dir = is_dir_mode(e->mode);

		st64(r + EOFF(size), dir ? 0 : e->size);
		st64(r + EOFF(mtime_ns), (uint64_t)e->mtime_ns);
		st64(r + EOFF(inode), e->inode);
		st64(r + EOFF(n_blocks), dir ? 0 : blocks_of(e->size, b->block_size));
		memcpy(strtab + st, e->path, e->path_len);
		st64(r + EOFF(path_off), st);
		st32(r + EOFF(path_len), e->path_len);
		if (e->source) {
			st += e->path_len + 1;
			memcpy(strtab + st, e->source, e->source_len);
			st64(r + EOFF(source_off), st);
			st32(r + EOFF(source_len), e->source_len);
			st += e->source_len + 1;
		} else {
			st64(r + EOFF(source_off), st);
			st32(r + EOFF(source_len), e->path_len);
			st += e->path_len + 1;
		}
		if (e->etag_len) {
			memcpy(strtab + st, e->etag, e->etag_len);
			st64(r + EOFF(etag_off), st);
			st32(r + EOFF(etag_len), e->etag_len);
			st += e->etag_len + 1;
		}
		if (e->digest) {
			memcpy(map + dg_off + (uint64_t)dg * BB_MANIFEST_SHA256_LEN,
			       b->digests + (size_t)(e->digest - 1) * BB_MANIFEST_SHA256_LEN,
			       BB_MANIFEST_SHA256_LEN);
			st32(r + EOFF(digest), ++dg);
		}
		st32(r + EOFF(name_pos), i ? name_pos_of(e) : 0);
		st32(r + EOFF(parent), parent[i]);
		st32(r + EOFF(mode), e->mode);
		st32(r + EOFF(first_child), first[i]);
		st32(r + EOFF(n_children), nch[i]);
	}
	/* Children: entries in ascending order land in their parent's range
	 * in ascending order, i.e. sorted by name: filled backwards from the
	 * end of each range. */
	for (uint32_t i = count - 1; i > 0; i--) {
		uint32_t p = parent[i];

		st32(map + ch_off + ((uint64_t)first[p] + --nch[p]) * 4, i);
	}

	memcpy(h, BBM_MAGIC, 8);
	st32(h + HOFF(version), BBM_VERSION);
	st32(h + HOFF(header_size), (uint32_t)BBM_HDR_SIZE);
	st32(h + HOFF(flags), BBM_F_PATH_SORTED | (b->single ? BBM_F_SINGLE : 0));
	st32(h + HOFF(entry_size), (uint32_t)BBM_ENT_SIZE);
	st32(h + HOFF(count), count);
	st32(h + HOFF(n_files), n_files);
	st32(h + HOFF(block_size), b->block_size);
	st32(h + HOFF(n_digests), n_digests);
	st64(h + HOFF(total_bytes), total);
	st64(h + HOFF(file_size), size);
	st64(h + HOFF(entries_off), ent_off);
	st64(h + HOFF(entries_len), count * BBM_ENT_SIZE);
	st64(h + HOFF(children_off), ch_off);
	st64(h + HOFF(children_len), ((uint64_t)count - 1) * 4);
	st64(h + HOFF(digests_off), dg_off);
	st64(h + HOFF(digests_len), (uint64_t)n_digests * BB_MANIFEST_SHA256_LEN);
	st64(h + HOFF(strtab_off), st_off);
	st64(h + HOFF(strtab_len), size - st_off);
	bb_manifest_reseal(map, (size_t)size);
}

int bb_manifest_builder_write(struct bb_manifest_builder *b, const char *path, char *err,
			      size_t errlen)
{
	uint32_t *parent = NULL, *first = NULL, *nch = NULL;
	uint64_t total = 0, strtab_len, size;
	uint32_t count, n_files = 0, n_digests = 0, next = 0;
	unsigned char *map = MAP_FAILED;
	char *tmp = NULL;
	int fd = -1, tmp_made = 0, r, rc = BB_EINVAL;

	if (!b || !path || !*path) {
		seterr(err, errlen, "bb_manifest_builder_write: invalid argument");
		goto out;
	}
	if ((rc = resolve(b, err, errlen)))
		goto out;
	count = (uint32_t)b->n;
	rc = BB_ENOMEM;
	parent = calloc(count, sizeof(*parent));
	first = calloc(count, sizeof(*first));
	nch = calloc(count, sizeof(*nch));
	tmp = malloc(strlen(path) + 5);
	if (!parent || !first || !nch || !tmp) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	sprintf(tmp, "%s.tmp", path);

	strtab_len = 1 + b->source_len + 1;
	for (uint32_t i = 0; i < count; i++) {
		const struct bent *e = &b->ents[i];

		if (i) {
			uint32_t pos = name_pos_of(e), p = 0, q = parent[i - 1];

			/* resolve() made every parent a directory entry.  Mostly
			 * it is the previous entry's parent, or the previous entry. */
			if (pos &&
			    !cmp_bytes(b->ents[q].path, b->ents[q].path_len, e->path, pos - 1))
				p = q;
			else if (pos && !cmp_bytes(b->ents[i - 1].path, b->ents[i - 1].path_len,
						   e->path, pos - 1))
				p = i - 1;
			else if (pos)
				p = find_sorted(b->ents, i, e->path, pos - 1);
			parent[i] = p;
			nch[p]++;
		}
		strtab_len += e->path_len + 1;
		if (e->source)
			strtab_len += e->source_len + 1;
		strtab_len += e->etag_len ? e->etag_len + 1 : 0;
		if (is_dir_mode(e->mode))
			continue;
		n_files++;
		n_digests += e->digest != 0;
		if (e->size > UINT64_MAX - total) {
			rc = BB_ERANGE;
			seterr(err, errlen, "total size overflows 64 bits");
			goto out;
		}
		total += e->size;
	}
	for (uint32_t i = 0; i < count; i++) {
		if (is_dir_mode(b->ents[i].mode)) {
			first[i] = next;
			next += nch[i];
		}
	}
	/* Synthesized directories take the newest mtime below them: children
	 * follow their parents, so a backward pass sees a subtree first. */
	for (uint32_t i = count; i-- > 0;) {
		struct bent *e = &b->ents[i];

		if ((e->flags & BENT_SYNTH) && e->mtime_ns == INT64_MIN)
			e->mtime_ns = 0;
		if (i && (b->ents[parent[i]].flags & BENT_SYNTH) &&
		    e->mtime_ns > b->ents[parent[i]].mtime_ns)
			b->ents[parent[i]].mtime_ns = e->mtime_ns;
	}
	size =
	    align8(align8(align8(BBM_HDR_SIZE + count * BBM_ENT_SIZE) + ((uint64_t)count - 1) * 4) +
		   (uint64_t)n_digests * BB_MANIFEST_SHA256_LEN) +
	    strtab_len;
	if (size > SIZE_MAX || size > (uint64_t)INT64_MAX) {
		rc = BB_ERANGE;
		seterr(err, errlen, "%s: manifest of %llu bytes is too large", path,
		       (unsigned long long)size);
		goto out;
	}

	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	tmp_made = fd >= 0;
	if (fd < 0 || fchmod(fd, 0600)) {
		rc = errno == EACCES || errno == EPERM ? BB_EPERM : BB_ESYS;
		seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	/* Allocate every block now: a full disk is an error here, not a
	 * SIGBUS while we fill the mapping. */
	r = posix_fallocate(fd, 0, (off_t)size);
	if (r) {
		rc = r == ENOSPC || r == EDQUOT ? BB_ENOSPC : BB_ESYS;
		seterr(err, errlen, "%s: allocating %llu bytes: %s", tmp, (unsigned long long)size,
		       strerror(r));
		goto out;
	}
	map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = errno == ENOMEM ? BB_ENOMEM : BB_ESYS;
		seterr(err, errlen, "%s: mmap: %s", tmp, strerror(errno));
		goto out;
	}
	fill_image(b, map, size, parent, first, nch, total, n_files, n_digests);
	rc = BB_ESYS;
	if (!b->no_sync && (msync(map, (size_t)size, MS_SYNC) || fsync(fd))) {
		seterr(err, errlen, "%s: sync: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd)) {
		fd = -1;
		seterr(err, errlen, "%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path)) {
		seterr(err, errlen, "rename %s -> %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	tmp_made = 0;
	if (!b->no_sync && fsync_dir_of(path)) {
		seterr(err, errlen, "%s: fsync of the directory: %s", path, strerror(errno));
		goto out;
	}
	rc = BB_OK;
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)size);
	if (fd >= 0)
		close(fd);
	if (tmp_made)
		unlink(tmp);
	free(tmp);
	free(parent);
	free(first);
	free(nch);
	return rc;
}
