/* A full /dev/shm: a small tmpfs mounted by the test stands in for it.
 * Creating a segment that does not fit is a clean BB_ENOSPC that leaves no
 * file behind, and a cache created earlier keeps serving what it has.
 * Needs root (mount); exits 77 (skip) otherwise. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "common/error.h"
#include "shmcache/shmcache.h"
#include "shmtest.h"

static char dir[] = "/tmp/bbcache-enospc-XXXXXX";

static int count_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static void test_full_shm(void)
{
	struct bbc_params p = {0};
	struct bbc_cache *a = NULL, *b = NULL;
	static char buf[65536];

	p.dir = dir;
	p.owner = (uid_t)-1;
	p.job_id = 1;
	p.byte_limit = 8 << 20;
	CU_ASSERT_EQUAL_FATAL(bbc_create(&p, &a), BB_OK);
	for (uint64_t k = 0; k < 100; k++)
		CU_ASSERT_EQUAL(shmtest_put(a, 1, k, 65536), BB_OK);

	/* Larger than what is left of the 24 MiB file system. */
	p.job_id = 2;
	p.byte_limit = 32 << 20;
	CU_ASSERT_EQUAL(bbc_create(&p, &b), BB_ENOSPC);
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT_EQUAL(count_files(), 1);

	/* Fill the rest with someone else's file: even a small one fails. */
	char path[128];
	snprintf(path, sizeof(path), "%s/other", dir);
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	memset(buf, 1, sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	CU_ASSERT_EQUAL(errno, ENOSPC);
	p.job_id = 3;
	p.byte_limit = 1 << 20;
	CU_ASSERT_EQUAL(bbc_create(&p, &b), BB_ENOSPC);
	CU_ASSERT_EQUAL(count_files(), 2);

	/* The first cache still serves, fills and evicts: its memory was
	 * allocated up front, so nothing here can SIGBUS. */
	for (uint64_t k = 0; k < 100; k++) {
		long n = bbc_read(a, 1, k, 0, buf, sizeof(buf));
		if (n >= 0)
			CU_ASSERT(n == 65536 && shmtest_check(buf, 1, k, 0, 65536));
	}
	for (uint64_t k = 100; k < 300; k++)
		CU_ASSERT_EQUAL(shmtest_put(a, 1, k, 65536), BB_OK);
	CU_ASSERT_EQUAL(bbc_read(a, 1, 299, 0, buf, sizeof(buf)), 65536);
	CU_ASSERT(shmtest_check(buf, 1, 299, 0, 65536));
	close(fd);
	unlink(path);
	bbc_detach(a);
	CU_ASSERT_EQUAL(bbc_unlink(dir, 1), BB_OK);
	CU_ASSERT_EQUAL(count_files(), 0);
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_enospc: needs root to mount a small tmpfs: skipped\n");
		return 77;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (mount("bbcache-test", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=24m,mode=0700") != 0) {
		fprintf(stderr, "test_enospc: cannot mount a tmpfs on %s: %s\n", dir,
			strerror(errno));
		rmdir(dir);
		return 1;
	}
	CU_initialize_registry();
	CU_pSuite s = CU_add_suite("enospc", NULL, NULL);
	CU_add_test(s, "full shm", test_full_shm);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	return failed ? 1 : 0;
}
