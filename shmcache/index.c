/* The index: lookups, the lock-free hit path, pins, single-flight fills,
 * CLOCK eviction, replication of hot blocks to the reader's NUMA node.
 *
 * A do_ prefix means the caller holds the stripe lock of the bucket.
 */
#include "config.h"

#define BB_LOG_COMPONENT "shmcache"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "shmcache/internal.h"

#define BB_LIKELY(x) __builtin_expect(!!(x), 1)
#define BB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RELAXED(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static inline struct bbc_client_stats *my_stats(struct bbc_cache *c)
{
	return &bbc_client_at(c, (uint32_t)c->my_slot)->st;
}

/* ---- entry slots ---------------------------------------------------------- */

int bbc_entry_take(struct bbc_cache *c, uint32_t *idx1)
{
	struct bbc_header *h = c->hdr;
	int rc = BBC_LOCK(c, &h->slots_lock, BBC_LK_SLOTS, 0);

	if (rc != BB_OK)
		return rc;
	if (!h->free_entry) {
		rc = BB_ENOSPC;
		goto out;
	}
	*idx1 = h->free_entry;
	struct bbc_entry *e = bbc_entry_at(c, *idx1);
	h->free_entry = e->next;
	h->entries_used++;
	e->next = BBC_NIL;
	e->owner = (uint32_t)c->my_slot + 1;
	e->flags = 0;
	e->err = 0;
	e->copy = 0;
	atomic_store(&e->refcnt, 0);
	atomic_store(&e->remote_hits, 0);
	atomic_store(&e->clock, 0);
	atomic_store(&e->state, BBC_ST_NEW);
out:
	bbc_unlock(&h->slots_lock);
	return rc;
}

void bbc_entry_put(struct bbc_cache *c, uint32_t idx1)
{
	struct bbc_header *h = c->hdr;
	struct bbc_entry *e = bbc_entry_at(c, idx1);

	if (e->data_off != BBC_OFF_NONE)
		bbc_extent_free(c, e);
	if (BBC_LOCK(c, &h->slots_lock, BBC_LK_SLOTS, 0) != BB_OK)
		return;
	if (bbc_state(e) != BBC_ST_FREE) { /* two auditors may both get here */
		atomic_store(&e->state, BBC_ST_FREE);
		e->owner = 0;
		e->next = h->free_entry;
		h->free_entry = idx1;
		h->entries_used--;
	}
	bbc_unlock(&h->slots_lock);
}

void do_bbc_slots_rebuild(struct bbc_cache *c)
{
	struct bbc_header *h = c->hdr;

	h->free_entry = BBC_NIL;
	h->entries_used = 0;
	for (uint32_t i = h->n_entries; i > 0; i--) {
		struct bbc_entry *e = bbc_entry_at(c, i);
		if (bbc_state(e) == BBC_ST_FREE) {
			e->next = h->free_entry;
			h->free_entry = i;
		} else {
			h->entries_used++;
		}
	}
}

/* ---- buckets (stripe lock held) ------------------------------------------ */

/* Remove idx1 from bucket's slots or overflow chain if it is there. */
void do_bbc_unlink(struct bbc_cache *c, uint32_t bucket, uint32_t idx1)
{
	struct bbc_bucket *bk = &c->buckets[bucket];

	for (int i = 0; i < BBC_BUCKET_SLOTS; i++) {
		if (bbc_slot_entry(atomic_load_explicit(&bk->slot[i], memory_order_relaxed)) ==
		    idx1) {
			atomic_store_explicit(&bk->slot[i], 0, memory_order_release);
			return;
		}
	}
	uint32_t prev = BBC_NIL, cur = atomic_load(&bk->chain);
	for (int steps = 0; cur && cur <= c->hdr->n_entries && steps < BBC_CHAIN_MAX; steps++) {
		struct bbc_entry *e = bbc_entry_at(c, cur);
		if (cur == idx1) {
			if (prev)
				__atomic_store_n(&bbc_entry_at(c, prev)->next, e->next,
						 __ATOMIC_RELEASE);
			else
				atomic_store_explicit(&bk->chain, e->next, memory_order_release);
			return;
		}
		prev = cur;
		cur = e->next;
	}
}

/* Tag byte i of the bucket (slot i's key), the other tags kept. */
void do_bbc_set_tag(struct bbc_bucket *bk, int i, uint8_t tag)
{
	uint64_t t = atomic_load_explicit(&bk->tags, memory_order_relaxed);
	t = (t & ~(0xffULL << (8 * i))) | (uint64_t)tag << (8 * i);
	atomic_store_explicit(&bk->tags, t, memory_order_relaxed);
}

/* Publish entry idx1, whose key and extent are set, in bucket: a free slot
 * with the key's tag (the tag first, so a reader that finds the slot mostly
 * finds the right tag too) and the extent's page beside the index, else
 * the head of the overflow chain. */
void do_bbc_link(struct bbc_cache *c, uint32_t bucket, uint32_t idx1)
{
	struct bbc_bucket *bk = &c->buckets[bucket];
	struct bbc_entry *e = bbc_entry_at(c, idx1);
	uint8_t tag = bbc_key_tag(bbc_key_hash(e->file_id, e->block));

	for (int i = 0; i < BBC_BUCKET_SLOTS; i++) {
		if (bbc_slot_entry(atomic_load_explicit(&bk->slot[i], memory_order_relaxed)) !=
		    BBC_NIL)
			continue;
		do_bbc_set_tag(bk, i, tag);
		atomic_store_explicit(&bk->slot[i], bbc_slot_word(idx1, e->data_off),
				      memory_order_release);
		return;
	}
	e->next = atomic_load(&bk->chain);
	atomic_store_explicit(&bk->chain, idx1, memory_order_release);
}

static int key_is(struct bbc_entry *e, uint64_t file_id, uint64_t block)
{
	return e->file_id == file_id && e->block == block;
}

/* Take entry idx1 out of its chain as ours to free (EVICTING, owned by us,
 * so an audit frees it if we die before bbc_entry_put()). */
static void do_take_out(struct bbc_cache *c, struct bbc_entry *e, uint32_t bucket, uint32_t idx1)
{
	bbc_gen_begin(e);
	e->owner = (uint32_t)c->my_slot + 1;
	bbc_set_state_wake(e, BBC_ST_EVICTING);
	do_bbc_unlink(c, bucket, idx1);
	bbc_gen_end(e);
}

/* The primary entry (copy 0) of a key, any state, or 0. */
static uint32_t do_find_primary(struct bbc_cache *c, uint32_t bucket, uint64_t file_id,
				uint64_t block)
{
	struct bbc_walk w;

	bbc_walk_start(c, &w, bucket);
	for (uint32_t cur; (cur = bbc_walk_next(c, &w));) {
		struct bbc_entry *e = bbc_entry_at(c, cur);
		if (key_is(e, file_id, block) && e->copy == 0)
			return cur;
	}
	return BBC_NIL;
}

/* The READY copy to read on arena `me`: a replica there, else the primary,
 * else any replica.  0 if none is READY. */
static uint32_t do_find_ready(struct bbc_cache *c, uint32_t bucket, uint64_t file_id,
			      uint64_t block, int me)
{
	struct bbc_walk w;
	uint32_t prim = 0, other = 0;

	bbc_walk_start(c, &w, bucket);
	for (uint32_t cur; (cur = bbc_walk_next(c, &w));) {
		struct bbc_entry *e = bbc_entry_at(c, cur);
		if (key_is(e, file_id, block) && bbc_state(e) == BBC_ST_READY) {
			if (e->copy == (uint8_t)(me + 1) || (e->copy == 0 && e->arena == me))
				return cur;
			if (e->copy == 0)
				prim = cur;
			else
				other = cur;
		}
	}
	return prim ? prim : other;
}

/* Take a reference record in this process's slot and count the pin. */
static int do_pin(struct bbc_cache *c, uint32_t idx1, struct bbc_ref *ref)
{
	uint32_t slot = (uint32_t)c->my_slot;
	struct bbc_client *cl = bbc_client_at(c, slot);
	_Atomic uint32_t *refs = bbc_client_refs(c, slot);
	uint32_t n = c->hdr->refs_per_client;
	struct bbc_entry *e = bbc_entry_at(c, idx1);

	for (uint32_t k = 0; k < n; k++) {
		uint32_t r = (cl->ref_hint + k) % n;
		uint32_t zero = 0;
		if (atomic_load_explicit(&refs[r], memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(&refs[r], &zero, idx1)) {
			cl->ref_hint = r + 1;
			atomic_fetch_add(&e->refcnt, 1);
			ref->entry = idx1;
			ref->rec = r;
			ref->client = slot;
			ref->len = e->len;
			ref->data = c->base + e->data_off;
			ref->filling = 0;
			return BB_OK;
		}
	}
	return BB_EAGAIN;
}

/* Drop the pin: count first, record second (an audit racing in between
 * counts one pin too many, which only delays an eviction). */
static void unpin_record(struct bbc_cache *c, struct bbc_ref *ref)
{
	atomic_fetch_sub(&bbc_entry_at(c, ref->entry)->refcnt, 1);
	atomic_store(&bbc_client_refs(c, ref->client)[ref->rec], 0);
}

void bbc_unpin(struct bbc_cache *c, struct bbc_ref *ref)
{
	if (!ref->entry)
		return;
	/* A pin inherited over fork() belongs to the parent. */
	if ((int)ref->client == c->my_slot)
		unpin_record(c, ref);
	ref->entry = 0;
	ref->data = NULL;
}

/* ---- the hit path --------------------------------------------------------- */

static void maybe_replicate(struct bbc_cache *c, uint64_t file_id, uint64_t block, int me);

/* The general lock-free read: replicas, collisions, retries, misses. */
__attribute__((noinline)) static long read_slow(struct bbc_cache *c, uint64_t file_id,
						uint64_t block, uint64_t off, void *buf, size_t len)
{
	uint32_t bucket = bbc_bucket_of(c, file_id, block);
	int replicate = c->hdr->policy == BBC_NUMA_REPLICATE && c->hdr->n_arenas > 1;
	int me = c->hdr->n_arenas > 1 ? bbc_current_arena(c) : 0;

	for (int attempt = 0; attempt < 4; attempt++) {
		struct bbc_entry *found = NULL, *prim = NULL;
		uint32_t gfound = 0, gprim = 0;
		int unstable = 0;
		struct bbc_walk w;

		bbc_walk_start(c, &w, bucket);
		for (uint32_t cur; (cur = bbc_walk_next(c, &w));) {
			struct bbc_entry *e = &c->entries[cur - 1];
			uint32_t g = atomic_load_explicit(&e->gen, memory_order_acquire);
			if (BB_UNLIKELY(g & 1)) {
				unstable = 1;
			} else if (RELAXED(e->file_id) == file_id && RELAXED(e->block) == block &&
				   (atomic_load_explicit(&e->state, memory_order_relaxed) &
				    BBC_ST_MASK) == BBC_ST_READY) {
				uint8_t copy = RELAXED(e->copy);
				if (BB_LIKELY(!replicate) ||
				    copy == (uint8_t)(me + 1) ||
				    (copy == 0 && RELAXED(e->arena) == me)) {
					found = e;
					gfound = g;
					break;
				}
				if (copy == 0 || !prim) {
					prim = e;
					gprim = g;
				}
			}
		}
		if (!found && prim) {
			found = prim;
			gfound = gprim;
		}
		if (!found) {
			if (unstable)
				continue;
			break;
		}
		uint64_t data_off = RELAXED(found->data_off);
		uint32_t elen = RELAXED(found->len);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&found->gen, memory_order_relaxed) != gfound)
			continue;
		if (BB_UNLIKELY(data_off >= c->map_len || elen > c->map_len - data_off))
			continue;
		size_t n = off >= elen ? 0 : (size_t)(elen - off) < len ? (size_t)(elen - off) : len;
		memcpy(buf, c->base + data_off + off, n);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&found->gen, memory_order_relaxed) != gfound)
			continue; /* evicted under us: the copy may be torn */
		if (!atomic_load_explicit(&found->clock, memory_order_relaxed))
			atomic_store_explicit(&found->clock, 1, memory_order_relaxed);
		if (BB_LIKELY(c->st != NULL) || bbc_register(c) == BB_OK) {
			c->st->hits++;
			c->st->bytes_read += n;
		}
		if (BB_UNLIKELY(replicate) && found == prim &&
		    atomic_fetch_add_explicit(&found->remote_hits, 1, memory_order_relaxed) + 1 >=
			    BBC_REPLICATE_AFTER)
			maybe_replicate(c, file_id, block, me);
		return (long)n;
	}
	if (c->my_slot >= 0 || bbc_register(c) == BB_OK)
		my_stats(c)->misses++;
	return -BB_ENOENT;
}

/* The first slot of bk whose tag is `tag`, or -1.  Exact zero-byte test
 * (no borrow from one byte into the next); bytes 6 and 7 hold no slot. */
static inline int first_tag_match(struct bbc_bucket *bk, uint8_t tag)
{
	const uint64_t ones = 0x0101010101010101ULL, low7 = 0x7f7f7f7f7f7f7f7fULL;
	uint64_t t = atomic_load_explicit(&bk->tags, memory_order_relaxed) ^ (ones * tag);

	t = ~(((t & low7) + low7) | t | low7) & 0x0000808080808080ULL;
	return BB_LIKELY(t) ? (int)(__builtin_ctzll(t) >> 3) : -1;
}

/* The hit path: the first slot of the bucket whose tag matches holds the
 * block, a primary, READY (the common case: one line for the bucket, one
 * for the entry, however many keys share the bucket).  Anything else goes
 * to read_slow, which walks every slot and the overflow chain.  Reads are
 * validated by the entry's generation before and after the copy, so a
 * block evicted or replaced meanwhile is never returned.
 *
 * The copy's source is the page the slot carries, not entry.data_off: the
 * checks of the entry are then only branches in front of the copy, which
 * the CPU predicts and runs past, so the copy and the entry line are
 * fetched at the same time instead of one after the other (a hit that
 * missed both lines took about 30 % longer than a bare copy in shuffled
 * order).  The page is used only when it is the entry's data_off, read
 * after the acquire of the generation, so what is copied is what the
 * seqlock protocol validates. */
long bbc_read(struct bbc_cache *c, uint64_t file_id, uint64_t block, uint64_t off, void *buf,
	      size_t len)
{
	struct bbc_client_stats *st = c->st;
	if (BB_UNLIKELY(c->read_slow_only | !st))
		return read_slow(c, file_id, block, off, buf, len);
	uint64_t h = bbc_key_hash(file_id, block);
	struct bbc_bucket *bk = &c->buckets[bbc_bucket_of_hash(c, file_id, h)];
	int i = first_tag_match(bk, bbc_key_tag(h));
	if (BB_UNLIKELY(i < 0))
		return read_slow(c, file_id, block, off, buf, len);
	uint64_t sw = atomic_load_explicit(&bk->slot[i], memory_order_acquire);
	uint32_t cur = bbc_slot_entry(sw);
	if (BB_UNLIKELY(cur - 1 >= c->n_entries)) /* empty (0 - 1 wraps) or corrupt */
		return read_slow(c, file_id, block, off, buf, len);
	uint64_t page_off = (sw >> 32) << BBC_MIN_SHIFT;
	struct bbc_entry *e = &c->entries[cur - 1];
	uint32_t g = atomic_load_explicit(&e->gen, memory_order_acquire);
	if (BB_UNLIKELY((g & 1) | (RELAXED(e->file_id) != file_id) | (RELAXED(e->block) != block) |
			((atomic_load_explicit(&e->state, memory_order_relaxed) & BBC_ST_MASK) !=
			 BBC_ST_READY)))
		return read_slow(c, file_id, block, off, buf, len);
	uint64_t data_off = RELAXED(e->data_off);
	uint64_t elen = RELAXED(e->len);
	/* The bytes after READY (the filler's release fence before it). */
	atomic_thread_fence(memory_order_acquire);
	/* A stale page (cannot be while the entry is linked, but a hint is
	 * not trusted), or a corrupt segment: the slow path.  data_off and
	 * elen may be torn if a writer is at work; the generation check after
	 * the copy catches that, and the bound keeps the copy in the mapping
	 * whatever they are. */
	if (BB_UNLIKELY(data_off != page_off || page_off + elen > c->map_len))
		return read_slow(c, file_id, block, off, buf, len);
	const char *src = c->base + page_off;
	/* Keep the compiler from taking src from data_off (equal here): the
	 * copy would wait for the entry line again. */
	__asm__("" : "+r"(src));
	size_t n;
	if (BB_LIKELY(off == 0 && len <= elen)) {
		n = len; /* a branch, not a select: the copy need not wait for elen */
	} else {
		n = off >= elen ? 0 : elen - off < len ? (size_t)(elen - off) : len;
		src += off < elen ? off : 0;
	}
	/* Count before the copy so that only e, g and n live across memcpy; a
	 * torn copy retried by read_slow then counts one hit twice. */
	st->hits++;
	st->bytes_read += n;
	memcpy(buf, src, n);
	atomic_thread_fence(memory_order_acquire);
	if (BB_UNLIKELY(atomic_load_explicit(&e->gen, memory_order_relaxed) != g))
		return read_slow(c, file_id, block, off, buf, len);
	if (BB_UNLIKELY(!atomic_load_explicit(&e->clock, memory_order_relaxed)))
		atomic_store_explicit(&e->clock, 1, memory_order_relaxed);
	return (long)n;
}

/* Pin without counting a hit or a miss (internal readers). */
static int pin_quiet(struct bbc_cache *c, uint64_t file_id, uint64_t block, struct bbc_ref *ref)
{
	uint32_t bucket = bbc_bucket_of(c, file_id, block);
	uint32_t s = bbc_stripe_of_bucket(c, bucket);
	int rc = bbc_ensure_client(c);

	ref->entry = 0;
	if (rc != BB_OK)
		return rc;
	rc = BBC_LOCK(c, &c->stripes[s], BBC_LK_STRIPE, s);
	if (rc != BB_OK)
		return rc;
	uint32_t idx = do_find_ready(c, bucket, file_id, block, bbc_current_arena(c));
	if (idx) {
		rc = do_pin(c, idx, ref);
		atomic_store_explicit(&bbc_entry_at(c, idx)->clock, 1, memory_order_relaxed);
	} else {
		rc = BB_ENOENT;
	}
	bbc_unlock(&c->stripes[s]);
	return rc;
}

int bbc_pin(struct bbc_cache *c, uint64_t file_id, uint64_t block, struct bbc_ref *ref)
{
	int rc = pin_quiet(c, file_id, block, ref);

	if (rc == BB_OK)
		my_stats(c)->hits++;
	else if (rc == BB_ENOENT)
		my_stats(c)->misses++;
	return rc;
}

int bbc_block_arena(struct bbc_cache *c, uint64_t file_id, uint64_t block)
{
	struct bbc_ref ref;
	int a = -1;

	if (pin_quiet(c, file_id, block, &ref) == BB_OK) {
		a = bbc_entry_at(c, ref.entry)->arena;
		bbc_unpin(c, &ref);
	}
	return a;
}

/* ---- eviction ------------------------------------------------------------- */

/* Free one READY or FAILED extent nobody references, by CLOCK: an entry read
 * since the hand last passed gets a second chance.  Busy stripes are skipped
 * (trylock), so eviction never waits behind a reader.  arena < 0: any. */
int bbc_evict_some(struct bbc_cache *c, int arena, int want_slots)
{
	struct bbc_header *h = c->hdr;
	uint64_t budget = 3ULL * h->n_entries + 16;

	(void)want_slots;
	for (uint64_t step = 0; step < budget; step++) {
		uint32_t i = (uint32_t)(atomic_fetch_add_explicit(&h->clock_hand, 1,
								  memory_order_relaxed) %
					h->n_entries);
		struct bbc_entry *e = &c->entries[i];
		uint32_t st = bbc_state(e);
		if (st != BBC_ST_READY && st != BBC_ST_FAILED)
			continue;
		if ((arena >= 0 && e->arena != arena) || atomic_load(&e->refcnt) ||
		    (e->flags & BBC_EF_PINNED))
			continue;
		if (atomic_load_explicit(&e->clock, memory_order_relaxed)) {
			atomic_store_explicit(&e->clock, 0, memory_order_relaxed);
			continue;
		}
		uint64_t file_id = RELAXED(e->file_id), block = RELAXED(e->block);
		uint32_t bucket = bbc_bucket_of(c, file_id, block);
		uint32_t s = bbc_stripe_of_bucket(c, bucket);
		if (bbc_lock_try(c, &c->stripes[s], BBC_LK_STRIPE, s) != BB_OK)
			continue;
		st = bbc_state(e);
		if ((st != BBC_ST_READY && st != BBC_ST_FAILED) || !key_is(e, file_id, block) ||
		    atomic_load(&e->refcnt) || (e->flags & BBC_EF_PINNED) ||
		    (arena >= 0 && e->arena != arena)) {
			bbc_unlock(&c->stripes[s]);
			continue;
		}
		do_take_out(c, e, bucket, i + 1);
		bbc_unlock(&c->stripes[s]);
		bbc_entry_put(c, i + 1);
		my_stats(c)->evictions++;
		return BB_OK;
	}
	return BB_ENOSPC;
}

int bbc_evict(struct bbc_cache *c, uint64_t file_id, uint64_t block)
{
	uint32_t bucket = bbc_bucket_of(c, file_id, block);
	uint32_t s = bbc_stripe_of_bucket(c, bucket);
	int rc = bbc_ensure_client(c);
	uint32_t victims[BBC_MAX_ARENAS + 1];
	int nv = 0;

	if (rc != BB_OK)
		return rc;
	rc = BBC_LOCK(c, &c->stripes[s], BBC_LK_STRIPE, s);
	if (rc != BB_OK)
		return rc;
	/* The primary and its replicas go together. */
	rc = BB_ENOENT;
	struct bbc_walk w;
	bbc_walk_start(c, &w, bucket);
	for (uint32_t cur; nv <= BBC_MAX_ARENAS && (cur = bbc_walk_next(c, &w));) {
		struct bbc_entry *e = bbc_entry_at(c, cur);
		if (key_is(e, file_id, block)) {
			uint32_t st = bbc_state(e);
			if (st == BBC_ST_FILLING || atomic_load(&e->refcnt)) {
				rc = BB_EBUSY;
				break;
			}
			victims[nv++] = cur;
		}
	}
	if (rc == BB_EBUSY || nv == 0) {
		bbc_unlock(&c->stripes[s]);
		return nv == 0 && rc != BB_EBUSY ? BB_ENOENT : rc;
	}
	for (int k = 0; k < nv; k++) {
		struct bbc_entry *e = bbc_entry_at(c, victims[k]);
		do_take_out(c, e, bucket, victims[k]);
	}
	bbc_unlock(&c->stripes[s]);
	for (int k = 0; k < nv; k++)
		bbc_entry_put(c, victims[k]);
	my_stats(c)->evictions += (uint64_t)nv;
	return BB_OK;
}

int bbc_set_pinned(struct bbc_cache *c, uint64_t file_id, uint64_t block, int pinned)
{
	uint32_t bucket = bbc_bucket_of(c, file_id, block);
	uint32_t s = bbc_stripe_of_bucket(c, bucket);
	int rc = BBC_LOCK(c, &c->stripes[s], BBC_LK_STRIPE, s);

	if (rc != BB_OK)
		return rc;
	uint32_t idx = do_find_primary(c, bucket, file_id, block);
	if (idx && bbc_state(bbc_entry_at(c, idx)) == BBC_ST_READY) {
		struct bbc_entry *e = bbc_entry_at(c, idx);
		e->flags = (uint8_t)(pinned ? (e->flags | BBC_EF_PINNED) : (e->flags & ~BBC_EF_PINNED));
	} else {
		rc = BB_ENOENT;
	}
	bbc_unlock(&c->stripes[s]);
	return rc;
}

/* ---- fills ---------------------------------------------------------------- */

/* A spare entry with an extent of len bytes on arena a, not in any chain;
 * evicts (CLOCK) when the arena or the entry slots are full. */
static int make_spare(struct bbc_cache *c, int a, uint32_t len, int may_evict, uint32_t *idx1)
{
	int rc;

	for (;;) {
		rc = bbc_entry_take(c, idx1);
		if (rc == BB_OK)
			break;
		if (rc != BB_ENOSPC || !may_evict || bbc_evict_some(c, -1, 1) != BB_OK)
			return rc;
	}
	struct bbc_entry *e = bbc_entry_at(c, *idx1);
	e->len = len;
	for (;;) {
		rc = bbc_extent_alloc(c, (uint32_t)a, len, e);
		if (rc != BB_ENOSPC || !may_evict)
			break;
		if (bbc_evict_some(c, a, 0) != BB_OK) {
			my_stats(c)->enospc++;
			break;
		}
	}
	if (rc != BB_OK) {
		bbc_entry_put(c, *idx1);
		*idx1 = 0;
	}
	return rc;
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Sleep until entry e leaves FILLING, for at most ms. */
static void wait_fill(struct bbc_entry *e, int ms)
{
	uint32_t s = atomic_load(&e->state);

	if ((s & BBC_ST_MASK) != BBC_ST_FILLING)
		return;
	if (!(s & BBC_ST_WAITERS)) {
		if (!atomic_compare_exchange_strong(&e->state, &s, s | BBC_ST_WAITERS))
			return; /* it changed: look again */
		s |= BBC_ST_WAITERS;
	}
	bbc_futex_wait(&e->state, s, ms);
}

int bbc_get(struct bbc_cache *c, uint64_t file_id, uint64_t block, uint32_t len, int node,
	    int flags, int timeout_ms, struct bbc_ref *ref)
{
	uint32_t bucket = bbc_bucket_of(c, file_id, block);
	uint32_t s = bbc_stripe_of_bucket(c, bucket);
	uint32_t spare = 0;
	int waited = 0, rc;
	struct timespec t0;

	ref->entry = 0;
	ref->filling = 0;
	if (len == 0 || len > BBC_MAX_EXTENT)
		return BB_EINVAL;
	rc = bbc_ensure_client(c);
	if (rc != BB_OK)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int a = bbc_arena_for(c, file_id, block, node);
	/* Never evict a whole arena for a block that cannot fit in it. */
	if (((uint64_t)BBC_MIN_EXTENT << bbc_order_for(len)) > c->hdr->arenas[a].size)
		return BB_ETOOBIG;

	for (;;) {
		rc = BBC_LOCK(c, &c->stripes[s], BBC_LK_STRIPE, s);
		if (rc != BB_OK)
			break;
		uint32_t idx = do_find_ready(c, bucket, file_id, block, bbc_current_arena(c));
		if (idx) {
			rc = do_pin(c, idx, ref);
			bbc_unlock(&c->stripes[s]);
			if (rc == BB_OK)
				my_stats(c)->hits++;
			break;
		}
		idx = do_find_primary(c, bucket, file_id, block);
		struct bbc_entry *e = idx ? bbc_entry_at(c, idx) : NULL;
		uint32_t st = e ? bbc_state(e) : BBC_ST_FREE;

		if (st == BBC_ST_FILLING) {
			uint32_t owner = e->owner;
			bbc_unlock(&c->stripes[s]);
			long left = timeout_ms < 0 ? 50 : timeout_ms - elapsed_ms(&t0);
			if ((flags & BBC_NOWAIT) || left <= 0) {
				rc = (flags & BBC_NOWAIT) ? BB_EAGAIN : BB_ETIMEDOUT;
				break;
			}
			if (!waited)
				my_stats(c)->fill_waits++;
			waited = 1;
			wait_fill(e, left < 50 ? (int)left : 50);
			/* A filler that died leaves FILLING forever: the audit
			 * turns it into FAILED(BB_EDEAD) and we take over. */
			if (bbc_state(e) == BBC_ST_FILLING && owner &&
			    bbc_client_dead(c, owner - 1))
				bbc_audit(c);
			continue;
		}
		if (st == BBC_ST_FAILED && waited && e->err != BB_EDEAD) {
			/* The fill we waited for failed: its error is ours. */
			rc = e->err ? (int)e->err : BB_EFILL;
			bbc_unlock(&c->stripes[s]);
			break;
		}
		if (st == BBC_ST_FAILED) {
			/* Refill: drop the failed entry and start afresh. */
			if (e->err == BB_EDEAD)
				my_stats(c)->takeovers++;
			do_take_out(c, e, bucket, idx);
			bbc_unlock(&c->stripes[s]);
			bbc_entry_put(c, idx);
			continue;
		}
		/* Absent. */
		if (flags & BBC_NOFILL) {
			bbc_unlock(&c->stripes[s]);
			rc = BB_ENOENT;
			break;
		}
		if (!spare) {
			bbc_unlock(&c->stripes[s]);
			rc = make_spare(c, a, len, 1, &spare);
			if (rc != BB_OK)
				break;
			continue; /* someone may have started this fill meanwhile */
		}
		e = bbc_entry_at(c, spare);
		bbc_gen_begin(e);
		e->file_id = file_id;
		e->block = block;
		e->copy = 0;
		e->len = len;
		e->err = 0;
		e->owner = (uint32_t)c->my_slot + 1;
		atomic_store(&e->state, BBC_ST_FILLING);
		rc = do_pin(c, spare, ref);
		if (rc != BB_OK) {
			atomic_store(&e->state, BBC_ST_NEW);
			bbc_gen_end(e);
			bbc_unlock(&c->stripes[s]);
			break;
		}
		do_bbc_link(c, bucket, spare);
		bbc_gen_end(e);
		bbc_unlock(&c->stripes[s]);
		spare = 0;
		ref->filling = 1;
		my_stats(c)->fills++;
		break;
	}
	if (spare)
		bbc_entry_put(c, spare);
	return rc;
}

/* Lock the stripe of the entry a fill reference names; *sp: the stripe. */
static int lock_fill(struct bbc_cache *c, const struct bbc_ref *ref, struct bbc_entry **ep,
		     uint32_t *sp)
{
	if (!ref->entry || !ref->filling)
		return BB_EINVAL;
	*ep = bbc_entry_at(c, ref->entry);
	*sp = bbc_stripe_of_bucket(c, bbc_bucket_of(c, (*ep)->file_id, (*ep)->block));
	return BBC_LOCK(c, &c->stripes[*sp], BBC_LK_STRIPE, *sp);
}

/* Still our fill?  Not if an audit took us for dead (stripe lock held). */
static int do_own_fill(struct bbc_cache *c, struct bbc_entry *e)
{
	return bbc_state(e) == BBC_ST_FILLING && e->owner == (uint32_t)c->my_slot + 1;
}

int bbc_fill_commit(struct bbc_cache *c, struct bbc_ref *ref)
{
	struct bbc_entry *e;
	uint32_t s;
	int rc = lock_fill(c, ref, &e, &s);

	if (rc != BB_OK)
		return rc;
	if (!do_own_fill(c, e)) {
		/* An audit decided we were dead: we were not, but our fill is gone. */
		bbc_unlock(&c->stripes[s]);
		return BB_EDEAD;
	}
	atomic_thread_fence(memory_order_release); /* the bytes before READY */
	e->owner = 0;
	bbc_set_state_wake(e, BBC_ST_READY);
	bbc_unlock(&c->stripes[s]);
	ref->filling = 0;
	return BB_OK;
}

int bbc_fill_abort(struct bbc_cache *c, struct bbc_ref *ref, int err)
{
	struct bbc_entry *e;
	uint32_t s;
	int rc = lock_fill(c, ref, &e, &s);

	if (rc != BB_OK)
		return rc;
	unpin_record(c, ref); /* a FAILED entry is never referenced */
	if (do_own_fill(c, e)) {
		e->err = (uint32_t)(err > 0 && err < BB_NERRORS ? err : BB_EFILL);
		e->owner = 0;
		bbc_set_state_wake(e, BBC_ST_FAILED);
	}
	bbc_unlock(&c->stripes[s]);
	ref->entry = 0;
	ref->data = NULL;
	ref->filling = 0;
	my_stats(c)->failed_fills++;
	return BB_OK;
}

/* ---- NUMA replication ----------------------------------------------------- */

/* Give block (file_id, block) a READY copy on arena `me`.  Best effort: no
 * eviction for it, and any failure leaves the reader with the primary. */
static void maybe_replicate(struct bbc_cache *c, uint64_t file_id, uint64_t block, int me)
{
	uint32_t bucket = bbc_bucket_of(c, file_id, block);
	uint32_t s = bbc_stripe_of_bucket(c, bucket);
	struct bbc_ref src;
	uint32_t spare = 0;

	if (pin_quiet(c, file_id, block, &src) != BB_OK)
		return;
	struct bbc_entry *pe = bbc_entry_at(c, src.entry);
	if (pe->copy != 0 || pe->arena == me)
		goto out; /* a local copy exists already */
	if (make_spare(c, me, src.len, 0, &spare) != BB_OK)
		goto out;
	struct bbc_entry *e = bbc_entry_at(c, spare);
	memcpy(c->base + e->data_off, src.data, src.len);
	atomic_thread_fence(memory_order_release);
	if (BBC_LOCK(c, &c->stripes[s], BBC_LK_STRIPE, s) != BB_OK)
		goto out;
	int exists = 0;
	struct bbc_walk w;
	bbc_walk_start(c, &w, bucket);
	for (uint32_t cur; (cur = bbc_walk_next(c, &w));) {
		struct bbc_entry *x = bbc_entry_at(c, cur);
		if (key_is(x, file_id, block) && x->copy == (uint8_t)(me + 1))
			exists = 1;
	}
	if (!exists) {
		bbc_gen_begin(e);
		e->file_id = file_id;
		e->block = block;
		e->copy = (uint8_t)(me + 1);
		e->len = src.len;
		e->owner = 0;
		atomic_store(&e->state, BBC_ST_READY);
		do_bbc_link(c, bucket, spare);
		bbc_gen_end(e);
		spare = 0;
		my_stats(c)->replicas++;
	}
	bbc_unlock(&c->stripes[s]);
out:
	if (spare)
		bbc_entry_put(c, spare);
	bbc_unpin(c, &src);
}
