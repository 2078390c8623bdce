/* shmcache: the node cache of one job, in a POSIX shared-memory segment.
 *
 * A segment holds an index (hash of (file id, block) -> extent) and one data
 * arena per NUMA node.  Any process of the job attaches it and reads hits
 * with no system call and no allocation; the agent (or any process) fills
 * misses through single-flight fills.  docs/shmcache.md describes the format,
 * the locking rules and eviction.
 *
 * This library (libbbshm) links libc only: it is linked into the LD_PRELOAD
 * interposer.  NUMA discovery and binding through libnuma live in
 * libbbshm_numa (shmcache/topology.h), used by the process that creates a segment.
 *
 * Return values: functions return an rc from common/error.h (BB_OK == 0),
 * except bbc_read(), which returns the number of bytes copied or -rc.
 */
#ifndef BB_SHMCACHE_H
#define BB_SHMCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BBC_MAX_ARENAS 8   /* NUMA nodes (arenas) per segment */
#define BBC_MAX_CPUS 1024  /* cpu -> arena map size */
#define BBC_MIN_EXTENT 4096u
#define BBC_MAX_EXTENT (64u << 20) /* largest block: 64 MiB */

enum bbc_numa_policy {
	BBC_NUMA_LOCAL = 0,  /* a block lives on the node of the process that fills it */
	BBC_NUMA_INTERLEAVE, /* blocks are spread over the arenas by hash */
	BBC_NUMA_REPLICATE,  /* like local, and a block read from a remote node
				gets a copy on the reader's node */
};

/* Which arena serves which CPU, and how to bind an arena's memory.
 * bbc_numa_topology() (topology.h) fills one from libnuma; tests inject fakes. */
struct bbc_topology {
	int n_nodes;                      /* arenas to create, 1..BBC_MAX_ARENAS */
	int16_t cpu_node[BBC_MAX_CPUS];   /* arena index for each CPU */
	int node_id[BBC_MAX_ARENAS];      /* OS NUMA node of each arena, -1: none */
	/* Bind [addr, addr+len) to OS node `node`; NULL: no binding. */
	int (*bind)(void *addr, size_t len, int node);
};

struct bbc_params {
	uint64_t job_id;
	uint64_t byte_limit;      /* data bytes over all arenas (the job's shm limit) */
	uint32_t n_entries;       /* index slots; 0: byte_limit / 16 KiB, >= 1024 */
	uint32_t n_clients;       /* attached processes at once; 0: 256 */
	uint32_t refs_per_client; /* pins one process may hold at once; 0: 256 */
	int policy;               /* enum bbc_numa_policy */
	const char *dir;          /* directory of the segment; NULL: /dev/shm */
	const struct bbc_topology *topo; /* NULL: one arena, no binding */
	uid_t owner;              /* (uid_t)-1: the caller; else chown to it */
};

struct bbc_cache; /* a process's handle on an attached segment */

/* A pinned extent (or one being filled).  Plain data, owned by the caller:
 * the hot path keeps it on the stack. */
struct bbc_ref {
	uint32_t entry;  /* index slot + 1; 0: none */
	uint32_t rec;    /* this process's reference record */
	uint32_t client; /* the client slot that holds the reference */
	uint32_t len;    /* valid bytes of the extent */
	void *data;      /* the extent's bytes in this process's mapping */
	int filling;     /* 1: the caller must write len bytes, then commit or abort */
};

struct bbc_stats {
	uint64_t hits, misses, fills, fill_waits, takeovers, failed_fills;
	uint64_t evictions, replicas, enospc;
	uint64_t audits;  /* audits that found a dead process */
	uint64_t repairs; /* locks repaired after their holder died */
	uint64_t bytes_read;
	uint64_t entries_used, entries_total;
	uint64_t bytes_used, bytes_total; /* extent bytes allocated / arena bytes */
	uint32_t clients;                 /* attached, live processes */
	uint32_t n_arenas;
	uint64_t arena_used[BBC_MAX_ARENAS];
	uint64_t arena_size[BBC_MAX_ARENAS];
};

/* ---- segments ---------------------------------------------------------- */

/* "<dir>/bbcache.<job_id>": the name carries the job id. */
int bbc_segment_path(const char *dir, uint64_t job_id, char *buf, size_t len);

/* Create and initialise a job's segment (mode 0600), bound per topology,
 * fully allocated (posix_fallocate) before use, so a full /dev/shm is
 * BB_ENOSPC here and never a SIGBUS later.  BB_EEXIST if it exists. */
int bbc_create(const struct bbc_params *p, struct bbc_cache **out);
/* Attach an existing segment; BB_ENOENT if none, BB_EBADSEG on a wrong magic,
 * format or size, BB_EPERM if not the caller's. */
int bbc_attach(const char *dir, uint64_t job_id, struct bbc_cache **out);
/* Unmap and close; pins still held by this process are released. */
void bbc_detach(struct bbc_cache *c);
/* Remove a job's segment name (mappings stay valid until detached). */
int bbc_unlink(const char *dir, uint64_t job_id);

/* ---- the hot path: no allocation, no system call on a hit --------------- */

/* Copy up to len bytes at offset off of block (file_id, block) into buf.
 * Returns bytes copied (0 at or past the end of the block), or -BB_ENOENT
 * when the block is not READY in the cache. */
long bbc_read(struct bbc_cache *c, uint64_t file_id, uint64_t block, uint64_t off,
	      void *buf, size_t len);

/* Pin a READY block: its bytes stay at ref->data until bbc_unpin().
 * BB_ENOENT if not READY; BB_EAGAIN if this process holds too many pins. */
int bbc_pin(struct bbc_cache *c, uint64_t file_id, uint64_t block, struct bbc_ref *ref);
void bbc_unpin(struct bbc_cache *c, struct bbc_ref *ref);

/* ---- fills (single flight) ---------------------------------------------- */

#define BBC_NOWAIT 0x1 /* a block being filled by another process: BB_EAGAIN */
#define BBC_NOFILL 0x2 /* do not start a fill: BB_ENOENT when absent */

/* Get block (file_id, block) of len bytes (1..BBC_MAX_EXTENT):
 *  - READY: pinned, ref->filling == 0;
 *  - absent, or a previous fill failed: a FILLING extent of len bytes is made
 *    for the caller (ref->filling == 1), who writes ref->data and then calls
 *    bbc_fill_commit() or bbc_fill_abort(); both keep the pin;
 *  - FILLING by another process: waits up to timeout_ms (< 0: forever) for it.
 *    If that process dies, one waiter takes the fill over (ref->filling == 1).
 *    A fill that the filler aborts gives its error to those waiting.
 * node: the arena (index into the topology's nodes) to place a new extent
 * in; -1: the arena of the caller's CPU.  Ignored with numa=interleave. */
int bbc_get(struct bbc_cache *c, uint64_t file_id, uint64_t block, uint32_t len, int node,
	    int flags, int timeout_ms, struct bbc_ref *ref);
int bbc_fill_commit(struct bbc_cache *c, struct bbc_ref *ref);
int bbc_fill_abort(struct bbc_cache *c, struct bbc_ref *ref, int rc);

/* Exempt a READY block from eviction (the working set), or make it evictable. */
int bbc_set_pinned(struct bbc_cache *c, uint64_t file_id, uint64_t block, int pinned);
/* Drop a block (READY or FAILED, not referenced): BB_EBUSY if referenced. */
int bbc_evict(struct bbc_cache *c, uint64_t file_id, uint64_t block);

/* ---- maintenance --------------------------------------------------------- */

/* Find processes that died attached, release their pins, fail their fills,
 * free what they left half done.  Cheap enough to call every few seconds. */
int bbc_audit(struct bbc_cache *c);
int bbc_get_stats(struct bbc_cache *c, struct bbc_stats *st);
/* The arena serving the calling CPU. */
int bbc_current_arena(struct bbc_cache *c);
uint32_t bbc_n_arenas(const struct bbc_cache *c);
int bbc_policy(const struct bbc_cache *c);
/* The arena holding READY block (file_id, block) for this CPU, or -1. */
int bbc_block_arena(struct bbc_cache *c, uint64_t file_id, uint64_t block);

/* Test hook: pretend the calling thread runs on `arena` (-1: real CPU). */
void bbc_test_set_arena(int arena);

#endif
