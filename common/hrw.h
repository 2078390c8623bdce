/* Hashing and rendezvous (highest-random-weight) placement.
 *
 * Every node of a job computes the same placement with no communication:
 * for a block key, each candidate node gets the weight
 * bb_hrw_weight(key, node_id) and the block lives on the `replicas` nodes
 * with the highest weights.  When a node leaves, only the keys that ranked
 * it among their top `replicas` move; every other key keeps its nodes and
 * their order.
 *
 * The hashes are fixed functions of their inputs (byte order included), so
 * nodes of different architectures agree; they are not cryptographic and
 * must not be used where an adversary picks keys to collide.
 */
#ifndef BB_COMMON_HRW_H
#define BB_COMMON_HRW_H

#include <stddef.h>
#include <stdint.h>

/* A bijective 64-bit finalizer (splitmix64-style xor-shift-multiply):
 * every input bit affects every output bit. */
uint64_t bb_mix64(uint64_t x);

/* A fast non-cryptographic hash of len bytes, reading 8-byte little-endian
 * words.  Different seeds give independent-looking hashes. */
uint64_t bb_hash64(const void *buf, size_t len, uint64_t seed);

/* The weight of node_id for key (higher wins). */
uint64_t bb_hrw_weight(uint64_t key, uint32_t node_id);

/* Write to out_idx the indices (into node_ids) of the min(replicas, n_nodes)
 * nodes with the highest weight for key, highest first; equal weights (a
 * duplicate node id) rank by lower index.  out_idx must hold that many ints.
 * Returns BB_OK, or BB_EINVAL for NULL arrays, n_nodes < 1 or replicas < 1.
 * Cost O(n_nodes * replicas), no allocation: meant for replicas much
 * smaller than n_nodes (replicas=all needs no placement at all). */
int bb_hrw_place(uint64_t key, const uint32_t *node_ids, int n_nodes, int replicas,
		 int *out_idx);

#endif
