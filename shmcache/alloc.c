/* Extents: a buddy allocator per arena, 4 KiB to 64 MiB.
 *
 * The unit map (one struct bbc_unit per 4 KiB) holds the free lists; it is
 * derived state: which extents are allocated is recorded in the entries
 * (data_off, arena, order, written under the arena lock together with the
 * allocation), so a dead holder of the arena lock is repaired by rebuilding
 * the free lists from the entries (do_bbc_arena_rebuild).
 */
#include "config.h"

#define BB_LOG_COMPONENT "shmcache"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "shmcache/internal.h"

static struct bbc_unit *units_of(struct bbc_cache *c, struct bbc_arena *ar)
{
	return (struct bbc_unit *)(c->base + ar->unit_off);
}

int bbc_order_for(uint32_t len)
{
	int k = 0;
	while (k < BBC_MAX_ORDER && ((uint64_t)BBC_MIN_EXTENT << k) < len)
		k++;
	return k;
}

static void do_push(struct bbc_arena *ar, struct bbc_unit *un, uint64_t u, int k)
{
	uint32_t head = ar->free_head[k];

	un[u].order = (uint8_t)k;
	un[u].free = 1;
	un[u].prev = BBC_NIL;
	un[u].next = head;
	if (head)
		un[head - 1].prev = (uint32_t)u + 1;
	ar->free_head[k] = (uint32_t)u + 1;
}

static void do_remove(struct bbc_arena *ar, struct bbc_unit *un, uint64_t u, int k)
{
	if (un[u].prev)
		un[un[u].prev - 1].next = un[u].next;
	else
		ar->free_head[k] = un[u].next;
	if (un[u].next)
		un[un[u].next - 1].prev = un[u].prev;
	un[u].free = 0;
	un[u].next = un[u].prev = BBC_NIL;
}

/* Put [s, e) on the free lists as maximal aligned blocks. */
static void do_carve(struct bbc_arena *ar, struct bbc_unit *un, uint64_t s, uint64_t e)
{
	while (s < e) {
		int k = BBC_MAX_ORDER;
		while (k > 0 && ((s & ((1ULL << k) - 1)) || s + (1ULL << k) > e))
			k--;
		do_push(ar, un, s, k);
		s += 1ULL << k;
	}
}

void bbc_arena_init(struct bbc_cache *c, uint32_t a)
{
	struct bbc_arena *ar = &c->hdr->arenas[a];
	struct bbc_unit *un = units_of(c, ar);

	memset(ar->free_head, 0, sizeof(ar->free_head));
	memset(un, 0, ar->units * sizeof(*un));
	ar->used = 0;
	do_carve(ar, un, 0, ar->units);
}

int bbc_extent_alloc(struct bbc_cache *c, uint32_t a, uint32_t len, struct bbc_entry *e)
{
	struct bbc_arena *ar = &c->hdr->arenas[a];
	struct bbc_unit *un = units_of(c, ar);
	int k = bbc_order_for(len), j;
	int rc;

	rc = BBC_LOCK(c, &ar->lock, BBC_LK_ARENA, a);
	if (rc != BB_OK)
		return rc;
	for (j = k; j <= BBC_MAX_ORDER && !ar->free_head[j]; j++)
		;
	if (j > BBC_MAX_ORDER) {
		rc = BB_ENOSPC;
		goto out;
	}
	uint64_t u = ar->free_head[j] - 1;
	do_remove(ar, un, u, j);
	while (j > k) {
		j--;
		do_push(ar, un, u + (1ULL << j), j);
	}
	e->arena = (uint8_t)a;
	e->order = (uint8_t)k;
	e->data_off = ar->data_off + (u << BBC_MIN_SHIFT);
	ar->used += (uint64_t)BBC_MIN_EXTENT << k;
out:
	bbc_unlock(&ar->lock);
	return rc;
}

void bbc_extent_free(struct bbc_cache *c, struct bbc_entry *e)
{
	uint32_t a = e->arena;
	struct bbc_arena *ar = &c->hdr->arenas[a];
	struct bbc_unit *un = units_of(c, ar);

	if (BBC_LOCK(c, &ar->lock, BBC_LK_ARENA, a) != BB_OK)
		return;
	if (e->data_off == BBC_OFF_NONE)
		goto out; /* freed already (a repair got here first) */
	uint64_t u = (e->data_off - ar->data_off) >> BBC_MIN_SHIFT;
	int k = e->order;
	ar->used -= (uint64_t)BBC_MIN_EXTENT << k;
	e->data_off = BBC_OFF_NONE;
	while (k < BBC_MAX_ORDER) {
		uint64_t b = u ^ (1ULL << k);
		if (b + (1ULL << k) > ar->units || !un[b].free || un[b].order != k)
			break;
		do_remove(ar, un, b, k);
		if (b < u)
			u = b;
		k++;
	}
	do_push(ar, un, u, k);
out:
	bbc_unlock(&ar->lock);
}

void do_bbc_arena_rebuild(struct bbc_cache *c, uint32_t a)
{
	struct bbc_arena *ar = &c->hdr->arenas[a];
	struct bbc_unit *un = units_of(c, ar);
	uint8_t *busy = calloc(ar->units, 1);
	uint64_t used = 0;

	if (!busy) {
		bb_error("arena %u rebuild: out of memory; the arena is left empty", a);
		memset(ar->free_head, 0, sizeof(ar->free_head));
		return;
	}
	for (uint32_t i = 0; i < c->hdr->n_entries; i++) {
		struct bbc_entry *e = &c->entries[i];
		if (e->data_off == BBC_OFF_NONE || e->arena != a)
			continue;
		/* An extent being allocated in another arena right now may still
		 * carry our arena number: not ours, leave it alone. */
		if (e->data_off < ar->data_off || e->data_off >= ar->data_off + ar->size ||
		    e->order > BBC_MAX_ORDER)
			continue;
		uint64_t u = (e->data_off - ar->data_off) >> BBC_MIN_SHIFT;
		uint64_t n = 1ULL << e->order;
		if (u + n > ar->units)
			n = ar->units - u;
		memset(busy + u, 1, n);
		used += (uint64_t)BBC_MIN_EXTENT << e->order;
	}
	memset(ar->free_head, 0, sizeof(ar->free_head));
	memset(un, 0, ar->units * sizeof(*un));
	for (uint64_t s = 0; s < ar->units;) {
		if (busy[s]) {
			s++;
			continue;
		}
		uint64_t e = s;
		while (e < ar->units && !busy[e])
			e++;
		do_carve(ar, un, s, e);
		s = e;
	}
	ar->used = used;
	free(busy);
	bb_info("arena %u rebuilt: %llu bytes in use", a, (unsigned long long)used);
}
