/* A small client of bbcached for tests/agent/test_agent.sh: speaks the
 * protocol with bbp_connect/bbp_call (and raw sends for malformed ones),
 * reads blocks from the job's shm with bbc_attach/bbc_read, and compares
 * every byte with the origin's copy.
 *
 *   agent_client hello SOCK
 *   agent_client fetch SOCK FILEID BLOCK [nowait]        prints rc and tier
 *   agent_client file SOCK FILEID                         prints rc
 *   agent_client fetch-all SOCK JOB SHMDIR MANIFEST DATASET SRCROOT [THREADS]
 *   agent_client malformed SOCK
 *   agent_client attach JOB SHMDIR
 *
 * Exit 0 when the check passed, 1 when it failed, 3 when it could not
 * connect or attach (the rc name is printed). */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/proto.h"
#include "shmcache/shmcache.h"
#include "stage/manifest.h"

static unsigned char g_buf[BBP_MAX_MSG];
static uint32_t g_seq = 1;

static int conn(const char *sock)
{
	int fd, rc = bbp_connect(sock, &fd);
	if (rc != BB_OK) {
		printf("connect %s\n", bb_errname(rc));
		exit(3);
	}
	return fd;
}

static int call(int fd, struct bbp_msg *q, struct bbp_msg *r, unsigned char *buf)
{
	q->h.seq = __atomic_fetch_add(&g_seq, 1, __ATOMIC_RELAXED);
	return bbp_call(fd, q, r, buf, BBP_MAX_MSG, 120000);
}

static int cmd_hello(const char *sock)
{
	int fd = conn(sock);
	struct bbp_msg q = {0}, r;
	q.h.op = BBP_HELLO;
	q.u32 = BBP_VERSION;
	int rc = call(fd, &q, &r, g_buf);
	if (rc != BB_OK) {
		printf("call %s\n", bb_errname(rc));
		return 1;
	}
	printf("rc %s version %u job %llu\n", bb_errname(r.rc), r.u32, (unsigned long long)r.a);
	return r.rc == BB_OK ? 0 : 1;
}

static int cmd_fetch(const char *sock, uint64_t fid, uint64_t block, int nowait)
{
	int fd = conn(sock);
	struct bbp_msg q = {0}, r;
	q.h.op = BBP_FETCH;
	q.a = fid;
	q.b = block;
	q.u32 = nowait ? BBP_FETCH_NOWAIT : 0;
	int rc = call(fd, &q, &r, g_buf);
	if (rc != BB_OK) {
		printf("call %s\n", bb_errname(rc));
		return 1;
	}
	printf("rc %s tier %u\n", bb_errname(r.rc), r.u32);
	return 0;
}

static int cmd_file(const char *sock, uint64_t fid)
{
	int fd = conn(sock);
	struct bbp_msg q = {0}, r;
	q.h.op = BBP_FILE;
	q.a = fid;
	int rc = call(fd, &q, &r, g_buf);
	if (rc != BB_OK) {
		printf("call %s\n", bb_errname(rc));
		return 1;
	}
	printf("rc %s\n", bb_errname(r.rc));
	return 0;
}

/* ---- fetch-all: every block of a dataset, compared with the origin ------- */

struct all {
	const char *sock, *srcroot, *mount;
	struct bb_manifest *m;
	struct bbc_cache *c;
	uint32_t d, block;
	uint64_t tiers[5], bytes, bad, errors, retries;
	pthread_mutex_t lock;
};

static int compare(struct all *A, const struct bb_mentry *e, uint64_t b, uint32_t tier,
		   unsigned char *got, unsigned char *want)
{
	char p[8192];
	uint64_t off = b * A->block;
	size_t len = e->size - off < A->block ? e->size - off : A->block;
	long n;

	if (tier == BBP_TIER_DISK) {
		snprintf(p, sizeof(p), "%s/%s", A->mount, e->path);
		int fd = open(p, O_RDONLY);
		n = fd >= 0 ? (long)pread(fd, got, len, (off_t)off) : -1;
		if (fd >= 0)
			close(fd);
	} else {
		n = bbc_read(A->c, bbp_file_id(A->d, e->idx), b, 0, got, A->block);
		/* Evicted between the reply and the read (a small cache under
		 * prefetch): a reader asks again, as the interposer does. */
		if (n == -BB_ENOENT)
			return 2;
	}
	snprintf(p, sizeof(p), "%s/%s", A->srcroot, e->path);
	int fd = open(p, O_RDONLY);
	long w = fd >= 0 ? (long)pread(fd, want, len, (off_t)off) : -1;
	if (fd >= 0)
		close(fd);
	if (n != (long)len || w != (long)len || memcmp(got, want, len)) {
		fprintf(stderr, "%s block %llu (tier %u): got %ld bytes, want %zu%s\n", e->path,
			(unsigned long long)b, tier, n, len, n == (long)len ? ": bytes differ" : "");
		return 1;
	}
	return 0;
}

static void *all_thread(void *arg)
{
	struct all *A = arg;
	unsigned char *buf = malloc(BBP_MAX_MSG), *got = malloc(A->block), *want = malloc(A->block);
	int fd = conn(A->sock);

	for (uint32_t i = 0; i < bb_manifest_count(A->m); i++) {
		struct bb_mentry e;
		bb_manifest_entry(A->m, i, &e);
		for (uint64_t b = 0, again = 0; b < e.n_blocks; b++) {
			struct bbp_msg q = {0}, r;
			q.h.op = BBP_FETCH;
			q.a = bbp_file_id(A->d, i);
			q.b = b;
			int rc = call(fd, &q, &r, buf);
			pthread_mutex_lock(&A->lock);
			if (rc != BB_OK || r.rc != BB_OK || r.u32 < 1 || r.u32 > 4) {
				fprintf(stderr, "FETCH %s block %llu: call %s, rc %s, tier %u\n", e.path,
					(unsigned long long)b, bb_errname(rc), bb_errname(r.rc), r.u32);
				A->errors++;
			} else {
				A->tiers[r.u32]++;
				pthread_mutex_unlock(&A->lock);
				int bad = compare(A, &e, b, r.u32, got, want);
				pthread_mutex_lock(&A->lock);
				if (bad == 2 && ++again < 20) {
					A->retries++;
					pthread_mutex_unlock(&A->lock);
					b--;
					continue;
				}
				again = 0;
				if (bad == 2)
					fprintf(stderr, "%s block %llu: evicted 20 times in a row\n", e.path,
						(unsigned long long)b);
				bad = bad != 0;
				A->bad += (uint64_t)bad;
				A->bytes += bad ? 0 : (e.size - b * A->block < A->block ? e.size - b * A->block : A->block);
			}
			pthread_mutex_unlock(&A->lock);
		}
	}
	close(fd);
	free(buf);
	free(got);
	free(want);
	return NULL;
}

static int cmd_fetch_all(char **av, int threads)
{
	struct all A = {0};
	char err[1024], mount[8192];
	uint64_t job = strtoull(av[1], NULL, 10);

	A.sock = av[0];
	A.d = (uint32_t)atoi(av[4]);
	A.srcroot = av[5];
	pthread_mutex_init(&A.lock, NULL);
	if (bb_manifest_open(av[3], &A.m, err, sizeof(err)) != BB_OK) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* DIR/.bbcache/NAME.manifest -> DIR/NAME */
	snprintf(mount, sizeof(mount), "%s", av[3]);
	char *name = strrchr(mount, '/');
	*name = '\0';
	char *bbdir = strrchr(mount, '/');
	snprintf(bbdir, sizeof(mount) - (size_t)(bbdir - mount), "/%s", name + 1);
	mount[strlen(mount) - 9] = '\0';
	A.mount = mount;
	A.block = bb_manifest_block_size(A.m);
	int rc = bbc_attach(av[2], job, &A.c);
	if (rc != BB_OK) {
		printf("attach %s\n", bb_errname(rc));
		return 3;
	}
	pthread_t t[64];
	if (threads < 1 || threads > 64)
		threads = 1;
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, all_thread, &A);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("shm %llu nvme %llu origin %llu disk %llu bytes %llu bad %llu errors %llu retries %llu\n",
	       (unsigned long long)A.tiers[1], (unsigned long long)A.tiers[2],
	       (unsigned long long)A.tiers[3], (unsigned long long)A.tiers[4],
	       (unsigned long long)A.bytes, (unsigned long long)A.bad, (unsigned long long)A.errors,
	       (unsigned long long)A.retries);
	bbc_detach(A.c);
	bb_manifest_close(A.m);
	return A.bad || A.errors ? 1 : 0;
}

/* ---- malformed messages ----------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Send len raw bytes; 1 if the reply is a well-formed op reply with rc BB_EPROTO. */
static int expect_eproto(int fd, const unsigned char *msg, size_t len, uint16_t op, const char *what)
{
	struct bbp_msg r;
	if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len) {
		printf("not ok - %s: send failed\n", what);
		return 0;
	}
	ssize_t n = recv(fd, g_buf, sizeof(g_buf), 0);
	if (n <= 0) {
		printf("not ok - %s: no reply (connection closed)\n", what);
		return 0;
	}
	if (bbp_decode(g_buf, (size_t)n, &r) != BB_OK || r.h.op != (op | BBP_REPLY) ||
	    r.rc != BB_EPROTO) {
		printf("not ok - %s: reply op 0x%x rc %s\n", what, r.h.op, bb_errname(r.rc));
		return 0;
	}
	printf("ok - %s: BB_EPROTO\n", what);
	return 1;
}

static int cmd_malformed(const char *sock)
{
	struct bbp_msg q = {0};
	unsigned char *m = calloc(1, 2 * BBP_MAX_MSG);
	int fd = conn(sock), good = 0, n_checks = 0;

	q.h.op = BBP_FETCH;
	q.h.seq = 7;
	size_t len = bbp_encode(&q, m, BBP_MAX_MSG);

	put32(m, 0xdeadbeef); /* bad magic */
	n_checks++, good += expect_eproto(fd, m, len, BBP_FETCH, "bad magic");
	put32(m, BBP_MAGIC);
	n_checks++, good += expect_eproto(fd, m, len - 3, BBP_FETCH, "short payload (wrong length)");
	put32(m + 16, 99);
	n_checks++, good += expect_eproto(fd, m, len, BBP_FETCH, "length field wrong");
	put32(m + 16, 20);
	put32(m + 4, 2);
	n_checks++, good += expect_eproto(fd, m, len, BBP_FETCH, "bad version");
	put32(m + 4, BBP_VERSION);
	put32(m + 16, 2 * BBP_MAX_MSG - BBP_HDR_SIZE);
	n_checks++, good += expect_eproto(fd, m, 2 * BBP_MAX_MSG, BBP_FETCH, "oversized message");
	put32(m + 16, 20);
	m[8] = 0x77; /* an unknown op */
	{
		struct bbp_msg r;
		send(fd, m, len, MSG_NOSIGNAL);
		ssize_t n = recv(fd, g_buf, sizeof(g_buf), 0);
		int ok = n == (ssize_t)BBP_HDR_SIZE + 4 && g_buf[8] == 0x77 && g_buf[9] == 0x80 &&
			 g_buf[24] == BB_EPROTO;
		(void)r;
		printf("%s - unknown op: %s\n", ok ? "ok" : "not ok",
		       ok ? "a header and rc BB_EPROTO" : "no such reply");
		n_checks++, good += ok;
	}
	/* The same connection still works. */
	struct bbp_msg h = {0}, r;
	h.h.op = BBP_HELLO;
	h.u32 = BBP_VERSION;
	int rc = call(fd, &h, &r, g_buf);
	int ok = rc == BB_OK && r.rc == BB_OK && r.u32 == BBP_VERSION;
	printf("%s - HELLO on the same connection after them\n", ok ? "ok" : "not ok");
	n_checks++, good += ok;
	/* Fewer bytes than a header: the agent closes that connection. */
	send(fd, m, 10, MSG_NOSIGNAL);
	ssize_t n = recv(fd, g_buf, sizeof(g_buf), 0);
	ok = n == 0;
	printf("%s - a 10-byte message: connection closed\n", ok ? "ok" : "not ok");
	n_checks++, good += ok;
	close(fd);
	/* And the agent still serves others. */
	fd = conn(sock);
	rc = call(fd, &h, &r, g_buf);
	ok = rc == BB_OK && r.rc == BB_OK;
	printf("%s - the agent still serves a new connection\n", ok ? "ok" : "not ok");
	n_checks++, good += ok;
	close(fd);
	free(m);
	return good == n_checks ? 0 : 1;
}

static int cmd_attach(uint64_t job, const char *dir)
{
	struct bbc_cache *c;
	int rc = bbc_attach(dir, job, &c);
	printf("attach %s\n", bb_errname(rc));
	if (rc != BB_OK)
		return 3;
	bbc_detach(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "hello"))
		return cmd_hello(argv[2]);
	if (argc >= 5 && !strcmp(argv[1], "fetch"))
		return cmd_fetch(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
				 argc > 5 && !strcmp(argv[5], "nowait"));
	if (argc >= 4 && !strcmp(argv[1], "file"))
		return cmd_file(argv[2], strtoull(argv[3], NULL, 0));
	if (argc >= 8 && !strcmp(argv[1], "fetch-all"))
		return cmd_fetch_all(argv + 2, argc > 8 ? atoi(argv[8]) : 1);
	if (argc >= 3 && !strcmp(argv[1], "malformed"))
		return cmd_malformed(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "attach"))
		return cmd_attach(strtoull(argv[2], NULL, 10), argv[3]);
	fprintf(stderr, "usage: see the head of tests/agent/agent_client.c\n");
	return 2;
}
