/* Segments: create, attach, detach; client slots and their liveness; locks. */
#include "config.h"

#define BB_LOG_COMPONENT "shmcache"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "shmcache/internal.h"

__thread int bbc_forced_arena = -1;

/* Process-local list of attached caches, so a forked child forgets the
 * parent's client slots (fcntl locks are not inherited) and registers anew. */
static pthread_mutex_t g_attached_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bbc_cache *g_attached;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void atfork_child(void)
{
	pthread_mutex_init(&g_attached_lock, NULL);
	for (struct bbc_cache *c = g_attached; c; c = c->next_attached) {
		c->my_slot = -1;
		c->st = NULL;
		pthread_mutex_init(&c->reg_lock, NULL);
	}
}

static void atfork_setup(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

static void attached_add(struct bbc_cache *c)
{
	struct stat st;

	pthread_once(&g_atfork_once, atfork_setup);
	if (fstat(c->fd, &st) == 0) {
		c->dev = st.st_dev;
		c->ino = st.st_ino;
	}
	pthread_mutex_lock(&g_attached_lock);
	c->users = 1;
	c->next_attached = g_attached;
	g_attached = c;
	pthread_mutex_unlock(&g_attached_lock);
}

/* One handle per segment per process: POSIX record locks belong to the
 * process, so a second handle would share (and on close, drop) the first
 * one's client lock. */
static struct bbc_cache *attached_find(const struct stat *st)
{
	struct bbc_cache *c;

	pthread_mutex_lock(&g_attached_lock);
	for (c = g_attached; c; c = c->next_attached)
		if (c->dev == st->st_dev && c->ino == st->st_ino) {
			c->users++;
			break;
		}
	pthread_mutex_unlock(&g_attached_lock);
	return c;
}

/* 1 if this was the last user of c (now off the list). */
static int attached_release(struct bbc_cache *c)
{
	int last = 0;

	pthread_mutex_lock(&g_attached_lock);
	if (--c->users <= 0) {
		last = 1;
		for (struct bbc_cache **pp = &g_attached; *pp; pp = &(*pp)->next_attached) {
			if (*pp == c) {
				*pp = c->next_attached;
				break;
			}
		}
	}
	pthread_mutex_unlock(&g_attached_lock);
	return last;
}

void bbc_test_set_arena(int arena)
{
	bbc_forced_arena = arena;
}

int bbc_segment_path(const char *dir, uint64_t job_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/bbcache.%llu", dir ? dir : "/dev/shm",
			 (unsigned long long)job_id);
	return (n < 0 || (size_t)n >= len) ? BB_ERANGE : BB_OK;
}

/* ---- futexes ------------------------------------------------------------ */

int bbc_futex_wait(_Atomic uint32_t *addr, uint32_t val, int timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
	long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, val,
			 timeout_ms >= 0 ? &ts : NULL, NULL, 0);
	return r == 0 ? 0 : errno;
}

void bbc_futex_wake(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void bbc_set_state_wake(struct bbc_entry *e, uint32_t st)
{
	uint32_t old = atomic_exchange_explicit(&e->state, st, memory_order_acq_rel);
	if (old & BBC_ST_WAITERS)
		bbc_futex_wake(&e->state);
}

/* ---- locks --------------------------------------------------------------- */

static int lock_result(struct bbc_cache *c, struct bbc_lock *l, int kind, uint32_t id, int r)
{
	if (r == 0)
		return BB_OK;
	if (r == EOWNERDEAD) {
		bb_warn("a process died holding %s lock %u of job %llu: repairing",
			kind == BBC_LK_STRIPE  ? "stripe"
			: kind == BBC_LK_ARENA ? "arena"
					       : "slots",
			id, (unsigned long long)c->hdr->job_id);
		bbc_lock_repair(c, kind, id);
		l->repairs++;
		atomic_fetch_add(&c->hdr->repairs, 1);
		pthread_mutex_consistent(&l->m);
		return BB_OK;
	}
	if (r == EBUSY)
		return BB_EBUSY;
	bb_error("lock %d/%u of job %llu: %s", kind, id, (unsigned long long)c->hdr->job_id,
		 strerror(r));
	return BB_ESYS;
}

int bbc_lock_acquire(struct bbc_cache *c, struct bbc_lock *l, int kind, uint32_t id)
{
	return lock_result(c, l, kind, id, pthread_mutex_lock(&l->m));
}

int bbc_lock_try(struct bbc_cache *c, struct bbc_lock *l, int kind, uint32_t id)
{
	return lock_result(c, l, kind, id, pthread_mutex_trylock(&l->m));
}

/* The one repair function: rebuild what the dead holder may have left half
 * changed.  Each structure is either rebuilt from the entries (free lists)
 * or checked chain by chain (stripes). */
void bbc_lock_repair(struct bbc_cache *c, int kind, uint32_t id)
{
	switch (kind) {
	case BBC_LK_STRIPE:
		do_bbc_stripe_repair(c, id);
		break;
	case BBC_LK_ARENA:
		do_bbc_arena_rebuild(c, id);
		break;
	case BBC_LK_SLOTS:
		do_bbc_slots_rebuild(c);
		break;
	}
}

static int lock_init(struct bbc_lock *l)
{
	pthread_mutexattr_t a;
	int r;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	r = pthread_mutex_init(&l->m, &a);
	pthread_mutexattr_destroy(&a);
	l->repairs = 0;
	return r ? BB_ESYS : BB_OK;
}

/* ---- clients ------------------------------------------------------------- */

static int client_lock_op(struct bbc_cache *c, uint32_t slot, int cmd, struct flock *fl)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = F_WRLCK;
	fl->l_whence = SEEK_SET;
	fl->l_start = (off_t)(BBC_CLIENT_LOCK_BASE + slot);
	fl->l_len = 1;
	return fcntl(c->fd, cmd, fl);
}

/* 1 if no live process holds the slot (our own slot is never dead). */
int bbc_client_dead(struct bbc_cache *c, uint32_t slot)
{
	struct flock fl;

	if ((int)slot == c->my_slot)
		return 0;
	if (client_lock_op(c, slot, F_GETLK, &fl) < 0)
		return 0; /* cannot tell: assume alive, never free what may be used */
	return fl.l_type == F_UNLCK;
}

int bbc_register(struct bbc_cache *c)
{
	struct flock fl;
	int rc = BB_EBUSY;

	pthread_mutex_lock(&c->reg_lock);
	if (c->my_slot >= 0) {
		rc = BB_OK;
		goto out;
	}
	for (uint32_t i = 0; i < c->hdr->n_clients; i++) {
		if (client_lock_op(c, i, F_SETLK, &fl) < 0)
			continue; /* a live process holds it */
		struct bbc_client *cl = bbc_client_at(c, i);
		if (atomic_load(&cl->pid) != 0) {
			/* Its last user died: take back what it held first. */
			rc = bbc_audit_reclaim(c, (int)i);
			if (rc != BB_OK) {
				fl.l_type = F_UNLCK;
				fcntl(c->fd, F_SETLK, &fl);
				goto out;
			}
		}
		memset(&cl->st, 0, sizeof(cl->st));
		cl->ref_hint = 0;
		c->my_pid = getpid();
		atomic_store(&cl->pid, (uint32_t)c->my_pid);
		c->my_slot = (int)i;
		c->st = &cl->st;
		rc = BB_OK;
		goto out;
	}
	bb_error("job %llu: all %u client slots of the cache are in use",
		 (unsigned long long)c->hdr->job_id, c->hdr->n_clients);
out:
	pthread_mutex_unlock(&c->reg_lock);
	return rc;
}

/* ---- arenas and CPUs ---------------------------------------------------- */

int bbc_current_arena(struct bbc_cache *c)
{
	if (bbc_forced_arena >= 0)
		return bbc_forced_arena % (int)c->hdr->n_arenas;
	if (c->hdr->n_arenas == 1)
		return 0;
	int cpu = sched_getcpu(); /* vDSO/rseq: no system call */
	if (cpu < 0)
		return 0;
	return c->hdr->cpu_arena[cpu & (BBC_MAX_CPUS - 1)];
}

int bbc_arena_for(struct bbc_cache *c, uint64_t file_id, uint64_t block, int node)
{
	uint32_t n = c->hdr->n_arenas;

	if (n == 1)
		return 0;
	if (c->hdr->policy == BBC_NUMA_INTERLEAVE)
		return (int)((bbc_mix_hash(file_id, block) >> 40) % n);
	if (node >= 0)
		return node % (int)n;
	return bbc_current_arena(c);
}

uint32_t bbc_n_arenas(const struct bbc_cache *c)
{
	return c->hdr->n_arenas;
}

int bbc_policy(const struct bbc_cache *c)
{
	return (int)c->hdr->policy;
}

/* ---- create / attach ----------------------------------------------------- */

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static void cache_setup_views(struct bbc_cache *c)
{
	c->base = (char *)c->hdr;
	c->n_buckets = c->hdr->n_buckets;
	c->n_runs = c->hdr->n_buckets >> BBC_BUCKET_RUN_SHIFT;
	c->n_stripes_mask = c->hdr->n_stripes - 1;
	c->n_entries = c->hdr->n_entries;
	c->buckets = (struct bbc_bucket *)(c->base + c->hdr->off_buckets);
	c->stripes = (struct bbc_lock *)(c->base + c->hdr->off_stripes);
	c->entries = (struct bbc_entry *)(c->base + c->hdr->off_entries);
	c->read_slow_only = c->hdr->policy == BBC_NUMA_REPLICATE && c->hdr->n_arenas > 1;
}

static struct bbc_cache *cache_new(void)
{
	struct bbc_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = -1;
	c->my_slot = -1;
	pthread_mutex_init(&c->reg_lock, NULL);
	return c;
}

/* Lay the segment out for p; fills hdr fields and returns the total size. */
static uint64_t plan_layout(const struct bbc_params *p, struct bbc_header *h, int n_arenas,
			    uint64_t *arena_size)
{
	uint64_t off = round_up(sizeof(*h), BBC_LINE);
	uint64_t per = p->byte_limit / (uint64_t)n_arenas;

	per = per / BBC_MIN_EXTENT * BBC_MIN_EXTENT;
	*arena_size = per;
	h->n_entries = p->n_entries ? p->n_entries : (uint32_t)(p->byte_limit / (16u << 10));
	if (h->n_entries < 1024)
		h->n_entries = 1024;
	h->n_clients = p->n_clients ? p->n_clients : 256;
	h->refs_per_client = p->refs_per_client ? p->refs_per_client : 256;
	h->n_buckets = (uint32_t)round_up((h->n_entries + BBC_ENTRIES_PER_BUCKET - 1) /
						  BBC_ENTRIES_PER_BUCKET,
					  BBC_BUCKET_RUN);
	h->n_stripes = 1024;
	while (h->n_stripes > h->n_buckets)
		h->n_stripes >>= 1;
	h->client_size = (uint32_t)round_up(sizeof(struct bbc_client) +
					    (uint64_t)h->refs_per_client * 4, BBC_LINE);

	h->off_clients = off;
	off += (uint64_t)h->n_clients * h->client_size;
	h->off_stripes = off;
	off += (uint64_t)h->n_stripes * sizeof(struct bbc_lock);
	h->off_buckets = off;
	off += (uint64_t)h->n_buckets * sizeof(struct bbc_bucket);
	h->off_entries = off;
	off += (uint64_t)h->n_entries * sizeof(struct bbc_entry);
	for (int a = 0; a < n_arenas; a++) {
		h->arenas[a].unit_off = off;
		h->arenas[a].size = per;
		h->arenas[a].units = per >> BBC_MIN_SHIFT;
		off = round_up(off + h->arenas[a].units * sizeof(struct bbc_unit), BBC_LINE);
	}
	for (int a = 0; a < n_arenas; a++) {
		off = round_up(off, BBC_ARENA_ALIGN);
		h->arenas[a].data_off = off;
		off += per;
	}
	return round_up(off, 4096);
}

static int open_init_file(const char *tmp, int *fdp)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			*fdp = fd;
			return BB_OK;
		}
		if (errno != EEXIST)
			return errno == EACCES ? BB_EPERM : errno == ENOSPC ? BB_ENOSPC : BB_ESYS;
		/* Someone is initialising, or died doing it: its flock tells. */
		fd = open(tmp, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			return BB_EBUSY;
		}
		unlink(tmp);
		close(fd);
	}
	return BB_EBUSY;
}

int bbc_create(const struct bbc_params *p, struct bbc_cache **out)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	struct bbc_header plan;
	struct bbc_cache *c = NULL;
	uint64_t arena_size, seg_size;
	int n_arenas = p->topo ? p->topo->n_nodes : 1;
	int rc, fd = -1, linked = 0, r;
	void *map = MAP_FAILED;

	*out = NULL;
	if (n_arenas < 1 || n_arenas > BBC_MAX_ARENAS || p->policy < BBC_NUMA_LOCAL ||
	    p->policy > BBC_NUMA_REPLICATE)
		return BB_EINVAL;
	if (p->byte_limit / (uint64_t)n_arenas < 16 * BBC_MIN_EXTENT) {
		bb_error("shm limit %llu bytes is too small for %d arena(s)",
			 (unsigned long long)p->byte_limit, n_arenas);
		return BB_EINVAL;
	}
	rc = bbc_segment_path(p->dir, p->job_id, path, sizeof(path));
	if (rc != BB_OK)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.init", path);

	memset(&plan, 0, sizeof(plan));
	seg_size = plan_layout(p, &plan, n_arenas, &arena_size);
	/* Cheap early answer; link() below is what decides. */
	struct stat st_old;
	if (lstat(path, &st_old) == 0)
		return BB_EEXIST;

	rc = open_init_file(tmp, &fd);
	if (rc != BB_OK) {
		bb_error("cannot create %s: %s", tmp, bb_strerror(rc));
		return rc;
	}
	flock(fd, LOCK_EX); /* the initialiser: released when init is done */
	if (p->owner != (uid_t)-1 && p->owner != geteuid() && fchown(fd, p->owner, (gid_t)-1) < 0) {
		bb_error("cannot give %s to uid %u: %s", tmp, (unsigned)p->owner, strerror(errno));
		rc = BB_EPERM;
		goto out;
	}
	if (ftruncate(fd, (off_t)seg_size) < 0) {
		rc = errno == ENOSPC || errno == EFBIG ? BB_ENOSPC : BB_ESYS;
		bb_error("cannot size %s to %llu bytes: %s", tmp, (unsigned long long)seg_size,
			 strerror(errno));
		goto out;
	}
	map = mmap(NULL, seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = errno == ENOMEM ? BB_ENOMEM : BB_ESYS;
		bb_error("cannot map %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* Bind each arena before its pages exist, so fallocate places them. */
	for (int a = 0; a < n_arenas && p->topo && p->topo->bind; a++) {
		if (p->topo->node_id[a] < 0)
			continue;
		if (p->topo->bind((char *)map + plan.arenas[a].data_off, arena_size,
				  p->topo->node_id[a]) != 0)
			bb_warn("cannot bind arena %d to NUMA node %d: %s", a, p->topo->node_id[a],
				strerror(errno));
	}
	r = posix_fallocate(fd, 0, (off_t)seg_size);
	if (r != 0) {
		rc = r == ENOSPC ? BB_ENOSPC : BB_ESYS;
		bb_error("cannot allocate %llu bytes for %s: %s", (unsigned long long)seg_size, tmp,
			 strerror(r));
		goto out;
	}

	c = cache_new();
	if (!c) {
		rc = BB_ENOMEM;
		goto out;
	}
	c->hdr = map;
	c->map_len = seg_size;
	c->fd = fd;
	struct bbc_header *h = c->hdr;
	memcpy(h, &plan, sizeof(plan));
	h->magic = 0;
	h->format = BBC_FORMAT_WORD;
	h->header_size = sizeof(*h);
	h->seg_size = seg_size;
	h->job_id = p->job_id;
	h->owner_uid = p->owner != (uid_t)-1 ? (uint32_t)p->owner : (uint32_t)geteuid();
	h->policy = (uint32_t)p->policy;
	h->n_arenas = (uint32_t)n_arenas;
	h->byte_limit = arena_size * (uint64_t)n_arenas;
	for (int i = 0; i < BBC_MAX_CPUS; i++)
		h->cpu_arena[i] = p->topo ? (int16_t)(p->topo->cpu_node[i] % n_arenas) : 0;
	cache_setup_views(c);
	rc = lock_init(&h->slots_lock);
	for (uint32_t s = 0; s < h->n_stripes && rc == BB_OK; s++)
		rc = lock_init(&c->stripes[s]);
	for (int a = 0; a < n_arenas && rc == BB_OK; a++) {
		rc = lock_init(&h->arenas[a].lock);
		h->arenas[a].os_node = p->topo ? p->topo->node_id[a] : -1;
		bbc_arena_init(c, (uint32_t)a);
	}
	if (rc != BB_OK)
		goto out;
	for (uint32_t i = 0; i < h->n_entries; i++) {
		c->entries[i].data_off = BBC_OFF_NONE;
		c->entries[i].next = i + 1 < h->n_entries ? i + 2 : BBC_NIL;
	}
	h->free_entry = 1;
	atomic_thread_fence(memory_order_release);
	h->magic = BBC_MAGIC;

	/* Still our .init file?  A second creator that took us for dead
	 * (between our open and our flock) may have replaced it. */
	struct stat st_fd, st_name;
	if (fstat(fd, &st_fd) < 0 || stat(tmp, &st_name) < 0 || st_fd.st_ino != st_name.st_ino ||
	    st_fd.st_dev != st_name.st_dev) {
		bb_error("%s was replaced while being initialised", tmp);
		rc = BB_EBUSY;
		linked = 1; /* not ours to unlink */
		goto out;
	}
	if (link(tmp, path) < 0) {
		rc = errno == EEXIST ? BB_EEXIST : BB_ESYS;
		bb_error("cannot publish %s: %s", path, strerror(errno));
		goto out;
	}
	linked = 1;
	unlink(tmp);
	flock(fd, LOCK_UN);
	attached_add(c);
	*out = c;
	bb_debug("created %s: %llu bytes, %d arena(s), %u entries", path,
		 (unsigned long long)seg_size, n_arenas, h->n_entries);
	return BB_OK;
out:
	if (!linked)
		unlink(tmp);
	if (map != MAP_FAILED)
		munmap(map, seg_size);
	if (fd >= 0)
		close(fd);
	free(c);
	return rc;
}

/* The stored counts and offsets describe regions inside the segment, in
 * order, so no pointer computed from them can leave the mapping. */
static int layout_ok(const struct bbc_header *h)
{
	uint64_t end = h->seg_size;

	if (h->n_arenas < 1 || h->n_arenas > BBC_MAX_ARENAS || !h->n_buckets ||
	    h->n_buckets % BBC_BUCKET_RUN || !h->n_stripes ||
	    (h->n_stripes & (h->n_stripes - 1)) || h->n_stripes > h->n_buckets ||
	    h->n_entries < 1 || h->n_entries > (1u << 30) || h->n_clients < 1 ||
	    h->client_size < sizeof(struct bbc_client) + (uint64_t)h->refs_per_client * 4)
		return 0;
	if (h->off_clients < sizeof(*h) ||
	    h->off_stripes < h->off_clients + (uint64_t)h->n_clients * h->client_size ||
	    h->off_buckets < h->off_stripes + (uint64_t)h->n_stripes * sizeof(struct bbc_lock) ||
	    h->off_buckets % BBC_LINE ||
	    h->off_entries < h->off_buckets + (uint64_t)h->n_buckets * sizeof(struct bbc_bucket) ||
	    h->off_entries + (uint64_t)h->n_entries * sizeof(struct bbc_entry) > end)
		return 0;
	for (uint32_t a = 0; a < h->n_arenas; a++) {
		const struct bbc_arena *ar = &h->arenas[a];
		if (ar->units != ar->size >> BBC_MIN_SHIFT || ar->data_off > end ||
		    ar->size > end - ar->data_off || ar->unit_off > end ||
		    ar->units * sizeof(struct bbc_unit) > end - ar->unit_off)
			return 0;
	}
	return 1;
}

int bbc_attach(const char *dir, uint64_t job_id, struct bbc_cache **out)
{
	char path[PATH_MAX];
	struct stat st;
	struct bbc_cache *c = NULL;
	struct bbc_header *h;
	void *map = MAP_FAILED;
	int fd = -1, rc;

	*out = NULL;
	rc = bbc_segment_path(dir, job_id, path, sizeof(path));
	if (rc != BB_OK)
		return rc;
	/* Attached already?  Look before opening: closing a second descriptor
	 * of the file would drop this process's client lock. */
	if (lstat(path, &st) == 0 && (c = attached_find(&st))) {
		*out = c;
		return BB_OK;
	}
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? BB_ENOENT : errno == EACCES ? BB_EPERM : BB_ESYS;
	if (fstat(fd, &st) < 0) {
		rc = BB_ESYS;
		goto out;
	}
	if (st.st_uid != geteuid() && geteuid() != 0) {
		bb_error("%s belongs to uid %u, not to us", path, (unsigned)st.st_uid);
		rc = BB_EPERM;
		goto out;
	}
	if ((uint64_t)st.st_size < sizeof(struct bbc_header)) {
		rc = BB_EBADSEG;
		goto out;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = BB_ESYS;
		goto out;
	}
	h = map;
	if (h->magic != BBC_MAGIC || h->format != BBC_FORMAT_WORD ||
	    h->header_size != sizeof(*h) || h->seg_size != (uint64_t)st.st_size ||
	    h->job_id != job_id || !layout_ok(h)) {
		bb_error("%s is not a bbcache segment of format %u for job %llu", path,
			 BBC_FORMAT_VERSION, (unsigned long long)job_id);
		rc = BB_EBADSEG;
		goto out;
	}
	c = cache_new();
	if (!c) {
		rc = BB_ENOMEM;
		goto out;
	}
	c->hdr = h;
	c->map_len = (size_t)st.st_size;
	c->fd = fd;
	cache_setup_views(c);
	attached_add(c);
	*out = c;
	return BB_OK;
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	close(fd);
	return rc;
}

void bbc_detach(struct bbc_cache *c)
{
	if (!c || !attached_release(c))
		return;
	if (c->my_slot >= 0 && c->my_pid == getpid()) {
		/* Leave as if dead, but now: our pins go, our unfinished fills
		 * fail (their waiters refill), our statistics are kept. */
		bbc_audit_reclaim(c, c->my_slot);
		atomic_store(&bbc_client_at(c, (uint32_t)c->my_slot)->pid, 0);
	}
	munmap(c->hdr, c->map_len);
	close(c->fd); /* drops our fcntl lock on the slot */
	free(c);
}

int bbc_unlink(const char *dir, uint64_t job_id)
{
	char path[PATH_MAX];
	int rc = bbc_segment_path(dir, job_id, path, sizeof(path));

	if (rc != BB_OK)
		return rc;
	if (unlink(path) < 0)
		return errno == ENOENT ? BB_ENOENT : errno == EACCES ? BB_EPERM : BB_ESYS;
	return BB_OK;
}
