/* bbcache_spank.so: the node side of bbcache's Slurm integration
 * (bbcache_spank(8), docs/slurm.md).
 *
 * The plugin is glue: every real decision is made by `bbcache slurm ...`
 * subcommands, which the hooks run as separate processes.
 *   job_prolog / job_epilog (slurmd, root): `bbcache slurm prolog|epilog`.
 *   user_init, batch step: start the per-node agents as an overlapping
 *     `srun ... bbcache slurm agent` step in the background.
 *   task_init, batch task: block on `bbcache slurm wait`, so the batch
 *     script never runs on missing data.
 *   task_init, every task: BB_JOB_DIR, BBCACHE_JOB_DIR and LD_PRELOAD.
 *   exit, batch step: `bbcache slurm stage-out`.
 * Commands with the job's environment run as the job's user only; root runs
 * only the prolog and epilog, with slurmd's environment.
 * A job is a bbcache job on this node when NVME_ROOT/job.ID/.bbcache/plan
 * exists (the prolog copies it there); every other job is left alone.
 *
 * slurmstepd is multithreaded, so a forked child only calls
 * async-signal-safe functions (dup2, setgroups, setres[ug]id, execve, ...):
 * everything that may allocate or take a lock (NSS look-ups, the argv and
 * environment arrays) is prepared in the parent before fork().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "common/conf.h"
#include "common/error.h"

/* The module is built with -fvisibility=hidden: only what slurmstepd,
 * slurmd, srun and sbatch look up by name is exported. */
#define BB_SPANK_EXPORT __attribute__((visibility("default")))

extern BB_SPANK_EXPORT const char plugin_name[];
extern BB_SPANK_EXPORT const char plugin_type[];
extern BB_SPANK_EXPORT const unsigned int plugin_version;
extern BB_SPANK_EXPORT const unsigned int spank_plugin_version;
SPANK_PLUGIN(bbcache, 1);

#define PFX "bbcache_spank: "

/* Fallbacks when the build system does not pass the configured paths. */
#ifndef BB_SPANK_DEFAULT_BBCACHE
#define BB_SPANK_DEFAULT_BBCACHE "/usr/bin/bbcache"
#endif
#ifndef BB_SPANK_DEFAULT_PRELOAD
#define BB_SPANK_DEFAULT_PRELOAD "/usr/lib/libbbcache_preload.so"
#endif
#ifndef BB_SPANK_DEFAULT_SRUN
#define BB_SPANK_DEFAULT_SRUN "/usr/bin/srun"
#endif

/* How long the root hooks (prolog, epilog) may take before their command is
 * killed: slurmd has its own PrologEpilogTimeout, this keeps a hung command
 * from holding the node forever when that is unset. */
#define BB_SPANK_ROOT_TIMEOUT 300
/* Grace on top of wait_timeout=SEC before `bbcache slurm wait` is killed. */
#define BB_SPANK_WAIT_GRACE 30
#define BB_SPANK_MAX_ARGV 24
#define BB_SPANK_LINE_MAX 1024

/* Settings from plugstack.conf; set once in slurm_spank_init. */
static char opt_bbcache[PATH_MAX] = BB_SPANK_DEFAULT_BBCACHE;
static char opt_preload[PATH_MAX] = BB_SPANK_DEFAULT_PRELOAD;
static char opt_conf[PATH_MAX] = BB_CONF_DEFAULT_PATH;
static char opt_srun[PATH_MAX] = BB_SPANK_DEFAULT_SRUN;
static bool opt_conf_given;
static unsigned long opt_wait_timeout;	/* 0: none passed to `bbcache slurm wait` */

/* NVME_ROOT from bbcache.conf; loaded in remote context only. */
static char nvme_root[BB_CONF_PATH_MAX];

static const char *const arg_names[] = {"bbcache", "preload", "conf", "srun", "wait_timeout"};

/* The key=value words after the path in plugstack.conf; -1 (and why) on an
 * unknown key, a relative path or a bad number. */
static int parse_args(int ac, char **av)
{
	for (int i = 0; i < ac; i++) {
		const char *eq = strchr(av[i], '=');
		char *dst = NULL;
		size_t keylen;

		if (!eq) {
			slurm_error(PFX "plugstack.conf argument \"%s\" is not key=value "
				    "(known keys: bbcache, preload, conf, srun, wait_timeout)", av[i]);
			return -1;
		}
		keylen = (size_t)(eq - av[i]);
		if (keylen == 7 && !strncmp(av[i], "bbcache", 7))
			dst = opt_bbcache;
		else if (keylen == 7 && !strncmp(av[i], "preload", 7))
			dst = opt_preload;
		else if (keylen == 4 && !strncmp(av[i], "conf", 4))
			dst = opt_conf, opt_conf_given = true;
		else if (keylen == 4 && !strncmp(av[i], "srun", 4))
			dst = opt_srun;
		if (dst) {
			if (eq[1] != '/') {
				slurm_error(PFX "plugstack.conf argument %s: the path must be absolute", av[i]);
				return -1;
			}
			if (snprintf(dst, PATH_MAX, "%s", eq + 1) >= PATH_MAX) {
				slurm_error(PFX "plugstack.conf argument %.*s=: path too long",
					    (int)keylen, av[i]);
				return -1;
			}
			continue;
		}
		if (keylen == 12 && !strncmp(av[i], "wait_timeout", 12)) {
			char *end;

			errno = 0;
			opt_wait_timeout = strtoul(eq + 1, &end, 10);
			if (errno || end == eq + 1 || *end || eq[1] == '-') {
				slurm_error(PFX "plugstack.conf argument %s: not a number of seconds", av[i]);
				return -1;
			}
			continue;
		}
		slurm_error(PFX "unknown plugstack.conf argument \"%.*s\" (known keys: %s, %s, %s, %s, %s)",
			    (int)keylen, av[i], arg_names[0], arg_names[1], arg_names[2],
			    arg_names[3], arg_names[4]);
		return -1;
	}
	return 0;
}

/* NVME_ROOT from the site configuration.  A conf= path that was given must
 * exist; the default one may be missing (then the built-in defaults hold). */
static int load_nvme_root(void)
{
	struct bb_conf conf;
	char err[512] = "";
	int rc;

	bb_conf_defaults(&conf);
	if (opt_conf_given)
		rc = bb_conf_load(&conf, opt_conf, err, sizeof(err));
	else
		rc = bb_conf_load_optional(&conf, opt_conf, err, sizeof(err));
	if (rc != BB_OK) {
		slurm_error(PFX "cannot use the bbcache configuration %s: %s", opt_conf,
			    err[0] ? err : bb_strerror(rc));
		bb_conf_free(&conf);
		return -1;
	}
	snprintf(nvme_root, sizeof(nvme_root), "%s", conf.nvme_root);
	bb_conf_free(&conf);
	return 0;
}

/* --- running commands ------------------------------------------------- */

/* Whose credentials a child runs with. */
enum run_as {
	RUN_AS_CALLER,	/* as slurmd/slurmstepd run the hook (root in the prolog) */
	RUN_AS_USER,	/* the job's user, real and effective ids and groups */
};

/* Everything a child needs, prepared before fork(). */
struct child_plan {
	char *argv[BB_SPANK_MAX_ARGV];
	char **envp;		/* NULL: the caller's environ */
	enum run_as as;
	uid_t uid;
	gid_t gid;
	gid_t *groups;		/* the user's supplementary groups (malloc'd) */
	int ngroups;
	const char *cwd;	/* NULL: stay */
};

/* The user's groups, looked up in the parent (NSS is not fork-safe). */
static int plan_user(struct child_plan *cp, uid_t uid, gid_t gid)
{
	struct passwd pw, *pwp = NULL;
	char buf[16384];
	int n = 64;

	cp->as = RUN_AS_USER;
	cp->uid = uid;
	cp->gid = gid;
	cp->ngroups = 0;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) != 0 || !pwp) {
		/* No passwd entry visible here: the primary group only. */
		cp->groups = malloc(sizeof(gid_t));
		if (!cp->groups)
			return -1;
		cp->groups[0] = gid;
		cp->ngroups = 1;
		return 0;
	}
	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = realloc(cp->groups, (size_t)n * sizeof(gid_t));
		int want = n;

		if (!g)
			return -1;
		cp->groups = g;
		if (getgrouplist(pw.pw_name, gid, cp->groups, &want) >= 0) {
			cp->ngroups = want;
			return 0;
		}
		n = want > n ? want : n * 4;
	}
	return -1;
}

static void plan_free(struct child_plan *cp)
{
	free(cp->groups);
	cp->groups = NULL;
	if (cp->envp) {
		for (char **e = cp->envp; *e; e++)
			free(*e);
		free(cp->envp);
		cp->envp = NULL;
	}
}

/* A copy of env without LD_PRELOAD: our helpers must not run under the
 * interposer (nor under whatever the user preloads). */
static char **env_without_preload(char **env)
{
	size_t n = 0, k = 0;
	char **out;

	for (char **e = env; e && *e; e++)
		n++;
	out = calloc(n + 1, sizeof(char *));
	if (!out)
		return NULL;
	for (char **e = env; e && *e; e++) {
		if (!strncmp(*e, "LD_PRELOAD=", 11))
			continue;
		out[k] = strdup(*e);
		if (!out[k]) {
			for (size_t i = 0; i < k; i++)
				free(out[i]);
			free(out);
			return NULL;
		}
		k++;
	}
	return out;
}

/* In the child: credentials, signals, descriptors 0-2, cwd; then exec.
 * Only async-signal-safe calls.  Never returns. */
static void child_exec(const struct child_plan *cp, int in_fd, int out_fd)
{
	extern char **environ;
	sigset_t none;
	struct sigaction dfl;

	/* slurmstepd's blocked and ignored signals would survive execve. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		_exit(126);
	if (close_range(3, ~0U, 0) != 0) {
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	}
	if (cp->as == RUN_AS_USER) {
		/* In user_init slurmstepd runs with euid = the user but ruid and
		 * suid 0: regain root for the set*id calls, then drop for good. */
		if (geteuid() != 0 && seteuid(0) != 0 && getuid() != cp->uid)
			_exit(126);
		if (geteuid() == 0 && setgroups((size_t)cp->ngroups, cp->groups) != 0)
			_exit(126);
		if (setresgid(cp->gid, cp->gid, cp->gid) != 0 ||
		    setresuid(cp->uid, cp->uid, cp->uid) != 0)
			_exit(126);
	}
	if (cp->cwd && chdir(cp->cwd) != 0)
		_exit(126);
	execve(cp->argv[0], cp->argv, cp->envp ? cp->envp : environ);
	_exit(127);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "bbcache slurm prolog --job 12 ...": the command for log lines. */
static void argv_text(char *const *argv, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; argv[i] && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " " : "", argv[i]);
}

/* Forward one output line of a command to the Slurm log. */
static void log_line(const char *what, const char *line, char *last, size_t lastlen)
{
	if (!line[0])
		return;
	slurm_info(PFX "%s: %s", what, line);
	snprintf(last, lastlen, "%s", line);
}

/*
 * Run cp synchronously: stdin /dev/null, stdout and stderr into a pipe whose
 * lines go to slurm_info prefixed with what.  timeout_s > 0 kills the
 * command's process group after that many seconds.  Returns 0 when it exited
 * 0, else -1 with the reason (exit status and its last output line) in why.
 */
static int run_sync(const char *what, struct child_plan *cp, unsigned long timeout_s,
		    char *why, size_t whylen)
{
	int pfd[2], nullfd, status = 0;
	char buf[BB_SPANK_LINE_MAX], last[BB_SPANK_LINE_MAX] = "", cmd[512];
	size_t used = 0;
	bool timed_out = false;
	double deadline = timeout_s ? now_s() + (double)timeout_s : 0;
	pid_t pid;

	argv_text(cp->argv, cmd, sizeof(cmd));
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		return -1;
	}
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		snprintf(why, whylen, "/dev/null: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		close(nullfd);
		return -1;
	}
	if (pid == 0) {
		setpgid(0, 0);	/* so a timeout kills what it started too */
		child_exec(cp, nullfd, pfd[1]);
	}
	setpgid(pid, pid);	/* both sides: no race with the kill below */
	close(pfd[1]);
	close(nullfd);

	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int ms = -1, r;
		ssize_t got;

		if (deadline) {
			double left = deadline - now_s();

			if (left <= 0) {
				timed_out = true;
				kill(-pid, SIGKILL);
				break;
			}
			ms = (int)(left * 1000) + 1;
		}
		r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		got = read(pfd[0], buf + used, sizeof(buf) - 1 - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		used += (size_t)got;
		buf[used] = '\0';
		for (char *nl; (nl = strchr(buf, '\n')) != NULL;) {
			*nl = '\0';
			log_line(what, buf, last, sizeof(last));
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used + 1);
		}
		if (used == sizeof(buf) - 1) {	/* an overlong line: flush it */
			log_line(what, buf, last, sizeof(last));
			used = 0;
		}
	}
	if (used) {
		buf[used] = '\0';
		log_line(what, buf, last, sizeof(last));
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			snprintf(why, whylen, "`%s`: waitpid: %s", cmd, strerror(errno));
			return -1;
		}
	}
	if (timed_out) {
		snprintf(why, whylen, "`%s` did not finish in %lu s and was killed%s%s", cmd,
			 timeout_s, last[0] ? "; its last line: " : "", last);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		snprintf(why, whylen, "cannot execute %s (missing? set bbcache=PATH in plugstack.conf)",
			 cp->argv[0]);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 126 && !last[0])
		snprintf(why, whylen, "`%s`: could not switch to uid %u or chdir before exec",
			 cmd, (unsigned)cp->uid);
	else if (WIFEXITED(status))
		snprintf(why, whylen, "`%s` exited with status %d%s%s", cmd, WEXITSTATUS(status),
			 last[0] ? ": " : "", last);
	else
		snprintf(why, whylen, "`%s` was killed by signal %d%s%s", cmd,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0, last[0] ? "; its last line: " : "",
			 last);
	return -1;
}

/* --- the job --------------------------------------------------------- */

struct job {
	uint32_t id;
	char id_text[16];
	char dir[PATH_MAX];	/* NVME_ROOT/job.ID */
};

static bool batch_step(spank_t sp)
{
	uint32_t step = 0;

	if (spank_context() != S_CTX_REMOTE)
		return false;
	return spank_get_item(sp, S_JOB_STEPID, &step) == ESPANK_SUCCESS &&
	       step == SLURM_BATCH_SCRIPT;
}

/* Fill job from the handle; true when the plan exists (a bbcache job). */
static bool job_is_ours(spank_t sp, struct job *job)
{
	char plan[PATH_MAX + 32];
	struct stat st;

	if (!nvme_root[0])
		return false;
	if (spank_get_item(sp, S_JOB_ID, &job->id) != ESPANK_SUCCESS)
		return false;
	snprintf(job->id_text, sizeof(job->id_text), "%u", job->id);
	if (snprintf(job->dir, sizeof(job->dir), "%s/job.%u", nvme_root, job->id) >=
	    (int)sizeof(job->dir))
		return false;
	snprintf(plan, sizeof(plan), "%s/.bbcache/plan", job->dir);
	return stat(plan, &st) == 0 && S_ISREG(st.st_mode);
}

/* The job id in the prolog/epilog context. */
static int script_job_id(spank_t sp, struct job *job)
{
	const char *env;
	char *end;
	unsigned long id;

	if (spank_get_item(sp, S_JOB_ID, &job->id) == ESPANK_SUCCESS && job->id) {
		snprintf(job->id_text, sizeof(job->id_text), "%u", job->id);
		return 0;
	}
	env = getenv("SLURM_JOB_ID");
	if (!env || !*env)
		return -1;
	errno = 0;
	id = strtoul(env, &end, 10);
	if (errno || *end || !id || id > UINT32_MAX)
		return -1;
	job->id = (uint32_t)id;
	snprintf(job->id_text, sizeof(job->id_text), "%u", job->id);
	return 0;
}

/* argv = BBCACHE slurm VERB --job ID --conf CONF, then extra (NULL-ended). */
static void bbcache_argv(struct child_plan *cp, const char *verb, const struct job *job,
			 const char *const *extra)
{
	int n = 0;

	cp->argv[n++] = opt_bbcache;
	cp->argv[n++] = (char *)"slurm";
	cp->argv[n++] = (char *)verb;
	cp->argv[n++] = (char *)"--job";
	cp->argv[n++] = (char *)job->id_text;
	cp->argv[n++] = (char *)"--conf";
	cp->argv[n++] = opt_conf;
	for (int i = 0; extra && extra[i] && n < BB_SPANK_MAX_ARGV - 1; i++)
		cp->argv[n++] = (char *)extra[i];
	cp->argv[n] = NULL;
}

/* The job's uid, gid and environment (minus LD_PRELOAD) into cp. */
static int plan_job_user(spank_t sp, struct child_plan *cp, const char *where)
{
	uid_t uid;
	gid_t gid;
	char **env = NULL;

	if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS) {
		slurm_error(PFX "%s: cannot get the job's uid/gid from slurmstepd", where);
		return -1;
	}
	if (spank_get_item(sp, S_JOB_ENV, &env) != ESPANK_SUCCESS)
		env = NULL;
	cp->envp = env_without_preload(env);
	if (!cp->envp || plan_user(cp, uid, gid) != 0) {
		slurm_error(PFX "%s: out of memory preparing the command for uid %u", where,
			    (unsigned)uid);
		return -1;
	}
	return 0;
}

/* --- hooks ----------------------------------------------------------- */

/* Every hook starts here: the `slurmstepd spank prolog|epilog` process calls
 * job_prolog/job_epilog without slurm_spank_init (observed on 22.05), so the
 * arguments are parsed by each hook (they are the same each time). */
static int setup(int ac, char **av)
{
	if (parse_args(ac, av) != 0)
		return -1;
	/* Only slurmstepd needs NVME_ROOT; srun and sbatch load this plugin too
	 * and must not depend on the node's bbcache.conf. */
	if (spank_context() == S_CTX_REMOTE && !nvme_root[0] && load_nvme_root() != 0)
		return -1;
	return 0;
}

BB_SPANK_EXPORT int slurm_spank_init(spank_t sp, int ac, char **av)
{
	return setup(ac, av);
}

/* prolog or epilog: BBCACHE slurm VERB --job ID --conf CONF, as root. */
static int run_root_hook(spank_t sp, const char *verb)
{
	struct child_plan cp = {.as = RUN_AS_CALLER};
	struct job job = {0};
	char why[2048], what[64];

	if (script_job_id(sp, &job) != 0) {
		slurm_error(PFX "%s: no job id (neither S_JOB_ID nor SLURM_JOB_ID)", verb);
		return -1;
	}
	bbcache_argv(&cp, verb, &job, NULL);
	snprintf(what, sizeof(what), "job %u %s", job.id, verb);
	if (run_sync(what, &cp, BB_SPANK_ROOT_TIMEOUT, why, sizeof(why)) != 0) {
		slurm_error(PFX "job %u: the bbcache %s failed on this node: %s", job.id, verb, why);
		return -1;
	}
	return 0;
}

BB_SPANK_EXPORT int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	if (setup(ac, av) != 0 || run_root_hook(sp, "prolog") != 0) {
		slurm_error(PFX "the prolog fails: Slurm drains this node; see the lines above, "
			    "fix the cause, then `scontrol update nodename=... state=resume`");
		return -1;
	}
	return 0;
}

BB_SPANK_EXPORT int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	/* Logged; a failed cleanup must not drain the node. */
	if (setup(ac, av) == 0)
		run_root_hook(sp, "epilog");
	return 0;
}

/* Start `srun --overlap ... bbcache slurm agent` detached from slurmstepd
 * (fork, setsid, fork), as the user, output appended to agents.out. */
static int start_agents(spank_t sp, const struct job *job)
{
	struct child_plan cp = {0};
	char nodes[16] = "", out_path[PATH_MAX + 32], logdir[PATH_MAX + 16];
	char *end;
	unsigned long n;
	int out_fd = -1, null_fd = -1, rc = -1, status;
	pid_t pid;

	if (spank_getenv(sp, "SLURM_JOB_NUM_NODES", nodes, sizeof(nodes)) != ESPANK_SUCCESS) {
		slurm_error(PFX "job %u: SLURM_JOB_NUM_NODES is not in the job environment; "
			    "cannot size the agent step", job->id);
		return -1;
	}
	errno = 0;
	n = strtoul(nodes, &end, 10);
	if (errno || *end || !n) {
		slurm_error(PFX "job %u: SLURM_JOB_NUM_NODES=\"%s\" is not a node count", job->id, nodes);
		return -1;
	}
	snprintf(nodes, sizeof(nodes), "%lu", n);
	if (plan_job_user(sp, &cp, "starting the agents") != 0)
		goto out;

	/* Opened here, with slurmstepd's euid (the user in user_init), so the
	 * user's own directory decides; O_NOFOLLOW refuses a planted link. */
	snprintf(logdir, sizeof(logdir), "%s/.bbcache", job->dir);
	snprintf(out_path, sizeof(out_path), "%s/agents.out", logdir);
	out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out_fd < 0) {
		slurm_error(PFX "job %u: cannot open the agent log %s as uid %u: %s", job->id,
			    out_path, (unsigned)geteuid(), strerror(errno));
		goto out;
	}
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0) {
		slurm_error(PFX "job %u: /dev/null: %s", job->id, strerror(errno));
		goto out;
	}
	{
		int k = 0;

		cp.argv[k++] = opt_srun;
		cp.argv[k++] = (char *)"--overlap";
		cp.argv[k++] = (char *)"--mpi=pmix";
		cp.argv[k++] = (char *)"-N";
		cp.argv[k++] = nodes;
		cp.argv[k++] = (char *)"-n";
		cp.argv[k++] = nodes;
		cp.argv[k++] = (char *)"--ntasks-per-node=1";
		cp.argv[k++] = (char *)"-J";
		cp.argv[k++] = (char *)"bbcached";
		cp.argv[k++] = opt_bbcache;
		cp.argv[k++] = (char *)"slurm";
		cp.argv[k++] = (char *)"agent";
		cp.argv[k++] = (char *)"--job";
		cp.argv[k++] = (char *)job->id_text;
		cp.argv[k++] = (char *)"--conf";
		cp.argv[k++] = opt_conf;
		cp.argv[k] = NULL;
	}
	cp.cwd = job->dir;

	pid = fork();
	if (pid < 0) {
		slurm_error(PFX "job %u: fork for the agent step: %s", job->id, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* Its own session, and a grandchild: srun is neither in
		 * slurmstepd's process group nor its child to reap. */
		if (setsid() < 0)
			_exit(1);
		pid = fork();
		if (pid < 0)
			_exit(1);
		if (pid > 0)
			_exit(0);
		child_exec(&cp, null_fd, out_fd);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		slurm_error(PFX "job %u: could not detach the agent launcher (setsid/fork failed)",
			    job->id);
		goto out;
	}
	slurm_info(PFX "job %u: started `%s --overlap -N %s -n %s -J bbcached %s slurm agent` "
		   "as uid %u, output in %s", job->id, opt_srun, nodes, nodes, opt_bbcache,
		   (unsigned)cp.uid, out_path);
	rc = 0;
out:
	if (out_fd >= 0)
		close(out_fd);
	if (null_fd >= 0)
		close(null_fd);
	plan_free(&cp);
	return rc;
}

/* The batch script will not run (why): say so in the job's directory, so
 * that stage-out, at the end of the batch step, copies nothing out of a
 * job that never ran (bbcache slurm stage-out reads this file).  In the
 * task process, as the user; O_NOFOLLOW refuses a planted link. */
static void mark_not_run(const struct job *job, const char *why)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/.bbcache/script.not-run", job->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, why, strlen(why)) != (ssize_t)strlen(why))
		slurm_error(PFX "job %u: cannot write %s: %s", job->id, path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* `bbcache slurm wait`, as the user; the batch script runs only after it
 * succeeded. */
static int wait_for_data(spank_t sp, const struct job *job)
{
	struct child_plan cp = {0};
	char timeout[24], why[2048], what[64];
	const char *extra[3] = {NULL};
	int rc = -1;

	if (opt_wait_timeout) {
		snprintf(timeout, sizeof(timeout), "%lu", opt_wait_timeout);
		extra[0] = "--timeout";
		extra[1] = timeout;
	}
	if (plan_job_user(sp, &cp, "waiting for stage-in") != 0) {
		mark_not_run(job, "the wait for the staged data could not start (see the slurmd log)");
		goto out;
	}
	bbcache_argv(&cp, "wait", job, extra);
	cp.cwd = job->dir;
	snprintf(what, sizeof(what), "job %u wait", job->id);
	if (run_sync(what, &cp, opt_wait_timeout ? opt_wait_timeout + BB_SPANK_WAIT_GRACE : 0,
		     why, sizeof(why)) != 0) {
		slurm_error(PFX "job %u: the staged data is not ready, so the batch script "
			    "does not run: %s", job->id, why);
		mark_not_run(job, why);
		goto out;
	}
	rc = 0;
out:
	plan_free(&cp);
	return rc;
}

/* Set by user_init in slurmstepd when the agents did not start; the batch
 * task inherits it (task_init runs in the forked task) and fails. */
static bool agents_failed;

BB_SPANK_EXPORT int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	struct job job;

	if (setup(ac, av) != 0)
		return -1;
	if (!batch_step(sp) || !job_is_ours(sp, &job))
		return 0;
	/* No failure return here: a user_init failure in the batch step makes
	 * slurmd report "could not execve job" and drain the node (seen on
	 * 22.05).  The batch task's task_init fails instead. */
	if (start_agents(sp, &job) != 0)
		agents_failed = true;
	return 0;
}

/* Does the colon/blank separated list hold path? */
static bool list_has(const char *list, const char *path)
{
	size_t len = strlen(path);

	for (const char *p = list; *p;) {
		size_t tok = strcspn(p, ": ");

		if (tok == len && !strncmp(p, path, len))
			return true;
		p += tok;
		p += strspn(p, ": ");
	}
	return false;
}

/* The agent step's own task (`BBCACHE slurm agent`) must not be preloaded. */
static bool is_agent_task(spank_t sp)
{
	int argc = 0;
	char **argv = NULL;

	if (spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 3)
		return false;
	return !strcmp(argv[0], opt_bbcache) && !strcmp(argv[1], "slurm") &&
	       !strcmp(argv[2], "agent");
}

BB_SPANK_EXPORT int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	struct job job;
	char old[8192], val[8192 + PATH_MAX];
	spank_err_t err;

	if (setup(ac, av) != 0)
		return -1;
	if (spank_context() != S_CTX_REMOTE || !job_is_ours(sp, &job))
		return 0;
	/* The batch script waits for its data here, in the task process just
	 * before exec: a failure ends the task with status 1 (the job FAILS,
	 * the node stays up), and the message reaches the job's stderr. */
	if (batch_step(sp)) {
		if (agents_failed) {
			slurm_error(PFX "job %u: the bbcache agents did not start (see the "
				    "slurmd log of this node); the batch script does not run", job.id);
			mark_not_run(&job, "the bbcache agents did not start");
			return -1;
		}
		if (wait_for_data(sp, &job) != 0)
			return -1;
	}
	if (spank_setenv(sp, "BB_JOB_DIR", job.dir, 1) != ESPANK_SUCCESS ||
	    spank_setenv(sp, "BBCACHE_JOB_DIR", job.dir, 1) != ESPANK_SUCCESS) {
		slurm_error(PFX "job %u: cannot set BB_JOB_DIR in the task environment", job.id);
		return -1;
	}
	if (is_agent_task(sp))
		return 0;
	err = spank_getenv(sp, "LD_PRELOAD", old, sizeof(old));
	if (err == ESPANK_SUCCESS && list_has(old, opt_preload))
		return 0;
	if (err == ESPANK_SUCCESS && old[0])
		snprintf(val, sizeof(val), "%s:%s", opt_preload, old);
	else if (err == ESPANK_SUCCESS || err == ESPANK_ENV_NOEXIST)
		snprintf(val, sizeof(val), "%s", opt_preload);
	else {
		slurm_error(PFX "job %u: cannot read LD_PRELOAD of the task (%s)", job.id,
			    spank_strerror(err));
		return -1;
	}
	if (spank_setenv(sp, "LD_PRELOAD", val, 1) != ESPANK_SUCCESS) {
		slurm_error(PFX "job %u: cannot set LD_PRELOAD in the task environment", job.id);
		return -1;
	}
	return 0;
}

/* After the batch script: `bbcache slurm stage-out`, as the user with the
 * job's environment (the user's S3 credentials may be there).  slurmstepd
 * runs this hook as root (22.05), but never a root process with an
 * environment the user chose (LD_LIBRARY_PATH alone would be enough). */
BB_SPANK_EXPORT int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	struct child_plan cp = {0};
	struct job job;
	char why[2048], what[64];

	if (setup(ac, av) != 0 || !batch_step(sp) || !job_is_ours(sp, &job))
		return 0;
	if (plan_job_user(sp, &cp, "stage-out") != 0)
		goto out;
	bbcache_argv(&cp, "stage-out", &job, NULL);
	cp.cwd = job.dir;
	snprintf(what, sizeof(what), "job %u stage-out", job.id);
	if (run_sync(what, &cp, 0, why, sizeof(why)) != 0)
		slurm_error(PFX "job %u: stage-out failed: %s", job.id, why);
out:
	plan_free(&cp);
	return 0;
}
