/* bbcache status, stop, and the start of an agent by stage-in --async:
 * the CLI side of the agent protocol (docs/agent-protocol.md). */
#include "config.h"

#define BB_LOG_COMPONENT "bbcache"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/cmd.h"
#include "common/conf.h"
#include "common/error.h"
#include "common/ns.h"
#include "common/proto.h"

/* --job-dir DIR, else $BB_JOB_DIR, else $BBCACHE_JOB_DIR. */
static const char *job_dir(const char *opt)
{
	const char *d = opt;
	if (!d || !*d)
		d = getenv("BB_JOB_DIR");
	if (!d || !*d)
		d = getenv("BBCACHE_JOB_DIR");
	return d && *d ? d : NULL;
}

/* Connect to the agent of dir; quiet: say what went wrong to stderr. */
static int connect_agent_q(const char *dir, int *fd, int quiet)
{
	char sock[PATH_MAX];
	int rc;

	if (bb_ns_socket(dir, sock, sizeof(sock)) != BB_OK) {
		if (!quiet)
			fprintf(stderr, "bbcache: job dir path too long: %s\n", dir);
		return BB_ERANGE;
	}
	rc = bbp_connect(sock, fd);
	if (quiet)
		return rc;
	if (rc == BB_ENOENT || rc == BB_EAGAIN)
		fprintf(stderr, "bbcache: no agent serves %s (%s)\n", dir,
			rc == BB_ENOENT ? "no socket" : "a stale socket: the agent died");
	else if (rc != BB_OK)
		fprintf(stderr, "bbcache: cannot reach the agent of %s: %s\n", dir, bb_strerror(rc));
	return rc;
}

static int connect_agent(const char *dir, int *fd)
{
	return connect_agent_q(dir, fd, 0);
}

/* The agent's STATUS reply (JSON when json) into buf, NUL-terminated and
 * cut to len.  BB_OK, or the error of the connection or of the reply. */
static int status_q(const char *dir, int json, char *buf, size_t len, int quiet)
{
	static unsigned char mbuf[BBP_MAX_MSG];
	struct bbp_msg q = {0}, r;
	int fd, rc;

	if ((rc = connect_agent_q(dir, &fd, quiet)) != BB_OK)
		return rc;
	q.h.op = BBP_STATUS;
	q.h.seq = 1;
	q.u32 = json ? BBP_STATUS_JSON : 0;
	rc = bbp_call(fd, &q, &r, mbuf, sizeof(mbuf), json && quiet ? 10000 : 30000);
	close(fd);
	if (rc == BB_OK)
		rc = r.rc;
	if (rc == BB_OK)
		snprintf(buf, len, "%.*s", (int)r.text_len, r.text);
	else if (!quiet)
		fprintf(stderr, "bbcache: status from the agent of %s: %s\n", dir, bb_strerror(rc));
	return rc;
}

int agent_status_json(const char *dir, char *buf, size_t len)
{
	return status_q(dir, 1, buf, len, 1);
}

/* [--json] [--job-dir DIR | --job ID [--conf FILE]] */
static int parse_dir_opts(int argc, char **argv, int *json, const char **dir)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"job-dir", required_argument, NULL, 'd'},
					     {"job", required_argument, NULL, 'J'},
					     {"conf", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	static char by_job[BB_CONF_PATH_MAX + 48];
	const char *job = NULL, *conf_path = NULL;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "jd:J:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			if (!json)
				goto usage;
			*json = 1;
			break;
		case 'd':
			*dir = optarg;
			break;
		case 'J':
			job = optarg;
			break;
		case 'c':
			conf_path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto usage;
		}
	}
	if (optind != argc || (job && *dir))
		goto usage;
	if (job) {
		/* The job's directory on this node: nvme_root/job.ID. */
		struct bb_conf conf;
		char err[1024];
		char *end;
		errno = 0;
		unsigned long long id = strtoull(job, &end, 10);
		if (!*job || *end || errno || *job == '-') {
			fprintf(stderr, "bbcache: --job %s: not a job id\n", job);
			return 2;
		}
		bb_conf_defaults(&conf);
		if ((conf_path ? bb_conf_load(&conf, conf_path, err, sizeof(err))
			       : bb_conf_load_optional(&conf, BB_CONF_DEFAULT_PATH, err, sizeof(err))) !=
		    BB_OK) {
			fprintf(stderr, "bbcache: %s\n", err);
			return 1;
		}
		snprintf(by_job, sizeof(by_job), "%s/job.%llu", conf.nvme_root, id);
		bb_conf_free(&conf);
		*dir = by_job;
	}
	*dir = job_dir(*dir);
	if (!*dir) {
		fprintf(stderr, "bbcache: no job dir: give --job ID, --job-dir DIR or set BB_JOB_DIR\n");
		return 2;
	}
	return 0;
usage:
	usage(stderr);
	return 2;
}

/* bbcache status [--json] [--job-dir DIR] */
int cmd_status(int argc, char **argv)
{
	const char *dir = NULL;
	int json = 0, rc;
	static char text[BBP_MAX_MSG + 1];

	rc = parse_dir_opts(argc, argv, &json, &dir);
	if (rc)
		return rc;
	if (status_q(dir, json, text, sizeof(text), 0) != BB_OK)
		return 1; /* status_q said why */
	size_t n = strlen(text);
	fwrite(text, 1, n, stdout);
	if (!n || text[n - 1] != '\n')
		putchar('\n');
	return 0;
}

/* bbcache stop [--job-dir DIR]: ask, then wait (<= 30 s) for the socket to go. */
int cmd_stop(int argc, char **argv)
{
	const char *dir = NULL;
	char sock[PATH_MAX];
	int fd, rc;
	struct bbp_msg q = {0}, r;
	static unsigned char buf[BBP_MAX_MSG];

	rc = parse_dir_opts(argc, argv, NULL, &dir);
	if (rc)
		return rc;
	if (connect_agent(dir, &fd) != BB_OK)
		return 1;
	q.h.op = BBP_STOP;
	q.h.seq = 1;
	rc = bbp_call(fd, &q, &r, buf, sizeof(buf), 30000);
	close(fd);
	if (rc != BB_OK || r.rc != BB_OK) {
		fprintf(stderr, "bbcache: stop: %s\n", bb_strerror(rc != BB_OK ? rc : r.rc));
		return 1;
	}
	bb_ns_socket(dir, sock, sizeof(sock));
	for (int i = 0; i < 300; i++) {
		struct stat st;
		if (lstat(sock, &st) < 0 && errno == ENOENT)
			return 0;
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "bbcache: the agent of %s did not stop within 30 s\n", dir);
	return 1;
}

/* bbcached next to this bbcache, else on PATH. */
void agent_find_bbcached(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			snprintf(buf, len, "%.*s/bbcached", (int)(slash - self), self);
			if (access(buf, X_OK) == 0)
				return;
		}
	}
	snprintf(buf, len, "bbcached");
}

int agent_start(const struct agent_start_opts *o)
{
	char exe[PATH_MAX], job[32], jobs[16], dir[PATH_MAX];
	const char *av[32];
	int n = 0;

	/* The job dir of DIR/.bbcache/NAME.manifest is DIR. */
	snprintf(dir, sizeof(dir), "%s", o->manifest);
	char *s = strrchr(dir, '/');
	if (s)
		*s = '\0';
	s = strrchr(dir, '/');
	if (!s || strcmp(s, "/.bbcache")) {
		fprintf(stderr, "bbcache: %s is not DIR/.bbcache/NAME.manifest\n", o->manifest);
		return 1;
	}
	*s = '\0';
	if (!dir[0])
		strcpy(dir, "/");
	agent_find_bbcached(exe, sizeof(exe));
	snprintf(job, sizeof(job), "%llu", (unsigned long long)o->job);
	av[n++] = exe;
	av[n++] = "--job";
	av[n++] = job;
	av[n++] = "--job-dir";
	av[n++] = dir;
	av[n++] = "--manifest";
	av[n++] = o->manifest;
	av[n++] = "--mode";
	av[n++] = "async";
	if (o->shm_limit) {
		av[n++] = "--shm-limit";
		av[n++] = o->shm_limit;
	}
	if (o->jobs) {
		snprintf(jobs, sizeof(jobs), "%d", o->jobs);
		av[n++] = "--jobs";
		av[n++] = jobs;
	}
	if (o->verify) {
		av[n++] = "--verify";
		av[n++] = o->verify;
	}
	if (o->conf) {
		av[n++] = "--config";
		av[n++] = o->conf;
	}
	if (o->no_verify_tls)
		av[n++] = "--no-verify-tls";
	if (o->no_sign_request)
		av[n++] = "--no-sign-request";
	av[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bbcache: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		execvp(exe, (char *const *)av);
		fprintf(stderr, "bbcache: cannot run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* bbcached's parent returns once the agent serves (or with its error). */
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		fprintf(stderr, "bbcache stage-in: bbcached serves %s (job %s); "
			"`bbcache status --job-dir %s`\n", dir, job, dir);
		return 0;
	}
	return 1;
}
