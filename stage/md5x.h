/* MD5 for the stage-in's check of S3 ETags: one stream in portable C, or
 * several streams at once: two to four interleaved in portable C, or up
 * to eight, one per 32-bit lane of the AVX2 registers, where the CPU has
 * AVX2 (with AVX-512VL's instructions where it has those).  MD5 is a chain
 * of dependent steps, so one stream keeps a core's adders mostly waiting;
 * several side by side cost little more than one (docs/origins.md,
 * section 6).  Which code takes how many streams is measured once, on
 * first use.  The digests are MD5's (RFC 1321) in every case; the unit
 * test compares them with OpenSSL's. */
#ifndef BB_STAGE_MD5X_H
#define BB_STAGE_MD5X_H

#include <stddef.h>
#include <stdint.h>

#define BB_MD5_LANES 8

struct bb_md5 {
	uint32_t h[4];
	uint64_t len;            /* bytes added */
	unsigned char buf[64];   /* the partial block: buf[0, len % 64) */
};

void bb_md5_init(struct bb_md5 *c);
void bb_md5_update(struct bb_md5 *c, const void *data, size_t n);
void bb_md5_final(struct bb_md5 *c, unsigned char out[16]);

/* Add data[i] (len[i] bytes) to c[i] for each i < n (n <= BB_MD5_LANES, the
 * contexts distinct): the same as n calls of bb_md5_update, with the whole
 * blocks that two or more of them have hashed side by side. */
void bb_md5_update_lanes(struct bb_md5 *const *c, const unsigned char *const *data,
			 const size_t *len, unsigned n);

/* The paths, each a superset of the CPU features of the one before: */
enum bb_md5_path {
	BB_MD5_AUTO,   /* the best this CPU has (the default) */
	BB_MD5_SCALAR, /* one stream at a time, portable C */
	BB_MD5_ILP,    /* up to four streams interleaved, portable C */
	BB_MD5_AVX2,   /* eight streams in the lanes of AVX2 registers */
	BB_MD5_AVX512  /* the same with AVX-512VL's rotate and three-input logic */
};

/* How many streams one call hashes side by side: 1 on BB_MD5_SCALAR,
 * else BB_MD5_LANES. */
unsigned bb_md5_lanes(void);
/* Use path p (tests compare the paths; BB_MD5_AUTO: the best again); -1 if
 * this CPU cannot.  Not thread-safe: set it before hashing. */
int bb_md5_force_path(enum bb_md5_path p);
/* "scalar", "ilp", "avx2" or "avx512vl": the path in use (for the
 * automatic choice, the best the CPU has, which it mixes with "ilp"). */
const char *bb_md5_path_name(void);
/* How the path in use splits n streams (1 to 8) with whole blocks: the
 * number hashed first, side by side in portable C (1 to 4), or 0 for all n
 * in one vector pass; -1 on BB_MD5_SCALAR or a wrong n.  For the automatic
 * choice, also what it measured (else zeros): the CPU time in ns of a
 * vector pass and of k streams in portable C (scalar_ns[k], k = 1 to 4),
 * 256 blocks a stream. */
int bb_md5_plan(unsigned n, double *vector_ns, double scalar_ns[5]);

#endif
