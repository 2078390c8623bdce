/* bbcache: the command-line tool.
 *
 * For now: `bbcache demo` (a generated dataset loaded into the node cache and
 * read back, with a verdict) and `bbcache check-script` (the #BB directives
 * of a job script, checked as sbatch will check them).  Staging commands
 * arrive with the origins issue.
 */
#include "config.h"

#define BB_LOG_COMPONENT "bbcache"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
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
#include "shmcache/topology.h"

#define DEMO_BLOCK (4u << 20)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

void usage(FILE *f)
{
	fprintf(f, "usage: bbcache stage-in SOURCE DEST [--type file|directory] [--verify etag|sha256|none]\n"
		   "                [--include GLOB] [--exclude GLOB] [--jobs N] [--json] [--manifest PATH]\n"
		   "                [--chunk SIZE] [--retries N] [--stall-timeout SEC] [--no-progress] [--conf FILE]\n"
		   "                [--no-sign-request] [--no-verify-tls] [--buffered] [--shm SIZE --job ID] [--async --job ID]\n"
		   "       bbcache stage-out SRC DEST [--jobs N] [--json] [--chunk SIZE] [--include GLOB] [--exclude GLOB]\n"
		   "       bbcache ls [--json] DEST|MANIFEST [PATH]\n"
		   "       bbcache stat [--json] DEST|MANIFEST PATH\n"
		   "       bbcache verify DEST\n"
		   "       bbcache shm-cat [--job ID] DEST|MANIFEST PATH   (stage-in --shm SIZE --job ID loads it)\n"
		   "       bbcache shm-drop [--job ID]\n"
		   "       bbcache status [--json] [--job-dir DIR | --job ID]   (the job's bbcached; DIR: $BB_JOB_DIR)\n"
		   "       bbcache stop [--job-dir DIR | --job ID]\n"
		   "       bbcache demo [--files N] [--max-size SIZE] [--shm SIZE] "
		   "[--numa local|interleave|replicate] [--keep]\n"
		   "       bbcache check-script [--job-id ID] [--user NAME] [--conf FILE] SCRIPT\n"
		   "       bbcache slurm data-in|prolog|agent|wait|stage-out|epilog|data-out|teardown|status ...\n"
		   "                (the Slurm glue's steps; see docs/slurm.md)\n"
		   "       bbcache --help | --version\n"
		   "SOURCE/DEST: s3://bucket/prefix/, http(s)://host/path, file:///path or /path.\n"
		   "See bbcache(1).\n");
}

/* Write n files of 1 byte .. max_size under dir; returns total bytes or 0. */
static uint64_t make_dataset(const char *dir, int n, uint64_t max_size, uint64_t **sizes)
{
	uint64_t seed = 0x5eed, total = 0;
	char path[PATH_MAX];
	char *buf = malloc(max_size);

	*sizes = calloc((size_t)n, sizeof(**sizes));
	if (!buf || !*sizes)
		goto fail;
	for (int i = 0; i < n; i++) {
		/* Mostly small files, like image datasets, and a few large ones. */
		uint64_t sz = (i % 50 == 49) ? max_size - xorshift(&seed) % (max_size / 4)
					     : 1 + xorshift(&seed) % (256u << 10);
		if (sz > max_size)
			sz = max_size;
		for (uint64_t k = 0; k < sz; k += 8) {
			uint64_t w = xorshift(&seed);
			memcpy(buf + k, &w, sz - k < 8 ? sz - k : 8);
		}
		snprintf(path, sizeof(path), "%s/sample-%05d.bin", dir, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, buf, sz) != (ssize_t)sz) {
			fprintf(stderr, "bbcache demo: cannot write %s: %s\n", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		close(fd);
		(*sizes)[i] = sz;
		total += sz;
	}
	free(buf);
	return total;
fail:
	free(buf);
	return 0;
}

static void remove_dataset(const char *dir, int n)
{
	char path[PATH_MAX];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/sample-%05d.bin", dir, i);
		unlink(path);
	}
	rmdir(dir);
}

static int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{"files", required_argument, NULL, 'n'}, {"max-size", required_argument, NULL, 's'},
		{"shm", required_argument, NULL, 'm'},   {"numa", required_argument, NULL, 'p'},
		{"keep", no_argument, NULL, 'k'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int n = 2000, keep = 0, opt, rc, failures = 0;
	uint64_t max_size = 16u << 20, shm = 0, *sizes = NULL;
	enum bb_numa_policy numa = BB_NUMA_LOCAL;
	char dir[] = "/tmp/bbcache-demo-XXXXXX";

	while ((opt = getopt_long(argc, argv, "n:s:m:p:kh", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			n = atoi(optarg);
			if (n < 1) {
				fprintf(stderr, "bbcache demo: --files needs a positive number\n");
				return 2;
			}
			break;
		case 's':
		case 'm':
			if (bb_parse_size(optarg, opt == 's' ? &max_size : &shm) != BB_OK) {
				fprintf(stderr, "bbcache demo: bad size '%s'\n", optarg);
				return 2;
			}
			break;
		case 'p':
			if (bb_numa_parse(optarg, &numa) != BB_OK) {
				fprintf(stderr, "bbcache demo: --numa is local, interleave or replicate\n");
				return 2;
			}
			break;
		case 'k':
			keep = 1;
			break;
		default:
			usage(opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (max_size < 8 || max_size > 1ULL << 30) {
		fprintf(stderr, "bbcache demo: --max-size must be 8 B .. 1 GiB\n");
		return 2;
	}
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bbcache demo: cannot create %s: %s\n", dir, strerror(errno));
		return 1;
	}
	printf("bbcache demo: generating %d files in %s ...\n", n, dir);
	uint64_t total = make_dataset(dir, n, max_size, &sizes);
	if (!total) {
		remove_dataset(dir, n);
		free(sizes);
		return 1;
	}
	if (!shm)
		shm = total + total / 2 + (64u << 20); /* room for buddy rounding */

	struct bbc_topology topo;
	struct bbc_params p = {0};
	struct bbc_cache *c = NULL;
	bbc_numa_topology(&topo);
	p.job_id = (uint64_t)getpid();
	p.byte_limit = shm;
	p.policy = (int)numa;
	p.topo = &topo;
	p.owner = (uid_t)-1;
	rc = bbc_create(&p, &c);
	if (rc != BB_OK) {
		fprintf(stderr, "bbcache demo: cannot create a %llu-byte cache in /dev/shm: %s\n",
			(unsigned long long)shm, bb_strerror(rc));
		remove_dataset(dir, n);
		free(sizes);
		return 1;
	}
	char hs[32], hc[32];
	bb_format_size(total, hs, sizeof(hs));
	bb_format_size(shm, hc, sizeof(hc));
	printf("bbcache demo: %d files, %s; cache %s in %u NUMA arena(s), numa=%s\n", n, hs, hc,
	       bbc_n_arenas(c), bb_numa_name(numa));

	/* Load: each file in 4 MiB blocks, each block a single-flight fill. */
	char *buf = malloc(DEMO_BLOCK), *back = malloc(DEMO_BLOCK);
	char path[PATH_MAX];
	double t0 = now_s();
	for (int i = 0; i < n && buf; i++) {
		snprintf(path, sizeof(path), "%s/sample-%05d.bin", dir, i);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		for (uint64_t b = 0; fd >= 0 && b * DEMO_BLOCK < sizes[i]; b++) {
			uint64_t left = sizes[i] - b * DEMO_BLOCK;
			uint32_t len = (uint32_t)(left < DEMO_BLOCK ? left : DEMO_BLOCK);
			struct bbc_ref ref;
			rc = bbc_get(c, (uint64_t)i, b, len, -1, 0, 10000, &ref);
			if (rc != BB_OK) {
				fprintf(stderr, "bbcache demo: %s block %llu: %s\n", path,
					(unsigned long long)b, bb_strerror(rc));
				failures++;
				continue;
			}
			if (ref.filling) {
				if (pread(fd, ref.data, len, (off_t)(b * DEMO_BLOCK)) != (ssize_t)len) {
					bbc_fill_abort(c, &ref, BB_ESYS);
					failures++;
					continue;
				}
				bbc_fill_commit(c, &ref);
			}
			bbc_unpin(c, &ref);
		}
		if (fd >= 0)
			close(fd);
	}
	double t_load = now_s() - t0;

	/* Read back every byte from the cache and compare with the file. */
	uint64_t checked = 0;
	double t_read = 0;
	for (int i = 0; i < n && buf && back; i++) {
		snprintf(path, sizeof(path), "%s/sample-%05d.bin", dir, i);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		for (uint64_t b = 0; fd >= 0 && b * DEMO_BLOCK < sizes[i]; b++) {
			uint64_t left = sizes[i] - b * DEMO_BLOCK;
			size_t len = left < DEMO_BLOCK ? left : DEMO_BLOCK;
			double t1 = now_s();
			long got = bbc_read(c, (uint64_t)i, b, 0, back, DEMO_BLOCK);
			t_read += now_s() - t1;
			if (pread(fd, buf, len, (off_t)(b * DEMO_BLOCK)) != (ssize_t)len ||
			    got != (long)len || memcmp(buf, back, len) != 0) {
				fprintf(stderr, "bbcache demo: %s block %llu: %s\n", path,
					(unsigned long long)b,
					got < 0 ? bb_strerror((int)-got) : "bytes differ");
				failures++;
				continue;
			}
			checked += len;
		}
		if (fd >= 0)
			close(fd);
	}
	struct bbc_stats st;
	bbc_get_stats(c, &st);
	printf("bbcache demo: loaded in %.2f s (%.0f MB/s); read back in %.3f s (%.0f MB/s from shm)\n",
	       t_load, (double)total / 1e6 / (t_load > 0 ? t_load : 1e-9), t_read,
	       (double)checked / 1e6 / (t_read > 0 ? t_read : 1e-9));
	printf("bbcache demo: cache: %llu fills, %llu hits, %llu misses, %llu evictions, "
	       "%llu of %llu entries\n",
	       (unsigned long long)st.fills, (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.evictions,
	       (unsigned long long)st.entries_used, (unsigned long long)st.entries_total);
	free(buf);
	free(back);
	bbc_detach(c);
	bbc_unlink(NULL, p.job_id);
	if (!keep)
		remove_dataset(dir, n);
	else
		printf("bbcache demo: dataset kept in %s\n", dir);
	free(sizes);
	if (failures || checked != total || !buf) {
		printf("bbcache demo: FAIL: %d error(s); %llu of %llu bytes verified\n", failures,
		       (unsigned long long)checked, (unsigned long long)total);
		return 1;
	}
	printf("bbcache demo: PASS: all %d files (%s) read back from the cache byte-identical; "
	       "nothing left in /dev/shm\n",
	       n, hs);
	return 0;
}

static int cmd_check_script(int argc, char **argv)
{
	static const struct option opts[] = {{"job-id", required_argument, NULL, 'j'},
					     {"user", required_argument, NULL, 'u'},
					     {"conf", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *job = "0", *user = NULL, *conf_path = NULL;
	char err[1024] = "", jobdir[PATH_MAX + 64];
	struct bb_conf conf;
	struct bb_job_spec spec;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "j:u:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			job = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'c':
			conf_path = optarg;
			break;
		default:
			usage(opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (!user) {
		struct passwd *pw = getpwuid(getuid());
		user = pw ? pw->pw_name : "unknown";
	}
	bb_conf_defaults(&conf);
	rc = conf_path ? bb_conf_load(&conf, conf_path, err, sizeof(err))
		       : bb_conf_load_optional(&conf, "/etc/bbcache/bbcache.conf", err, sizeof(err));
	if (rc != BB_OK) {
		fprintf(stderr, "bbcache: %s\n", err);
		bb_conf_free(&conf);
		return 1;
	}
	FILE *f = fopen(argv[optind], "r");
	if (!f) {
		fprintf(stderr, "bbcache: cannot open %s: %s\n", argv[optind], strerror(errno));
		bb_conf_free(&conf);
		return 1;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	char chunk[65536];
	size_t got;
	while (mem && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, got, mem);
	fclose(f);
	if (mem)
		fclose(mem);
	snprintf(jobdir, sizeof(jobdir), "%s/job.%.32s", conf.nvme_root, job);
	struct bb_directive_ctx ctx = {.job_id = job, .user = user, .bb_job_dir = jobdir,
				       .conf = &conf};
	rc = bb_directives_parse(text ? text : "", len, &ctx, &spec, err, sizeof(err));
	free(text);
	if (rc != BB_OK) {
		fprintf(stderr, "bbcache: %s: %s\n", argv[optind], err);
		bb_conf_free(&conf);
		return 1;
	}
	printf("%s: #BB directives are valid (BB_JOB_DIR=%s)\n", argv[optind], jobdir);
	bb_job_spec_free(&spec);
	bb_conf_free(&conf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("bbcache %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "demo"))
		return cmd_demo(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check-script"))
		return cmd_check_script(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stage-in"))
		return cmd_stage_in(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stage-out"))
		return cmd_stage_out(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls"))
		return cmd_ls(argc - 1, argv + 1, 0);
	if (!strcmp(argv[1], "stat"))
		return cmd_ls(argc - 1, argv + 1, 1);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "shm-cat"))
		return cmd_shm(argc - 1, argv + 1, 0);
	if (!strcmp(argv[1], "shm-drop"))
		return cmd_shm(argc - 1, argv + 1, 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stop"))
		return cmd_stop(argc - 1, argv + 1);
	if (!strcmp(argv[1], "slurm"))
		return cmd_slurm(argc - 1, argv + 1);
	fprintf(stderr, "bbcache: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
