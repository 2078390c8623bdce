/* bbcached: the node agent of one job (agent/agent.h, bbcached(8)).
 *
 * Start: the job's shm segment (created; or, after a SIGKILL, attached and
 * audited, or rebuilt when its format is bad), every directory of every
 * dataset, the socket JOBDIR/.bbcache/agent.sock (0600 in a 0700 dir), the
 * namespace file; then the prefetch thread.  A daemon's parent exits only
 * once all that is done (and, with --mode wait, the data staged), so a
 * script can use the agent as soon as bbcached returns.
 *
 * Stop (SIGTERM, SIGINT, BBP_STOP): transfers cancelled, temporary files
 * removed, the segment unlinked, then the namespace file and the socket; the
 * staged data stays.
 */
#include "config.h"

#define BB_LOG_COMPONENT "bbcached"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/proto.h"
#include "shmcache/shmcache.h"
#include "shmcache/topology.h"
#include "stage/stage_util.h"

#define MAX_CONNS 1024

struct agent g_agent;

static int g_ready_fd = -1; /* the daemon's pipe to its waiting parent */

static void usage(FILE *f)
{
	fprintf(f, "usage: bbcached --job ID --job-dir DIR [--manifest PATH]... [--shm-limit SIZE]\n"
		   "                [--shm-dir DIR] [--mode async|wait] [--jobs N]\n"
		   "                [--verify etag|sha256|none] [--config FILE] [--log FILE]\n"
		   "                [--foreground] [--no-verify-tls] [--no-sign-request]\n"
		   "See bbcached(8).\n");
}

/* A start-up failure: to the waiting parent (or stderr) and the log. */
static int g_log_ready, g_bound;

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (g_log_ready)
		bb_error("%s", msg);
	if (g_bound)
		unlink(g_agent.sock);
	if (g_ready_fd >= 0) {
		if (write(g_ready_fd, msg, strlen(msg)) < 0)
			_exit(1);
	} else if (!g_log_ready || !g_agent.foreground) {
		fprintf(stderr, "bbcached: %s\n", msg);
	}
	exit(1);
}

static void on_signal(int sig)
{
	int e = errno;
	atomic_store(&g_agent.stopping, 1);
	if (write(g_agent.wake[1], "s", 1) < 0) {
		/* the pipe is full: a wake-up is pending anyway */
	}
	errno = e;
	(void)sig;
}

static int parse_args(struct agent *a, int argc, char **argv, char ***manifests, int *n_man,
		      const char **conf_path)
{
	static const struct option opts[] = {
		{"job", required_argument, NULL, 'j'},       {"job-dir", required_argument, NULL, 'd'},
		{"manifest", required_argument, NULL, 'm'},  {"shm-limit", required_argument, NULL, 'l'},
		{"shm-dir", required_argument, NULL, 's'},   {"mode", required_argument, NULL, 'M'},
		{"jobs", required_argument, NULL, 'J'},      {"verify", required_argument, NULL, 'v'},
		{"config", required_argument, NULL, 'c'},    {"log", required_argument, NULL, 'L'},
		{"foreground", no_argument, NULL, 'f'},      {"no-verify-tls", no_argument, NULL, 'T'},
		{"no-sign-request", no_argument, NULL, 'N'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int opt;
	char *end;

	*manifests = calloc((size_t)argc, sizeof(char *));
	a->so.verify = BB_VERIFY_ETAG;
	while ((opt = getopt_long(argc, argv, "j:d:m:l:s:M:J:v:c:L:fTNh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			a->job = strtoull(optarg, &end, 10);
			if (*end || !a->job) {
				fprintf(stderr, "bbcached: bad --job '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
			if (!realpath(optarg, a->jobdir)) {
				fprintf(stderr, "bbcached: --job-dir %s: %s\n", optarg, strerror(errno));
				return 2;
			}
			break;
		case 'm':
			(*manifests)[(*n_man)++] = optarg;
			break;
		case 'l':
			if (bb_parse_size(optarg, &a->shm_limit) != BB_OK || !a->shm_limit) {
				fprintf(stderr, "bbcached: bad --shm-limit '%s'\n", optarg);
				return 2;
			}
			break;
		case 's':
			snprintf(a->shm_dir, sizeof(a->shm_dir), "%s", optarg);
			break;
		case 'M':
			if (strcmp(optarg, "async") && strcmp(optarg, "wait")) {
				fprintf(stderr, "bbcached: --mode is async or wait\n");
				return 2;
			}
			a->wait_mode = !strcmp(optarg, "wait");
			break;
		case 'J':
			a->so.jobs = atoi(optarg);
			if (a->so.jobs < 1 || a->so.jobs > 1024) {
				fprintf(stderr, "bbcached: --jobs must be 1..1024\n");
				return 2;
			}
			break;
		case 'v':
			if (!strcmp(optarg, "etag"))
				a->so.verify = BB_VERIFY_ETAG;
			else if (!strcmp(optarg, "sha256"))
				a->so.verify = BB_VERIFY_SHA256;
			else if (!strcmp(optarg, "none"))
				a->so.verify = BB_VERIFY_NONE;
			else {
				fprintf(stderr, "bbcached: --verify is etag, sha256 or none\n");
				return 2;
			}
			break;
		case 'c':
			*conf_path = optarg;
			break;
		case 'L':
			snprintf(a->log_path, sizeof(a->log_path), "%s", optarg);
			break;
		case 'f':
			a->foreground = 1;
			break;
		case 'T':
			a->so.no_verify_tls = 1;
			break;
		case 'N':
			a->no_sign_request = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !a->job || !a->jobdir[0]) {
		if (optind != argc)
			fprintf(stderr, "bbcached: unexpected argument '%s'\n", argv[optind]);
		else
			fprintf(stderr, "bbcached: --job and --job-dir are required\n");
		usage(stderr);
		return 2;
	}
	if (*n_man > BB_NS_MAX_DATASETS) {
		fprintf(stderr, "bbcached: at most %d manifests\n", BB_NS_MAX_DATASETS);
		return 2;
	}
	return 0;
}

/* Fork; the parent waits on a pipe for the child's word: one NUL byte when
 * it serves (exit 0), else the error message (exit 1, message on stderr). */
static void daemonize(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "bbcached: pipe: %s\n", strerror(errno));
		exit(1);
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bbcached: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		char msg[2048];
		size_t len = 0;
		ssize_t r;
		close(p[1]);
		while (len < sizeof(msg) - 1 && (r = read(p[0], msg + len, sizeof(msg) - 1 - len)) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				break;
			len += (size_t)r;
			if (msg[0] == '\0')
				exit(0); /* ready */
		}
		msg[len] = '\0';
		fprintf(stderr, "bbcached: %s\n", len ? msg : "exited while starting (see its log)");
		exit(1);
	}
	close(p[0]);
	g_ready_fd = p[1];
	setsid();
}

static void ready(void)
{
	if (g_ready_fd < 0)
		return;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (write(g_ready_fd, "", 1) < 0)
		bb_warn("the parent did not wait for us: %s", strerror(errno));
	close(g_ready_fd);
	g_ready_fd = -1;
}

/* --manifest DIR/.bbcache/NAME.manifest -> the dataset: mount DIR/NAME,
 * entries under it (or under DIR for a single file). */
static void open_dataset(struct agent *a, struct dataset *ds, const char *arg)
{
	char err[2048];
	int rc;

	if (!realpath(arg, ds->manifest))
		die("--manifest %s: %s", arg, strerror(errno));
	size_t ml = strlen(ds->manifest);
	const char *name = strrchr(ds->manifest, '/') + 1;
	if (ml < 10 || strcmp(ds->manifest + ml - 9, ".manifest") ||
	    name - ds->manifest < 10 || strncmp(name - 10, "/.bbcache/", 10))
		die("--manifest %s is not DIR/.bbcache/NAME.manifest (bbcache stage-in writes those)",
		    arg);
	snprintf(ds->mount, sizeof(ds->mount), "%.*s/%.*s", (int)(name - 10 - ds->manifest),
		 ds->manifest, (int)(strlen(name) - 9), name);
	rc = bb_manifest_open(ds->manifest, &ds->m, err, sizeof(err));
	if (rc != BB_OK)
		die("%s", err);
	if (bb_manifest_is_single(ds->m))
		snprintf(ds->root, sizeof(ds->root), "%.*s", (int)(name - 10 - ds->manifest),
			 ds->manifest);
	else
		snprintf(ds->root, sizeof(ds->root), "%s", ds->mount);
	ds->count = bb_manifest_count(ds->m);
	ds->block = bb_manifest_block_size(ds->m);
	rc = bb_origin_open(&ds->org, bb_manifest_source(ds->m),
			    bb_manifest_is_single(ds->m) ? BB_STAGE_FILE : BB_STAGE_DIRECTORY,
			    &a->conf, NULL, err, sizeof(err));
	if (rc != BB_OK)
		die("%s: %s", ds->manifest, err);
	ds->state = calloc(ds->count ? ds->count : 1, 1);
	ds->rc = calloc(ds->count ? ds->count : 1, 1);
	if (!ds->state || !ds->rc)
		die("out of memory");
	/* Real directories exist before their files arrive (readdir, stat
	 * and path walks of others see the tree at once). */
	for (uint32_t i = 0; i < ds->count; i++) {
		struct bb_mentry e;
		char p[2 * PATH_MAX];
		bb_manifest_entry(ds->m, i, &e);
		if ((e.mode & S_IFMT) != S_IFDIR) {
			a->files_total++;
			a->bytes_total += e.size;
			continue;
		}
		if (bb_manifest_is_single(ds->m))
			continue;
		snprintf(p, sizeof(p), "%s/%s%sx", ds->mount, e.path, e.path[0] ? "/" : "");
		if (bb_mkdirs_for(p) != BB_OK)
			die("cannot create %s: %s", p, strerror(errno));
	}
}

static uint64_t total_blocks(const struct agent *a)
{
	uint64_t n = 0;
	for (uint32_t d = 0; d < a->n_ds; d++)
		for (uint32_t i = 0; i < a->ds[d].count; i++) {
			struct bb_mentry e;
			bb_manifest_entry(a->ds[d].m, i, &e);
			n += e.n_blocks;
		}
	return n;
}

static void open_shm(struct agent *a)
{
	struct bbc_topology topo;
	struct bbc_params p = {0};
	const char *dir = a->shm_dir[0] ? a->shm_dir : NULL;
	uint64_t n = total_blocks(a) + 1024;
	int rc;

	bbc_numa_topology(&topo);
	p.job_id = a->job;
	p.byte_limit = a->shm_limit;
	p.topo = &topo;
	p.policy = (int)a->conf.numa;
	p.dir = dir;
	p.owner = (uid_t)-1;
	p.n_entries = (uint32_t)(n > (1u << 30) ? 1u << 30 : n);
	rc = bbc_create(&p, &a->shm);
	/* A full /dev/shm: a smaller cache, and at worst none (every read
	 * then comes from the NVMe copy, the DISK tier). */
	while (rc == BB_ENOSPC && p.byte_limit > (16u << 20)) {
		p.byte_limit /= 2;
		bb_warn("no room in %s for the shm cache of job %llu: trying %llu MiB",
			dir ? dir : "/dev/shm", (unsigned long long)a->job,
			(unsigned long long)(p.byte_limit >> 20));
		rc = bbc_create(&p, &a->shm);
	}
	if (rc == BB_ENOSPC) {
		bb_warn("no room in %s for any shm cache of job %llu: reads are served from "
			"the NVMe copy only", dir ? dir : "/dev/shm", (unsigned long long)a->job);
		a->shm = NULL;
		return;
	}
	if (rc == BB_EEXIST) {
		/* An agent of this job died (SIGKILL): take its segment over. */
		rc = bbc_attach(dir, a->job, &a->shm);
		if (rc == BB_EBADSEG) {
			bb_warn("the shm segment of job %llu has a bad format: rebuilding it",
				(unsigned long long)a->job);
			bbc_unlink(dir, a->job);
			rc = bbc_create(&p, &a->shm);
		} else if (rc == BB_OK) {
			bbc_audit(a->shm);
			bb_info("attached the existing shm segment of job %llu and audited it",
				(unsigned long long)a->job);
		}
	}
	if (rc != BB_OK)
		die("cannot set up the shm cache of job %llu in %s: %s", (unsigned long long)a->job,
		    dir ? dir : "/dev/shm", bb_strerror(rc));
}

static int listen_socket(struct agent *a)
{
	struct sockaddr_un sa;
	int fd, probe;

	/* Someone there already?  Then we are not needed; else a stale name. */
	if (bbp_connect(a->sock, &probe) == BB_OK) {
		close(probe);
		die("an agent already serves job dir %s", a->jobdir);
	}
	unlink(a->sock);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		die("cannot bind %s: %s", a->sock, strerror(errno));
	g_bound = 1;
	if (chmod(a->sock, 0600) < 0 || listen(fd, 128) < 0)
		die("cannot listen on %s: %s", a->sock, strerror(errno));
	return fd;
}

static void write_ns(struct agent *a)
{
	struct bb_ns ns;
	char err[1024];

	memset(&ns, 0, sizeof(ns));
	ns.job_id = a->job;
	snprintf(ns.shm_dir, sizeof(ns.shm_dir), "%s", a->shm_dir[0] ? a->shm_dir : "/dev/shm");
	snprintf(ns.socket, sizeof(ns.socket), "%s", a->sock);
	ns.n = a->n_ds;
	for (uint32_t d = 0; d < a->n_ds; d++) {
		if (strlen(a->ds[d].mount) >= BB_NS_PATH || strlen(a->ds[d].manifest) >= BB_NS_PATH)
			die("%s: path too long for the namespace file", a->ds[d].mount);
		snprintf(ns.ds[d].mount, sizeof(ns.ds[d].mount), "%s", a->ds[d].mount);
		snprintf(ns.ds[d].manifest, sizeof(ns.ds[d].manifest), "%s", a->ds[d].manifest);
	}
	if (bb_ns_write(a->ns_path, &ns, err, sizeof(err)) != BB_OK)
		die("%s", err);
}

/* A new client: only the job's user may talk to us. */
static void accept_one(struct agent *a, int lfd)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	/* The job's user, and root (the Slurm glue's status and epilog;
	 * root can read the job's files anyway). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
	    (cr.uid != geteuid() && cr.uid != 0)) {
		bb_warn("refused a connection from uid %d pid %d: not the job's user (uid %d)",
			(int)cr.uid, (int)cr.pid, (int)geteuid());
		close(fd);
		return;
	}
	if (atomic_fetch_add(&a->n_conns, 1) >= MAX_CONNS) {
		atomic_fetch_sub(&a->n_conns, 1);
		bb_warn("refused a connection from pid %d: %d clients already", (int)cr.pid, MAX_CONNS);
		close(fd);
		return;
	}
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 1u << 20);
	if (pthread_create(&t, &at, agent_conn_main, (void *)(intptr_t)fd) != 0) {
		atomic_fetch_sub(&a->n_conns, 1);
		bb_warn("cannot start a thread for pid %d", (int)cr.pid);
		close(fd);
	}
	pthread_attr_destroy(&at);
}

/* Remove the temporary file of every entry (ours, or a killed agent's). */
static void remove_tmps(struct agent *a)
{
	for (uint32_t d = 0; d < a->n_ds; d++)
		for (uint32_t i = 0; i < a->ds[d].count; i++) {
			struct bb_mentry e;
			char p[2 * PATH_MAX + 16];
			bb_manifest_entry(a->ds[d].m, i, &e);
			if ((e.mode & S_IFMT) == S_IFDIR)
				continue;
			const char *slash = strrchr(e.path, '/');
			if (slash)
				snprintf(p, sizeof(p), "%s/%.*s/.%s.bbtmp", a->ds[d].root,
					 (int)(slash - e.path), e.path, slash + 1);
			else
				snprintf(p, sizeof(p), "%s/.%s.bbtmp", a->ds[d].root, e.path);
			unlink(p);
		}
}

static void shutdown_agent(struct agent *a, int lfd, pthread_t prefetch)
{
	struct timespec ts;

	bb_info("stopping");
	close(lfd);
	atomic_store(&a->stopping, 1);
	pthread_mutex_lock(&a->lock);
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	/* The prefetch thread cancels its transfers at its next callback; a
	 * stalled one may take longer than we wait: its files go below. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	if (pthread_timedjoin_np(prefetch, NULL, &ts) != 0)
		bb_warn("the prefetch thread did not stop within 5 s");
	remove_tmps(a);
	bbc_unlink(a->shm_dir[0] ? a->shm_dir : NULL, a->job);
	unlink(a->ns_path);
	/* Last: `bbcache stop` waits for the socket to go, and then expects
	 * nothing of ours left. */
	unlink(a->sock);
	bb_info("stopped; the staged data stays in %s", a->jobdir);
}

int main(int argc, char **argv)
{
	struct agent *a = &g_agent;
	char **manifests = NULL, err[1024];
	const char *conf_path = NULL;
	int n_man = 0, rc;

	rc = parse_args(a, argc, argv, &manifests, &n_man, &conf_path);
	if (rc)
		return rc;
	bb_conf_defaults(&a->conf);
	rc = conf_path ? bb_conf_load(&a->conf, conf_path, err, sizeof(err))
		       : bb_conf_load_optional(&a->conf, "/etc/bbcache/bbcache.conf", err, sizeof(err));
	if (rc != BB_OK) {
		fprintf(stderr, "bbcached: %s\n", err);
		return 1;
	}
	if (a->no_sign_request)
		a->conf.s3_no_sign_request = true;
	if (!a->shm_limit)
		a->shm_limit = a->conf.shm_limit_per_job ? a->conf.shm_limit_per_job : 1ULL << 30;
	if (a->conf.shm_limit_per_job && a->shm_limit > a->conf.shm_limit_per_job) {
		fprintf(stderr, "bbcached: --shm-limit exceeds the site's shm_limit_per_job\n");
		return 1;
	}
	a->so.conf = &a->conf;
	snprintf(a->bbdir, sizeof(a->bbdir), "%s/.bbcache", a->jobdir);
	if (bb_ns_socket(a->jobdir, a->sock, sizeof(a->sock)) != BB_OK ||
	    bb_ns_file(a->jobdir, a->ns_path, sizeof(a->ns_path)) != BB_OK) {
		fprintf(stderr, "bbcached: job dir path %s too long for a socket\n", a->jobdir);
		return 1;
	}
	if (!a->log_path[0])
		snprintf(a->log_path, sizeof(a->log_path), "%s/agent.log", a->bbdir);
	if (!a->foreground)
		daemonize();

	/* From here on, failures go through die(). */
	if (mkdir(a->bbdir, 0700) < 0 && errno != EEXIST)
		die("cannot create %s: %s", a->bbdir, strerror(errno));
	if (chmod(a->bbdir, 0700) < 0)
		die("cannot chmod %s: %s", a->bbdir, strerror(errno));
	if (bb_log_open("bbcached", a->conf.log_level,
			BB_LOG_FILE | (a->foreground ? BB_LOG_STDERR : 0), a->log_path) != BB_OK)
		die("cannot open the log %s: %s", a->log_path, strerror(errno));
	g_log_ready = 1;
	bb_info("starting: job %llu, job dir %s, %d manifest(s), mode %s, pid %d",
		(unsigned long long)a->job, a->jobdir, n_man, a->wait_mode ? "wait" : "async",
		(int)getpid());
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&a->cond, &ca);
	if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) < 0)
		die("pipe: %s", strerror(errno));
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The socket first: a second agent for this directory stops here,
	 * before it touches the segment or the files. */
	int lfd = listen_socket(a);
	a->ds = calloc((size_t)(n_man ? n_man : 1), sizeof(*a->ds));
	if (!a->ds)
		die("out of memory");
	for (int i = 0; i < n_man; i++)
		open_dataset(a, &a->ds[a->n_ds++], manifests[i]);
	free(manifests);
	open_shm(a);
	write_ns(a);
	a->t0 = agent_now();
	pthread_t prefetch;
	if (agent_prefetch_start(a, &prefetch) != BB_OK)
		die("cannot start the prefetch thread");
	if (a->wait_mode) {
		pthread_mutex_lock(&a->lock);
		while (!a->prefetch_state && !atomic_load(&a->stopping))
			pthread_cond_wait(&a->cond, &a->lock);
		int st = a->prefetch_state;
		pthread_mutex_unlock(&a->lock);
		bb_info("serving on %s", a->sock);
		if (st == 2 && g_ready_fd >= 0) {
			/* The caller waited for the data: tell it; we keep serving
			 * what is there (and `bbcache status` says what failed). */
			char msg[1200];
			snprintf(msg, sizeof(msg), "staging failed (the agent serves what is staged): %s",
				 a->first_error);
			if (write(g_ready_fd, msg, strlen(msg)) < 0)
				bb_warn("the parent did not wait for us");
			close(g_ready_fd);
			g_ready_fd = -1;
		}
	} else {
		bb_info("serving on %s", a->sock);
	}
	ready();

	struct pollfd pf[2] = {{.fd = lfd, .events = POLLIN}, {.fd = a->wake[0], .events = POLLIN}};
	while (!atomic_load(&a->stopping)) {
		int n = poll(pf, 2, 1000);
		if (n < 0 && errno != EINTR)
			bb_warn("poll: %s", strerror(errno));
		if (n > 0 && (pf[0].revents & POLLIN))
			accept_one(a, lfd);
	}
	shutdown_agent(a, lfd, prefetch);
	bb_log_close();
	/* Connection threads may still sit in recv or a transfer: do not wait. */
	_exit(0);
}
