/* shmcache internals shared by its source files.  Not an API. */
#ifndef BB_SHMCACHE_INTERNAL_H
#define BB_SHMCACHE_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "shmcache/format.h"
#include "shmcache/shmcache.h"

struct bbc_cache {
	struct bbc_header *hdr; /* the mapping */
	char *base;             /* same address, for offset arithmetic */
	size_t map_len;
	int fd;                 /* keeps the client fcntl lock alive */
	int my_slot;            /* client slot, -1 until this process registers */
	struct bbc_client_stats *st; /* my_slot's statistics; NULL with my_slot -1 */
	int read_slow_only;     /* replicas may exist: bbc_read walks whole chains */
	pid_t my_pid;
	uint32_t n_buckets, n_runs, n_stripes_mask;
	uint32_t n_entries;        /* hdr->n_entries, on the hit path's own line */
	struct bbc_bucket *buckets;
	struct bbc_lock *stripes;
	struct bbc_entry *entries; /* entries[i] is index i + 1 */
	pthread_mutex_t reg_lock;  /* process-local: client registration */
	struct bbc_cache *next_attached; /* process-local list for atfork */
	int users;                 /* attach calls not yet detached (global lock) */
	dev_t dev;                 /* the segment file, to find an attachment */
	ino_t ino;
};

enum bbc_lock_kind { BBC_LK_STRIPE, BBC_LK_ARENA, BBC_LK_SLOTS };

/* Every lock of the segment goes through these: an EOWNERDEAD (the holder
 * died) is routed to bbc_lock_repair(), which rebuilds what the lock guards,
 * then the mutex is marked consistent. */
int bbc_lock_acquire(struct bbc_cache *c, struct bbc_lock *l, int kind, uint32_t id);
int bbc_lock_try(struct bbc_cache *c, struct bbc_lock *l, int kind, uint32_t id);
void bbc_lock_repair(struct bbc_cache *c, int kind, uint32_t id);
static inline void bbc_unlock(struct bbc_lock *l)
{
	pthread_mutex_unlock(&l->m);
}
#define BBC_LOCK(c, l, kind, id) bbc_lock_acquire((c), (l), (kind), (id))

static inline struct bbc_entry *bbc_entry_at(struct bbc_cache *c, uint32_t idx1)
{
	return &c->entries[idx1 - 1];
}

static inline uint64_t bbc_mix_hash(uint64_t file_id, uint64_t block)
{
	uint64_t h = file_id * 0x9e3779b97f4a7c15ULL ^ (block + 0x632be59bd9b4e019ULL);
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

/* The hash of a key's run: file ids that differ only in their low
 * BBC_BUCKET_RUN_SHIFT bits share it (same block number), so those files'
 * buckets are neighbours (see bbc_bucket_of). */
static inline uint64_t bbc_key_hash(uint64_t file_id, uint64_t block)
{
	return bbc_mix_hash(file_id >> BBC_BUCKET_RUN_SHIFT, block);
}

/* The bucket of a key whose bbc_key_hash is `hash`: the run chosen by the
 * hash's low 32 bits scaled to [0, n_buckets / run), then the file id's
 * low bits inside it.  Files read in the order of their ids (a scan in
 * manifest order) thus walk the bucket array line after line, which the
 * hardware prefetcher follows, instead of missing at a random line per
 * file; a random order costs what it did.  Within a run each bucket gets
 * one file of a run of ids, so the load per bucket is that of a hash of
 * the runs (docs/shmcache.md section 5). */
static inline uint32_t bbc_bucket_of_hash(struct bbc_cache *c, uint64_t file_id, uint64_t hash)
{
	return ((uint32_t)(((hash & 0xffffffffULL) * c->n_runs) >> 32) << BBC_BUCKET_RUN_SHIFT) |
	       (uint32_t)(file_id & (BBC_BUCKET_RUN - 1));
}

static inline uint32_t bbc_bucket_of(struct bbc_cache *c, uint64_t file_id, uint64_t block)
{
	return bbc_bucket_of_hash(c, file_id, bbc_key_hash(file_id, block));
}

/* The tag of a key in its bucket: hash bits the bucket index never uses
 * (at most 2^30 buckets). */
static inline uint8_t bbc_key_tag(uint64_t hash)
{
	return (uint8_t)(hash >> 56);
}

/* A bucket slot word: entry index + 1 and the page of its extent (0: no
 * hint; page 0 is the header, never an extent). */
static inline uint32_t bbc_slot_entry(uint64_t slot)
{
	return (uint32_t)slot;
}
static inline uint64_t bbc_slot_word(uint32_t idx1, uint64_t data_off)
{
	uint64_t page = data_off >> BBC_MIN_SHIFT;
	return (uint64_t)idx1 | (idx1 && page <= UINT32_MAX ? page << 32 : 0);
}

/* A walk over the entries of one bucket: its slots, then its overflow
 * chain.  Under the stripe lock it sees every entry once; lock-free, a
 * concurrent change may hide one (a false miss), and indices out of range
 * end the walk. */
struct bbc_walk {
	struct bbc_bucket *bk;
	uint32_t i;     /* next slot; BBC_BUCKET_SLOTS: the chain comes next */
	uint32_t cur;   /* in the chain: the entry last returned */
	uint32_t steps;
};

static inline void bbc_walk_start(struct bbc_cache *c, struct bbc_walk *w, uint32_t bucket)
{
	w->bk = &c->buckets[bucket];
	w->i = 0;
	w->cur = BBC_NIL;
	w->steps = 0;
}

/* The next entry (index + 1), or 0 at the end. */
static inline uint32_t bbc_walk_next(struct bbc_cache *c, struct bbc_walk *w)
{
	uint32_t n = c->hdr->n_entries, x;

	while (w->i < BBC_BUCKET_SLOTS) {
		x = bbc_slot_entry(atomic_load_explicit(&w->bk->slot[w->i++], memory_order_acquire));
		if (x && x <= n)
			return x;
	}
	if (w->i == BBC_BUCKET_SLOTS) {
		w->i++;
		x = atomic_load_explicit(&w->bk->chain, memory_order_acquire);
	} else if (w->cur) {
		x = __atomic_load_n(&c->entries[w->cur - 1].next, __ATOMIC_ACQUIRE);
	} else {
		return BBC_NIL;
	}
	if (x > n || ++w->steps > BBC_CHAIN_MAX)
		x = BBC_NIL; /* a torn read of a moving entry, or a loop */
	w->cur = x;
	return x;
}

static inline uint32_t bbc_stripe_of_bucket(struct bbc_cache *c, uint32_t bucket)
{
	return bucket & c->n_stripes_mask;
}

static inline struct bbc_client *bbc_client_at(struct bbc_cache *c, uint32_t slot)
{
	return (struct bbc_client *)(c->base + c->hdr->off_clients +
				     (uint64_t)slot * c->hdr->client_size);
}

static inline _Atomic uint32_t *bbc_client_refs(struct bbc_cache *c, uint32_t slot)
{
	return (_Atomic uint32_t *)((char *)bbc_client_at(c, slot) + sizeof(struct bbc_client));
}

/* Writers bracket changes that the lock-free reader looks at. */
static inline void bbc_gen_begin(struct bbc_entry *e)
{
	atomic_fetch_add_explicit(&e->gen, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}
static inline void bbc_gen_end(struct bbc_entry *e)
{
	atomic_thread_fence(memory_order_release);
	atomic_fetch_add_explicit(&e->gen, 1, memory_order_relaxed);
}

static inline uint32_t bbc_state(struct bbc_entry *e)
{
	return atomic_load_explicit(&e->state, memory_order_acquire) & BBC_ST_MASK;
}
/* Set the state byte (keeping nothing else) and wake sleepers if any. */
void bbc_set_state_wake(struct bbc_entry *e, uint32_t st);

/* segment.c */
int bbc_register(struct bbc_cache *c);
static inline int bbc_ensure_client(struct bbc_cache *c)
{
	return c->my_slot >= 0 ? BB_OK : bbc_register(c);
}
int bbc_client_dead(struct bbc_cache *c, uint32_t slot);
int bbc_futex_wait(_Atomic uint32_t *addr, uint32_t val, int timeout_ms);
void bbc_futex_wake(_Atomic uint32_t *addr);
int bbc_arena_for(struct bbc_cache *c, uint64_t file_id, uint64_t block, int node);
extern __thread int bbc_forced_arena;

/* alloc.c: buddy allocator; caller holds no lock */
void bbc_arena_init(struct bbc_cache *c, uint32_t a);
int bbc_extent_alloc(struct bbc_cache *c, uint32_t a, uint32_t len, struct bbc_entry *e);
void bbc_extent_free(struct bbc_cache *c, struct bbc_entry *e);
void do_bbc_arena_rebuild(struct bbc_cache *c, uint32_t a); /* arena lock held */
int bbc_order_for(uint32_t len);

/* index.c */
int bbc_entry_take(struct bbc_cache *c, uint32_t *idx1);
void bbc_entry_put(struct bbc_cache *c, uint32_t idx1);
void do_bbc_slots_rebuild(struct bbc_cache *c); /* slots lock held */
int bbc_evict_some(struct bbc_cache *c, int arena, int want_slots);
void do_bbc_unlink(struct bbc_cache *c, uint32_t bucket, uint32_t idx1);
void do_bbc_link(struct bbc_cache *c, uint32_t bucket, uint32_t idx1);
void do_bbc_set_tag(struct bbc_bucket *bk, int slot, uint8_t tag);

/* audit.c */
void do_bbc_stripe_repair(struct bbc_cache *c, uint32_t stripe); /* stripe lock held */
int bbc_audit_reclaim(struct bbc_cache *c, int reclaim_slot);

#endif
