/* Unit tests: URL parsing, S3 URL building, the default manifest path. */
#include "config.h"

#include <CUnit/Basic.h>
#include <string.h>

#include "common/error.h"
#include "stage/awscfg.h"
#include "stage/origin.h"
#include "stage/stage.h"
#include "stage/url.h"

static char err[512];

static int parse(const char *s, struct bb_url *u)
{
	err[0] = '\0';
	return bb_url_parse(s, u, err, sizeof(err));
}

static void test_good(void)
{
	struct bb_url u;

	CU_ASSERT_EQUAL(parse("s3://bucket/imagenet/train/", &u), BB_OK);
	CU_ASSERT_EQUAL(u.scheme, BB_SCHEME_S3);
	CU_ASSERT_STRING_EQUAL(u.host, "bucket");
	CU_ASSERT_STRING_EQUAL(u.path, "imagenet/train/");
	CU_ASSERT_EQUAL(u.dir, 1);
	CU_ASSERT_EQUAL(parse("s3://bucket", &u), BB_OK);
	CU_ASSERT_STRING_EQUAL(u.path, "");
	CU_ASSERT_EQUAL(u.dir, 1);
	CU_ASSERT_EQUAL(parse("https://host:8443/data/shard-000.tar?x=1", &u), BB_OK);
	CU_ASSERT_EQUAL(u.scheme, BB_SCHEME_HTTPS);
	CU_ASSERT_STRING_EQUAL(u.host, "host:8443");
	CU_ASSERT_STRING_EQUAL(u.path, "/data/shard-000.tar");
	CU_ASSERT_STRING_EQUAL(u.query, "x=1");
	CU_ASSERT_EQUAL(u.dir, 0);
	CU_ASSERT_EQUAL(parse("http://h", &u), BB_OK);
	CU_ASSERT_STRING_EQUAL(u.path, "/");
	CU_ASSERT_EQUAL(parse("file:///lustre/data/", &u), BB_OK);
	CU_ASSERT_EQUAL(u.scheme, BB_SCHEME_FILE);
	CU_ASSERT_STRING_EQUAL(u.path, "/lustre/data/");
	CU_ASSERT_EQUAL(parse("/scratch/x", &u), BB_OK);
	CU_ASSERT_EQUAL(u.scheme, BB_SCHEME_FILE);
	char buf[256];
	CU_ASSERT_EQUAL(parse("s3://b/k/x", &u), BB_OK);
	CU_ASSERT_EQUAL(bb_url_format(&u, buf, sizeof(buf)), BB_OK);
	CU_ASSERT_STRING_EQUAL(buf, "s3://b/k/x");
}

static void test_bad(void)
{
	struct bb_url u;

	CU_ASSERT_EQUAL(parse("", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("ftp://h/x", &u), BB_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unsupported scheme 'ftp'"));
	CU_ASSERT_EQUAL(parse("https://user:pw@h/x", &u), BB_EINVAL);
	CU_ASSERT_PTR_NULL(strstr(err, "pw"));
	CU_ASSERT_EQUAL(parse("s3://AKIA:secret@bucket/x", &u), BB_EINVAL);
	CU_ASSERT_PTR_NULL(strstr(err, "secret"));
	CU_ASSERT_EQUAL(parse("s3:///x", &u), BB_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no bucket"));
	CU_ASSERT_EQUAL(parse("https://h/a/../b", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("s3://b/a/./b", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("file://relative/x", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("https://h/x\ny", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("https://h/x#frag", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("relative/path", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("s3://b/k?versionId=1", &u), BB_EINVAL);
	CU_ASSERT_EQUAL(parse("s3://b/k#x", &u), BB_EINVAL);
}

static void test_s3_urls(void)
{
	struct bb_aws_cfg a;
	char buf[1024];

	memset(&a, 0, sizeof(a));
	a.path_style = -1;
	strcpy(a.region, "eu-west-1");
	CU_ASSERT_EQUAL(bb_s3_url(&a, "bkt", "a b/c+d", NULL, buf, sizeof(buf)), BB_OK);
	CU_ASSERT_STRING_EQUAL(buf, "https://bkt.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd");
	strcpy(a.endpoint_url, "http://127.0.0.1:9000/");
	CU_ASSERT_EQUAL(bb_s3_url(&a, "bkt", "k", "list-type=2&prefix=a%2Fb", buf, sizeof(buf)),
			BB_OK);
	CU_ASSERT_STRING_EQUAL(buf, "http://127.0.0.1:9000/bkt/k?list-type=2&prefix=a%2Fb");
	a.path_style = 0;
	CU_ASSERT_EQUAL(bb_s3_url(&a, "bkt", "k", NULL, buf, sizeof(buf)), BB_OK);
	CU_ASSERT_STRING_EQUAL(buf, "http://bkt.127.0.0.1:9000/k");
	CU_ASSERT_EQUAL(bb_s3_url(&a, "bkt", "k", NULL, buf, 10), BB_ERANGE);
}

static void test_manifest_path(void)
{
	char buf[256];
	CU_ASSERT_EQUAL(bb_stage_manifest_path("/nvme/job.1/imagenet/", buf, sizeof(buf)), BB_OK);
	CU_ASSERT_STRING_EQUAL(buf, "/nvme/job.1/.bbcache/imagenet.manifest");
	CU_ASSERT_EQUAL(bb_stage_manifest_path("/nvme/job.1/shard.tar", buf, sizeof(buf)), BB_OK);
	CU_ASSERT_STRING_EQUAL(buf, "/nvme/job.1/.bbcache/shard.tar.manifest");
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("url", NULL, NULL);
	CU_add_test(s, "good URLs", test_good);
	CU_add_test(s, "bad URLs", test_bad);
	CU_add_test(s, "S3 URLs", test_s3_urls);
	CU_add_test(s, "manifest path", test_manifest_path);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
