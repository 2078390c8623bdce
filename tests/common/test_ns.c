/* Unit tests: the job's namespace file (common/ns.h). */
#include "config.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/ns.h"

static char dir[] = "/tmp/bbcache-test-ns-XXXXXX";
static char path[256], err[2048];
static struct bb_ns ns, back;

static const char head[] = "bbcache-ns\t1\njob\t7\nshm\t/dev/shm\nsocket\t/j/.bbcache/agent.sock\n";

static void put_file(const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL((size_t)write(fd, text, len), len);
	close(fd);
}

static int read_text(const char *text)
{
	put_file(text, strlen(text));
	err[0] = '\0';
	return bb_ns_read(path, &back, err, sizeof(err));
}

/* text must be refused as BB_EPARSE with want ("path:LINE: ..." or a
 * message) in err. */
static void expect_bad(const char *text, const char *want)
{
	char full[256];
	int rc = read_text(text);

	snprintf(full, sizeof(full), "%s%s", want[0] == ':' ? path : "", want);
	CU_ASSERT_EQUAL(rc, BB_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, full));
	if (rc != BB_EPARSE || !strstr(err, full))
		fprintf(stderr, "\n  input: \"%s\"\n  got %s \"%s\", want BB_EPARSE \"%s\"\n", text,
			bb_errname(rc), err, full);
}

/* Nothing but the namespace file (and no .tmp) is in the directory. */
static int entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void fill(struct bb_ns *n, uint32_t count)
{
	memset(n, 0, sizeof(*n));
	n->job_id = 18446744073709551615ull;
	strcpy(n->shm_dir, "/dev/shm");
	strcpy(n->socket, "/scratch/u/job/.bbcache/agent.sock");
	n->n = count;
	for (uint32_t i = 0; i < count; i++) {
		snprintf(n->ds[i].mount, sizeof(n->ds[i].mount), "/scratch/u/job/data%u", i);
		snprintf(n->ds[i].manifest, sizeof(n->ds[i].manifest),
			 "/var/tmp/bbcache/42/m%u.bbm", i);
	}
}

static void test_roundtrip(void)
{
	struct stat st;
	char tmp[300], text[1024];
	int fd;
	ssize_t n;

	fill(&ns, 4);
	ns.job_id = 123456789012345ull;
	strcpy(ns.ds[0].mount, "/scratch/u/job/data/"); /* normalized on read */
	strcpy(ns.ds[1].mount, "/scratch/u/job/one-file.bin");
	strcpy(ns.ds[2].mount, "/");
	strcpy(ns.ds[3].mount, "/a b/c d///");		  /* spaces are fine */
	strcpy(ns.ds[3].manifest, "/m/with space.bbm");
	umask(022);
	CU_ASSERT_EQUAL_FATAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT(S_ISREG(st.st_mode));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CU_ASSERT_EQUAL(access(tmp, F_OK), -1);
	CU_ASSERT_EQUAL(entries(), 1);

	/* the format of ns.h, to the byte */
	fd = open(path, O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	CU_ASSERT_FATAL(n > 0);
	text[n] = '\0';
	CU_ASSERT_STRING_EQUAL(text, "bbcache-ns\t1\n"
				     "job\t123456789012345\n"
				     "shm\t/dev/shm\n"
				     "socket\t/scratch/u/job/.bbcache/agent.sock\n"
				     "dataset\t/scratch/u/job/data/\t/var/tmp/bbcache/42/m0.bbm\n"
				     "dataset\t/scratch/u/job/one-file.bin\t/var/tmp/bbcache/42/m1.bbm\n"
				     "dataset\t/\t/var/tmp/bbcache/42/m2.bbm\n"
				     "dataset\t/a b/c d///\t/m/with space.bbm\n");

	memset(&back, 0xa5, sizeof(back));
	CU_ASSERT_EQUAL_FATAL(bb_ns_read(path, &back, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(back.job_id, 123456789012345ull);
	CU_ASSERT_STRING_EQUAL(back.shm_dir, "/dev/shm");
	CU_ASSERT_STRING_EQUAL(back.socket, "/scratch/u/job/.bbcache/agent.sock");
	CU_ASSERT_EQUAL_FATAL(back.n, 4);
	CU_ASSERT_STRING_EQUAL(back.ds[0].mount, "/scratch/u/job/data");
	CU_ASSERT_STRING_EQUAL(back.ds[0].manifest, "/var/tmp/bbcache/42/m0.bbm");
	CU_ASSERT_STRING_EQUAL(back.ds[1].mount, "/scratch/u/job/one-file.bin");
	CU_ASSERT_STRING_EQUAL(back.ds[1].manifest, "/var/tmp/bbcache/42/m1.bbm");
	CU_ASSERT_STRING_EQUAL(back.ds[2].mount, "/");
	CU_ASSERT_STRING_EQUAL(back.ds[3].mount, "/a b/c d");
	CU_ASSERT_STRING_EQUAL(back.ds[3].manifest, "/m/with space.bbm");
	/* the rest of the struct is zeroed, not left from before */
	CU_ASSERT_EQUAL(back.ds[4].mount[0], '\0');

	/* overwritten in place by a smaller one: no datasets, the largest job */
	fill(&ns, 0);
	CU_ASSERT_EQUAL_FATAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL_FATAL(bb_ns_read(path, &back, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(back.n, 0);
	CU_ASSERT_EQUAL(back.job_id, 18446744073709551615ull);
	CU_ASSERT_EQUAL(entries(), 1);

	/* the most datasets, the longest fields */
	fill(&ns, BB_NS_MAX_DATASETS);
	memset(ns.shm_dir, 's', BB_NS_PATH - 1);
	ns.shm_dir[0] = '/';
	memset(ns.socket, 'k', sizeof(ns.socket) - 1);
	ns.socket[0] = '/';
	memset(ns.ds[63].mount, 'm', BB_NS_PATH - 1);
	ns.ds[63].mount[0] = '/';
	memset(ns.ds[63].manifest, 'f', BB_NS_PATH - 1);
	CU_ASSERT_EQUAL_FATAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL_FATAL(bb_ns_read(path, &back, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(back.n, BB_NS_MAX_DATASETS);
	CU_ASSERT_EQUAL(memcmp(&ns, &back, sizeof(ns)), 0);
	unlink(path);
}

static void test_write_refuses(void)
{
	struct bb_ns *big;
	char longpath[BB_NS_PATH + 16];

	fill(&ns, 3);
	strcpy(ns.ds[1].mount, "/a\tb");
	CU_ASSERT_EQUAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "tab or newline"));
	CU_ASSERT_EQUAL(entries(), 0);
	fill(&ns, 3);
	strcpy(ns.ds[2].manifest, "/m\tx.bbm");
	CU_ASSERT_EQUAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_EINVAL);
	fill(&ns, 3);
	strcpy(ns.ds[0].mount, "/a\ndataset\t/b");
	CU_ASSERT_EQUAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_EINVAL);
	CU_ASSERT_EQUAL(entries(), 0);

	/* Found by this test, since fixed (common/ns.c, bb_ns_write): only dataset paths are checked for a
	 * tab or newline, not shm_dir and socket.  A socket path with a
	 * newline writes a file with an extra, injected dataset line (below:
	 * it reads back with n == 1 and socket "/s").  Expected BB_EINVAL and
	 * no file. */
	fill(&ns, 0);
	strcpy(ns.socket, "/s\ndataset\t/x\t/evil.bbm");
	CU_ASSERT_EQUAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_EINVAL);
	unlink(path);
	fill(&ns, 0);
	strcpy(ns.shm_dir, "/dev/shm\tx");
	CU_ASSERT_EQUAL(bb_ns_write(path, &ns, err, sizeof(err)), BB_EINVAL);
	unlink(path);
	CU_ASSERT_EQUAL(entries(), 0);

	/* Found by this test, since fixed (common/ns.c, bb_ns_write): n is not checked against
	 * BB_NS_MAX_DATASETS (a caller's n = 65 reads ds[64], past the struct;
	 * here the struct is over-allocated so that is safe), and the file it
	 * writes is refused by bb_ns_read ("too many datasets").  Expected an
	 * error (BB_EINVAL or BB_ERANGE) and no file. */
	big = calloc(1, sizeof(*big) + sizeof(big->ds[0]));
	CU_ASSERT_FATAL(big != NULL);
	fill(big, BB_NS_MAX_DATASETS);
	big->n = BB_NS_MAX_DATASETS + 1;
	strcpy(big->ds[BB_NS_MAX_DATASETS].mount, "/extra");
	strcpy(big->ds[BB_NS_MAX_DATASETS].manifest, "/extra.bbm");
	CU_ASSERT_NOT_EQUAL(bb_ns_write(path, big, err, sizeof(err)), BB_OK);
	free(big);
	unlink(path);

	/* the path with ".tmp" does not fit the writer's buffer */
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	fill(&ns, 1);
	CU_ASSERT_EQUAL(bb_ns_write(longpath, &ns, err, sizeof(err)), BB_ERANGE);
	/* a directory that does not exist */
	snprintf(longpath, sizeof(longpath), "%s/no/agent.ns", dir);
	CU_ASSERT_EQUAL(bb_ns_write(longpath, &ns, err, sizeof(err)), BB_ESYS);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "agent.ns.tmp"));
	CU_ASSERT_EQUAL(entries(), 0);
}

static void test_malformed(void)
{
	char text[4096];

	/* the first line */
	expect_bad("bbcache-ns\t2\njob\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	expect_bad("bbcache-ns\t\njob\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	expect_bad("bbcache-ns\t10\njob\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	expect_bad("bbcache-ns 1\njob\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	expect_bad("bbcache-nsx\t1\njob\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	expect_bad("job\t1\nbbcache-ns\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	expect_bad("bbcache-ns\t1\r\njob\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	expect_bad("\nbbcache-ns\t1\njob\t1\nshm\t/s\nsocket\t/k\n", ":1: malformed line");
	/* empty, or only the first line */
	expect_bad("", ": empty");
	expect_bad("bbcache-ns\t1\n", ": the job, shm or socket line is missing");

	/* a required line missing */
	expect_bad("bbcache-ns\t1\nshm\t/s\nsocket\t/k\n", "line is missing");
	expect_bad("bbcache-ns\t1\njob\t1\nsocket\t/k\n", "line is missing");
	expect_bad("bbcache-ns\t1\njob\t1\nshm\t/s\n", "line is missing");
	expect_bad("bbcache-ns\t1\njob\t1\nshm\t/s\nsockets\t/k\n", "line is missing");

	/* the job id */
	expect_bad("bbcache-ns\t1\njob\tabc\nshm\t/s\nsocket\t/k\n", ":2: malformed line");
	expect_bad("bbcache-ns\t1\njob\t12x\nshm\t/s\nsocket\t/k\n", ":2: malformed line");
	expect_bad("bbcache-ns\t1\njob\t\nshm\t/s\nsocket\t/k\n", ":2: malformed line");
	expect_bad("bbcache-ns\t1\nshm\t/s\njob\t1 \nsocket\t/k\n", ":3: malformed line");
	expect_bad("bbcache-ns\t1\njob\t18446744073709551616\nshm\t/s\nsocket\t/k\n",
		   ":2: malformed line");
	expect_bad("bbcache-ns\t1\njob\t123456789012345678901234567890123\nshm\t/s\nsocket\t/k\n",
		   ":2: malformed line");
	/* Found by this test, since fixed (common/ns.c, parse_line): the job id goes through strtoull,
	 * which takes a sign and leading blanks: "-1" is read as
	 * 18446744073709551615, " 5" and "+5" as 5.  Expected BB_EPARSE at
	 * line 2 for each. */
	expect_bad("bbcache-ns\t1\njob\t-1\nshm\t/s\nsocket\t/k\n", ":2: malformed line");
	expect_bad("bbcache-ns\t1\njob\t 5\nshm\t/s\nsocket\t/k\n", ":2: malformed line");
	expect_bad("bbcache-ns\t1\njob\t+5\nshm\t/s\nsocket\t/k\n", ":2: malformed line");

	/* Found by this test, since fixed (common/ns.c, field): a field is copied with memcpy and used as a
	 * C string, so a NUL byte cuts it; one at its start turns it into the
	 * empty string that field() refuses otherwise.  "shm\t\0x" is read
	 * as BB_OK with shm_dir "" (found by fuzz_ns).  Expected BB_EPARSE at
	 * line 3 (a NUL anywhere in a field is as malformed). */
	{
		static const char nul[] = "bbcache-ns\t1\njob\t1\nshm\t\0x\nsocket\t/k\n";
		put_file(nul, sizeof(nul) - 1);
		CU_ASSERT_EQUAL(bb_ns_read(path, &back, err, sizeof(err)), BB_EPARSE);
	}

	/* a missing tab, an empty field, an empty line */
	expect_bad("bbcache-ns\t1\njob 1\nshm\t/s\nsocket\t/k\n", ":2: malformed line");
	expect_bad("bbcache-ns\t1\njob\t1\nshm\nsocket\t/k\n", ":3: malformed line");
	expect_bad("bbcache-ns\t1\njob\t1\nshm\t\nsocket\t/k\n", ":3: malformed line");
	expect_bad("bbcache-ns\t1\njob\t1\nshm\t/s\nsocket\t\n", ":4: malformed line");
	expect_bad("bbcache-ns\t1\njob\t1\n\nshm\t/s\nsocket\t/k\n", ":3: malformed line");
	expect_bad("bbcache-ns\t1\njob\t1\nshm\t/s\nsocket\t/k\nfuture\n", ":5: malformed line");

	/* datasets */
	snprintf(text, sizeof(text), "%sdataset\t/m\n", head);
	expect_bad(text, ":5: malformed line");
	snprintf(text, sizeof(text), "%sdataset\t/m\t\n", head);
	expect_bad(text, ":5: malformed line");
	snprintf(text, sizeof(text), "%sdataset\t\t/m.bbm\n", head);
	expect_bad(text, ":5: malformed line");
	snprintf(text, sizeof(text), "%sdataset\t/ok\t/m.bbm\ndataset\trel/x\t/m.bbm\n", head);
	expect_bad(text, ":6: malformed line");
	snprintf(text, sizeof(text), "%sdataset\t./x\t/m.bbm\n", head);
	expect_bad(text, ":5: malformed line");
	snprintf(text, sizeof(text), "%sdataset\t~/x\t/m.bbm\n", head);
	expect_bad(text, ":5: malformed line");
}

static void test_limits(void)
{
	static char text[300000];
	size_t off;
	char want[64];

	/* too many datasets: the 65th (line 4 + 65) is refused */
	off = (size_t)snprintf(text, sizeof(text), "%s", head);
	for (int i = 0; i < BB_NS_MAX_DATASETS; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "dataset\t/d%d\t/m%d\n", i, i);
	CU_ASSERT_EQUAL(read_text(text), BB_OK);
	CU_ASSERT_EQUAL(back.n, BB_NS_MAX_DATASETS);
	CU_ASSERT_STRING_EQUAL(back.ds[63].mount, "/d63");
	snprintf(text + off, sizeof(text) - off, "dataset\t/d64\t/m64\n");
	snprintf(want, sizeof(want), ":%d: malformed line", 4 + BB_NS_MAX_DATASETS + 1);
	expect_bad(text, want);

	/* field lengths: BB_NS_PATH - 1 bytes fit, BB_NS_PATH do not */
	off = (size_t)snprintf(text, sizeof(text), "bbcache-ns\t1\njob\t1\nsocket\t/k\nshm\t/");
	memset(text + off, 's', BB_NS_PATH - 2);
	strcpy(text + off + BB_NS_PATH - 2, "\n");
	CU_ASSERT_EQUAL(read_text(text), BB_OK);
	CU_ASSERT_EQUAL(strlen(back.shm_dir), BB_NS_PATH - 1);
	strcpy(text + off + BB_NS_PATH - 2, "s\n");
	expect_bad(text, ":4: malformed line");

	/* socket: sizeof(sun_path) - 1 */
	off = (size_t)snprintf(text, sizeof(text), "bbcache-ns\t1\njob\t1\nshm\t/s\nsocket\t/");
	memset(text + off, 'k', 106);
	strcpy(text + off + 106, "\n");
	CU_ASSERT_EQUAL(read_text(text), BB_OK);
	CU_ASSERT_EQUAL(strlen(back.socket), 107);
	strcpy(text + off + 106, "k\n");
	expect_bad(text, ":4: malformed line");

	/* a mount and a manifest */
	off = (size_t)snprintf(text, sizeof(text), "%sdataset\t/", head);
	memset(text + off, 'm', BB_NS_PATH - 1);
	strcpy(text + off + BB_NS_PATH - 1, "\t/x\n");
	expect_bad(text, ":5: malformed line");
	off = (size_t)snprintf(text, sizeof(text), "%sdataset\t/x\t/", head);
	memset(text + off, 'f', BB_NS_PATH - 1);
	strcpy(text + off + BB_NS_PATH - 1, "\n");
	expect_bad(text, ":5: malformed line");

	/* a file too large to be one: refused whatever it holds */
	off = (size_t)snprintf(text, sizeof(text), "%s", head);
	while (off < sizeof(text) - 100)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "padding\t%0100d\n", 0);
	expect_bad(text, "larger than");
}

static void test_lenient(void)
{
	char text[512];

	/* unknown keys (a newer agent), no final newline, a repeated key */
	snprintf(text, sizeof(text),
		 "bbcache-ns\t1\nfuture\tx\ty\nshm\t/s\njob\t99\ncolour\t\nsocket\t/k\n"
		 "dataset\t/a//\t/a.bbm\nshm\t/dev/shm");
	CU_ASSERT_EQUAL_FATAL(read_text(text), BB_OK);
	CU_ASSERT_EQUAL(back.job_id, 99);
	CU_ASSERT_STRING_EQUAL(back.shm_dir, "/dev/shm");
	CU_ASSERT_STRING_EQUAL(back.socket, "/k");
	CU_ASSERT_EQUAL(back.n, 1);
	CU_ASSERT_STRING_EQUAL(back.ds[0].mount, "/a");
	CU_ASSERT_STRING_EQUAL(back.ds[0].manifest, "/a.bbm");
	/* "/" and "//" both stay the root */
	snprintf(text, sizeof(text), "%sdataset\t//\t/r.bbm\n", head);
	CU_ASSERT_EQUAL_FATAL(read_text(text), BB_OK);
	CU_ASSERT_STRING_EQUAL(back.ds[0].mount, "/");
}

static void test_missing_and_paths(void)
{
	char p[64], buf[32];

	unlink(path);
	err[0] = '\0';
	CU_ASSERT_EQUAL(bb_ns_read(path, &back, err, sizeof(err)), BB_ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	/* not a file */
	CU_ASSERT_EQUAL(bb_ns_read(dir, &back, err, sizeof(err)), BB_ESYS);

	CU_ASSERT_EQUAL(bb_ns_file("/scratch/j", p, sizeof(p)), BB_OK);
	CU_ASSERT_STRING_EQUAL(p, "/scratch/j/.bbcache/agent.ns");
	CU_ASSERT_EQUAL(bb_ns_socket("/scratch/j", p, sizeof(p)), BB_OK);
	CU_ASSERT_STRING_EQUAL(p, "/scratch/j/.bbcache/agent.sock");
	/* "/j/.bbcache/agent.ns" is 20 bytes: 21 fit, 20 do not */
	CU_ASSERT_EQUAL(bb_ns_file("/j", buf, 21), BB_OK);
	CU_ASSERT_EQUAL(bb_ns_file("/j", buf, 20), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_ns_socket("/j", buf, 23), BB_OK);
	CU_ASSERT_EQUAL(bb_ns_socket("/j", buf, 22), BB_ERANGE);
}

int main(void)
{
	CU_pSuite s;

	if (!mkdtemp(dir)) {
		perror(dir);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/agent.ns", dir);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("ns", NULL, NULL);
	CU_add_test(s, "write/read round trip", test_roundtrip);
	CU_add_test(s, "writer refuses", test_write_refuses);
	CU_add_test(s, "malformed files", test_malformed);
	CU_add_test(s, "limits", test_limits);
	CU_add_test(s, "unknown keys and normalizing", test_lenient);
	CU_add_test(s, "missing file and path helpers", test_missing_and_paths);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	unlink(path);
	rmdir(dir);
	return failed ? 1 : 0;
}
