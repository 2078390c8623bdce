/* Unit tests: S3 credentials, region and endpoint resolution (awscfg), with
 * temporary HOME directories and injected environments.  Every error
 * message is checked not to contain the secret. */
#include "config.h"

#include <CUnit/Basic.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "stage/awscfg.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz"
#define TOKEN "FwoGZXIvYXdzEJr//////////wEaDzzTOKENzz"

static char home[64];
static char err[1024];
static struct bb_aws_cfg cfg;

static void put(const char *rel, const char *text, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", home, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL((size_t)write(fd, text, strlen(text)), strlen(text));
	fchmod(fd, mode);
	close(fd);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* A fresh, empty HOME with a ~/.aws directory. */
static void fresh_home(void)
{
	char aws[128];

	if (home[0])
		nftw(home, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	strcpy(home, "/tmp/bbcache-test-aws-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(home));
	snprintf(aws, sizeof(aws), "%s/.aws", home);
	CU_ASSERT_EQUAL_FATAL(mkdir(aws, 0700), 0);
}

/* Resolve with env (NULL-terminated list of "NAME=value") and options. */
static int resolve_o(struct bb_aws_opts *o, char **env)
{
	static char *empty[] = {NULL};
	int rc;

	o->home = home;
	o->envp = env ? env : empty;
	memset(err, 0, sizeof(err));
	rc = bb_aws_resolve(o, &cfg, err, sizeof(err));
	CU_ASSERT_PTR_NULL(strstr(err, SECRET));
	CU_ASSERT_PTR_NULL(strstr(err, "zzSECRET"));
	CU_ASSERT_PTR_NULL(strstr(err, "zzTOKEN"));
	if (rc) {
		/* a failure leaves no secret behind */
		CU_ASSERT_STRING_EQUAL(cfg.secret_key, "");
		CU_ASSERT_STRING_EQUAL(cfg.session_token, "");
		CU_ASSERT(err[0] != '\0');
	}
	return rc;
}

static int resolve(char **env)
{
	struct bb_aws_opts o = {0};

	return resolve_o(&o, env);
}

static void expect_err(char **env, int rc, const char *want)
{
	int got = resolve(env);

	CU_ASSERT_EQUAL(got, rc);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	if (got != rc || !strstr(err, want))
		fprintf(stderr, "\n  got %s \"%s\", want %s \"%s\"\n", bb_errname(got), err,
			bb_errname(rc), want);
}

static void test_nothing(void)
{
	fresh_home();
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.profile, "default");
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "");
	CU_ASSERT_STRING_EQUAL(cfg.secret_key, "");
	CU_ASSERT_STRING_EQUAL(cfg.session_token, "");
	CU_ASSERT_STRING_EQUAL(cfg.region, "us-east-1");
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "");
	CU_ASSERT_EQUAL(cfg.path_style, -1);
	CU_ASSERT_EQUAL(bb_aws_path_style(&cfg), 0);
	CU_ASSERT_STRING_EQUAL(cfg.source, "none");
	/* no HOME at all */
	struct bb_aws_opts o = {0};
	char *env[] = {NULL};

	o.envp = env;
	CU_ASSERT_EQUAL(bb_aws_resolve(&o, &cfg, err, sizeof(err)), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.source, "none");
	CU_ASSERT_EQUAL(bb_aws_resolve(&o, NULL, err, sizeof(err)), BB_EINVAL);
	/* a secret-only environment is not a credential (as botocore) */
	char *env2[] = {"AWS_SECRET_ACCESS_KEY=" SECRET, NULL};

	CU_ASSERT_EQUAL(resolve(env2), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.source, "none");
}

static const char creds[] =
	"[default]\n"
	"aws_access_key_id = AKIDDEFAULT\n"
	"aws_secret_access_key = " SECRET "\n"
	"\n"
	"[prod]\n"
	"aws_access_key_id=AKIDPROD\n"
	"aws_secret_access_key=" SECRET "\n"
	"aws_session_token=" TOKEN "\n";

static void test_env(void)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=" SECRET,
		       "AWS_SESSION_TOKEN=" TOKEN, "AWS_PROFILE=prod", NULL};
	char *legacy[] = {"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=" SECRET,
			  "AWS_SECURITY_TOKEN=" TOKEN, NULL};
	char *partial[] = {"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=", NULL};
	struct bb_aws_opts o = {0};

	fresh_home();
	put(".aws/credentials", creds, 0600);
	/* the environment wins over files, also with AWS_PROFILE set */
	CU_ASSERT_EQUAL(resolve(env), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDENV");
	CU_ASSERT_STRING_EQUAL(cfg.secret_key, SECRET);
	CU_ASSERT_STRING_EQUAL(cfg.session_token, TOKEN);
	CU_ASSERT_STRING_EQUAL(cfg.source, "environment");
	CU_ASSERT_STRING_EQUAL(cfg.profile, "prod");
	CU_ASSERT_EQUAL(resolve(legacy), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.session_token, TOKEN);
	/* an explicit profile skips the environment */
	o.profile = "default";
	CU_ASSERT_EQUAL(resolve_o(&o, env), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDDEFAULT");
	CU_ASSERT_STRING_EQUAL(cfg.session_token, "");
	CU_ASSERT_STRING_EQUAL(cfg.source, "~/.aws/credentials [default]");
	expect_err(partial, BB_EINVAL, "AWS_SECRET_ACCESS_KEY is not");

	bb_aws_cfg_wipe(&cfg);
	CU_ASSERT_STRING_EQUAL(cfg.secret_key, "");
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "");
	CU_ASSERT_STRING_EQUAL(cfg.session_token, "");
	bb_aws_cfg_wipe(NULL);
}

static void test_files(void)
{
	char *prod[] = {"AWS_PROFILE=prod", NULL};
	char *dflt[] = {"AWS_DEFAULT_PROFILE=prod", NULL};
	char *both[] = {"AWS_PROFILE=dev", "AWS_DEFAULT_PROFILE=prod", NULL};
	char *dev[] = {"AWS_PROFILE=dev", NULL};
	char *other[] = {"AWS_PROFILE=other", NULL};
	struct bb_aws_opts o = {0};

	fresh_home();
	put(".aws/credentials", creds, 0600);
	put(".aws/config",
	    "[default]\n"
	    "region = eu-west-1\n"
	    "aws_access_key_id = AKIDCONFIGDEFAULT\n"
	    "aws_secret_access_key = " SECRET "\n"
	    "[profile dev]\n"
	    "aws_access_key_id = AKIDDEV\n"
	    "aws_secret_access_key = " SECRET "\n"
	    "region = ap-south-1\n"
	    "[profile   prod]\n"
	    "region = us-west-2\n",
	    0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDDEFAULT");	/* credentials file first */
	CU_ASSERT_STRING_EQUAL(cfg.region, "eu-west-1");
	CU_ASSERT_EQUAL(resolve(prod), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDPROD");
	CU_ASSERT_STRING_EQUAL(cfg.session_token, TOKEN);
	CU_ASSERT_STRING_EQUAL(cfg.source, "~/.aws/credentials [prod]");
	CU_ASSERT_STRING_EQUAL(cfg.region, "us-west-2");
	CU_ASSERT_EQUAL(resolve(dflt), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDPROD");
	CU_ASSERT_EQUAL(resolve(both), BB_OK);	/* AWS_PROFILE first (CLI v2) */
	CU_ASSERT_STRING_EQUAL(cfg.profile, "dev");
	/* dev is only in the config file */
	CU_ASSERT_EQUAL(resolve(dev), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDDEV");
	CU_ASSERT_STRING_EQUAL(cfg.source, "~/.aws/config [profile dev]");
	CU_ASSERT_STRING_EQUAL(cfg.region, "ap-south-1");
	/* opts.profile over AWS_PROFILE */
	o.profile = "dev";
	CU_ASSERT_EQUAL(resolve_o(&o, prod), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDDEV");
	/* a named profile nobody defines is an error; "default" is not */
	expect_err(other, BB_ENOENT, "profile 'other' is not defined in ~/.aws/credentials, "
				     "~/.aws/config");
	o.profile = "nope";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_ENOENT);
	o.profile = "bad]name";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_EINVAL);
	o.profile = "";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_EINVAL);

	/* without a credentials file, [default] of the config file */
	fresh_home();
	put(".aws/config", "[default]\naws_access_key_id = AKIDC\naws_secret_access_key = "
			   SECRET "\n", 0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDC");
	CU_ASSERT_STRING_EQUAL(cfg.source, "~/.aws/config [default]");
	/* [profile default] counts as [default] in the config file */
	put(".aws/config", "[profile default]\naws_access_key_id = AKIDPD\n"
			   "aws_secret_access_key = " SECRET "\n", 0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDPD");
	/* but a bare [dev] in the config file is not the profile dev */
	put(".aws/config", "[dev]\naws_access_key_id = AKIDX\naws_secret_access_key = "
			   SECRET "\n", 0600);
	CU_ASSERT_EQUAL(resolve(dev), BB_ENOENT);
}

static void test_file_vars(void)
{
	char p1[128], p2[128];
	char *env[] = {p1, p2, NULL};
	char *tilde[] = {"AWS_SHARED_CREDENTIALS_FILE=~/elsewhere/c",
			 "AWS_CONFIG_FILE=~/elsewhere/k", NULL};
	char dir[128];

	fresh_home();
	put(".aws/credentials", creds, 0600);
	snprintf(dir, sizeof(dir), "%s/elsewhere", home);
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	put("elsewhere/c", "[default]\naws_access_key_id = AKIDELSE\naws_secret_access_key = "
			   SECRET "\n", 0600);
	put("elsewhere/k", "[default]\nregion = sa-east-1\n", 0600);
	snprintf(p1, sizeof(p1), "AWS_SHARED_CREDENTIALS_FILE=%s/elsewhere/c", home);
	snprintf(p2, sizeof(p2), "AWS_CONFIG_FILE=%s/elsewhere/k", home);
	CU_ASSERT_EQUAL(resolve(env), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDELSE");
	CU_ASSERT_STRING_EQUAL(cfg.region, "sa-east-1");
	CU_ASSERT_STRING_EQUAL(cfg.source, "~/elsewhere/c [default]");
	CU_ASSERT_EQUAL(resolve(tilde), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDELSE");
	CU_ASSERT_STRING_EQUAL(cfg.region, "sa-east-1");
	/* pointing at a missing file: as if there were none */
	snprintf(p1, sizeof(p1), "AWS_SHARED_CREDENTIALS_FILE=%s/missing", home);
	CU_ASSERT_EQUAL(resolve(env), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.source, "none");
}

static void test_admin_file(void)
{
	char admin[128], missing[128];
	char *prod[] = {"AWS_PROFILE=prod", NULL};
	char *envc[] = {"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=" SECRET, NULL};
	struct bb_aws_opts o = {0};

	fresh_home();
	snprintf(admin, sizeof(admin), "%s/site-creds", home);
	snprintf(missing, sizeof(missing), "%s/missing-creds", home);
	put("site-creds", "# site\n[default]\naws_access_key_id = AKIDSITE\n"
			  "aws_secret_access_key = " SECRET "\n[prod]\n"
			  "aws_access_key_id = AKIDSITEPROD\naws_secret_access_key = " SECRET "\n",
	    0600);
	o.credentials_file = admin;
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDSITE");
	CU_ASSERT_STRING_EQUAL(cfg.source, "~/site-creds [default]");
	CU_ASSERT_EQUAL(resolve_o(&o, prod), BB_OK);	/* defines the profile, too */
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDSITEPROD");
	/* the user's own credentials come first */
	put(".aws/credentials", creds, 0600);
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDDEFAULT");
	/* a profile the site file lacks falls back to its [default] */
	put(".aws/credentials", "[dev]\n", 0600);
	o.profile = "dev";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDSITE");
	/* a missing site file matters only when it is reached */
	o.profile = NULL;
	o.credentials_file = missing;
	CU_ASSERT_EQUAL(resolve_o(&o, envc), BB_OK);
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "~/missing-creds: no such file"));
}

static void test_region(void)
{
	char *r1[] = {"AWS_REGION=eu-north-1", "AWS_DEFAULT_REGION=eu-south-1", NULL};
	char *r2[] = {"AWS_DEFAULT_REGION=eu-south-1", NULL};
	char *bad[] = {"AWS_REGION=evil.com/x", NULL};
	struct bb_aws_opts o = {0};

	fresh_home();
	put(".aws/config", "[default]\nregion = ca-central-1\n", 0600);
	o.region = "me-south-1";
	CU_ASSERT_EQUAL(resolve_o(&o, r1), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.region, "me-south-1");
	CU_ASSERT_EQUAL(resolve(r1), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.region, "eu-north-1");
	CU_ASSERT_EQUAL(resolve(r2), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.region, "eu-south-1");
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.region, "ca-central-1");
	/* botocore merges the credentials file over the config file */
	put(".aws/credentials", "[default]\nregion = af-south-1\n", 0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.region, "af-south-1");
	expect_err(bad, BB_EPARSE, "AWS_REGION: not a region name");
	put(".aws/config", "[default]\n\nregion = us east\n", 0600);
	put(".aws/credentials", "", 0600);
	expect_err(NULL, BB_EPARSE, "~/.aws/config:3: not a region name");
}

static void test_endpoint(void)
{
	char *s3[] = {"AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000/", "AWS_ENDPOINT_URL=http://g:1",
		      NULL};
	char *global[] = {"AWS_ENDPOINT_URL=https://global.example", NULL};
	char *ignore[] = {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true",
			  "AWS_ENDPOINT_URL=https://global.example", NULL};
	char *badenv[] = {"AWS_ENDPOINT_URL=ftp://x", NULL};
	struct bb_aws_opts o = {0};

	fresh_home();
	put(".aws/config",
	    "[default]\n"
	    "endpoint_url = https://top.example\n"
	    "services = local\n"
	    "s3 =\n"
	    "  addressing_style = path\n"
	    "\n"
	    "  endpoint_url = http://nested.example:8080//\n"
	    "[services local]\n"
	    "s3 =\n"
	    "    endpoint_url = http://services.example\n"
	    "[profile svc]\n"
	    "services = local\n"
	    "endpoint_url = https://top.example\n"
	    "[profile top]\n"
	    "endpoint_url = https://top.example\n"
	    "s3 =\n"
	    "  addressing_style = virtual\n"
	    "[profile auto]\n"
	    "s3 =\n"
	    "  addressing_style = auto\n"
	    "[profile badstyle]\n"
	    "s3 =\n"
	    "  addressing_style = sideways\n"
	    "[profile badurl]\n"
	    "endpoint_url = localhost:9000\n",
	    0600);
	o.endpoint_url = "http://override:1";
	CU_ASSERT_EQUAL(resolve_o(&o, s3), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "http://override:1");
	CU_ASSERT_EQUAL(resolve(s3), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "http://127.0.0.1:9000");
	CU_ASSERT_EQUAL(resolve(global), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "https://global.example");
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "http://nested.example:8080");
	CU_ASSERT_EQUAL(cfg.path_style, 1);
	CU_ASSERT_EQUAL(resolve(ignore), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "");
	CU_ASSERT_EQUAL(bb_aws_path_style(&cfg), 1);	/* said so explicitly */
	o.endpoint_url = NULL;
	o.profile = "svc";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "http://services.example");
	CU_ASSERT_EQUAL(cfg.path_style, -1);
	CU_ASSERT_EQUAL(bb_aws_path_style(&cfg), 1);	/* auto with an endpoint */
	o.profile = "top";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "https://top.example");
	CU_ASSERT_EQUAL(cfg.path_style, 0);
	CU_ASSERT_EQUAL(bb_aws_path_style(&cfg), 0);
	o.profile = "auto";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_OK);
	CU_ASSERT_EQUAL(cfg.path_style, -1);
	CU_ASSERT_EQUAL(bb_aws_path_style(&cfg), 0);
	o.profile = "badstyle";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "~/.aws/config:23: addressing_style must be"));
	o.profile = "badurl";
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "~/.aws/config:25: endpoint_url is not"));
	expect_err(badenv, BB_EPARSE, "AWS_ENDPOINT_URL: endpoint_url is not");
}

static void test_syntax(void)
{
	fresh_home();
	put(".aws/credentials",
	    "\xef\xbb\xbf# comment\r\n"
	    "; another\r\n"
	    "   \r\n"
	    "[default]\r\n"
	    "  AWS_Access_Key_ID : AKIDCRLF  \r\n"
	    "\taws_secret_access_key=" SECRET "\r\n"
	    "   # indented comment\r\n"
	    "other_tool_setting = whatever: with = signs\r\n"
	    "[empty]\r\n",
	    0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDCRLF");
	CU_ASSERT_STRING_EQUAL(cfg.secret_key, SECRET);
	/* a file without a final newline */
	put(".aws/credentials", "[default]\naws_access_key_id=A\naws_secret_access_key=" SECRET,
	    0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.secret_key, SECRET);

	/* malformed files: FILE:LINE, never the content */
	put(".aws/credentials", "aws_secret_access_key = " SECRET "\n", 0600);
	expect_err(NULL, BB_EPARSE, "~/.aws/credentials:1: a setting before any [section]");
	put(".aws/credentials", "[default]\naws_access_key_id = A\n" SECRET "\n", 0600);
	expect_err(NULL, BB_EPARSE, "~/.aws/credentials:3: expected 'name = value'");
	put(".aws/credentials", "[default]\n[default]\n", 0600);
	expect_err(NULL, BB_EPARSE, "~/.aws/credentials:2: section [default] repeated");
	put(".aws/credentials", "[default]\naws_secret_access_key = x\n"
				"aws_secret_access_key = " SECRET "\n", 0600);
	expect_err(NULL, BB_EPARSE, ":3: 'aws_secret_access_key' repeated in [default]");
	put(".aws/credentials", "[default\n", 0600);
	expect_err(NULL, BB_EPARSE, ":1: malformed [section] header");
	put(".aws/credentials", "[]\n", 0600);
	expect_err(NULL, BB_EPARSE, ":1: malformed [section] header");
	put(".aws/credentials", "[default]\n = " SECRET "\n", 0600);
	expect_err(NULL, BB_EPARSE, ":2: a setting without a name");
	put(".aws/credentials", "[default]\n" SECRET " = x\n" SECRET " = y\n", 0600);
	expect_err(NULL, BB_EPARSE, ":3: '(name not shown)' repeated");
	put(".aws/credentials", "[default]\ns3 =\n  " SECRET "\n", 0600);
	expect_err(NULL, BB_EPARSE, ":3: expected 'name = value' in the settings of 's3'");
	put(".aws/credentials", "[default]\naws_secret_access_key = ab\0cd\n", 0600);
	/* (put() stops at the NUL: write one by hand) */
	{
		char path[128];
		int fd;

		snprintf(path, sizeof(path), "%s/.aws/credentials", home);
		fd = open(path, O_WRONLY | O_TRUNC);
		CU_ASSERT_EQUAL(write(fd, "[default]\nx = a\0b\n", 18), 18);
		close(fd);
	}
	expect_err(NULL, BB_EPARSE, "~/.aws/credentials: contains a NUL byte");
	/* a malformed config file fails even with environment credentials */
	put(".aws/credentials", "", 0600);
	put(".aws/config", "[default]\nregion\n", 0600);
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=" SECRET, NULL};

	expect_err(env, BB_EPARSE, "~/.aws/config:2: expected 'name = value'");
}

static void test_bad_values(void)
{
	char big[5000];
	char *longtok[] = {"AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=" SECRET, big, NULL};
	char *partial[] = {"AWS_PROFILE=p", NULL};

	fresh_home();
	put(".aws/credentials", "[default]\naws_access_key_id = A\n"
				"aws_secret_access_key = " SECRET " more\n", 0600);
	expect_err(NULL, BB_EPARSE, "~/.aws/credentials:3: aws_secret_access_key contains blanks");
	/* a continuation line turns a secret into two lines */
	put(".aws/credentials", "[default]\naws_access_key_id = A\n"
				"aws_secret_access_key = " SECRET "\n  " SECRET "\n", 0600);
	expect_err(NULL, BB_EPARSE, "aws_secret_access_key contains blanks");
	put(".aws/credentials", "[p]\naws_access_key_id = A\naws_session_token = " TOKEN "\n",
	    0600);
	expect_err(partial, BB_EINVAL, "~/.aws/credentials:2: aws_access_key_id in [p] without "
				       "aws_secret_access_key");
	snprintf(big, sizeof(big), "AWS_SESSION_TOKEN=zzTOKENzz");
	memset(big + strlen(big), 'T', 4200);
	big[4200] = '\0';
	put(".aws/credentials", "", 0600);
	expect_err(longtok, BB_ERANGE, "environment: AWS_SESSION_TOKEN is longer than 4095");
}

/* no_credentials (--no-sign-request): keys found nowhere, not even where
 * they are; region and endpoint still resolved; unsupported sources are no
 * error since none is consulted. */
static void test_no_credentials(void)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=" SECRET,
		       "AWS_SESSION_TOKEN=" TOKEN, "AWS_REGION=eu-north-1", NULL};
	struct bb_aws_opts o = {0};

	fresh_home();
	put(".aws/credentials", creds, 0600);
	put(".aws/config", "[default]\nendpoint_url = http://127.0.0.1:9000\n", 0600);
	o.no_credentials = 1;
	CU_ASSERT_EQUAL(resolve_o(&o, env), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "");
	CU_ASSERT_STRING_EQUAL(cfg.secret_key, "");
	CU_ASSERT_STRING_EQUAL(cfg.session_token, "");
	CU_ASSERT_STRING_EQUAL(cfg.region, "eu-north-1");
	CU_ASSERT_STRING_EQUAL(cfg.endpoint_url, "http://127.0.0.1:9000");
	CU_ASSERT_PTR_NOT_NULL(strstr(cfg.source, "none"));
	put(".aws/config", "[default]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = b\n",
	    0600);
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.secret_key, "");
	/* the files are still parsed: a malformed one is still an error */
	put(".aws/config", "[default\n", 0600);
	CU_ASSERT_EQUAL(resolve_o(&o, NULL), BB_EPARSE);
}

static void test_unsupported(void)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=" SECRET, NULL};

	fresh_home();
	put(".aws/config", "[default]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = b\n",
	    0600);
	expect_err(NULL, BB_ENOTSUP, "~/.aws/config:2: profile 'default' uses role_arn");
	CU_ASSERT_EQUAL(resolve(env), BB_OK);	/* the environment comes first */
	put(".aws/config", "[default]\nsso_session = corp\n", 0600);
	expect_err(NULL, BB_ENOTSUP, "uses sso_session");
	/* credential_process comes after the credentials file's static keys */
	put(".aws/config", "[default]\ncredential_process = /bin/get-creds\n", 0600);
	expect_err(NULL, BB_ENOTSUP, "uses credential_process");
	put(".aws/credentials", creds, 0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDDEFAULT");
}

static void test_permissions(void)
{
	char logpath[128], buf[4096];
	ssize_t n;
	int fd;

	fresh_home();
	snprintf(logpath, sizeof(logpath), "%s/log", home);
	put(".aws/credentials", creds, 0644);
	CU_ASSERT_EQUAL_FATAL(bb_log_open("test", BB_LOG_INFO, BB_LOG_FILE, logpath), BB_OK);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	CU_ASSERT_STRING_EQUAL(cfg.access_key, "AKIDDEFAULT");	/* warned, not refused */
	put(".aws/credentials", creds, 0600);
	CU_ASSERT_EQUAL(resolve(NULL), BB_OK);
	bb_log_close();
	fd = open(logpath, O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CU_ASSERT_FATAL(n > 0);
	buf[n] = '\0';
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "~/.aws/credentials may be read or written by group "
					   "or others (mode 644)"));
	CU_ASSERT_PTR_NULL(strstr(buf, "zzSECRET"));
	CU_ASSERT_PTR_NULL(strstr(buf, "zzTOKEN"));
	/* one warning: the 0600 file drew none */
	CU_ASSERT_PTR_NULL(strstr(strstr(buf, "mode 644") + 1, "mode"));
}

static void cleanup(void)
{
	if (home[0])
		nftw(home, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	home[0] = '\0';
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("awscfg", NULL, NULL);
	CU_add_test(s, "no configuration", test_nothing);
	CU_add_test(s, "environment", test_env);
	CU_add_test(s, "credentials and config files", test_files);
	CU_add_test(s, "AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE", test_file_vars);
	CU_add_test(s, "site credentials_file", test_admin_file);
	CU_add_test(s, "region", test_region);
	CU_add_test(s, "endpoint and addressing style", test_endpoint);
	CU_add_test(s, "INI syntax and errors", test_syntax);
	CU_add_test(s, "bad values", test_bad_values);
	CU_add_test(s, "unsupported credential sources", test_unsupported);
	CU_add_test(s, "no credentials (--no-sign-request)", test_no_credentials);
	CU_add_test(s, "permission warning", test_permissions);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	cleanup();
	return failed ? 1 : 0;
}
