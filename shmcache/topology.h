/* NUMA topology for shmcache, from libnuma.  Only the process that creates
 * a segment needs this (libbbshm_numa); readers find their arena from the
 * CPU map stored in the segment. */
#ifndef BB_SHMCACHE_TOPOLOGY_H
#define BB_SHMCACHE_TOPOLOGY_H

#include "shmcache/shmcache.h"

/* The machine's topology: one arena per NUMA node with memory (at most
 * BBC_MAX_ARENAS), bound with mbind(MPOL_PREFERRED).  $BBCACHE_FAKE_NUMA=N
 * replaces it by N arenas without binding (tests, benchmarks). */
int bbc_numa_topology(struct bbc_topology *t);
/* N arenas, CPU i served by arena i % N, no binding. */
void bbc_topology_fake(struct bbc_topology *t, int n);
/* The OS NUMA node holding the first page of each arena (filled up to
 * bbc_n_arenas()), by get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR). */
int bbc_numa_arena_nodes(struct bbc_cache *c, int *nodes);

#endif
