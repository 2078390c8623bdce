/* bbcache stage-in, stage-out, ls, stat, verify. */
#include "config.h"

#define BB_LOG_COMPONENT "bbcache"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/cmd.h"
#include "common/conf.h"
#include "common/directive.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "shmcache/shmcache.h"
#include "stage/manifest.h"
#include "stage/stage.h"
#include "stage/stage_util.h"

static int load_conf(struct bb_conf *conf, const char *path)
{
	char err[1024] = "";
	int rc;

	bb_conf_defaults(conf);
	rc = path ? bb_conf_load(conf, path, err, sizeof(err))
		  : bb_conf_load_optional(conf, "/etc/bbcache/bbcache.conf", err, sizeof(err));
	if (rc != BB_OK)
		fprintf(stderr, "bbcache: %s\n", err);
	return rc;
}

static void print_summary(const char *what, const struct bb_stage_opts *o,
			  const struct bb_stage_summary *s, int rc, const char *err)
{
	char b[32], t[32], r[32];
	double sec = s->seconds > 1e-9 ? s->seconds : 1e-9;

	bb_format_size(s->bytes, b, sizeof(b));
	bb_format_size(s->total_bytes, t, sizeof(t));
	bb_format_size((uint64_t)((double)s->bytes / sec), r, sizeof(r));
	if (o->json) {
		char e[2048], mf[8192];
		bb_json_escape(err ? err : "", e, sizeof(e));
		bb_json_escape(s->manifest, mf, sizeof(mf));
		printf("{\"event\":\"summary\",\"command\":\"%s\",\"ok\":%s,\"files\":%llu,"
		       "\"bytes\":%llu,\"skipped\":%llu,\"failed\":%llu,\"total_files\":%llu,"
		       "\"total_bytes\":%llu,\"seconds\":%.3f,\"requests\":%llu,\"retries\":%llu,"
		       "\"manifest\":\"%s\"%s%s%s}\n",
		       what, rc == BB_OK ? "true" : "false", (unsigned long long)s->files,
		       (unsigned long long)s->bytes, (unsigned long long)s->skipped,
		       (unsigned long long)s->failed, (unsigned long long)s->total_files,
		       (unsigned long long)s->total_bytes, s->seconds,
		       (unsigned long long)s->requests, (unsigned long long)s->retries, mf,
		       rc != BB_OK ? ",\"error\":\"" : "", rc != BB_OK ? e : "",
		       rc != BB_OK ? "\"" : "");
		return;
	}
	fprintf(stderr,
		"bbcache %s: %llu file(s), %s in %.2f s (%s/s); %llu already there; %llu failed; "
		"%llu request(s), %llu retr%s\n",
		what, (unsigned long long)s->files, b, s->seconds, r, (unsigned long long)s->skipped,
		(unsigned long long)s->failed, (unsigned long long)s->requests,
		(unsigned long long)s->retries, s->retries == 1 ? "y" : "ies");
	(void)t;
	if (rc != BB_OK)
		fprintf(stderr, "bbcache %s: error: %s\n", what, err);
}

static int parse_job(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s)
		return BB_EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || !v) {
		fprintf(stderr, "bbcache: bad job id '%s'\n", s);
		return BB_EINVAL;
	}
	*out = v;
	return BB_OK;
}

static int stage_cmd(int argc, char **argv, int out)
{
	static const struct option opts[] = {
		{"type", required_argument, NULL, 't'},    {"verify", required_argument, NULL, 'v'},
		{"include", required_argument, NULL, 'i'}, {"exclude", required_argument, NULL, 'x'},
		{"jobs", required_argument, NULL, 'j'},    {"json", no_argument, NULL, 'J'},
		{"manifest", required_argument, NULL, 'm'}, {"conf", required_argument, NULL, 'c'},
		{"chunk", required_argument, NULL, 'k'},   {"no-progress", no_argument, NULL, 'P'},
		{"retries", required_argument, NULL, 'r'}, {"stall-timeout", required_argument, NULL, 's'},
		{"no-verify-tls", no_argument, NULL, 'T'}, {"replicas", required_argument, NULL, 'R'},
		{"shm", required_argument, NULL, 'S'},     {"job", required_argument, NULL, 'J' + 256},
		{"async", no_argument, NULL, 'A'},          {"no-sign-request", no_argument, NULL, 'N' + 256},
		{"buffered", no_argument, NULL, 'B' + 256}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct bb_stage_opts o = {0};
	struct bb_stage_summary s;
	struct bb_conf conf;
	const char *conf_path = NULL, *shm_arg = NULL, *verify_arg = NULL;
	char err[2048] = "";
	int opt, rc, async = 0, no_sign = 0;

	o.type = -1;
	o.verify = BB_VERIFY_ETAG;
	o.progress = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "t:v:i:x:j:Jm:c:k:Pr:s:TR:S:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (!strcmp(optarg, "file"))
				o.type = BB_STAGE_FILE;
			else if (!strcmp(optarg, "directory"))
				o.type = BB_STAGE_DIRECTORY;
			else
				goto usage;
			break;
		case 'v':
			verify_arg = optarg;
			if (!strcmp(optarg, "etag"))
				o.verify = BB_VERIFY_ETAG;
			else if (!strcmp(optarg, "sha256"))
				o.verify = BB_VERIFY_SHA256;
			else if (!strcmp(optarg, "none"))
				o.verify = BB_VERIFY_NONE;
			else
				goto usage;
			break;
		case 'i':
			o.include = optarg;
			break;
		case 'x':
			o.exclude = optarg;
			break;
		case 'j':
			o.jobs = atoi(optarg);
			if (o.jobs < 1 || o.jobs > 1024) {
				fprintf(stderr, "bbcache: --jobs must be 1..1024\n");
				return 2;
			}
			break;
		case 'J':
			o.json = 1;
			break;
		case 'm':
			o.manifest = optarg;
			break;
		case 'c':
			conf_path = optarg;
			break;
		case 'k':
			if (bb_parse_size(optarg, &o.chunk) != BB_OK || o.chunk < 65536) {
				fprintf(stderr, "bbcache: bad --chunk '%s' (at least 64KiB)\n", optarg);
				return 2;
			}
			break;
		case 'P':
			o.progress = 0;
			break;
		case 'r':
			o.max_attempts = atoi(optarg) + 1;
			break;
		case 's':
			o.stall_timeout_s = atoi(optarg);
			break;
		case 'T':
			o.no_verify_tls = 1;
			break;
		case 'B' + 256:
			o.buffered = 1;
			break;
		case 'R':
			break; /* replicas: used by the MPI layer; one node here */
		case 'A':
			async = 1;
			break;
		case 'S':
			shm_arg = optarg;
			if (bb_parse_size(optarg, &o.shm_bytes) != BB_OK || !o.shm_bytes) {
				fprintf(stderr, "bbcache: bad --shm size '%s'\n", optarg);
				return 2;
			}
			break;
		case 'J' + 256:
			if (parse_job(optarg, &o.job_id) != BB_OK)
				return 2;
			break;
		case 'N' + 256:
			no_sign = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	if (argc - optind != 2)
		goto usage;
	if (async && (out || (!o.job_id && parse_job(getenv("SLURM_JOB_ID"), &o.job_id) != BB_OK))) {
		fprintf(stderr, "bbcache: --async is for stage-in, with --job ID (or $SLURM_JOB_ID)\n");
		return 2;
	}
	if (o.shm_bytes && !o.job_id && parse_job(getenv("SLURM_JOB_ID"), &o.job_id) != BB_OK) {
		fprintf(stderr, "bbcache: --shm needs --job ID (or $SLURM_JOB_ID)\n");
		return 2;
	}
	/* Unsigned S3 requests for public buckets (the AWS CLI's
	 * --no-sign-request).  Reading only: an upload keeps its signature.
	 * With --async, bbcached is told too (it reads its own bbcache.conf). */
	if (no_sign && out) {
		fprintf(stderr, "bbcache: --no-sign-request is for stage-in (an upload is signed)\n");
		return 2;
	}
	o.source = argv[optind];
	o.dest = argv[optind + 1];
	if (load_conf(&conf, conf_path) != BB_OK)
		return 1;
	if (no_sign)
		conf.s3_no_sign_request = true;
	o.conf = &conf;
	o.block_size = (uint32_t)conf.block_size;
	if (o.shm_bytes && conf.shm_limit_per_job && o.shm_bytes > conf.shm_limit_per_job) {
		char a[32], b[32];
		fprintf(stderr, "bbcache: --shm %s exceeds the site's shm_limit_per_job of %s\n",
			bb_format_size(o.shm_bytes, a, sizeof(a)),
			bb_format_size(conf.shm_limit_per_job, b, sizeof(b)));
		bb_conf_free(&conf);
		return 1;
	}
	if (async) {
		/* List and write the manifest here; the agent moves the bytes
		 * (and owns the shm cache) while the job already runs. */
		o.list_only = 1;
		o.shm_bytes = 0;
	}
	rc = out ? bb_stage_out(&o, &s, err, sizeof(err)) : bb_stage_in(&o, &s, err, sizeof(err));
	if (async) {
		if (rc != BB_OK) {
			fprintf(stderr, "bbcache stage-in: error: %s\n", err);
			bb_conf_free(&conf);
			return 1;
		}
		struct agent_start_opts ao = {o.job_id, s.manifest, shm_arg, o.jobs, verify_arg,
					      conf_path, o.no_verify_tls, no_sign};
		rc = agent_start(&ao);
		bb_conf_free(&conf);
		return rc;
	}
	print_summary(out ? "stage-out" : "stage-in", &o, &s, rc, err);
	if (rc == BB_OK && !o.json && !out)
		fprintf(stderr, "bbcache stage-in: manifest %s\n", s.manifest);
	bb_conf_free(&conf);
	return rc == BB_OK ? 0 : 1;
usage:
	usage(stderr);
	return 2;
}

int cmd_stage_in(int argc, char **argv)
{
	return stage_cmd(argc, argv, 0);
}

int cmd_stage_out(int argc, char **argv)
{
	return stage_cmd(argc, argv, 1);
}

/* A manifest given directly, or the default one of a staged destination. */
static int open_manifest(const char *arg, struct bb_manifest **m)
{
	char path[PATH_MAX], err[1024];
	struct stat st;
	int rc;

	if (stat(arg, &st) == 0 && S_ISREG(st.st_mode) && strstr(arg, ".manifest"))
		snprintf(path, sizeof(path), "%s", arg);
	else
		bb_stage_manifest_path(arg, path, sizeof(path));
	rc = bb_manifest_open(path, m, err, sizeof(err));
	if (rc != BB_OK)
		fprintf(stderr, "bbcache: %s\n", err);
	return rc;
}

static void print_entry(const struct bb_mentry *e, int json)
{
	char t[64];
	time_t sec = (time_t)(e->mtime_ns / 1000000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int dir = (e->mode & S_IFMT) == S_IFDIR;
	if (json) {
		char p[8192], et[300];
		bb_json_escape(e->path, p, sizeof(p));
		bb_json_escape(e->etag, et, sizeof(et));
		printf("{\"path\":\"%s\",\"type\":\"%s\",\"size\":%llu,\"mtime\":\"%s\",\"etag\":\"%s\","
		       "\"blocks\":%llu}\n",
		       p, dir ? "directory" : "file", (unsigned long long)e->size, t, et,
		       (unsigned long long)e->n_blocks);
	} else {
		printf("%c %12llu %s %s%s\n", dir ? 'd' : '-', (unsigned long long)e->size, t,
		       e->path[0] ? e->path : ".", dir && e->path[0] ? "/" : "");
	}
}

/* bbcache ls|stat DEST|MANIFEST [PATH] [--json] */
int cmd_ls(int argc, char **argv, int stat_only)
{
	struct bb_manifest *m;
	struct bb_mentry e;
	uint32_t idx;
	int json = 0, a = 1;
	const char *path = "";

	if (a < argc && !strcmp(argv[a], "--json"))
		json = 1, a++;
	if (a >= argc || argc - a > 2) {
		usage(stderr);
		return 2;
	}
	if (argc - a == 2)
		path = argv[a + 1];
	if (open_manifest(argv[a], &m) != BB_OK)
		return 1;
	if (bb_manifest_lookup(m, path, strlen(path), &idx) != BB_OK) {
		fprintf(stderr, "bbcache: %s: not in the manifest\n", path);
		bb_manifest_close(m);
		return 1;
	}
	bb_manifest_entry(m, idx, &e);
	if (stat_only || (e.mode & S_IFMT) != S_IFDIR) {
		if (stat_only && !json) {
			char t[64];
			time_t sec = (time_t)(e.mtime_ns / 1000000000);
			struct tm tm;
			gmtime_r(&sec, &tm);
			strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
			printf("  Path: %s\n  Type: %s\n  Size: %llu\nBlocks: %llu of %u bytes\n"
			       " Mtime: %s (%lld ns)\n  ETag: %s\nSource: %s%s\n",
			       e.path[0] ? e.path : ".",
			       (e.mode & S_IFMT) == S_IFDIR ? "directory" : "file",
			       (unsigned long long)e.size, (unsigned long long)e.n_blocks,
			       bb_manifest_block_size(m), t, (long long)e.mtime_ns,
			       e.etag[0] ? e.etag : "-", bb_manifest_source(m), e.source);
		} else {
			print_entry(&e, json);
		}
	} else {
		for (uint32_t k = 0; k < e.n_children; k++) {
			uint32_t c;
			struct bb_mentry ce;
			if (bb_manifest_child(m, idx, k, &c) == BB_OK &&
			    bb_manifest_entry(m, c, &ce) == BB_OK)
				print_entry(&ce, json);
		}
	}
	bb_manifest_close(m);
	return 0;
}

/* bbcache verify DEST|MANIFEST: every file present, of its size, and of
 * its SHA-256 when the manifest has one. */
int cmd_verify(int argc, char **argv)
{
	struct bb_manifest *m;
	int bad = 0;
	uint64_t files = 0;

	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	if (open_manifest(argv[1], &m) != BB_OK)
		return 1;
	/* The files' root: DEST; the directory of a single staged file; or,
	 * given DIR/.bbcache/NAME.manifest, DIR/NAME. */
	char root[PATH_MAX];
	struct stat rst;
	snprintf(root, sizeof(root), "%s", argv[1]);
	size_t rl = strlen(root);
	if (rl > 9 && !strcmp(root + rl - 9, ".manifest")) {
		root[rl - 9] = '\0';
		char *name = strrchr(root, '/');
		char *bbdir = name ? name - 9 : NULL;
		if (!name || bbdir < root || strncmp(bbdir, "/.bbcache", 9) != 0) {
			fprintf(stderr, "bbcache verify: %s is not DIR/.bbcache/NAME.manifest: give the "
				"staged destination instead\n", argv[1]);
			bb_manifest_close(m);
			return 2;
		}
		memmove(bbdir + 1, name + 1, strlen(name + 1) + 1);
	} else if (stat(root, &rst) == 0 && S_ISREG(rst.st_mode)) {
		char *slash = strrchr(root, '/');
		if (slash)
			*slash = '\0';
		else
			strcpy(root, ".");
	}
	for (uint32_t i = 0; i < bb_manifest_count(m); i++) {
		struct bb_mentry e;
		char p[PATH_MAX];
		struct stat st;
		bb_manifest_entry(m, i, &e);
		if ((e.mode & S_IFMT) == S_IFDIR)
			continue;
		files++;
		snprintf(p, sizeof(p), "%s/%s", root, e.path);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			fprintf(stderr, "bbcache verify: %s: missing (%s)\n", p, strerror(errno));
			bad++;
			if (fd >= 0)
				close(fd);
			continue;
		}
		if ((uint64_t)st.st_size != e.size) {
			fprintf(stderr, "bbcache verify: %s: %llu bytes, the manifest says %llu\n", p,
				(unsigned long long)st.st_size, (unsigned long long)e.size);
			bad++;
		} else if (e.sha256 && bb_sha256_fd_check(fd, e.size, e.sha256) != BB_OK) {
			fprintf(stderr, "bbcache verify: %s: SHA-256 differs from the manifest\n", p);
			bad++;
		}
		close(fd);
	}
	bb_manifest_close(m);
	if (bad) {
		fprintf(stderr, "bbcache verify: %d of %llu file(s) bad\n", bad, (unsigned long long)files);
		return 1;
	}
	printf("bbcache verify: %llu file(s) OK\n", (unsigned long long)files);
	return 0;
}

/* bbcache shm-cat --job ID DEST|MANIFEST PATH: a staged file's bytes from
 * the job's shm cache only (a block that is not there is an error). */
int cmd_shm(int argc, char **argv, int drop)
{
	uint64_t job = 0;
	int a = 1;

	if (a + 1 < argc && !strcmp(argv[a], "--job")) {
		if (parse_job(argv[a + 1], &job) != BB_OK)
			return 2;
		a += 2;
	} else if (parse_job(getenv("SLURM_JOB_ID"), &job) != BB_OK) {
		usage(stderr);
		return 2;
	}
	if (drop) {
		int rc = bbc_unlink(NULL, job);
		if (rc != BB_OK && rc != BB_ENOENT) {
			fprintf(stderr, "bbcache: cannot remove the shm cache of job %llu: %s\n",
				(unsigned long long)job, bb_strerror(rc));
			return 1;
		}
		return 0;
	}
	if (argc - a != 2) {
		usage(stderr);
		return 2;
	}
	struct bb_manifest *m;
	struct bbc_cache *c;
	struct bb_mentry e;
	uint32_t idx;
	if (open_manifest(argv[a], &m) != BB_OK)
		return 1;
	if (bb_manifest_lookup(m, argv[a + 1], strlen(argv[a + 1]), &idx) != BB_OK ||
	    bb_manifest_entry(m, idx, &e) != BB_OK || (e.mode & S_IFMT) == S_IFDIR) {
		fprintf(stderr, "bbcache: %s: not a file of the manifest\n", argv[a + 1]);
		bb_manifest_close(m);
		return 1;
	}
	int rc = bbc_attach(NULL, job, &c);
	if (rc != BB_OK) {
		fprintf(stderr, "bbcache: no shm cache for job %llu: %s\n", (unsigned long long)job,
			bb_strerror(rc));
		bb_manifest_close(m);
		return 1;
	}
	uint32_t bs = bb_manifest_block_size(m);
	char *buf = malloc(bs);
	for (uint64_t b = 0; buf && b < e.n_blocks; b++) {
		long n = bbc_read(c, idx, b, 0, buf, bs);
		uint64_t want = e.size - b * bs < bs ? e.size - b * bs : bs;
		if (n != (long)want) {
			fprintf(stderr, "bbcache: %s block %llu is not in the shm cache\n", e.path,
				(unsigned long long)b);
			rc = 1;
			break;
		}
		fwrite(buf, 1, (size_t)n, stdout);
	}
	free(buf);
	bbc_detach(c);
	bb_manifest_close(m);
	return rc == BB_OK ? 0 : 1;
}
