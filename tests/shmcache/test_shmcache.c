/* Unit tests of the node cache: segments, fills, reads, pins, eviction,
 * NUMA arenas, and repair after processes die at chosen points. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/error.h"
#include "shmcache/internal.h"
#include "shmcache/topology.h"
#include "shmtest.h"

static struct bbc_cache *make_cache(int n, uint64_t limit, int arenas, int policy)
{
	struct bbc_topology topo;
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;

	bbc_topology_fake(&topo, arenas);
	p.job_id = shmtest_job_id(n);
	p.byte_limit = limit;
	p.policy = policy;
	p.topo = &topo;
	p.owner = (uid_t)-1;
	int rc = bbc_create(&p, &c);
	CU_ASSERT_EQUAL_FATAL(rc, BB_OK);
	return c;
}

static void drop_cache(struct bbc_cache *c, int n)
{
	bbc_detach(c);
	CU_ASSERT_EQUAL(bbc_unlink(NULL, shmtest_job_id(n)), BB_OK);
}

/* Fill (file, block) with its pattern; returns rc of bbc_get. */
static int read_ok(struct bbc_cache *c, uint64_t file, uint64_t block, uint32_t len)
{
	static char buf[1 << 20];
	long n = bbc_read(c, file, block, 0, buf, sizeof(buf));
	return n == (long)len && shmtest_check(buf, file, block, 0, len);
}

static void test_segment_lifecycle(void)
{
	char path[256];
	struct stat st;
	struct bbc_cache *c = make_cache(1, 4 << 20, 1, BBC_NUMA_LOCAL), *c2 = NULL;

	bbc_segment_path(NULL, shmtest_job_id(1), path, sizeof(path));
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL(st.st_uid, geteuid());

	/* A second create of the same job is refused, and leaves no .init file. */
	struct bbc_params p = {.job_id = shmtest_job_id(1), .byte_limit = 4 << 20,
			       .owner = (uid_t)-1};
	CU_ASSERT_EQUAL(bbc_create(&p, &c2), BB_EEXIST);
	CU_ASSERT_PTR_NULL(c2);
	strcat(path, ".init");
	CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);

	/* A second attach in one process shares the handle (and client slot). */
	CU_ASSERT_EQUAL(bbc_attach(NULL, shmtest_job_id(1), &c2), BB_OK);
	CU_ASSERT_PTR_EQUAL(c2, c);
	CU_ASSERT_EQUAL(shmtest_put(c, 1, 0, 10000), BB_OK);
	bbc_detach(c2);
	CU_ASSERT(read_ok(c, 1, 0, 10000));
	uint64_t job = shmtest_job_id(1);
	pid_t pid = fork();
	if (pid == 0) { /* a child attaches (the inherited handle) and reads */
		struct bbc_cache *c3;
		int rc = bbc_attach(NULL, job, &c3);
		if (rc != BB_OK) {
			fprintf(stderr, "child attach: %s\n", bb_strerror(rc));
			_exit(2);
		}
		_exit(read_ok(c3, 1, 0, 10000) ? 0 : 3);
	}
	int status;
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	drop_cache(c, 1);
	CU_ASSERT_EQUAL(bbc_attach(NULL, shmtest_job_id(1), &c2), BB_ENOENT);
	CU_ASSERT_EQUAL(bbc_unlink(NULL, shmtest_job_id(1)), BB_ENOENT);
}

static void test_attach_rejects_garbage(void)
{
	char path[256];
	struct bbc_cache *c = NULL;

	bbc_segment_path(NULL, shmtest_job_id(2), path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	char junk[8192];
	memset(junk, 0x5a, sizeof(junk));
	CU_ASSERT_EQUAL(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	CU_ASSERT_EQUAL(bbc_attach(NULL, shmtest_job_id(2), &c), BB_EBADSEG);
	truncate(path, 10);
	CU_ASSERT_EQUAL(bbc_attach(NULL, shmtest_job_id(2), &c), BB_EBADSEG);
	unlink(path);

	/* A segment whose format word differs (another layout) is refused. */
	c = make_cache(2, 4 << 20, 1, BBC_NUMA_LOCAL);
	uint32_t format = c->hdr->format ^ 0x10000;
	bbc_detach(c);
	fd = open(path, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pwrite(fd, &format, 4, offsetof(struct bbc_header, format)), 4);
	CU_ASSERT_EQUAL(bbc_attach(NULL, shmtest_job_id(2), &c), BB_EBADSEG);
	format ^= 0x10000;
	CU_ASSERT_EQUAL(pwrite(fd, &format, 4, offsetof(struct bbc_header, format)), 4);
	close(fd);
	CU_ASSERT_EQUAL_FATAL(bbc_attach(NULL, shmtest_job_id(2), &c), BB_OK);
	drop_cache(c, 2);
}

static void test_fill_and_read(void)
{
	struct bbc_cache *c = make_cache(3, 8 << 20, 1, BBC_NUMA_LOCAL);
	char buf[200000];
	struct bbc_ref ref;

	CU_ASSERT_EQUAL(bbc_read(c, 7, 0, 0, buf, sizeof(buf)), -BB_ENOENT);
	CU_ASSERT_EQUAL(shmtest_put(c, 7, 0, 4096), BB_OK);
	CU_ASSERT_EQUAL(shmtest_put(c, 7, 1, 100 * 1024), BB_OK);
	CU_ASSERT_EQUAL(shmtest_put(c, 8, 0, 1), BB_OK);
	CU_ASSERT(read_ok(c, 7, 0, 4096));
	CU_ASSERT(read_ok(c, 7, 1, 100 * 1024));
	CU_ASSERT(read_ok(c, 8, 0, 1));
	/* Offsets and short reads. */
	CU_ASSERT_EQUAL(bbc_read(c, 7, 1, 8000, buf, 1000), 1000);
	CU_ASSERT(shmtest_check(buf, 7, 1, 8000, 1000));
	CU_ASSERT_EQUAL(bbc_read(c, 7, 1, 100 * 1024 - 16, buf, 1000), 16);
	CU_ASSERT(shmtest_check(buf, 7, 1, 100 * 1024 - 16, 16));
	CU_ASSERT_EQUAL(bbc_read(c, 7, 1, 100 * 1024, buf, 1000), 0);
	CU_ASSERT_EQUAL(bbc_read(c, 7, 2, 0, buf, 1000), -BB_ENOENT);

	/* A second get is a hit, not a fill. */
	CU_ASSERT_EQUAL(bbc_get(c, 7, 0, 4096, -1, 0, 0, &ref), BB_OK);
	CU_ASSERT_EQUAL(ref.filling, 0);
	CU_ASSERT(shmtest_check(ref.data, 7, 0, 0, 4096));
	bbc_unpin(c, &ref);
	CU_ASSERT_EQUAL(bbc_get(c, 9, 0, 16, -1, BBC_NOFILL, 0, &ref), BB_ENOENT);
	CU_ASSERT_EQUAL(bbc_get(c, 9, 0, 0, -1, 0, 0, &ref), BB_EINVAL);
	CU_ASSERT_EQUAL(bbc_get(c, 9, 0, BBC_MAX_EXTENT + 1, -1, 0, 0, &ref), BB_EINVAL);

	/* A block larger than the arena is refused at once, nothing evicted. */
	CU_ASSERT_EQUAL(bbc_get(c, 10, 0, 16 << 20, -1, 0, 0, &ref), BB_ETOOBIG);

	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.fills, 3);
	CU_ASSERT(st.hits >= 7);
	CU_ASSERT_EQUAL(st.entries_used, 3);
	CU_ASSERT_EQUAL(st.bytes_used, 4096 + 128 * 1024 + 4096);
	drop_cache(c, 3);
}

static void test_fill_abort(void)
{
	struct bbc_cache *c = make_cache(4, 4 << 20, 1, BBC_NUMA_LOCAL);
	struct bbc_ref ref;

	CU_ASSERT_EQUAL(bbc_get(c, 1, 1, 5000, -1, 0, 0, &ref), BB_OK);
	CU_ASSERT_EQUAL(ref.filling, 1);
	CU_ASSERT_EQUAL(bbc_fill_abort(c, &ref, BB_ESTALE), BB_OK);
	char buf[16];
	CU_ASSERT_EQUAL(bbc_read(c, 1, 1, 0, buf, 16), -BB_ENOENT);
	/* A new get refills it. */
	CU_ASSERT_EQUAL(shmtest_put(c, 1, 1, 5000), BB_OK);
	CU_ASSERT(read_ok(c, 1, 1, 5000));
	drop_cache(c, 4);
}

/* A waiter of a fill that fails gets the filler's error. */
static void test_waiter_gets_fill_error(void)
{
	struct bbc_cache *c = make_cache(5, 4 << 20, 1, BBC_NUMA_LOCAL);
	struct bbc_ref ref;
	int pfd[2];

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct bbc_ref r;
		char x = 0;
		if (bbc_get(c, 2, 0, 8192, -1, 0, 0, &r) != BB_OK || !r.filling)
			_exit(2);
		(void)!write(pfd[1], &x, 1);
		usleep(200 * 1000);
		bbc_fill_abort(c, &r, BB_ESTALE);
		_exit(0);
	}
	char x;
	CU_ASSERT_EQUAL(read(pfd[0], &x, 1), 1);
	CU_ASSERT_EQUAL(bbc_get(c, 2, 0, 8192, -1, BBC_NOWAIT, 0, &ref), BB_EAGAIN);
	CU_ASSERT_EQUAL(bbc_get(c, 2, 0, 8192, -1, 0, 5000, &ref), BB_ESTALE);
	int status;
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pfd[0]);
	close(pfd[1]);
	drop_cache(c, 5);
}

/* Single flight: many processes ask for one block; one fills, all get it. */
static void test_single_flight(void)
{
	struct bbc_cache *c = make_cache(6, 8 << 20, 1, BBC_NUMA_LOCAL);
	enum { N = 6 };
	pid_t pids[N];

	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct bbc_ref r;
			int filled = 0;
			for (uint64_t b = 0; b < 50; b++) {
				if (bbc_get(c, 3, b, 65536, -1, 0, 10000, &r) != BB_OK)
					_exit(10);
				if (r.filling) {
					filled++;
					usleep(1000); /* keep others waiting */
					shmtest_fill(r.data, 3, b, 65536);
					if (bbc_fill_commit(c, &r) != BB_OK)
						_exit(11);
				}
				if (!shmtest_check(r.data, 3, b, 0, 65536))
					_exit(12);
				bbc_unpin(c, &r);
			}
			_exit(0);
		}
	}
	for (int i = 0; i < N; i++) {
		int status;
		waitpid(pids[i], &status, 0);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.fills, 50); /* each block fetched exactly once */
	CU_ASSERT_EQUAL(st.hits + st.fills, N * 50);
	drop_cache(c, 6);
}

/* The filler dies mid-fill: one waiter takes it over. */
static void test_filler_dies(void)
{
	struct bbc_cache *c = make_cache(7, 4 << 20, 1, BBC_NUMA_LOCAL);
	struct bbc_ref ref;
	int pfd[2];

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct bbc_ref r;
		char x = 0;
		if (bbc_get(c, 4, 0, 30000, -1, 0, 0, &r) != BB_OK || !r.filling)
			_exit(2);
		memset(r.data, 0xee, 1000); /* half-written garbage */
		(void)!write(pfd[1], &x, 1);
		pause();
		_exit(0);
	}
	char x;
	CU_ASSERT_EQUAL(read(pfd[0], &x, 1), 1);
	char buf[64];
	CU_ASSERT_EQUAL(bbc_read(c, 4, 0, 0, buf, sizeof(buf)), -BB_ENOENT);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CU_ASSERT_EQUAL(bbc_get(c, 4, 0, 30000, -1, 0, 5000, &ref), BB_OK);
	CU_ASSERT_EQUAL(ref.filling, 1);
	shmtest_fill(ref.data, 4, 0, 30000);
	CU_ASSERT_EQUAL(bbc_fill_commit(c, &ref), BB_OK);
	bbc_unpin(c, &ref);
	CU_ASSERT(read_ok(c, 4, 0, 30000));
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.takeovers, 1);
	CU_ASSERT(st.audits >= 1);
	close(pfd[0]);
	close(pfd[1]);
	drop_cache(c, 7);
}

/* A reader dies holding a pin: an audit releases it. */
static void test_reader_dies_with_pin(void)
{
	struct bbc_cache *c = make_cache(8, 4 << 20, 1, BBC_NUMA_LOCAL);
	int pfd[2];

	CU_ASSERT_EQUAL(shmtest_put(c, 5, 0, 4096), BB_OK);
	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct bbc_ref r;
		char x = 0;
		if (bbc_pin(c, 5, 0, &r) != BB_OK)
			_exit(2);
		(void)!write(pfd[1], &x, 1);
		pause();
		_exit(0);
	}
	char x;
	CU_ASSERT_EQUAL(read(pfd[0], &x, 1), 1);
	CU_ASSERT_EQUAL(bbc_evict(c, 5, 0), BB_EBUSY); /* pinned by a live process */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CU_ASSERT_EQUAL(bbc_audit(c), BB_OK);
	CU_ASSERT_EQUAL(bbc_evict(c, 5, 0), BB_OK);
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.entries_used, 0);
	CU_ASSERT_EQUAL(st.bytes_used, 0);
	close(pfd[0]);
	close(pfd[1]);
	drop_cache(c, 8);
}

/* A process dies holding each kind of lock, mid-change: the next locker
 * repairs and everything keeps working with the right bytes. */
static void die_holding(struct bbc_cache *c, struct bbc_lock *l, void (*mess)(struct bbc_cache *))
{
	pid_t pid = fork();
	if (pid == 0) {
		pthread_mutex_lock(&l->m);
		if (mess)
			mess(c);
		raise(SIGKILL);
	}
	waitpid(pid, NULL, 0);
}

static void mess_stripe(struct bbc_cache *c)
{
	/* Half an eviction: gen odd, state EVICTING, still in the chain. */
	struct bbc_walk w;
	uint32_t idx;
	bbc_walk_start(c, &w, bbc_bucket_of(c, 6, 0));
	while ((idx = bbc_walk_next(c, &w)) &&
	       !(bbc_entry_at(c, idx)->file_id == 6 && bbc_entry_at(c, idx)->block == 0))
		;
	if (!idx)
		_exit(3);
	struct bbc_entry *e = bbc_entry_at(c, idx);
	if (bbc_register(c) != BB_OK)
		_exit(2);
	bbc_gen_begin(e);
	e->owner = (uint32_t)c->my_slot + 1;
	atomic_store(&e->state, BBC_ST_EVICTING);
}

static void mess_arena(struct bbc_cache *c)
{
	/* Scribble over the free lists. */
	memset(c->hdr->arenas[0].free_head, 0x7f, sizeof(c->hdr->arenas[0].free_head));
}

static void mess_slots(struct bbc_cache *c)
{
	c->hdr->free_entry = 0;
}

static void test_lock_holder_dies(void)
{
	struct bbc_cache *c = make_cache(9, 4 << 20, 1, BBC_NUMA_LOCAL);

	for (uint64_t b = 0; b < 20; b++)
		CU_ASSERT_EQUAL(shmtest_put(c, 6, b, 8192), BB_OK);
	uint32_t s = bbc_stripe_of_bucket(c, bbc_bucket_of(c, 6, 0));
	die_holding(c, &c->stripes[s], mess_stripe);
	/* The half-evicted block is a miss (never torn bytes); others read. */
	char buf[8192];
	long n = bbc_read(c, 6, 0, 0, buf, sizeof(buf));
	CU_ASSERT(n == -BB_ENOENT || (n == 8192 && shmtest_check(buf, 6, 0, 0, 8192)));
	CU_ASSERT_EQUAL(shmtest_put(c, 6, 0, 8192), BB_OK); /* repairs, refills */
	CU_ASSERT(read_ok(c, 6, 0, 8192));
	CU_ASSERT_EQUAL(c->stripes[s].repairs, 1);

	die_holding(c, &c->hdr->arenas[0].lock, mess_arena);
	CU_ASSERT_EQUAL(shmtest_put(c, 6, 100, 8192), BB_OK);
	for (uint64_t b = 1; b < 20; b++)
		CU_ASSERT(read_ok(c, 6, b, 8192));
	CU_ASSERT(read_ok(c, 6, 100, 8192));

	die_holding(c, &c->hdr->slots_lock, mess_slots);
	CU_ASSERT_EQUAL(shmtest_put(c, 6, 101, 8192), BB_OK);
	CU_ASSERT(read_ok(c, 6, 101, 8192));

	/* The rebuilt arena accounts for exactly the live extents. */
	CU_ASSERT_EQUAL(bbc_audit(c), BB_OK);
	for (uint64_t b = 0; b < 20; b++)
		bbc_evict(c, 6, b);
	bbc_evict(c, 6, 100);
	bbc_evict(c, 6, 101);
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.bytes_used, 0);
	CU_ASSERT_EQUAL(st.entries_used, 0);
	CU_ASSERT(st.repairs >= 3);
	/* All memory is free again: the largest extent the arena holds fits. */
	struct bbc_ref ref;
	CU_ASSERT_EQUAL(bbc_get(c, 7, 0, 2 << 20, -1, 0, 0, &ref), BB_OK);
	bbc_fill_abort(c, &ref, BB_EFILL);
	drop_cache(c, 9);
}

/* A crowded bucket: BBC_BUCKET_SLOTS keys in the slots of its line, the rest on its
 * overflow chain; two keys with the same tag; evictions from both places;
 * a lock holder that dies after scribbling on the slots. */
static uint32_t crowd_bucket;

static void mess_bucket(struct bbc_cache *c)
{
	struct bbc_bucket *bk = &c->buckets[crowd_bucket];
	atomic_store(&bk->slot[0], c->hdr->n_entries + 5); /* out of range */
	atomic_store(&bk->tags, 0);                         /* every tag wrong */
}

/* Files with neighbouring ids have neighbouring buckets (a scan in id
 * order walks the bucket array in order); runs of ids still spread over
 * the whole array; a header whose bucket count is not whole runs is
 * refused. */
static void test_bucket_runs(void)
{
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;
	char path[256];

	p.job_id = shmtest_job_id(22);
	p.byte_limit = 64 << 20;
	p.n_entries = 4000; /* 1000 buckets, rounded up to 16 runs of 64 */
	p.owner = (uid_t)-1;
	CU_ASSERT_EQUAL_FATAL(bbc_create(&p, &c), BB_OK);
	CU_ASSERT_EQUAL(c->n_buckets, 1024u);
	CU_ASSERT_EQUAL(c->n_buckets % BBC_BUCKET_RUN, 0u);
	for (uint64_t run = 0; run < 8; run++) {
		uint64_t f0 = ((uint64_t)3 << 32) | (run * BBC_BUCKET_RUN);
		uint32_t b0 = bbc_bucket_of(c, f0, 0);
		CU_ASSERT_EQUAL(b0 % BBC_BUCKET_RUN, 0u);
		for (uint64_t i = 1; i < BBC_BUCKET_RUN; i++)
			CU_ASSERT_EQUAL(bbc_bucket_of(c, f0 + i, 0), b0 + i);
	}
	/* 4000 files of one block: every run of buckets gets some, none more
	 * than 4 times its share; the blocks of one file spread too. */
	unsigned per_run[64] = {0}, runs_of_blocks[64] = {0};
	for (uint64_t f = 0; f < 4000; f++)
		per_run[bbc_bucket_of(c, f, 0) / BBC_BUCKET_RUN]++;
	for (uint64_t b = 0; b < 4000; b++)
		runs_of_blocks[bbc_bucket_of(c, 7, b) / BBC_BUCKET_RUN]++;
	for (uint32_t r = 0; r < c->n_runs; r++) {
		CU_ASSERT(per_run[r] > 0 && per_run[r] <= 4 * 4000 / c->n_runs);
		CU_ASSERT(runs_of_blocks[r] > 0 && runs_of_blocks[r] <= 4 * 4000 / c->n_runs);
	}
	/* Every key is still found, and read back whole. */
	for (uint64_t f = 0; f < 3000; f++)
		CU_ASSERT_EQUAL(shmtest_put(c, f, 0, 4096), BB_OK);
	for (uint64_t f = 0; f < 3000; f++)
		CU_ASSERT(read_ok(c, f, 0, 4096));
	uint32_t nb = c->hdr->n_buckets - 1;
	bbc_detach(c);
	bbc_segment_path(NULL, p.job_id, path, sizeof(path));
	int fd = open(path, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pwrite(fd, &nb, 4, offsetof(struct bbc_header, n_buckets)), 4);
	close(fd);
	CU_ASSERT_EQUAL(bbc_attach(NULL, p.job_id, &c), BB_EBADSEG);
	nb++;
	fd = open(path, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pwrite(fd, &nb, 4, offsetof(struct bbc_header, n_buckets)), 4);
	close(fd);
	CU_ASSERT_EQUAL_FATAL(bbc_attach(NULL, p.job_id, &c), BB_OK);
	drop_cache(c, 22);
}

static void test_crowded_bucket(void)
{
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;
	enum { N = 40 };
	uint64_t blk[N], twin[2] = {0, 0};
	int n = 0, have_twin = 0;

	p.job_id = shmtest_job_id(19);
	p.byte_limit = 16 << 20;
	p.n_entries = 1024;
	p.owner = (uid_t)-1;
	CU_ASSERT_EQUAL_FATAL(bbc_create(&p, &c), BB_OK);
	crowd_bucket = bbc_bucket_of(c, 100, 0);
	/* N blocks of file 100 in one bucket; among them two with one tag. */
	for (uint64_t b = 0; n < N && b < 10000000; b++) {
		if (bbc_bucket_of(c, 100, b) != crowd_bucket)
			continue;
		uint8_t tag = bbc_key_tag(bbc_key_hash(100, b));
		for (int k = 0; k < n && !have_twin; k++) {
			if (bbc_key_tag(bbc_key_hash(100, blk[k])) == tag) {
				twin[0] = blk[k];
				twin[1] = b;
				have_twin = 1;
			}
		}
		blk[n++] = b;
	}
	CU_ASSERT_EQUAL_FATAL(n, N);
	if (!have_twin) { /* search on for a twin of blk[0] */
		uint8_t tag = bbc_key_tag(bbc_key_hash(100, blk[0]));
		for (uint64_t b = blk[N - 1] + 1; !have_twin && b < 100000000; b++) {
			if (bbc_bucket_of(c, 100, b) == crowd_bucket &&
			    bbc_key_tag(bbc_key_hash(100, b)) == tag) {
				twin[0] = blk[0];
				twin[1] = blk[N - 1] = b;
				have_twin = 1;
			}
		}
	}
	CU_ASSERT_FATAL(have_twin);
	for (int k = 0; k < N; k++)
		CU_ASSERT_EQUAL(shmtest_put(c, 100, blk[k], 4096), BB_OK);
	struct bbc_bucket *bk = &c->buckets[crowd_bucket];
	int in_slots = 0, in_chain = 0;
	for (int i = 0; i < BBC_BUCKET_SLOTS; i++)
		in_slots += atomic_load(&bk->slot[i]) != 0;
	for (uint32_t x = atomic_load(&bk->chain); x; x = bbc_entry_at(c, x)->next)
		in_chain++;
	CU_ASSERT_EQUAL(in_slots, BBC_BUCKET_SLOTS);
	CU_ASSERT_EQUAL(in_chain, N - BBC_BUCKET_SLOTS);
	for (int k = 0; k < N; k++)
		CU_ASSERT(read_ok(c, 100, blk[k], 4096));

	/* Evict every third key (slots and chain), then the first twin. */
	char buf[4096];
	for (int k = 0; k < N; k += 3)
		CU_ASSERT_EQUAL(bbc_evict(c, 100, blk[k]), BB_OK);
	if (bbc_read(c, 100, twin[0], 0, buf, sizeof(buf)) >= 0)
		CU_ASSERT_EQUAL(bbc_evict(c, 100, twin[0]), BB_OK);
	for (int k = 0; k < N; k++) {
		long r = bbc_read(c, 100, blk[k], 0, buf, sizeof(buf));
		if (k % 3 == 0 || blk[k] == twin[0]) {
			CU_ASSERT_EQUAL(r, -BB_ENOENT);
		} else {
			CU_ASSERT(r == 4096 && shmtest_check(buf, 100, blk[k], 0, 4096));
		}
	}
	/* Refilled keys take the free slots again. */
	for (int k = 0; k < N; k++)
		CU_ASSERT_EQUAL(shmtest_put(c, 100, blk[k], 4096), BB_OK);
	for (int k = 0; k < N; k++)
		CU_ASSERT(read_ok(c, 100, blk[k], 4096));

	/* A holder of the stripe dies after scribbling on the line: the repair
	 * drops the impossible slot, and wrong tags only cost the slow path. */
	uint32_t s = bbc_stripe_of_bucket(c, crowd_bucket);
	uint32_t lost = bbc_slot_entry(atomic_load(&bk->slot[0]));
	die_holding(c, &c->stripes[s], mess_bucket);
	for (int k = 0; k < N; k++)
		CU_ASSERT(bbc_read(c, 100, blk[k], 0, buf, sizeof(buf)) == -BB_ENOENT ||
			  read_ok(c, 100, blk[k], 4096));
	bbc_set_pinned(c, 100, blk[1], 0); /* takes the stripe lock: repairs */
	CU_ASSERT_EQUAL(c->stripes[s].repairs, 1);
	CU_ASSERT_EQUAL(bbc_slot_entry(atomic_load(&bk->slot[0])) == c->hdr->n_entries + 5, 0);
	int missing = 0;
	for (int k = 0; k < N; k++) {
		if (bbc_read(c, 100, blk[k], 0, buf, sizeof(buf)) == -BB_ENOENT) {
			missing++;
			CU_ASSERT_EQUAL(shmtest_put(c, 100, blk[k], 4096), BB_OK);
		}
		CU_ASSERT(read_ok(c, 100, blk[k], 4096));
	}
	CU_ASSERT(missing <= 1); /* only the entry whose slot was overwritten */
	/* The repair gave the slots their tags back. */
	for (int i = 0; i < BBC_BUCKET_SLOTS; i++) {
		uint32_t x = bbc_slot_entry(atomic_load(&bk->slot[i]));
		uint64_t t = atomic_load(&bk->tags) >> (8 * i);
		if (x && x != lost)
			CU_ASSERT_EQUAL((uint8_t)t, bbc_key_tag(bbc_key_hash(
							     bbc_entry_at(c, x)->file_id,
							     bbc_entry_at(c, x)->block)));
	}
	drop_cache(c, 19);
}

/* The slot of entry idx1 in its bucket line, or NULL (on the chain). */
static _Atomic uint64_t *slot_of(struct bbc_cache *c, uint64_t file, uint64_t block, uint32_t idx1)
{
	struct bbc_bucket *bk = &c->buckets[bbc_bucket_of(c, file, block)];
	for (int i = 0; i < BBC_BUCKET_SLOTS; i++)
		if (bbc_slot_entry(atomic_load(&bk->slot[i])) == idx1)
			return &bk->slot[i];
	return NULL;
}

/* The hit path copies from the page its bucket slot carries; a page that is
 * not the entry's extent (a scribbled or stale hint) must never be copied
 * from: the read goes the slow way and returns the block's own bytes. */
static void test_stale_page_hint(void)
{
	struct bbc_cache *c = make_cache(20, 1 << 20, 1, BBC_NUMA_LOCAL);
	struct bbc_ref ra, rb;
	char buf[4096];

	CU_ASSERT_EQUAL(shmtest_put(c, 40, 0, 4096), BB_OK);
	CU_ASSERT_EQUAL(shmtest_put(c, 41, 0, 4096), BB_OK);
	CU_ASSERT_EQUAL_FATAL(bbc_pin(c, 40, 0, &ra), BB_OK);
	CU_ASSERT_EQUAL_FATAL(bbc_pin(c, 41, 0, &rb), BB_OK);
	uint64_t off_a = bbc_entry_at(c, ra.entry)->data_off;
	uint64_t off_b = bbc_entry_at(c, rb.entry)->data_off;
	_Atomic uint64_t *slot = slot_of(c, 40, 0, ra.entry);
	CU_ASSERT_FATAL(slot != NULL);
	/* Linking wrote the extent's page beside the entry. */
	CU_ASSERT_EQUAL(atomic_load(slot), bbc_slot_word(ra.entry, off_a));
	CU_ASSERT_EQUAL(atomic_load(slot) >> 32, off_a >> 12);
	CU_ASSERT(read_ok(c, 40, 0, 4096));
	/* The page of another block's extent; then no page at all. */
	atomic_store(slot, bbc_slot_word(ra.entry, off_b));
	memset(buf, 0, sizeof(buf));
	CU_ASSERT_EQUAL(bbc_read(c, 40, 0, 0, buf, sizeof(buf)), 4096);
	CU_ASSERT(shmtest_check(buf, 40, 0, 0, 4096));
	CU_ASSERT_FALSE(shmtest_check(buf, 41, 0, 0, 4096));
	atomic_store(slot, (uint64_t)ra.entry);
	CU_ASSERT(read_ok(c, 40, 0, 4096));
	/* A page beyond the mapping. */
	atomic_store(slot, (uint64_t)ra.entry | (uint64_t)UINT32_MAX << 32);
	CU_ASSERT(read_ok(c, 40, 0, 4096));
	/* A partial read at an offset takes the same checks. */
	atomic_store(slot, bbc_slot_word(ra.entry, off_b));
	CU_ASSERT_EQUAL(bbc_read(c, 40, 0, 1024, buf, 2048), 2048);
	CU_ASSERT(shmtest_check(buf, 40, 0, 1024, 2048));
	/* The next locker of the stripe that repairs gives the slot its page
	 * back; an eviction and a refill write a fresh one. */
	atomic_store(slot, bbc_slot_word(ra.entry, off_a));
	bbc_unpin(c, &ra);
	bbc_unpin(c, &rb);
	CU_ASSERT_EQUAL(bbc_evict(c, 40, 0), BB_OK);
	CU_ASSERT_EQUAL(bbc_read(c, 40, 0, 0, buf, sizeof(buf)), -BB_ENOENT);
	CU_ASSERT_EQUAL(shmtest_put(c, 40, 0, 4096), BB_OK);
	CU_ASSERT(read_ok(c, 40, 0, 4096));
	drop_cache(c, 20);
}

/* A reader copying a block while another process evicts it and fills a
 * different block into the same entry and extent (both are reused at once:
 * the free lists are LIFO), then refills the first: every read returns the
 * first block's bytes or a miss, never the other block's bytes, a mix, or
 * a half-written refill. */
static void test_read_races_reuse(void)
{
	enum { LEN = 65536 };
	struct bbc_cache *c = make_cache(21, 1 << 20, 1, BBC_NUMA_LOCAL);
	/* [0] hits, [1] misses, [2] bad reads, [3] stop */
	_Atomic uint64_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				    -1, 0);
	struct bbc_ref ra, rb;
	int reused = 0, cycles = 0;

	CU_ASSERT_FATAL(sh != MAP_FAILED);
	CU_ASSERT_EQUAL_FATAL(shmtest_put(c, 50, 0, LEN), BB_OK);
	pid_t pid = fork();
	if (pid == 0) {
		static char buf[LEN];
		while (!atomic_load(&sh[3])) {
			memset(buf, 0, 64);
			long r = bbc_read(c, 50, 0, 0, buf, LEN);
			if (r == LEN && shmtest_check(buf, 50, 0, 0, LEN))
				atomic_fetch_add(&sh[0], 1);
			else if (r == -BB_ENOENT)
				atomic_fetch_add(&sh[1], 1);
			else
				atomic_fetch_add(&sh[2], 1);
		}
		_exit(0);
	}
	while (!atomic_load(&sh[0]))
		usleep(100);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		double el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
		if (el > 10 || atomic_load(&sh[2]) ||
		    (el > 1 && atomic_load(&sh[0]) > 200 && atomic_load(&sh[1]) > 200))
			break;
		CU_ASSERT_EQUAL(bbc_pin(c, 50, 0, &ra), BB_OK);
		uint64_t off_a = bbc_entry_at(c, ra.entry)->data_off;
		uint32_t ent_a = ra.entry;
		bbc_unpin(c, &ra);
		CU_ASSERT_EQUAL(bbc_evict(c, 50, 0), BB_OK);
		CU_ASSERT_EQUAL(shmtest_put(c, 51, 0, LEN), BB_OK);
		CU_ASSERT_EQUAL(bbc_pin(c, 51, 0, &rb), BB_OK);
		reused += rb.entry == ent_a && bbc_entry_at(c, rb.entry)->data_off == off_a;
		bbc_unpin(c, &rb);
		CU_ASSERT_EQUAL(bbc_evict(c, 51, 0), BB_OK);
		CU_ASSERT_EQUAL(shmtest_put(c, 50, 0, LEN), BB_OK);
		cycles++;
	}
	atomic_store(&sh[3], 1);
	int status;
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(atomic_load(&sh[2]), 0);
	CU_ASSERT(atomic_load(&sh[0]) > 0);
	CU_ASSERT(reused > cycles / 2); /* the race is the one meant */
	if (atomic_load(&sh[2]))
		fprintf(stderr, "\n%llu bad reads, %llu hits, %llu misses in %d cycles\n",
			(unsigned long long)atomic_load(&sh[2]),
			(unsigned long long)atomic_load(&sh[0]),
			(unsigned long long)atomic_load(&sh[1]), cycles);
	munmap((void *)sh, 4096);
	drop_cache(c, 21);
}

/* CLOCK eviction keeps the byte limit, skips pinned and referenced blocks,
 * and never hands out wrong bytes. */
static void test_eviction(void)
{
	struct bbc_cache *c = make_cache(10, 1 << 20, 1, BBC_NUMA_LOCAL);
	struct bbc_ref held;

	CU_ASSERT_EQUAL(shmtest_put(c, 1, 0, 65536), BB_OK);
	CU_ASSERT_EQUAL(bbc_set_pinned(c, 1, 0, 1), BB_OK);
	CU_ASSERT_EQUAL(shmtest_put(c, 1, 1, 65536), BB_OK);
	CU_ASSERT_EQUAL(bbc_pin(c, 1, 1, &held), BB_OK);
	for (uint64_t b = 0; b < 400; b++)
		CU_ASSERT_EQUAL(shmtest_put(c, 2, b, 12000), BB_OK);
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT(st.evictions > 300);
	CU_ASSERT(st.bytes_used <= st.bytes_total);
	CU_ASSERT(read_ok(c, 1, 0, 65536)); /* pinned survived */
	CU_ASSERT(shmtest_check(held.data, 1, 1, 0, 65536)); /* referenced survived */
	int present = 0;
	for (uint64_t b = 0; b < 400; b++) {
		char buf[12000];
		long n = bbc_read(c, 2, b, 0, buf, sizeof(buf));
		if (n >= 0) {
			CU_ASSERT(n == 12000 && shmtest_check(buf, 2, b, 0, 12000));
			present++;
		}
	}
	CU_ASSERT(present > 20 && present < 400);
	bbc_unpin(c, &held);
	CU_ASSERT_EQUAL(bbc_set_pinned(c, 1, 0, 0), BB_OK);
	/* A block larger than the whole cache is a clean BB_ETOOBIG. */
	struct bbc_ref ref;
	CU_ASSERT_EQUAL(bbc_get(c, 3, 0, 2 << 20, -1, 0, 0, &ref), BB_ETOOBIG);
	drop_cache(c, 10);
}

/* Entry slots, not bytes, run out first with many tiny blocks. */
static void test_slot_eviction(void)
{
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;

	p.job_id = shmtest_job_id(11);
	p.byte_limit = 16 << 20;
	p.n_entries = 1024;
	p.owner = (uid_t)-1;
	CU_ASSERT_EQUAL_FATAL(bbc_create(&p, &c), BB_OK);
	for (uint64_t b = 0; b < 3000; b++)
		CU_ASSERT_EQUAL(shmtest_put(c, 1, b, 100), BB_OK);
	CU_ASSERT(read_ok(c, 1, 2999, 100));
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT(st.entries_used <= 1024);
	CU_ASSERT(st.evictions >= 3000 - 1024);
	drop_cache(c, 11);
}

static void test_large_blocks(void)
{
	struct bbc_cache *c = make_cache(12, 160 << 20, 1, BBC_NUMA_LOCAL);
	struct bbc_ref ref;
	char *buf = malloc(BBC_MAX_EXTENT);

	CU_ASSERT_EQUAL(shmtest_put(c, 1, 0, BBC_MAX_EXTENT), BB_OK);
	CU_ASSERT_EQUAL(bbc_read(c, 1, 0, 0, buf, BBC_MAX_EXTENT), BBC_MAX_EXTENT);
	CU_ASSERT(shmtest_check(buf, 1, 0, 0, BBC_MAX_EXTENT));
	CU_ASSERT_EQUAL(shmtest_put(c, 1, 1, BBC_MAX_EXTENT - 5), BB_OK);
	/* A third 64 MiB block fits only by evicting one of the first two. */
	CU_ASSERT_EQUAL(shmtest_put(c, 1, 2, BBC_MAX_EXTENT), BB_OK);
	CU_ASSERT_EQUAL(bbc_read(c, 1, 2, 0, buf, BBC_MAX_EXTENT), BBC_MAX_EXTENT);
	CU_ASSERT(shmtest_check(buf, 1, 2, 0, BBC_MAX_EXTENT));
	CU_ASSERT_EQUAL(bbc_get(c, 1, 3, BBC_MAX_EXTENT + 1, -1, 0, 0, &ref), BB_EINVAL);
	free(buf);
	drop_cache(c, 12);
}

static void test_numa_local_and_interleave(void)
{
	for (int arenas = 2; arenas <= 4; arenas += 2) {
		struct bbc_cache *c = make_cache(13, 8 << 20, arenas, BBC_NUMA_LOCAL);
		CU_ASSERT_EQUAL(bbc_n_arenas(c), (uint32_t)arenas);
		for (int a = 0; a < arenas; a++) {
			bbc_test_set_arena(a);
			CU_ASSERT_EQUAL(bbc_current_arena(c), a);
			CU_ASSERT_EQUAL(shmtest_put(c, 1, (uint64_t)a, 4096), BB_OK);
			CU_ASSERT_EQUAL(bbc_block_arena(c, 1, (uint64_t)a), a);
		}
		/* Readers on every arena see every block. */
		for (int r = 0; r < arenas; r++) {
			bbc_test_set_arena(r);
			for (int a = 0; a < arenas; a++)
				CU_ASSERT(read_ok(c, 1, (uint64_t)a, 4096));
		}
		bbc_test_set_arena(-1);
		struct bbc_stats st;
		bbc_get_stats(c, &st);
		for (int a = 0; a < arenas; a++)
			CU_ASSERT_EQUAL(st.arena_used[a], 4096);
		drop_cache(c, 13);

		c = make_cache(14, 8 << 20, arenas, BBC_NUMA_INTERLEAVE);
		bbc_test_set_arena(0);
		for (uint64_t b = 0; b < 400; b++)
			CU_ASSERT_EQUAL(shmtest_put(c, 2, b, 4096), BB_OK);
		bbc_test_set_arena(-1);
		bbc_get_stats(c, &st);
		for (int a = 0; a < arenas; a++) {
			CU_ASSERT(st.arena_used[a] > (uint64_t)(400 * 4096 / arenas / 2));
		}
		drop_cache(c, 14);
	}
}

static void test_numa_replicate(void)
{
	struct bbc_cache *c = make_cache(15, 8 << 20, 4, BBC_NUMA_REPLICATE);
	char buf[4096];

	bbc_test_set_arena(0);
	CU_ASSERT_EQUAL(shmtest_put(c, 1, 0, 4096), BB_OK);
	CU_ASSERT_EQUAL(bbc_block_arena(c, 1, 0), 0);
	bbc_test_set_arena(2);
	CU_ASSERT_EQUAL(bbc_block_arena(c, 1, 0), 0); /* remote, no copy yet */
	for (int i = 0; i < BBC_REPLICATE_AFTER + 1; i++) {
		CU_ASSERT_EQUAL(bbc_read(c, 1, 0, 0, buf, sizeof(buf)), 4096);
		CU_ASSERT(shmtest_check(buf, 1, 0, 0, 4096));
	}
	CU_ASSERT_EQUAL(bbc_block_arena(c, 1, 0), 2); /* hot: now a local copy */
	bbc_test_set_arena(0);
	CU_ASSERT_EQUAL(bbc_block_arena(c, 1, 0), 0);
	bbc_test_set_arena(3);
	CU_ASSERT(read_ok(c, 1, 0, 4096)); /* the hint is per block: copy at once */
	CU_ASSERT_EQUAL(bbc_block_arena(c, 1, 0), 3);
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.replicas, 2);
	CU_ASSERT_EQUAL(st.arena_used[1], 0);
	CU_ASSERT_EQUAL(st.arena_used[2], 4096);
	CU_ASSERT_EQUAL(st.arena_used[3], 4096);
	/* Evicting the block drops its copies too. */
	CU_ASSERT_EQUAL(bbc_evict(c, 1, 0), BB_OK);
	CU_ASSERT_EQUAL(bbc_read(c, 1, 0, 0, buf, sizeof(buf)), -BB_ENOENT);
	bbc_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.bytes_used, 0);
	bbc_test_set_arena(-1);
	drop_cache(c, 15);
}

/* The real topology of this machine: each arena's pages are on its node. */
static void test_real_topology_binding(void)
{
	struct bbc_topology t;
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;
	int nodes[BBC_MAX_ARENAS];

	unsetenv("BBCACHE_FAKE_NUMA");
	CU_ASSERT_EQUAL(bbc_numa_topology(&t), BB_OK);
	CU_ASSERT(t.n_nodes >= 1);
	p.job_id = shmtest_job_id(16);
	p.byte_limit = 8 << 20;
	p.topo = &t;
	p.owner = (uid_t)-1;
	CU_ASSERT_EQUAL_FATAL(bbc_create(&p, &c), BB_OK);
	CU_ASSERT_EQUAL(bbc_numa_arena_nodes(c, nodes), BB_OK);
	for (int a = 0; a < t.n_nodes; a++)
		if (t.node_id[a] >= 0)
			CU_ASSERT_EQUAL(nodes[a], t.node_id[a]);
	drop_cache(c, 16);
}

/* A forked child (a DataLoader worker) reads and fills through the
 * parent's attachment, with its own client slot. */
static void test_fork_child(void)
{
	struct bbc_cache *c = make_cache(17, 4 << 20, 1, BBC_NUMA_LOCAL);
	struct bbc_ref parent_ref;

	CU_ASSERT_EQUAL(shmtest_put(c, 1, 0, 4096), BB_OK);
	CU_ASSERT_EQUAL(bbc_pin(c, 1, 0, &parent_ref), BB_OK);
	pid_t pid = fork();
	if (pid == 0) {
		struct bbc_ref r = parent_ref;
		if (!read_ok(c, 1, 0, 4096))
			_exit(2);
		if (shmtest_put(c, 1, 1, 4096) != BB_OK)
			_exit(3);
		if (c->my_slot == (int)parent_ref.client)
			_exit(4);
		bbc_unpin(c, &r); /* the parent's pin: not ours to drop */
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT(read_ok(c, 1, 1, 4096));
	CU_ASSERT_EQUAL(bbc_evict(c, 1, 0), BB_EBUSY); /* still pinned by us */
	bbc_unpin(c, &parent_ref);
	CU_ASSERT_EQUAL(bbc_evict(c, 1, 0), BB_OK);
	drop_cache(c, 17);
}

/* A process that detaches in the middle of a fill does not leave its
 * waiters stuck: the fill fails as if it had died, and a waiter refills. */
static void test_detach_during_fill(void)
{
	struct bbc_cache *c = make_cache(18, 4 << 20, 1, BBC_NUMA_LOCAL);
	uint64_t job = shmtest_job_id(18);
	int pfd[2];
	struct bbc_ref ref;

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct bbc_ref r;
		struct bbc_cache *c2;
		char x = 0;
		if (bbc_attach(NULL, job, &c2) != BB_OK ||
		    bbc_get(c2, 9, 0, 4096, -1, 0, 0, &r) != BB_OK || !r.filling)
			_exit(2);
		(void)!write(pfd[1], &x, 1);
		usleep(100 * 1000);
		bbc_detach(c2); /* the inherited handle: users 2 -> 1 */
		bbc_detach(c2); /* the last user: leaves */
		pause();
		_exit(0);
	}
	char x;
	CU_ASSERT_EQUAL(read(pfd[0], &x, 1), 1);
	CU_ASSERT_EQUAL(bbc_get(c, 9, 0, 4096, -1, 0, 5000, &ref), BB_OK);
	CU_ASSERT_EQUAL(ref.filling, 1);
	shmtest_fill(ref.data, 9, 0, 4096);
	CU_ASSERT_EQUAL(bbc_fill_commit(c, &ref), BB_OK);
	bbc_unpin(c, &ref);
	CU_ASSERT(read_ok(c, 9, 0, 4096));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pfd[0]);
	close(pfd[1]);
	drop_cache(c, 18);
}

SHMTEST_MAIN("shmcache",
	     {"detach during a fill", test_detach_during_fill},
	     {"segment lifecycle", test_segment_lifecycle},
	     {"attach rejects garbage", test_attach_rejects_garbage},
	     {"fill and read", test_fill_and_read},
	     {"fill abort", test_fill_abort},
	     {"waiter gets the fill error", test_waiter_gets_fill_error},
	     {"single flight", test_single_flight},
	     {"filler dies", test_filler_dies},
	     {"reader dies with a pin", test_reader_dies_with_pin},
	     {"lock holders die", test_lock_holder_dies},
	     {"eviction", test_eviction},
	     {"crowded bucket", test_crowded_bucket},
	     {"bucket runs", test_bucket_runs},
	     {"stale page hint", test_stale_page_hint},
	     {"read races eviction and reuse", test_read_races_reuse},
	     {"slot eviction", test_slot_eviction},
	     {"64 MiB blocks", test_large_blocks},
	     {"numa local and interleave", test_numa_local_and_interleave},
	     {"numa replicate", test_numa_replicate},
	     {"real topology binding", test_real_topology_binding},
	     {"fork child", test_fork_child})
