#include "config.h"

#include "common/error.h"
#include "common/hrw.h"

/* Odd constants with well-spread bits (the 64-bit golden ratio and two
 * primes from the splitmix/xxhash family of designs). */
#define BB_GOLDEN 0x9e3779b97f4a7c15ULL
#define BB_K1 0xbf58476d1ce4e5b9ULL
#define BB_K2 0x94d049bb133111ebULL
#define BB_K3 0xc2b2ae3d27d4eb4fULL
#define BB_K4 0x165667b19e3779f9ULL

uint64_t bb_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= BB_K1;
	x ^= x >> 27;
	x *= BB_K2;
	x ^= x >> 31;
	return x;
}

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* Explicit little-endian read: the same bytes hash the same everywhere;
 * compilers turn this into one load on little-endian machines. */
static inline uint64_t load_le64(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	       (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline uint64_t absorb(uint64_t h, uint64_t w)
{
	h ^= rotl64(w * BB_K3, 31) * BB_K4;
	return rotl64(h, 27) * BB_GOLDEN + BB_K1;
}

/*
 * Two independent lanes over 16-byte strides keep the multiplies of one
 * word off the critical path of the next; the tail is zero-padded and the
 * length folded in so "a" and "a\0" differ.
 */
uint64_t bb_hash64(const void *buf, size_t len, uint64_t seed)
{
	const unsigned char *p = buf;
	uint64_t a = seed ^ BB_GOLDEN;
	uint64_t b = bb_mix64(seed + BB_K2);
	size_t n = len;
	unsigned char tail[8] = {0};

	while (n >= 16) {
		a = absorb(a, load_le64(p));
		b = absorb(b, load_le64(p + 8));
		p += 16;
		n -= 16;
	}
	if (n >= 8) {
		a = absorb(a, load_le64(p));
		p += 8;
		n -= 8;
	}
	if (n > 0) {
		for (size_t i = 0; i < n; i++)
			tail[i] = p[i];
		b = absorb(b, load_le64(tail));
	}
	return bb_mix64(a ^ rotl64(b, 32) ^ ((uint64_t)len * BB_K3));
}

uint64_t bb_hrw_weight(uint64_t key, uint32_t node_id)
{
	/* Mix each input on its own first so that structured keys (block
	 * numbers 0, 1, 2...) and node ids (0..n) do not line up. */
	return bb_mix64(bb_mix64(key) ^ bb_mix64((uint64_t)node_id + BB_GOLDEN));
}

int bb_hrw_place(uint64_t key, const uint32_t *node_ids, int n_nodes, int replicas,
		 int *out_idx)
{
	int rc = BB_OK;
	int filled = 0;

	if (!node_ids || !out_idx || n_nodes < 1 || replicas < 1) {
		rc = BB_EINVAL;
		goto out;
	}
	if (replicas > n_nodes)
		replicas = n_nodes;

	/* Insertion into a sorted top list; weights are recomputed for the
	 * few entries compared, which is cheaper than a side array. */
	for (int i = 0; i < n_nodes; i++) {
		uint64_t w = bb_hrw_weight(key, node_ids[i]);
		int pos = filled;

		while (pos > 0 && bb_hrw_weight(key, node_ids[out_idx[pos - 1]]) < w)
			pos--;
		if (pos >= replicas)
			continue;
		for (int j = (filled < replicas ? filled : replicas - 1); j > pos; j--)
			out_idx[j] = out_idx[j - 1];
		out_idx[pos] = i;
		if (filled < replicas)
			filled++;
	}
out:
	return rc;
}
