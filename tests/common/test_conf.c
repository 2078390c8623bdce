/* Unit tests: the bbcache.conf parser and origin policy. */
#include "config.h"

#include <CUnit/Basic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/error.h"
#include "common/log.h"

static char err[512];

static int parse(struct bb_conf *c, const char *text)
{
	bb_conf_free(c);
	bb_conf_defaults(c);
	return bb_conf_parse_string(c, text, strlen(text), "test.conf", err, sizeof(err));
}

/* Parse text, expect rc and an error message containing want. */
static void expect_err(const char *text, int rc, const char *want)
{
	struct bb_conf c;
	int got;

	bb_conf_defaults(&c);
	got = bb_conf_parse_string(&c, text, strlen(text), "test.conf", err, sizeof(err));
	CU_ASSERT_EQUAL(got, rc);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	if (got != rc || !strstr(err, want))
		fprintf(stderr, "\n  input: %s\n  got %s \"%s\", want %s \"%s\"\n", text,
			bb_errname(got), err, bb_errname(rc), want);
	bb_conf_free(&c);
}

static void test_defaults(void)
{
	struct bb_conf c;

	bb_conf_defaults(&c);
	CU_ASSERT_STRING_EQUAL(c.nvme_root, "/var/tmp/bbcache");
	CU_ASSERT_STRING_EQUAL(c.shm_dir, "/dev/shm");
	CU_ASSERT_STRING_EQUAL(c.state_dir, "/var/spool/bbcache");
	CU_ASSERT_EQUAL(c.shm_limit_per_job, 0);
	CU_ASSERT_EQUAL(c.shm_limit_per_node, 0);
	CU_ASSERT_EQUAL(c.nvme_limit_per_job, 0);
	CU_ASSERT_FALSE(c.origins_restricted);
	CU_ASSERT_EQUAL(c.n_allowed_origins, 0);
	CU_ASSERT_EQUAL(c.default_replicas, BB_REPLICAS_ALL);
	CU_ASSERT_STRING_EQUAL(c.credentials_file, "");
	CU_ASSERT_EQUAL(c.log_level, BB_LOG_INFO);
	CU_ASSERT_FALSE(c.log_syslog);
	CU_ASSERT_EQUAL(c.block_size, 4 << 20);
	CU_ASSERT_EQUAL(c.numa, BB_NUMA_LOCAL);
	CU_ASSERT(bb_conf_origin_allowed(&c, "s3://anything/x"));
	/* an empty text changes nothing */
	CU_ASSERT_EQUAL(bb_conf_parse_string(&c, "", 0, "e", err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(bb_conf_parse_string(&c, NULL, 0, "e", err, sizeof(err)), BB_OK);
	bb_conf_free(&c);
	bb_conf_free(NULL);
}

static void test_full(void)
{
	static const char text[] =
		"# site configuration\n"
		"\n"
		"nvme_root = /local/nvme/bbcache\n"
		"  shm_dir=/dev/shm/bb   # trailing comment\n"
		"state_dir = /shared/bbcache-state\n"
		"shm_limit_per_job = 64GiB\n"
		"shm_limit_per_node = 200G\n"
		"nvme_limit_per_job = 1.5T\r\n"
		"allowed_origins = s3://datasets/*, https://*.example.org/*\n"
		"allowed_origins = file:///lustre/*\n"
		"default_replicas = 2\n"
		"credentials_file = \"/etc/bbcache/s3 credentials#1\"\n"
		"log_level = debug\n"
		"log_syslog = yes\n"
		"block_size = 1MiB\n"
		"numa = interleave";	/* no final newline */
	struct bb_conf c;

	bb_conf_defaults(&c);
	CU_ASSERT_EQUAL_FATAL(bb_conf_parse_string(&c, text, strlen(text), "site.conf", err,
						   sizeof(err)),
			      BB_OK);
	CU_ASSERT_STRING_EQUAL(c.nvme_root, "/local/nvme/bbcache");
	CU_ASSERT_STRING_EQUAL(c.shm_dir, "/dev/shm/bb");
	CU_ASSERT_STRING_EQUAL(c.state_dir, "/shared/bbcache-state");
	CU_ASSERT_EQUAL(c.shm_limit_per_job, 64ULL << 30);
	CU_ASSERT_EQUAL(c.shm_limit_per_node, 200ULL << 30);
	CU_ASSERT_EQUAL(c.nvme_limit_per_job, 3ULL << 39);
	CU_ASSERT_TRUE(c.origins_restricted);
	CU_ASSERT_EQUAL_FATAL(c.n_allowed_origins, 3);
	CU_ASSERT_STRING_EQUAL(c.allowed_origins[0], "s3://datasets/*");
	CU_ASSERT_STRING_EQUAL(c.allowed_origins[1], "https://*.example.org/*");
	CU_ASSERT_STRING_EQUAL(c.allowed_origins[2], "file:///lustre/*");
	CU_ASSERT_STRING_EQUAL(c.origins_source, "site.conf:9");
	CU_ASSERT_EQUAL(c.default_replicas, 2);
	CU_ASSERT_STRING_EQUAL(c.credentials_file, "/etc/bbcache/s3 credentials#1");
	CU_ASSERT_EQUAL(c.log_level, BB_LOG_DEBUG);
	CU_ASSERT_TRUE(c.log_syslog);
	CU_ASSERT_EQUAL(c.block_size, 1 << 20);
	CU_ASSERT_EQUAL(c.numa, BB_NUMA_INTERLEAVE);
	bb_conf_free(&c);
	CU_ASSERT_EQUAL(c.n_allowed_origins, 0);
	CU_ASSERT_PTR_NULL(c.allowed_origins);
}

static void test_values(void)
{
	struct bb_conf c;

	bb_conf_defaults(&c);
	CU_ASSERT_EQUAL(parse(&c, "default_replicas = all\n"), BB_OK);
	CU_ASSERT_EQUAL(c.default_replicas, BB_REPLICAS_ALL);
	CU_ASSERT_EQUAL(parse(&c, "default_replicas = 65535\n"), BB_OK);
	CU_ASSERT_EQUAL(c.default_replicas, 65535);
	CU_ASSERT_EQUAL(parse(&c, "credentials_file = \"\"\n"), BB_OK);
	CU_ASSERT_STRING_EQUAL(c.credentials_file, "");
	CU_ASSERT_EQUAL(parse(&c, "nvme_root = \"/a \\\"b\\\" \\\\c\"\n"), BB_OK);
	CU_ASSERT_STRING_EQUAL(c.nvme_root, "/a \"b\" \\c");
	CU_ASSERT_EQUAL(parse(&c, "nvme_root = /x#y\n"), BB_OK);	/* # inside a word */
	CU_ASSERT_STRING_EQUAL(c.nvme_root, "/x#y");
	CU_ASSERT_EQUAL(parse(&c, "log_level = WARNING\nlog_syslog=off\n"), BB_OK);
	CU_ASSERT_EQUAL(c.log_level, BB_LOG_WARN);
	CU_ASSERT_FALSE(c.log_syslog);
	CU_ASSERT_EQUAL(parse(&c, "block_size = 4KiB\n"), BB_OK);
	CU_ASSERT_EQUAL(parse(&c, "block_size = 64M\n"), BB_OK);
	CU_ASSERT_EQUAL(c.block_size, 64 << 20);
	CU_ASSERT_EQUAL(parse(&c, "numa = replicate\n"), BB_OK);
	CU_ASSERT_EQUAL(c.numa, BB_NUMA_REPLICATE);
	CU_ASSERT_EQUAL(parse(&c, "shm_limit_per_job = 10G\nshm_limit_per_node = 10G\n"), BB_OK);
	CU_ASSERT_EQUAL(parse(&c, "shm_limit_per_job = 10G\n"), BB_OK); /* node unset */
	CU_ASSERT_EQUAL(parse(&c, "allowed_origins = none\n"), BB_OK);
	CU_ASSERT_TRUE(c.origins_restricted);
	CU_ASSERT_EQUAL(c.n_allowed_origins, 0);
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "s3://datasets/x"));
	CU_ASSERT_EQUAL(parse(&c, "allowed_origins = *\n"), BB_OK);
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "https://anything.org/x"));
	CU_ASSERT_EQUAL(parse(&c, "allowed_origins = \"s3://a/*  s3://b/*\"\n"), BB_OK);
	CU_ASSERT_EQUAL(c.n_allowed_origins, 2);
	bb_conf_free(&c);
}

static void test_errors(void)
{
	expect_err("nvme_root = /a\nfoo = 1\n", BB_EPARSE, "test.conf:2: unknown key 'foo'");
	expect_err("\n\nshm_dir /dev/shm\n", BB_EPARSE, "test.conf:3: missing '=' after 'shm_dir'");
	expect_err("shm_dir = /a\nshm_dir = /b\n", BB_EPARSE,
		   "test.conf:2: duplicate key 'shm_dir' (first set on line 1)");
	expect_err("shm_limit_per_job = 12XB\n", BB_EPARSE,
		   "test.conf:1: shm_limit_per_job: bad size '12XB'");
	expect_err("shm_limit_per_node = -1G\n", BB_ERANGE,
		   "test.conf:1: shm_limit_per_node: size '-1G' out of range");
	expect_err("nvme_limit_per_job = 99999999999T\n", BB_ERANGE, "test.conf:1:");
	expect_err("shm_limit_per_job = 64G\nshm_limit_per_node = 32G\n", BB_ERANGE,
		   "test.conf:2: shm_limit_per_job (64 GiB) exceeds shm_limit_per_node (32 GiB)");
	expect_err("shm_limit_per_node = 32G\n#\nshm_limit_per_job = 33G\n", BB_ERANGE,
		   "test.conf:3: shm_limit_per_job");
	expect_err("block_size = 3MiB\n", BB_ERANGE, "test.conf:1: block_size: '3MiB' is not a power of two");
	expect_err("block_size = 2KiB\n", BB_ERANGE, "test.conf:1: block_size");
	expect_err("block_size = 128MiB\n", BB_ERANGE, "test.conf:1: block_size");
	expect_err("numa = everywhere\n", BB_EPARSE, "test.conf:1: numa: 'everywhere'");
	expect_err("log_level = loud\n", BB_EPARSE, "test.conf:1: log_level: 'loud'");
	expect_err("log_syslog = maybe\n", BB_EPARSE, "test.conf:1: log_syslog: 'maybe'");
	expect_err("default_replicas = 0\n", BB_EPARSE, "test.conf:1: default_replicas: '0'");
	expect_err("default_replicas = 65536\n", BB_EPARSE, "test.conf:1: default_replicas");
	expect_err("default_replicas = 99999999999999999999999\n", BB_EPARSE, "default_replicas");
	expect_err("default_replicas = 2x\n", BB_EPARSE, "test.conf:1: default_replicas");
	expect_err("nvme_root = relative/path\n", BB_EPARSE,
		   "test.conf:1: nvme_root: 'relative/path' is not an absolute path");
	expect_err("shm_dir = \"\"\n", BB_EPARSE, "test.conf:1: shm_dir");
	expect_err("credentials_file = creds\n", BB_EPARSE, "test.conf:1: credentials_file");
	expect_err("nvme_root =\n", BB_EPARSE, "test.conf:1: nvme_root: missing value");
	expect_err("nvme_root =   # comment\n", BB_EPARSE, "test.conf:1: nvme_root: missing value");
	expect_err("nvme_root = \"/a\n", BB_EPARSE, "test.conf:1: nvme_root: unterminated quoted value");
	expect_err("nvme_root = \"/a\" x\n", BB_EPARSE, "test.conf:1: nvme_root: unexpected text after closing quote");
	expect_err("nvme_root = /a\"b\"\n", BB_EPARSE, "test.conf:1: nvme_root: a quote must enclose");
	expect_err("= /a\n", BB_EPARSE, "test.conf:1: expected 'key = value'");
	expect_err("nvme-root = /a\n", BB_EPARSE, "test.conf:1: missing '=' after 'nvme'");
	expect_err("allowed_origins = ftp://x/*\n", BB_EPARSE, "test.conf:1: allowed_origins: 'ftp://x/*'");
	expect_err("allowed_origins = s3://\n", BB_EPARSE, "test.conf:1: allowed_origins");
	expect_err("allowed_origins = none, s3://a/*\n", BB_EPARSE, "'none' must stand alone");

	/* line length: exactly the limit is fine, one more is not */
	char *long_line = malloc(BB_CONF_LINE_MAX + 64);
	CU_ASSERT_FATAL(long_line != NULL);
	strcpy(long_line, "nvme_root = /");
	size_t n = strlen(long_line);
	memset(long_line + n, 'a', BB_CONF_LINE_MAX - n);
	long_line[BB_CONF_LINE_MAX] = '\n';
	long_line[BB_CONF_LINE_MAX + 1] = '\0';
	struct bb_conf c;
	bb_conf_defaults(&c);
	CU_ASSERT_EQUAL(bb_conf_parse_string(&c, long_line, strlen(long_line), "t", err, sizeof(err)),
			BB_OK);
	strcpy(long_line + BB_CONF_LINE_MAX, "a\n");
	CU_ASSERT_EQUAL(bb_conf_parse_string(&c, long_line, strlen(long_line), "t", err, sizeof(err)),
			BB_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t:1: line longer than 4096 bytes"));
	/* the error buffer is bounded */
	char tiny[8];
	CU_ASSERT_EQUAL(bb_conf_parse_string(&c, "bogus = 1", 9, "t", tiny, sizeof(tiny)),
			BB_EPARSE);
	CU_ASSERT_STRING_EQUAL(tiny, "t:1: un");
	bb_conf_free(&c);
	free(long_line);
}

static void test_nul_inside(void)
{
	static const char text[] = "nvme_root = /a\n\nshm_dir = /a\0b\n";
	struct bb_conf c;

	bb_conf_defaults(&c);
	CU_ASSERT_EQUAL(bb_conf_parse_string(&c, text, sizeof(text) - 1, "t", err, sizeof(err)),
			BB_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t:3: NUL byte"));
	bb_conf_free(&c);
}

static void test_origins(void)
{
	struct bb_conf c;

	bb_conf_defaults(&c);
	CU_ASSERT_EQUAL_FATAL(parse(&c, "allowed_origins = s3://datasets/* https://*.example.org/*\n"
					"allowed_origins = file:///lustre/*, http://mirror.example.com/pub/*.tar\n"),
			      BB_OK);
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "s3://datasets/imagenet/train/"));
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "s3://datasets/"));
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "https://cdn.example.org/a/b/c.tar"));
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "file:///lustre/proj/data"));
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "http://mirror.example.com/pub/x.tar"));
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "https://cdn.example.org/x?sig=a/b"));

	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "s3://other/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "s3://datasets-evil/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "s3://datasets"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "http://cdn.example.org/a"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "https://evil.com/x.example.org/y"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "https://example.org/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "http://mirror.example.com/pub/sub/x.tar"));
	/* crafted URLs */
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "file:///lustre/../etc/shadow"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "file:///lustre/%2e%2e/etc/shadow"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "file:///lustre/%2E./etc"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "file:///lustre/./x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "file:///lustre/x/.."));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "https://evil.com#.example.org/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "https://evil.com?.example.org/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "https://a.example.org@evil.com/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "https://evil.com\\.example.org/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "s3://datasets/a\nb"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, "datasets/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(NULL, "s3://datasets/x"));
	CU_ASSERT_FALSE(bb_conf_origin_allowed(&c, NULL));
	/* names that merely contain dots are fine */
	CU_ASSERT_TRUE(bb_conf_origin_allowed(&c, "s3://datasets/.hidden/..x/a..b"));
	bb_conf_free(&c);
}

static void test_s3_keys(void)
{
	struct bb_conf c;

	bb_conf_defaults(&c);
	CU_ASSERT_STRING_EQUAL(c.s3_endpoint_url, "");
	CU_ASSERT_EQUAL(parse(&c, "s3_endpoint_url = https://s3.site.example:9000\n"
				  "s3_region = eu-central-1\ns3_profile = hpc_data\n"), BB_OK);
	CU_ASSERT_STRING_EQUAL(c.s3_endpoint_url, "https://s3.site.example:9000");
	CU_ASSERT_STRING_EQUAL(c.s3_region, "eu-central-1");
	CU_ASSERT_STRING_EQUAL(c.s3_profile, "hpc_data");
	bb_conf_free(&c);
	expect_err("s3_endpoint_url = ftp://x\n", BB_EPARSE,
		   "test.conf:1: s3_endpoint_url: 'ftp://x' is not an http:// or https:// URL");
	expect_err("s3_region = eu west\n", BB_EPARSE, "test.conf:1: s3_region: unexpected character ' '");
	expect_err("s3_profile = a\ns3_profile = b\n", BB_EPARSE, "test.conf:2:");
	bb_conf_defaults(&c);
	CU_ASSERT_FALSE(c.s3_no_sign_request);
	CU_ASSERT_EQUAL(parse(&c, "s3_no_sign_request = yes\n"), BB_OK);
	CU_ASSERT_TRUE(c.s3_no_sign_request);
	bb_conf_free(&c);
	expect_err("s3_no_sign_request = maybe\n", BB_EPARSE,
		   "test.conf:1: s3_no_sign_request: 'maybe' is not yes/no/true/false/on/off/1/0");
}

static void test_load(void)
{
	char path[] = "/tmp/bbcache-test-conf-XXXXXX";
	const char text[] = "shm_dir = /dev/shm/x\nbogus\n";
	struct bb_conf c;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL((size_t)write(fd, text, strlen(text)), strlen(text));
	close(fd);
	bb_conf_defaults(&c);
	CU_ASSERT_EQUAL(bb_conf_load(&c, path, err, sizeof(err)), BB_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: missing '=' after 'bogus'"));
	CU_ASSERT_STRING_EQUAL(c.shm_dir, "/dev/shm/x");	/* partly applied */
	unlink(path);

	bb_conf_defaults(&c);
	CU_ASSERT_EQUAL(bb_conf_load(&c, path, err, sizeof(err)), BB_ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	CU_ASSERT_EQUAL(bb_conf_load_optional(&c, path, err, sizeof(err)), BB_OK);
	CU_ASSERT_STRING_EQUAL(c.shm_dir, "/dev/shm");
	CU_ASSERT_EQUAL(bb_conf_load(&c, "/", err, sizeof(err)), BB_ESYS);
	CU_ASSERT_EQUAL(bb_conf_load_optional(&c, "/", err, sizeof(err)), BB_ESYS);

	strcpy(path, "/tmp/bbcache-test-conf-XXXXXX");
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "numa = replicate\n", 17), 17);
	close(fd);
	CU_ASSERT_EQUAL(bb_conf_load(&c, path, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(c.numa, BB_NUMA_REPLICATE);
	unlink(path);
	bb_conf_free(&c);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("conf", NULL, NULL);
	CU_add_test(s, "defaults", test_defaults);
	CU_add_test(s, "full file", test_full);
	CU_add_test(s, "values", test_values);
	CU_add_test(s, "errors", test_errors);
	CU_add_test(s, "NUL inside a line", test_nul_inside);
	CU_add_test(s, "origins", test_origins);
	CU_add_test(s, "load", test_load);
	CU_add_test(s, "s3 keys", test_s3_keys);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
