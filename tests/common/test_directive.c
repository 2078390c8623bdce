/* Unit tests: the #BB directive grammar. */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/directive.h"
#include "common/error.h"

#define JD "/nvme/bbcache/job.4242"

static char err[1024];
static struct bb_conf g_conf;

static const struct bb_directive_ctx ctx = {
	.job_id = "4242",
	.user = "alice",
	.bb_job_dir = JD,
	.conf = NULL,
};

static int parse_ctx(const char *script, const struct bb_directive_ctx *c,
		     struct bb_job_spec *spec)
{
	return bb_directives_parse(script, strlen(script), c, spec, err, sizeof(err));
}

static int parse(const char *script, struct bb_job_spec *spec)
{
	return parse_ctx(script, &ctx, spec);
}

static void expect_err_ctx(const char *script, const struct bb_directive_ctx *c, int rc,
			   const char *want)
{
	struct bb_job_spec spec;
	int got = parse_ctx(script, c, &spec);

	CU_ASSERT_EQUAL(got, rc);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	if (got != rc || !strstr(err, want))
		fprintf(stderr, "\n  script: %s\n  got %s \"%s\"\n  want %s \"%s\"\n", script,
			bb_errname(got), err, bb_errname(rc), want);
	/* on error the spec is empty */
	CU_ASSERT_EQUAL(spec.n_stage_in, 0);
	CU_ASSERT_PTR_NULL(spec.stage_in);
	bb_job_spec_free(&spec);
}

static void expect_err(const char *script, int rc, const char *want)
{
	expect_err_ctx(script, &ctx, rc, want);
}

static void test_design_example(void)
{
	static const char script[] =
		"#!/bin/bash\n"
		"#SBATCH -N 4\n"
		"#BB stage_in  source=s3://bucket/imagenet/train/ destination=$BB_JOB_DIR/imagenet type=directory replicas=all mode=async verify=etag include=*.JPEG exclude=*.tmp\n"
		"#BB stage_in  source=https://host/data/shard-000.tar destination=$BB_JOB_DIR/shard-000.tar type=file\n"
		"#BB stage_out source=$BB_JOB_DIR/ckpt destination=s3://bucket/runs/%j/ type=directory\n"
		"#BB cache     shm=64GiB nvme=800GiB numa=interleave\n"
		"\n"
		"mpirun python train.py --data $BB_JOB_DIR/imagenet\n";
	struct bb_job_spec spec;

	CU_ASSERT_EQUAL_FATAL(parse(script, &spec), BB_OK);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_EQUAL_FATAL(spec.n_stage_in, 2);
	CU_ASSERT_EQUAL_FATAL(spec.n_stage_out, 1);

	struct bb_stage *a = &spec.stage_in[0], *b = &spec.stage_in[1], *o = &spec.stage_out[0];
	CU_ASSERT_EQUAL(a->line, 3);
	CU_ASSERT_STRING_EQUAL(a->source, "s3://bucket/imagenet/train/");
	CU_ASSERT_STRING_EQUAL(a->destination, JD "/imagenet");
	CU_ASSERT_EQUAL(a->type, BB_STAGE_DIRECTORY);
	CU_ASSERT_EQUAL(a->replicas, BB_REPLICAS_ALL);
	CU_ASSERT_EQUAL(a->mode, BB_MODE_ASYNC);
	CU_ASSERT_EQUAL(a->verify, BB_VERIFY_ETAG);
	CU_ASSERT_STRING_EQUAL(a->include, "*.JPEG");
	CU_ASSERT_STRING_EQUAL(a->exclude, "*.tmp");

	CU_ASSERT_EQUAL(b->line, 4);
	CU_ASSERT_STRING_EQUAL(b->source, "https://host/data/shard-000.tar");
	CU_ASSERT_STRING_EQUAL(b->destination, JD "/shard-000.tar");
	CU_ASSERT_EQUAL(b->type, BB_STAGE_FILE);
	CU_ASSERT_PTR_NULL(b->include);
	CU_ASSERT_PTR_NULL(b->exclude);

	CU_ASSERT_EQUAL(o->line, 5);
	CU_ASSERT_STRING_EQUAL(o->source, JD "/ckpt");
	CU_ASSERT_STRING_EQUAL(o->destination, "s3://bucket/runs/4242/");
	CU_ASSERT_EQUAL(o->type, BB_STAGE_DIRECTORY);

	CU_ASSERT_TRUE(spec.cache.present);
	CU_ASSERT_EQUAL(spec.cache.line, 6);
	CU_ASSERT_EQUAL(spec.cache.shm_bytes, 64ULL << 30);
	CU_ASSERT_EQUAL(spec.cache.nvme_bytes, 800ULL << 30);
	CU_ASSERT_EQUAL(spec.cache.numa, BB_NUMA_INTERLEAVE);
	bb_job_spec_free(&spec);
	CU_ASSERT_EQUAL(spec.n_stage_in, 0);
	bb_job_spec_free(&spec);	/* twice is harmless */
}

static void test_options(void)
{
	struct bb_job_spec spec;

	CU_ASSERT_EQUAL_FATAL(
		parse("#BB stage_in source=file:///lustre/d destination=${BB_JOB_DIR}/d/ "
		      "type=directory replicas=3 mode=wait verify=sha256\n"
		      "#BB\tstage_in\tsource=s3://b/k\tdestination=$BB_JOB_DIR/e type=file verify=none replicas=65535\n",
		      &spec),
		BB_OK);
	CU_ASSERT_EQUAL_FATAL(spec.n_stage_in, 2);
	CU_ASSERT_STRING_EQUAL(spec.stage_in[0].destination, JD "/d/");
	CU_ASSERT_EQUAL(spec.stage_in[0].replicas, 3);
	CU_ASSERT_EQUAL(spec.stage_in[0].mode, BB_MODE_WAIT);
	CU_ASSERT_EQUAL(spec.stage_in[0].verify, BB_VERIFY_SHA256);
	CU_ASSERT_EQUAL(spec.stage_in[1].verify, BB_VERIFY_NONE);
	CU_ASSERT_EQUAL(spec.stage_in[1].replicas, 65535);
	CU_ASSERT_FALSE(spec.cache.present);
	CU_ASSERT_EQUAL(spec.cache.numa, BB_NUMA_LOCAL);
	bb_job_spec_free(&spec);

	/* the job directory itself is a valid destination */
	CU_ASSERT_EQUAL(parse("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR type=directory\n",
			      &spec),
			BB_OK);
	CU_ASSERT_STRING_EQUAL(spec.stage_in[0].destination, JD);
	bb_job_spec_free(&spec);

	/* an empty script, and one with no directives */
	CU_ASSERT_EQUAL(bb_directives_parse("", 0, &ctx, &spec, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(bb_directives_parse(NULL, 0, &ctx, &spec, err, sizeof(err)), BB_OK);
	CU_ASSERT_EQUAL(parse("#!/bin/sh\necho hi\n", &spec), BB_OK);
	CU_ASSERT_EQUAL(spec.n_stage_in + spec.n_stage_out, 0);
}

static void test_quoting_and_expansion(void)
{
	struct bb_job_spec spec;
	struct bb_directive_ctx c = ctx;

	CU_ASSERT_EQUAL_FATAL(
		parse("#BB stage_in source=\"s3://b/my data/x \\\"q\\\"\" "
		      "destination='$BB_JOB_DIR/my data' type=file\n"
		      "#BB stage_out source=\"$BB_JOB_DIR/out\" destination='s3://b/%u/%j/100%%/%x' type=file\n",
		      &spec),
		BB_OK);
	CU_ASSERT_STRING_EQUAL(spec.stage_in[0].source, "s3://b/my data/x \"q\"");
	CU_ASSERT_STRING_EQUAL(spec.stage_in[0].destination, JD "/my data");
	CU_ASSERT_STRING_EQUAL(spec.stage_out[0].source, JD "/out");
	CU_ASSERT_STRING_EQUAL(spec.stage_out[0].destination, "s3://b/alice/4242/100%/%x");
	bb_job_spec_free(&spec);

	/* numeric job id, trailing slash on the job dir, %j in the local side */
	c.job_id = NULL;
	c.job_id_num = 987654321012ULL;
	c.bb_job_dir = JD "/";
	CU_ASSERT_EQUAL_FATAL(
		parse_ctx("#BB stage_in source=s3://b/%u destination=$BB_JOB_DIR/in-%j type=file\n",
			  &c, &spec),
		BB_OK);
	CU_ASSERT_STRING_EQUAL(spec.stage_in[0].source, "s3://b/alice");
	CU_ASSERT_STRING_EQUAL(spec.stage_in[0].destination, JD "/in-987654321012");
	bb_job_spec_free(&spec);

	expect_err("#BB stage_in source=\"s3://b/a\\\\b\" destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=s3://b/a\\b contains a control character or backslash");
	expect_err("#BB stage_in source=s3://b/$HOME destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=s3://b/$HOME: only $BB_JOB_DIR and ${BB_JOB_DIR} are expanded");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIRX/x type=file\n",
		   BB_EPARSE, "line 1: destination=$BB_JOB_DIRX/x: only $BB_JOB_DIR");
	expect_err("#BB stage_in source=s3://b/ destination=${BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: destination=${BB_JOB_DIR/x: only $BB_JOB_DIR");
	expect_err("#BB stage_in source=\"s3://b/ destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=: unterminated double quote");
	expect_err("#BB stage_in source='s3://b/ destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=: unterminated single quote");
	expect_err("#BB stage_in source=\"s3://b/\"x destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=: unexpected text after closing quote");
	expect_err("#BB stage_in source=s3://b/\"x\" destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=: a quote must enclose the whole value");
	expect_err("#BB stage_in source=\"\" destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source= has an empty value");
	expect_err("#BB stage_in source= destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source= has an empty value");
}

static void test_which_lines(void)
{
	struct bb_job_spec spec;

	/* #BB_LUA and other BB-prefixed words are not ours; indented #BB is a
	 * comment; #BB after the first command is ignored like Slurm does. */
	CU_ASSERT_EQUAL_FATAL(
		parse("#!/bin/bash\r\n"
		      "#BB_LUA stage_in whatever=1\r\n"
		      "#BBstage_in source=x\n"
		      "  #BB stage_in garbage\n"
		      "#SBATCH --time=1:00:00\n"
		      "\t\n"
		      "# a comment\n"
		      "#BB stage_in source=s3://b/a destination=$BB_JOB_DIR/a type=file\r\n"
		      "srun hostname\n"
		      "#BB stage_in garbage after the leading block\n"
		      "#BB cache shm=1G nvme=1G\n",
		      &spec),
		BB_OK);
	CU_ASSERT_EQUAL_FATAL(spec.n_stage_in, 1);
	CU_ASSERT_EQUAL(spec.stage_in[0].line, 8);
	CU_ASSERT_STRING_EQUAL(spec.stage_in[0].destination, JD "/a");
	CU_ASSERT_FALSE(spec.cache.present);
	bb_job_spec_free(&spec);

	/* a script without #! works too; no trailing newline */
	CU_ASSERT_EQUAL(parse("#BB cache shm=1G nvme=0", &spec), BB_OK);
	CU_ASSERT_TRUE(spec.cache.present);
	bb_job_spec_free(&spec);

	expect_err("#!/bin/sh\n#BB\n", BB_EPARSE, "line 2: empty #BB directive");
	expect_err("#!/bin/sh\n#BB   \n", BB_EPARSE, "line 2: empty #BB directive");

	static const char nul[] = "#!/bin/sh\n#BB cache shm=1G\0 nvme=1G\n";
	CU_ASSERT_EQUAL(bb_directives_parse(nul, sizeof(nul) - 1, &ctx, &spec, err, sizeof(err)),
			BB_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 2: NUL byte in #BB line"));
}

static void test_grammar_errors(void)
{
	expect_err("#!/bin/sh\n#BB stage-in source=s3://b/ destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 2: unknown directive 'stage-in' (expected stage_in, stage_out or cache)");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file colour=red\n",
		   BB_EPARSE, "line 1: unknown key 'colour' for stage_in");
	expect_err("#BB stage_out source=$BB_JOB_DIR/x destination=s3://b/ type=file replicas=2\n",
		   BB_EPARSE, "line 1: unknown key 'replicas' for stage_out");
	expect_err("#BB cache shm=1G nvme=1G mode=wait\n", BB_EPARSE,
		   "line 1: unknown key 'mode' for cache");
	expect_err("#BB stage_in destination=$BB_JOB_DIR/x type=file\n", BB_EPARSE,
		   "line 1: stage_in: missing required key 'source'");
	expect_err("#BB stage_in source=s3://b/ type=file\n", BB_EPARSE,
		   "line 1: stage_in: missing required key 'destination'");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x\n", BB_EPARSE,
		   "line 1: stage_in: missing required key 'type'");
	expect_err("#BB stage_out source=$BB_JOB_DIR/x type=file\n", BB_EPARSE,
		   "line 1: stage_out: missing required key 'destination'");
	struct bb_job_spec spec;
	CU_ASSERT_EQUAL(parse("#BB cache shm=8GiB\n", &spec), BB_OK);
	CU_ASSERT_EQUAL(spec.cache.shm_bytes, 8ULL << 30);
	CU_ASSERT_EQUAL(spec.cache.nvme_bytes, 0);
	bb_job_spec_free(&spec);
	expect_err("#BB cache numa=local\n", BB_EPARSE,
		   "line 1: cache: give shm=SIZE and/or nvme=SIZE");
	expect_err("#BB stage_in source=s3://b/ source=s3://c/ destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: duplicate key 'source'");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file type=file\n",
		   BB_EPARSE, "line 1: duplicate key 'type'");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=dir\n", BB_EPARSE,
		   "line 1: type=dir: expected file or directory");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file oops\n",
		   BB_EPARSE, "line 1: expected key=value, found 'oops'");
	expect_err("#BB stage_in =x source=s3://b/\n", BB_EPARSE,
		   "line 1: expected key=value, found '=x'");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file replicas=0\n",
		   BB_EPARSE, "line 1: replicas=0: expected all or an integer 1..65535");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file replicas=65536\n",
		   BB_EPARSE, "line 1: replicas=65536");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file replicas=-1\n",
		   BB_EPARSE, "line 1: replicas=-1");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file replicas=99999999999999999999999\n",
		   BB_EPARSE, "line 1: replicas=9999");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file mode=sync\n",
		   BB_EPARSE, "line 1: mode=sync: expected async or wait");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/x type=file verify=md5\n",
		   BB_EPARSE, "line 1: verify=md5: expected etag, sha256 or none");
	expect_err("#BB cache shm=lots nvme=1G\n", BB_EPARSE,
		   "line 1: shm=lots: bad size");
	expect_err("#BB cache shm=1G nvme=-5G\n", BB_ERANGE, "line 1: nvme=-5G: size out of range");
	expect_err("#BB cache shm=1G nvme=1G numa=all\n", BB_EPARSE,
		   "line 1: numa=all: expected local, interleave or replicate");
	expect_err("#BB cache shm=1G nvme=1G\n#BB cache shm=2G nvme=1G\n", BB_EPARSE,
		   "line 2: only one cache line is allowed (first on line 1)");
	expect_err("#BB cache shm=1G nvme=1G capacity=10G\n", BB_EPARSE,
		   "line 1: capacity= is reserved by Slurm's burst_buffer/lua plugin");
	expect_err("#BB stage_in pool=fast source=s3://b/\n", BB_EPARSE,
		   "line 1: pool= is reserved by Slurm's burst_buffer/lua plugin");
}

static void test_urls(void)
{
	expect_err("#BB stage_in source=ftp://h/x destination=$BB_JOB_DIR/x type=file\n", BB_EPARSE,
		   "line 1: source=ftp://h/x: unsupported scheme 'ftp' (allowed: s3, http, https, file)");
	expect_err("#BB stage_in source=S3://b/x destination=$BB_JOB_DIR/x type=file\n", BB_EPARSE,
		   "unsupported scheme 'S3'");
	expect_err("#BB stage_in source=/lustre/data destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=/lustre/data is not a URL");
	expect_err("#BB stage_in source=$BB_JOB_DIR/a destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=$BB_JOB_DIR/a is not a URL");
	expect_err("#BB stage_in source=://x destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=://x is not a URL");
	expect_err("#BB stage_in source=s3:// destination=$BB_JOB_DIR/x type=file\n", BB_EPARSE,
		   "line 1: source=s3://: the URL has no bucket");
	expect_err("#BB stage_in source=https:///x destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=https:///x: the URL has no host");
	expect_err("#BB stage_in source=file://host/x destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=file://host/x: a file URL must be file:///ABSOLUTE/PATH");
	expect_err("#BB stage_in source=file:/// destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "a file URL must be");
	expect_err("#BB stage_in source=file:///lustre/../etc destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=file:///lustre/../etc: the URL path has a '..' component");
	expect_err("#BB stage_in source=s3://b/./k destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "the URL path has a '.' component");
	expect_err("#BB stage_in source=https://user:pw@host/x destination=$BB_JOB_DIR/x type=file\n",
		   BB_EPARSE, "line 1: source=https://user:pw@host/x: credentials (user@)");
	expect_err("#BB stage_out source=$BB_JOB_DIR/x destination=gs://b/x type=file\n",
		   BB_EPARSE, "line 1: destination=gs://b/x: unsupported scheme 'gs'");
	expect_err("#BB stage_out source=$BB_JOB_DIR/x destination=$BB_JOB_DIR/y type=file\n",
		   BB_EPARSE, "line 1: destination=$BB_JOB_DIR/y is not a URL");
}

static void test_local_paths(void)
{
	expect_err("#BB stage_in source=s3://b/ destination=/tmp/x type=file\n", BB_EPARSE,
		   "line 1: destination=/tmp/x (expands to /tmp/x) is outside $BB_JOB_DIR (" JD ")");
	expect_err("#BB stage_in source=s3://b/ destination=" JD "x/y type=file\n", BB_EPARSE,
		   "is outside $BB_JOB_DIR");
	expect_err("#BB stage_in source=s3://b/ destination=data type=file\n", BB_EPARSE,
		   "line 1: destination=data is a relative path; it must lie under $BB_JOB_DIR");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/../x type=file\n", BB_EPARSE,
		   "line 1: destination=$BB_JOB_DIR/../x (expands to " JD "/../x) has a '..' component");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/a/.. type=file\n", BB_EPARSE,
		   "has a '..' component");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR/./a type=file\n", BB_EPARSE,
		   "has a '.' component");
	expect_err("#BB stage_in source=s3://b/ destination=$BB_JOB_DIR//a type=file\n", BB_EPARSE,
		   "has an empty ('//') component");
	expect_err("#BB stage_in source=s3://b/ destination=\"$BB_JOB_DIR/a\rb\" type=file\n",
		   BB_EPARSE, "contains a control character");
	expect_err("#BB stage_out source=/etc/passwd destination=s3://b/x type=file\n", BB_EPARSE,
		   "line 1: source=/etc/passwd (expands to /etc/passwd) is outside $BB_JOB_DIR");
	expect_err("#BB stage_out source=$BB_JOB_DIR/../../etc destination=s3://b/x type=file\n",
		   BB_EPARSE, "line 1: source=$BB_JOB_DIR/../../etc");

	/* names with dots are fine */
	struct bb_job_spec spec;
	CU_ASSERT_EQUAL(parse("#BB stage_in source=s3://b/..k destination=$BB_JOB_DIR/.hidden/..x type=file\n",
			      &spec),
			BB_OK);
	bb_job_spec_free(&spec);
}

static void test_overlaps(void)
{
	expect_err("#BB stage_in source=s3://b/1 destination=$BB_JOB_DIR/x type=file\n"
		   "#BB stage_in source=s3://b/2 destination=$BB_JOB_DIR/x/ type=file\n",
		   BB_EPARSE, "line 2: destination=$BB_JOB_DIR/x/ is also the destination of line 1");
	expect_err("#BB stage_in source=s3://b/1 destination=$BB_JOB_DIR/x type=directory\n"
		   "#\n"
		   "#BB stage_in source=s3://b/2 destination=$BB_JOB_DIR/x/y type=file\n",
		   BB_EPARSE, "line 3: destination=$BB_JOB_DIR/x/y lies inside the destination of line 1");
	expect_err("#BB stage_in source=s3://b/1 destination=$BB_JOB_DIR/x/y type=file\n"
		   "#BB stage_in source=s3://b/2 destination=$BB_JOB_DIR/x type=directory\n",
		   BB_EPARSE, "line 2: destination=$BB_JOB_DIR/x contains the destination of line 1");
	expect_err("#BB stage_in source=s3://b/1 destination=$BB_JOB_DIR type=directory\n"
		   "#BB stage_in source=s3://b/2 destination=$BB_JOB_DIR/a type=file\n",
		   BB_EPARSE, "line 2: destination=$BB_JOB_DIR/a lies inside the destination of line 1");

	/* siblings sharing a name prefix do not overlap */
	struct bb_job_spec spec;
	CU_ASSERT_EQUAL(parse("#BB stage_in source=s3://b/1 destination=$BB_JOB_DIR/x type=file\n"
			      "#BB stage_in source=s3://b/2 destination=$BB_JOB_DIR/xy type=file\n"
			      "#BB stage_out source=$BB_JOB_DIR/x destination=s3://b/o type=file\n",
			      &spec),
			BB_OK);
	CU_ASSERT_EQUAL(spec.n_stage_in, 2);
	bb_job_spec_free(&spec);
}

static void test_policy(void)
{
	static const char site[] = "allowed_origins = s3://datasets/*, file:///lustre/*\n"
				   "shm_limit_per_job = 64G\n"
				   "shm_limit_per_node = 128G\n"
				   "nvme_limit_per_job = 1T\n"
				   "default_replicas = 2\n"
				   "numa = replicate\n";
	struct bb_directive_ctx c = ctx;
	struct bb_job_spec spec;

	bb_conf_defaults(&g_conf);
	CU_ASSERT_EQUAL_FATAL(bb_conf_parse_string(&g_conf, site, strlen(site), "/etc/bbcache/bbcache.conf",
						   err, sizeof(err)),
			      BB_OK);
	c.conf = &g_conf;

	CU_ASSERT_EQUAL_FATAL(
		parse_ctx("#BB stage_in source=s3://datasets/imagenet/ destination=$BB_JOB_DIR/i type=directory\n"
			  "#BB stage_in source=file:///lustre/x destination=$BB_JOB_DIR/l type=file replicas=all\n"
			  "#BB cache shm=64GiB nvme=1TiB\n",
			  &c, &spec),
		BB_OK);
	CU_ASSERT_EQUAL(spec.stage_in[0].replicas, 2);	/* site default */
	CU_ASSERT_EQUAL(spec.stage_in[1].replicas, BB_REPLICAS_ALL);
	CU_ASSERT_EQUAL(spec.cache.numa, BB_NUMA_REPLICATE);	/* site default */
	bb_job_spec_free(&spec);

	expect_err_ctx("#BB stage_in source=s3://private/x destination=$BB_JOB_DIR/x type=file\n", &c,
		       BB_EPOLICY,
		       "line 1: source=s3://private/x is not allowed by allowed_origins (/etc/bbcache/bbcache.conf:1)");
	expect_err_ctx("#BB stage_in source=file:///home/alice/x destination=$BB_JOB_DIR/x type=file\n",
		       &c, BB_EPOLICY, "line 1: source=file:///home/alice/x is not allowed");
	expect_err_ctx("#\n#BB stage_out source=$BB_JOB_DIR/x destination=s3://elsewhere/x type=file\n",
		       &c, BB_EPOLICY, "line 2: destination=s3://elsewhere/x is not allowed by allowed_origins");
	expect_err_ctx("#BB cache shm=65G nvme=1G\n", &c, BB_EPOLICY,
		       "line 1: shm=65G (65 GiB) exceeds the site's shm_limit_per_job of 64 GiB");
	expect_err_ctx("#BB cache shm=1G nvme=1.5T\n", &c, BB_EPOLICY,
		       "line 1: nvme=1.5T (1.5 TiB) exceeds the site's nvme_limit_per_job of 1 TiB");

	/* only a per-node limit */
	bb_conf_free(&g_conf);
	bb_conf_defaults(&g_conf);
	CU_ASSERT_EQUAL_FATAL(bb_conf_parse_string(&g_conf, "shm_limit_per_node = 8G\n", 23, "s", err,
						   sizeof(err)),
			      BB_OK);
	expect_err_ctx("#BB cache shm=9G nvme=0\n", &c, BB_EPOLICY,
		       "exceeds the site's shm_limit_per_node of 8 GiB");
	bb_conf_free(&g_conf);
}

static void test_bad_ctx(void)
{
	struct bb_directive_ctx c = ctx;
	struct bb_job_spec spec;

	c.bb_job_dir = "relative";
	CU_ASSERT_EQUAL(parse_ctx("", &c, &spec), BB_EINVAL);
	c.bb_job_dir = "/a/../b";
	CU_ASSERT_EQUAL(parse_ctx("", &c, &spec), BB_EINVAL);
	c.bb_job_dir = "/";
	CU_ASSERT_EQUAL(parse_ctx("", &c, &spec), BB_EINVAL);
	c.bb_job_dir = NULL;
	CU_ASSERT_EQUAL(parse_ctx("", &c, &spec), BB_EINVAL);
	c.bb_job_dir = JD;
	c.user = NULL;
	CU_ASSERT_EQUAL(parse_ctx("", &c, &spec), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_directives_parse("x", 1, NULL, &spec, err, sizeof(err)), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_directives_parse("x", 1, &ctx, NULL, err, sizeof(err)), BB_EINVAL);
	/* no error buffer is fine */
	CU_ASSERT_EQUAL(bb_directives_parse("#BB x", 5, &ctx, &spec, NULL, 0), BB_EPARSE);
	CU_ASSERT_STRING_EQUAL(bb_stage_type_name(BB_STAGE_DIRECTORY), "directory");
	CU_ASSERT_STRING_EQUAL(bb_stage_mode_name(BB_MODE_WAIT), "wait");
	CU_ASSERT_STRING_EQUAL(bb_verify_name(BB_VERIFY_SHA256), "sha256");
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("directive", NULL, NULL);
	CU_add_test(s, "DESIGN.md example", test_design_example);
	CU_add_test(s, "options", test_options);
	CU_add_test(s, "quoting and expansion", test_quoting_and_expansion);
	CU_add_test(s, "which lines count", test_which_lines);
	CU_add_test(s, "grammar errors", test_grammar_errors);
	CU_add_test(s, "URLs", test_urls);
	CU_add_test(s, "local paths", test_local_paths);
	CU_add_test(s, "overlapping destinations", test_overlaps);
	CU_add_test(s, "site policy", test_policy);
	CU_add_test(s, "bad context", test_bad_ctx);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
