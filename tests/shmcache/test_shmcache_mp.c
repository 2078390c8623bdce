/* Multi-process stress: workers fill, read, pin and hold locks on a key
 * space five times the cache while the parent SIGKILLs them at random and
 * starts new ones.  Every byte read is checked; at the end the segment's
 * invariants must hold: no leaked pin, no stuck fill, allocator and index
 * agree.  $BBC_STRESS_SECONDS sets the length (default 8). */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "common/error.h"
#include "shmcache/internal.h"
#include "shmcache/topology.h"
#include "shmtest.h"

enum { WORKERS = 4, BLOCKS = 600, FILE_ID = 77 };

struct shared_counts {
	_Atomic uint64_t verified, filled, pinned, lock_holds, timeouts, corrupt, errors;
};

static uint32_t block_len(uint64_t b)
{
	return 4096 + (uint32_t)((b * 7919) % (60 * 1024));
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void worker(struct bbc_cache *c, struct shared_counts *k, uint64_t seed)
{
	static char buf[128 * 1024];
	uint64_t s = seed | 1;

	for (;;) {
		uint64_t b = rnd(&s) % BLOCKS;
		uint32_t len = block_len(b);
		unsigned op = (unsigned)(rnd(&s) % 100);
		struct bbc_ref ref;
		int rc;

		if (op < 55) {
			long n = bbc_read(c, FILE_ID, b, 0, buf, sizeof(buf));
			if (n >= 0) {
				if (n != (long)len || !shmtest_check(buf, FILE_ID, b, 0, len))
					k->corrupt++;
				else
					k->verified++;
			}
		} else if (op < 90) {
			rc = bbc_get(c, FILE_ID, b, len, (int)(rnd(&s) % 2), 0, 5000, &ref);
			if (rc == BB_ETIMEDOUT) {
				k->timeouts++;
				continue;
			}
			if (rc != BB_OK) {
				if (rc != BB_ENOSPC && rc != BB_EDEAD)
					k->errors++;
				continue;
			}
			if (ref.filling) {
				/* Write in two halves, sometimes pausing between:
				 * a kill here leaves a half-written FILLING block. */
				shmtest_fill(ref.data, FILE_ID, b, len / 2);
				if (rnd(&s) % 8 == 0)
					usleep(500);
				shmtest_fill(ref.data, FILE_ID, b, len);
				if (bbc_fill_commit(c, &ref) != BB_OK) {
					bbc_unpin(c, &ref);
					continue;
				}
				k->filled++;
			}
			if (!shmtest_check(ref.data, FILE_ID, b, 0, len))
				k->corrupt++;
			else
				k->verified++;
			bbc_unpin(c, &ref);
		} else if (op < 97) {
			if (bbc_pin(c, FILE_ID, b, &ref) != BB_OK)
				continue;
			usleep(200); /* hold the reference: kills land here */
			if (!shmtest_check(ref.data, FILE_ID, b, 0, len))
				k->corrupt++;
			else
				k->pinned++;
			bbc_unpin(c, &ref);
		} else {
			/* Hold a stripe lock for a while, as a long critical
			 * section would: a kill here must be repaired. */
			uint32_t st = (uint32_t)(rnd(&s) % c->hdr->n_stripes);
			if (BBC_LOCK(c, &c->stripes[st], BBC_LK_STRIPE, st) != BB_OK) {
				k->errors++;
				continue;
			}
			usleep(300);
			bbc_unlock(&c->stripes[st]);
			k->lock_holds++;
		}
	}
}

static pid_t spawn(struct bbc_cache *c, struct shared_counts *k, uint64_t seed)
{
	pid_t pid = fork();
	if (pid == 0) {
		worker(c, k, seed);
		_exit(0);
	}
	return pid;
}

/* Walk arena a's free lists: bytes free. */
static uint64_t free_bytes(struct bbc_cache *c, uint32_t a)
{
	struct bbc_arena *ar = &c->hdr->arenas[a];
	struct bbc_unit *un = (struct bbc_unit *)(c->base + ar->unit_off);
	uint64_t sum = 0;

	for (int k = 0; k <= BBC_MAX_ORDER; k++)
		for (uint32_t u = ar->free_head[k], n = 0; u && n < ar->units; n++) {
			CU_ASSERT(un[u - 1].free && un[u - 1].order == k);
			sum += (uint64_t)BBC_MIN_EXTENT << k;
			u = un[u - 1].next;
		}
	return sum;
}

static void test_stress_with_kills(void)
{
	struct bbc_topology topo;
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;
	const char *env = getenv("BBC_STRESS_SECONDS");
	int seconds = env ? atoi(env) : 8;
	uint64_t seed = (uint64_t)time(NULL) * 2654435761u;

	printf("\n    seed %llu, %d s\n", (unsigned long long)seed, seconds);
	bbc_topology_fake(&topo, 2);
	p.job_id = shmtest_job_id(50);
	p.byte_limit = 6 << 20; /* the key space is ~5x this */
	p.topo = &topo;
	p.owner = (uid_t)-1;
	CU_ASSERT_EQUAL_FATAL(bbc_create(&p, &c), BB_OK);
	struct shared_counts *k = mmap(NULL, sizeof(*k), PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(k != MAP_FAILED);
	memset(k, 0, sizeof(*k));

	pid_t pids[WORKERS];
	for (int i = 0; i < WORKERS; i++)
		pids[i] = spawn(c, k, seed + (uint64_t)i);
	unsigned kills = 0;
	uint64_t s = seed ^ 0xabcdef;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		usleep((useconds_t)(5000 + rnd(&s) % 40000));
		int i = (int)(rnd(&s) % WORKERS);
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
		kills++;
		pids[i] = spawn(c, k, rnd(&s));
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - t0.tv_sec < seconds);
	for (int i = 0; i < WORKERS; i++) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
	}

	printf("    %u kills; verified %llu, filled %llu, pinned %llu, lock holds %llu\n", kills,
	       (unsigned long long)k->verified, (unsigned long long)k->filled,
	       (unsigned long long)k->pinned, (unsigned long long)k->lock_holds);
	CU_ASSERT_EQUAL(k->corrupt, 0);
	CU_ASSERT_EQUAL(k->timeouts, 0);
	CU_ASSERT_EQUAL(k->errors, 0);
	CU_ASSERT(k->verified > 1000);
	CU_ASSERT(kills > (unsigned)seconds * 10);

	/* Take back what the dead left, then check the invariants. */
	CU_ASSERT_EQUAL(bbc_audit(c), BB_OK);
	for (uint32_t s2 = 0; s2 < c->hdr->n_stripes; s2++) { /* repair any held lock */
		CU_ASSERT_EQUAL(BBC_LOCK(c, &c->stripes[s2], BBC_LK_STRIPE, s2), BB_OK);
		bbc_unlock(&c->stripes[s2]);
	}
	CU_ASSERT_EQUAL(bbc_audit(c), BB_OK);
	uint64_t used_extents[BBC_MAX_ARENAS] = {0};
	uint32_t busy = 0;
	for (uint32_t i = 0; i < c->hdr->n_entries; i++) {
		struct bbc_entry *e = &c->entries[i];
		uint32_t st = bbc_state(e);
		CU_ASSERT(st != BBC_ST_FILLING && st != BBC_ST_NEW && st != BBC_ST_EVICTING);
		CU_ASSERT_EQUAL(atomic_load(&e->refcnt), 0);
		CU_ASSERT_EQUAL(atomic_load(&e->gen) & 1, 0);
		if (st != BBC_ST_FREE) {
			busy++;
			if (e->data_off != BBC_OFF_NONE)
				used_extents[e->arena] += (uint64_t)BBC_MIN_EXTENT << e->order;
		} else {
			CU_ASSERT_EQUAL(e->data_off, BBC_OFF_NONE);
		}
	}
	CU_ASSERT_EQUAL(busy, c->hdr->entries_used);
	for (uint32_t a = 0; a < c->hdr->n_arenas; a++) {
		struct bbc_arena *ar = &c->hdr->arenas[a];
		CU_ASSERT_EQUAL(ar->used, used_extents[a]);
		CU_ASSERT_EQUAL(free_bytes(c, a) + ar->used, ar->size);
	}
	/* Everything still cached reads back right, and the cache still works. */
	int present = 0;
	for (uint64_t b = 0; b < BLOCKS; b++) {
		static char buf[128 * 1024];
		long n = bbc_read(c, FILE_ID, b, 0, buf, sizeof(buf));
		if (n >= 0) {
			CU_ASSERT(n == (long)block_len(b) &&
				  shmtest_check(buf, FILE_ID, b, 0, block_len(b)));
			present++;
		}
	}
	CU_ASSERT(present > 10);
	struct bbc_ref ref;
	CU_ASSERT_EQUAL(bbc_get(c, 1, 1, 4096, -1, 0, 1000, &ref), BB_OK);
	CU_ASSERT_EQUAL(ref.filling, 1);
	bbc_fill_abort(c, &ref, BB_EFILL);
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	printf("    hits %llu, fills %llu, takeovers %llu, evictions %llu, audits %llu, "
	       "lock repairs %llu\n",
	       (unsigned long long)st.hits, (unsigned long long)st.fills,
	       (unsigned long long)st.takeovers, (unsigned long long)st.evictions,
	       (unsigned long long)st.audits, (unsigned long long)st.repairs);
	CU_ASSERT(st.evictions > 0);
	munmap(k, sizeof(*k));
	bbc_detach(c);
	CU_ASSERT_EQUAL(bbc_unlink(NULL, shmtest_job_id(50)), BB_OK);
}

SHMTEST_MAIN("shmcache-mp", {"stress with random SIGKILLs", test_stress_with_kills})
