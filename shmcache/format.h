/* The shared-memory segment layout (format version 4).
 *
 * Everything in the segment is addressed by offsets from its start, never by
 * pointers: each process maps it at its own address.  All regions start on a
 * 64-byte line; data arenas start on 2 MiB so they can be bound per node.
 *
 *   [header][client slots][stripe locks][buckets][entries][arena unit maps][arena data...]
 *
 * Locking (see docs/shmcache.md):
 *   stripe lock s   guards buckets b with (b % n_stripes == s), their slots,
 *                   tags and overflow chains, and key/next/state/owner/flags
 *                   of the entries linked there; writers make entry.gen odd
 *                   while they change what the lock-free reader reads.
 *   arena lock a    guards arena a's free lists and unit map, and
 *                   entry.data_off/arena/order of extents in arena a.
 *   slots lock      guards the free list of index entries.
 *   Order when nested (only the audit nests): stripes ascending, arenas, slots.
 */
#ifndef BB_SHMCACHE_FORMAT_H
#define BB_SHMCACHE_FORMAT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "shmcache/shmcache.h"

#define BBC_MAGIC 0x3153484342434242ULL /* "BBCBHSH1" little-endian */
#define BBC_FORMAT_VERSION 4u /* 2: buckets are lines of tagged slots;
				  3: a slot carries its extent's page too;
				  4: neighbouring file ids, neighbouring buckets */
/* The format word: version in the high half, a hash of the sizes of the
 * structs that fix the layout in the low half, so a build with a different layout refuses
 * a segment even when someone forgot to bump the version. */
#define BBC_FORMAT_WORD                                                             \
	((BBC_FORMAT_VERSION << 16) |                                               \
	 (uint32_t)((((((((uint64_t)sizeof(struct bbc_bucket) * 131 +               \
			   sizeof(struct bbc_entry)) * 131 +                        \
			 sizeof(struct bbc_header)) * 131 +                         \
			sizeof(struct bbc_arena)) * 131 +                           \
		       sizeof(struct bbc_lock)) * 131 +                             \
		      sizeof(struct bbc_client)) * 131 +                            \
		     sizeof(struct bbc_unit)) % 65521))

#define BBC_LINE 64
#define BBC_ARENA_ALIGN (2u << 20)
#define BBC_MIN_SHIFT 12 /* 4 KiB: the smallest extent, one arena unit */
#define BBC_MAX_ORDER 14 /* 4 KiB << 14 = 64 MiB */
#define BBC_NIL 0u       /* "no entry": entry and unit links are index + 1 */
#define BBC_OFF_NONE UINT64_MAX
#define BBC_CHAIN_MAX 4096 /* a lock-free walk of an overflow chain gives up after this many steps */
#define BBC_BUCKET_SLOTS 6 /* entries a bucket line holds before its overflow chain */
#define BBC_ENTRIES_PER_BUCKET 4 /* n_buckets = ceil(n_entries / this), */
#define BBC_BUCKET_RUN_SHIFT 6    /* rounded up to runs of this many */
#define BBC_BUCKET_RUN (1u << BBC_BUCKET_RUN_SHIFT)
#define BBC_REPLICATE_AFTER 2 /* remote hits before a replica is made */
/* Client liveness: byte BBC_CLIENT_LOCK_BASE + slot of the segment file is
 * write-locked (fcntl) by the process using the slot, and the kernel drops
 * the lock when that process dies. */
#define BBC_CLIENT_LOCK_BASE (1ULL << 40)

/* Entry states; the low byte of entry.state, the futex word. */
enum bbc_state {
	BBC_ST_FREE = 0, /* on the slots free list */
	BBC_ST_NEW,      /* taken from the free list, not yet in a chain */
	BBC_ST_FILLING,  /* in a chain; owner is writing the extent */
	BBC_ST_READY,    /* in a chain; extent complete, immutable */
	BBC_ST_FAILED,   /* in a chain; err says why; the next get refills */
	BBC_ST_EVICTING, /* out of (or leaving) its chain; owner frees it */
};
#define BBC_ST_MASK 0xffu
#define BBC_ST_WAITERS 0x100u /* someone sleeps on the futex */

#define BBC_EF_PINNED 0x1 /* exempt from eviction */

struct bbc_lock {
	pthread_mutex_t m; /* robust, process-shared */
	uint32_t repairs;  /* times repaired after an owner died (under m) */
	char pad[BBC_LINE - sizeof(pthread_mutex_t) - sizeof(uint32_t)];
};
_Static_assert(sizeof(struct bbc_lock) == BBC_LINE, "bbc_lock is one line");

/* A bucket is one line.  An entry of the bucket sits in a slot, with an
 * 8-bit tag of its key (bbc_key_tag) in the same line, so a lookup reads
 * one line and then only the entry whose tag matches: keys that share a
 * bucket cost no extra miss.  A slot is one 64-bit word: the entry (index
 * + 1) in the low half and, in the high half, the page (segment offset >>
 * 12) of the entry's extent, so that the copy of a hit can start from the
 * bucket line while the entry line is still on its way (docs/shmcache.md
 * section 5).  Entries that find every slot taken hang from `chain` through
 * entry.next.  Tags and pages are hints: a reader trusts only the key and
 * data_off in the entry, and a stale hint at worst sends it down the slow
 * path. */
struct bbc_bucket {
	_Atomic uint64_t slot[BBC_BUCKET_SLOTS]; /* stripe lock: entry index + 1 (low 32 bits,
						    0: empty) | extent page << 32 */
	_Atomic uint64_t tags;     /* stripe lock: tag of slot i in byte i (bytes 6, 7: 0) */
	_Atomic uint32_t chain;    /* stripe lock: overflow chain, entry index + 1 */
	uint32_t pad;              /* 0 */
};
_Static_assert(sizeof(struct bbc_bucket) == BBC_LINE, "bbc_bucket is one line");

struct bbc_entry {
	uint64_t file_id;         /* stripe lock */
	uint64_t block;           /* stripe lock */
	uint64_t data_off;        /* arena lock: the extent, or BBC_OFF_NONE */
	_Atomic uint32_t gen;     /* stripe lock; odd while a writer changes the entry */
	_Atomic uint32_t state;   /* stripe lock (+ futex); enum bbc_state | WAITERS */
	uint32_t next;            /* stripe lock: overflow chain link, entry index + 1;
				     slots lock while FREE: free list link */
	uint32_t owner;           /* stripe lock: filling/evicting client slot + 1 */
	_Atomic uint32_t refcnt;  /* ++ under stripe lock, -- lock-free */
	uint32_t len;             /* stripe lock: valid bytes */
	uint32_t err;             /* stripe lock: rc of a FAILED fill */
	_Atomic uint32_t remote_hits; /* racy counter, a hint for replication */
	uint8_t arena;            /* arena lock */
	uint8_t order;            /* arena lock: extent is 4 KiB << order */
	uint8_t copy;             /* stripe lock: 0 primary, n+1 replica on arena n */
	uint8_t flags;            /* stripe lock: BBC_EF_* */
	_Atomic uint8_t clock;    /* racy: referenced since the hand last passed */
	uint8_t pad[3];
};
_Static_assert(sizeof(struct bbc_entry) == BBC_LINE, "bbc_entry is one line");

/* Buddy allocator metadata, one per 4 KiB unit of an arena. */
struct bbc_unit {
	uint32_t next, prev; /* arena lock: free list links, unit index + 1 */
	uint8_t order;       /* arena lock: order of the free block starting here */
	uint8_t free;        /* arena lock: 1 at the head of a free block */
	uint16_t pad;
};
_Static_assert(sizeof(struct bbc_unit) == 12, "bbc_unit layout");

struct bbc_arena {
	_Alignas(BBC_LINE) struct bbc_lock lock;
	uint64_t data_off;   /* const after init */
	uint64_t size;       /* const: bytes, a multiple of 4 KiB */
	uint64_t units;      /* const: size >> BBC_MIN_SHIFT */
	uint64_t unit_off;   /* const: offset of struct bbc_unit[units] */
	int32_t os_node;     /* const: bound NUMA node, -1 if none */
	uint32_t pad0;
	uint32_t free_head[BBC_MAX_ORDER + 1]; /* arena lock: unit index + 1 */
	uint32_t pad1;
	uint64_t used;       /* arena lock: bytes in allocated extents */
};
_Static_assert(sizeof(struct bbc_arena) % BBC_LINE == 0, "arena is whole lines");

/* Per-process slot: liveness (fcntl lock), pins, and statistics written
 * only by the owning process (no shared cache line on the hit path). */
struct bbc_client_stats {
	uint64_t hits, misses, fills, fill_waits, takeovers, failed_fills;
	uint64_t evictions, replicas, enospc, bytes_read;
};

struct bbc_client {
	_Alignas(BBC_LINE) _Atomic uint32_t pid; /* 0: free; written by the fcntl lock holder */
	uint32_t ref_hint;     /* owner only: where to look for a free record */
	struct bbc_client_stats st; /* owner only */
	/* followed by refs_per_client x _Atomic uint32_t: entry index + 1 */
};
_Static_assert(sizeof(struct bbc_client) % BBC_LINE == 0, "client is whole lines");

struct bbc_header {
	uint64_t magic;          /* written last by the initialiser */
	uint32_t format;         /* BBC_FORMAT_WORD */
	uint32_t header_size;
	uint64_t seg_size;
	uint64_t job_id;
	uint32_t owner_uid;
	uint32_t policy;
	uint32_t n_arenas;
	uint32_t n_buckets;      /* lines of struct bbc_bucket (any count) */
	uint32_t n_stripes;      /* power of two */
	uint32_t n_entries;
	uint32_t n_clients;
	uint32_t refs_per_client;
	uint32_t client_size;    /* bytes per client slot */
	uint32_t pad0;
	uint64_t byte_limit;
	uint64_t off_clients, off_stripes, off_buckets, off_entries;
	_Alignas(BBC_LINE) struct bbc_arena arenas[BBC_MAX_ARENAS];
	_Alignas(BBC_LINE) struct bbc_lock slots_lock;
	_Alignas(BBC_LINE) uint32_t free_entry; /* slots lock: free list head, index + 1 */
	uint32_t entries_used;   /* slots lock */
	_Alignas(BBC_LINE) _Atomic uint64_t clock_hand; /* lock-free */
	/* stripe 0 lock, or every stripe (audit): stats of exited clients */
	_Alignas(BBC_LINE) struct bbc_client_stats dead_st;
	_Atomic uint64_t audits, repairs;
	_Alignas(BBC_LINE) int16_t cpu_arena[BBC_MAX_CPUS]; /* const after init */
};
_Static_assert(sizeof(struct bbc_header) % BBC_LINE == 0, "header is whole lines");

#endif
