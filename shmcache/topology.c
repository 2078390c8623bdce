/* NUMA discovery and binding through libnuma. */
#include "config.h"

#define BB_LOG_COMPONENT "shmcache"

#include <numa.h>
#include <numaif.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "shmcache/internal.h"
#include "shmcache/topology.h"

void bbc_topology_fake(struct bbc_topology *t, int n)
{
	memset(t, 0, sizeof(*t));
	if (n < 1)
		n = 1;
	if (n > BBC_MAX_ARENAS)
		n = BBC_MAX_ARENAS;
	t->n_nodes = n;
	for (int i = 0; i < BBC_MAX_CPUS; i++)
		t->cpu_node[i] = (int16_t)(i % n);
	for (int a = 0; a < BBC_MAX_ARENAS; a++)
		t->node_id[a] = -1;
	t->bind = NULL;
}

static int bind_preferred(void *addr, size_t len, int node)
{
	unsigned long mask[16] = {0};

	if (node < 0 || node >= (int)(sizeof(mask) * 8))
		return -1;
	mask[node / (8 * sizeof(long))] |= 1UL << (node % (8 * sizeof(long)));
	return (int)mbind(addr, len, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0);
}

int bbc_numa_topology(struct bbc_topology *t)
{
	const char *fake = getenv("BBCACHE_FAKE_NUMA");
	int arena_of_node[1024];

	if (fake && *fake) {
		bbc_topology_fake(t, atoi(fake));
		return BB_OK;
	}
	bbc_topology_fake(t, 1);
	if (numa_available() < 0)
		return BB_OK; /* no NUMA support: one arena, no binding */
	int max = numa_max_node();
	int n = 0;
	for (int node = 0; node <= max && node < 1024; node++) {
		arena_of_node[node] = -1;
		if (!numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)node) ||
		    n >= BBC_MAX_ARENAS)
			continue;
		arena_of_node[node] = n;
		t->node_id[n++] = node;
	}
	if (n <= 1) {
		t->node_id[0] = n == 1 ? t->node_id[0] : -1;
		t->n_nodes = 1;
		t->bind = n == 1 ? bind_preferred : NULL;
		return BB_OK;
	}
	t->n_nodes = n;
	t->bind = bind_preferred;
	for (int cpu = 0; cpu < BBC_MAX_CPUS; cpu++) {
		int node = numa_node_of_cpu(cpu);
		int a = node >= 0 && node <= max && node < 1024 ? arena_of_node[node] : -1;
		t->cpu_node[cpu] = (int16_t)(a >= 0 ? a : cpu % n);
	}
	return BB_OK;
}

int bbc_numa_arena_nodes(struct bbc_cache *c, int *nodes)
{
	for (uint32_t a = 0; a < c->hdr->n_arenas; a++) {
		int node = -1;
		void *p = c->base + c->hdr->arenas[a].data_off;
		if (get_mempolicy(&node, NULL, 0, p, MPOL_F_NODE | MPOL_F_ADDR) != 0)
			return BB_ESYS;
		nodes[a] = node;
	}
	return BB_OK;
}
