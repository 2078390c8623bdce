/* Repair after a process dies: stripes left mid-change, pins never released,
 * fills never finished, entries and extents half taken or half freed.
 *
 * The truth about pins is the reference records of live processes; an
 * entry's refcnt is a cache of their count, recomputed here.
 */
#include "config.h"

#define BB_LOG_COMPONENT "shmcache"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "shmcache/internal.h"

static int slot_dead(struct bbc_cache *c, uint32_t i, int reclaim_slot)
{
	if ((int)i == reclaim_slot)
		return 1;
	if (atomic_load(&bbc_client_at(c, i)->pid) == 0)
		return 0;
	return bbc_client_dead(c, i);
}

/* refcnt of entries in stripe s (or every stripe if s < 0) from the records
 * of live clients. */
static void do_recount(struct bbc_cache *c, int64_t s, int reclaim_slot)
{
	struct bbc_header *h = c->hdr;
	uint32_t *counts = calloc(h->n_entries, sizeof(*counts));

	if (!counts)
		return; /* keep the old counts: at worst an extent is kept too long */
	for (uint32_t i = 0; i < h->n_clients; i++) {
		if (atomic_load(&bbc_client_at(c, i)->pid) == 0 || slot_dead(c, i, reclaim_slot))
			continue;
		_Atomic uint32_t *refs = bbc_client_refs(c, i);
		for (uint32_t r = 0; r < h->refs_per_client; r++) {
			uint32_t e = atomic_load(&refs[r]);
			if (e && e <= h->n_entries)
				counts[e - 1]++;
		}
	}
	for (uint32_t i = 0; i < h->n_entries; i++) {
		struct bbc_entry *e = &c->entries[i];
		if (s >= 0 && bbc_stripe_of_bucket(c, bbc_bucket_of(c, e->file_id, e->block)) !=
				      (uint32_t)s)
			continue;
		if (bbc_state(e) != BBC_ST_FREE)
			atomic_store(&e->refcnt, counts[i]);
	}
	free(counts);
}

/* May entry x stay linked in a bucket?  Makes an odd generation even. */
static int do_repair_keep(struct bbc_cache *c, uint32_t x)
{
	struct bbc_entry *e = bbc_entry_at(c, x);
	uint32_t st = bbc_state(e);

	if (atomic_load(&e->gen) & 1)
		atomic_fetch_add(&e->gen, 1);
	/* Half inserted or half evicted: out of the bucket; the audit frees it
	 * once its owner is known dead. */
	return st == BBC_ST_FILLING || st == BBC_ST_READY || st == BBC_ST_FAILED;
}

void do_bbc_stripe_repair(struct bbc_cache *c, uint32_t stripe)
{
	for (uint32_t b = stripe; b < c->hdr->n_buckets; b += c->hdr->n_stripes) {
		struct bbc_bucket *bk = &c->buckets[b];
		for (int i = 0; i < BBC_BUCKET_SLOTS; i++) {
			uint32_t x = bbc_slot_entry(atomic_load(&bk->slot[i]));
			if (!x) {
				atomic_store(&bk->slot[i], 0); /* no page without an entry */
				continue;
			}
			if (x > c->hdr->n_entries || !do_repair_keep(c, x)) {
				atomic_store(&bk->slot[i], 0);
				continue;
			}
			struct bbc_entry *e = bbc_entry_at(c, x);
			do_bbc_set_tag(bk, i, bbc_key_tag(bbc_key_hash(e->file_id, e->block)));
			atomic_store(&bk->slot[i], bbc_slot_word(x, e->data_off));
		}
		uint32_t prev = BBC_NIL, cur = atomic_load(&bk->chain);
		for (int steps = 0; cur && steps < BBC_CHAIN_MAX; steps++) {
			if (cur > c->hdr->n_entries) { /* cannot be: cut the chain here */
				if (prev)
					bbc_entry_at(c, prev)->next = BBC_NIL;
				else
					atomic_store(&bk->chain, BBC_NIL);
				break;
			}
			uint32_t next = bbc_entry_at(c, cur)->next;
			if (!do_repair_keep(c, cur)) {
				if (prev)
					bbc_entry_at(c, prev)->next = next;
				else
					atomic_store(&bk->chain, next);
			} else {
				prev = cur;
			}
			cur = next;
		}
	}
	do_recount(c, stripe, -1);
}

int bbc_audit_reclaim(struct bbc_cache *c, int reclaim_slot)
{
	struct bbc_header *h = c->hdr;
	uint32_t ndead = 0, nfree = 0, *to_free = NULL;
	uint8_t *dead;
	int rc = BB_OK;
	uint32_t locked = 0;

	dead = calloc(h->n_clients, 1);
	/* (reclaim_slot may be our own slot: bbc_detach leaves this way.) */
	if (!dead)
		return BB_ENOMEM;
	for (uint32_t i = 0; i < h->n_clients; i++) {
		dead[i] = (uint8_t)slot_dead(c, i, reclaim_slot);
		ndead += dead[i];
	}
	if (!ndead)
		goto out;
	to_free = calloc(h->n_entries, sizeof(*to_free));
	if (!to_free) {
		rc = BB_ENOMEM;
		goto out;
	}
	for (locked = 0; locked < h->n_stripes; locked++) {
		rc = BBC_LOCK(c, &c->stripes[locked], BBC_LK_STRIPE, locked);
		if (rc != BB_OK)
			goto unlock;
	}
	/* With every stripe held, no pin or fill can change under us. */
	for (uint32_t i = 0; i < h->n_clients; i++) {
		if (!dead[i])
			continue;
		struct bbc_client *cl = bbc_client_at(c, i);
		uint64_t *d = (uint64_t *)&h->dead_st, *s = (uint64_t *)&cl->st;
		for (size_t k = 0; k < sizeof(cl->st) / 8; k++)
			d[k] += s[k];
		memset(&cl->st, 0, sizeof(cl->st));
		_Atomic uint32_t *refs = bbc_client_refs(c, i);
		for (uint32_t r = 0; r < h->refs_per_client; r++)
			atomic_store(&refs[r], 0);
		if ((int)i != reclaim_slot)
			atomic_store(&cl->pid, 0);
		if ((int)i == c->my_slot && (int)i == reclaim_slot)
			cl->ref_hint = 0;
	}
	do_recount(c, -1, reclaim_slot);
	for (uint32_t i = 0; i < h->n_entries; i++) {
		struct bbc_entry *e = &c->entries[i];
		uint32_t st = bbc_state(e);
		/* With every stripe held no writer is inside a change: an odd
		 * generation is a dead writer's, on an entry out of any chain. */
		if (atomic_load(&e->gen) & 1)
			atomic_fetch_add(&e->gen, 1);
		/* NEW and EVICTING always name an owner; without one they
		 * are orphans a repair cut out of a chain. */
		int orphan = !e->owner && (st == BBC_ST_NEW || st == BBC_ST_EVICTING);
		if (!orphan && (!e->owner || e->owner > h->n_clients || !dead[e->owner - 1]))
			continue;
		if (st == BBC_ST_FILLING) {
			bb_warn("job %llu: the filler of block %llu of file %llu died: "
				"a waiter will refill it",
				(unsigned long long)h->job_id, (unsigned long long)e->block,
				(unsigned long long)e->file_id);
			e->err = BB_EDEAD;
			e->owner = 0;
			bbc_set_state_wake(e, BBC_ST_FAILED);
		} else if (st == BBC_ST_NEW || st == BBC_ST_EVICTING) {
			if (st == BBC_ST_EVICTING)
				do_bbc_unlink(c, bbc_bucket_of(c, e->file_id, e->block), i + 1);
			to_free[nfree++] = i + 1;
		}
	}
unlock:
	while (locked > 0)
		bbc_unlock(&c->stripes[--locked]);
	for (uint32_t k = 0; k < nfree; k++)
		bbc_entry_put(c, to_free[k]);
	if (reclaim_slot < 0 || reclaim_slot != c->my_slot) {
		atomic_fetch_add(&h->audits, 1);
		bb_info("job %llu: released what %u dead process(es) held",
			(unsigned long long)h->job_id, ndead);
	}
out:
	free(to_free);
	free(dead);
	return rc;
}

int bbc_audit(struct bbc_cache *c)
{
	return bbc_audit_reclaim(c, -1);
}

int bbc_get_stats(struct bbc_cache *c, struct bbc_stats *st)
{
	struct bbc_header *h = c->hdr;
	struct bbc_client_stats sum = h->dead_st;

	memset(st, 0, sizeof(*st));
	for (uint32_t i = 0; i < h->n_clients; i++) {
		struct bbc_client *cl = bbc_client_at(c, i);
		if (atomic_load(&cl->pid) == 0)
			continue;
		if (!bbc_client_dead(c, i))
			st->clients++;
		uint64_t *d = (uint64_t *)&sum, *s = (uint64_t *)&cl->st;
		for (size_t k = 0; k < sizeof(sum) / 8; k++)
			d[k] += s[k];
	}
	st->hits = sum.hits;
	st->misses = sum.misses;
	st->fills = sum.fills;
	st->fill_waits = sum.fill_waits;
	st->takeovers = sum.takeovers;
	st->failed_fills = sum.failed_fills;
	st->evictions = sum.evictions;
	st->replicas = sum.replicas;
	st->enospc = sum.enospc;
	st->bytes_read = sum.bytes_read;
	st->audits = atomic_load(&h->audits);
	st->repairs = atomic_load(&h->repairs);
	st->entries_used = h->entries_used;
	st->entries_total = h->n_entries;
	st->n_arenas = h->n_arenas;
	st->bytes_total = h->byte_limit;
	for (uint32_t a = 0; a < h->n_arenas; a++) {
		st->arena_used[a] = h->arenas[a].used;
		st->arena_size[a] = h->arenas[a].size;
		st->bytes_used += h->arenas[a].used;
	}
	return BB_OK;
}
