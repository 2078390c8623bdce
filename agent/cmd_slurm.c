/* bbcache slurm ...: the steps of a #BB job's life that burst_buffer.lua
 * (on the controller) and bbcache_spank.so (on the nodes) run.  Design and
 * lifecycle: docs/slurm.md.
 *
 * State of job ID:
 *   STATE/job.ID/              root 0711 (SlurmUser's when slurmctld is not root)
 *   STATE/job.ID/owner         root 0644: "UID GID", from setup
 *   STATE/job.ID/plan          root 0644: who and where (trusted by root hooks)
 *   STATE/job.ID/directives    root 0644: the #BB lines of the script, at their
 *                              line numbers (every other line blanked; what
 *                              `scontrol show job` shows as BurstBuffer=)
 *   STATE/job.ID/user/         the user's, 0700: what ran as the user wrote:
 *       in.K.manifest          the listing of stage_in line K (the snapshot)
 *       out.result             the stage-out result, one line
 *   NVME/job.ID/               $BB_JOB_DIR, the user's, 0700
 *   NVME/job.ID/.bbcache/plan, directives    copies, for the user's side
 * Anything the user can write is only ever read by root as data (a
 * manifest, a result line), never followed as a path. */
#include "config.h"

#define BB_LOG_COMPONENT "bbcache"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/cmd.h"
#include "common/conf.h"
#include "common/directive.h"
#include "common/error.h"
#include "common/ns.h"
#include "common/parse.h"
#include "common/proto.h"
#include "stage/manifest.h"
#include "stage/stage.h"
#include "stage/stage_util.h"

#define PLAN_MAGIC "bbcache-plan 1"
#define TEXT_MAX (1 << 20)

struct plan {
	char job[32];
	uid_t uid;
	gid_t gid;
	char user[256];
	char job_dir[PATH_MAX];
	char *directives; /* malloc'd text */
	size_t directives_len;
	struct bb_job_spec spec;
	int parsed;
};

struct sopts {
	const char *job;
	const char *conf_path;
	long uid, gid;
	int hurry;
	double timeout;
	struct bb_conf conf;
};

static void die_usage(void)
{
	fprintf(stderr,
		"usage: bbcache slurm setup --job ID --uid UID --gid GID\n"
		"       bbcache slurm data-in --job ID [--uid UID --gid GID] SCRIPT\n"
		"       bbcache slurm prolog|epilog|agent|stage-out|data-out|teardown --job ID\n"
		"       bbcache slurm wait --job ID [--timeout SEC]\n"
		"       bbcache slurm status [--job ID]\n"
		"  (every form takes --conf FILE; see docs/slurm.md)\n");
	exit(2);
}

static int valid_job(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (!n || n > 20)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static char *state_path(const struct sopts *o, const char *leaf, char *buf, size_t len)
{
	snprintf(buf, len, "%s/job.%s%s%s", o->conf.state_dir, o->job, leaf ? "/" : "",
		 leaf ? leaf : "");
	return buf;
}

static char *job_dir(const struct sopts *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s/job.%s", o->conf.nvme_root, o->job);
	return buf;
}

/* Read a whole small file (O_NOFOLLOW: callers read user-owned files as
 * root).  NULL with errno on error. */
static char *slurp_flags(const char *path, size_t *len, int flags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > TEXT_MAX) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	char *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	ssize_t r = 0;
	while (b && got < (size_t)st.st_size &&
	       (r = read(fd, b + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)r;
	close(fd);
	if (!b || r < 0) {
		free(b);
		errno = b ? errno : ENOMEM;
		return NULL;
	}
	b[got] = '\0';
	if (len)
		*len = got;
	return b;
}

static char *slurp(const char *path, size_t *len)
{
	return slurp_flags(path, len, O_NOFOLLOW);
}

/* Write a file whole, through a temporary name, with mode. */
static int write_file_mode(const char *path, const char *text, size_t len, mode_t mode)
{
	char tmp[PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 || fchmod(fd, mode)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			errno = e;
			return -1;
		}
		off += (size_t)w;
	}
	if (fsync(fd) || close(fd) || rename(tmp, path)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int write_file(const char *path, const char *text, size_t len)
{
	return write_file_mode(path, text, len, 0600);
}

/* Become the job's user for good: groups, gid, uid, HOME, and no
 * credentials inherited from the caller's environment. */
static int become_user(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	if (uid == 0) {
		fprintf(stderr, "bbcache: root cannot use burst buffers (#BB lines): Slurm's rule\n");
		return -1;
	}
	if (!pw) {
		fprintf(stderr, "bbcache: uid %u has no passwd entry on %s\n", (unsigned)uid,
			getenv("HOSTNAME") ? getenv("HOSTNAME") : "this host");
		return -1;
	}
	if (geteuid() == 0) {
		if (initgroups(pw->pw_name, gid) || setresgid(gid, gid, gid) ||
		    setresuid(uid, uid, uid)) {
			fprintf(stderr, "bbcache: cannot become %s (uid %u): %s\n", pw->pw_name,
				(unsigned)uid, strerror(errno));
			return -1;
		}
	} else if (geteuid() != uid) {
		/* slurmctld runs as an unprivileged SlurmUser: list with the
		 * site's credentials_file (docs/slurm.md). */
		return 0;
	}
	for (const char *const *v = (const char *const[]){"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
						       "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
						       "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
						       "AWS_CONFIG_FILE", NULL};
	     *v; v++)
		unsetenv(*v);
	setenv("HOME", pw->pw_dir, 1);
	setenv("USER", pw->pw_name, 1);
	setenv("LOGNAME", pw->pw_name, 1);
	if (chdir(pw->pw_dir) && chdir("/"))
		return -1;
	return 0;
}

/* The directives of a script: its leading comment block (like
 * directive.c), #BB lines kept at their line numbers, all else blanked. */
static char *directives_of(const char *script, size_t len, size_t *outlen)
{
	char *out = malloc(len + 2), *w = out;
	const char *p = script, *end = script + len;
	int first = 1;
	if (!out)
		return NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *q = p;
		while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		int blank = q == le, comment = q < le && *q == '#';
		if (!blank && !comment && !(first && le - p >= 2 && p[0] == '#' && p[1] == '!'))
			break;
		if (le - p >= 4 && !strncmp(p, "#BB", 3) && (p[3] == ' ' || p[3] == '\t')) {
			memcpy(w, p, (size_t)(le - p));
			w += le - p;
		}
		*w++ = '\n';
		first = 0;
		p = nl ? nl + 1 : end;
	}
	*w = '\0';
	*outlen = (size_t)(w - out);
	return out;
}

static int parse_plan_directives(struct plan *p, const struct sopts *o, char *err,
				 size_t errlen)
{
	struct bb_directive_ctx ctx = {.job_id = p->job, .user = p->user,
				       .bb_job_dir = p->job_dir, .conf = &o->conf};
	int rc = bb_directives_parse(p->directives, p->directives_len, &ctx, &p->spec, err,
				     errlen);
	p->parsed = rc == BB_OK;
	return rc;
}

/* Load plan + directives from DIR (the state dir of the job, or the
 * node copy in $BB_JOB_DIR/.bbcache). */
static int load_plan(const char *dir, const struct sopts *o, struct plan *p, int quiet_enoent)
{
	char path[PATH_MAX + 64], err[1024];
	size_t len;
	memset(p, 0, sizeof(*p));
	snprintf(path, sizeof(path), "%s/plan", dir);
	char *text = slurp(path, &len);
	if (!text) {
		if (!(quiet_enoent && errno == ENOENT))
			fprintf(stderr, "bbcache: cannot read %s: %s\n", path, strerror(errno));
		return errno == ENOENT ? BB_ENOENT : BB_ESYS;
	}
	char *save = NULL;
	int ok = 0;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(l, '\t');
		if (!strcmp(l, PLAN_MAGIC)) {
			ok = 1;
			continue;
		}
		if (!tab)
			continue;
		*tab++ = '\0';
		if (!strcmp(l, "job"))
			snprintf(p->job, sizeof(p->job), "%s", tab);
		else if (!strcmp(l, "uid"))
			p->uid = (uid_t)strtoul(tab, NULL, 10);
		else if (!strcmp(l, "gid"))
			p->gid = (gid_t)strtoul(tab, NULL, 10);
		else if (!strcmp(l, "user"))
			snprintf(p->user, sizeof(p->user), "%s", tab);
		else if (!strcmp(l, "job_dir"))
			snprintf(p->job_dir, sizeof(p->job_dir), "%s", tab);
	}
	free(text);
	if (!ok || strcmp(p->job, o->job) || !p->uid || !p->user[0] || !p->job_dir[0]) {
		fprintf(stderr, "bbcache: %s is not the plan of job %s\n", path, o->job);
		return BB_EPARSE;
	}
	snprintf(path, sizeof(path), "%s/directives", dir);
	p->directives = slurp(path, &p->directives_len);
	if (!p->directives) {
		fprintf(stderr, "bbcache: cannot read %s: %s\n", path, strerror(errno));
		return BB_ESYS;
	}
	if (parse_plan_directives(p, o, err, sizeof(err)) != BB_OK) {
		fprintf(stderr, "bbcache: %s: %s\n", path, err);
		return BB_EPARSE;
	}
	return BB_OK;
}

static void free_plan(struct plan *p)
{
	if (p->parsed)
		bb_job_spec_free(&p->spec);
	free(p->directives);
	p->directives = NULL;
	p->parsed = 0;
}

static int write_plan(const char *dir, const struct plan *p)
{
	char path[PATH_MAX + 64], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return -1;
	fprintf(f, "%s\njob\t%s\nuid\t%u\ngid\t%u\nuser\t%s\njob_dir\t%s\n", PLAN_MAGIC, p->job,
		(unsigned)p->uid, (unsigned)p->gid, p->user, p->job_dir);
	fclose(f);
	snprintf(path, sizeof(path), "%s/plan", dir);
	int rc = text ? write_file_mode(path, text, len, 0644) : -1;
	free(text);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/directives", dir);
	return write_file_mode(path, p->directives, p->directives_len, 0644);
}

/* Where bbcached wants the manifest of a stage_in destination:
 * DIR/.bbcache/NAME.manifest for DEST = DIR/NAME. */
static int node_manifest_path(const char *dest, char *buf, size_t len)
{
	return bb_stage_manifest_path(dest, buf, len);
}

/* Copy a file as the current user, creating the directories of dst. */
static int copy_file(const char *src, const char *dst)
{
	size_t len;
	char *text = slurp(src, &len);
	if (!text)
		return -1;
	int rc = bb_mkdirs_for(dst) == BB_OK ? write_file(dst, text, len) : -1;
	free(text);
	return rc;
}

/* Remove name under dirfd and everything below it, never following a
 * symbolic link (safe as root in a tree the user controls). */
static int rm_tree_at(int at, const char *name, int depth)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(at, name, 0) && errno != ENOENT ? -1 : 0;
	if (depth > 256) {
		errno = ELOOP;
		return -1;
	}
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	for (int pass = 0; pass < 2; pass++) {
		rc = 0;
		rewinddir(d);
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (rm_tree_at(dirfd(d), de->d_name, depth + 1))
				rc = -1;
		}
		if (!unlinkat(at, name, AT_REMOVEDIR) || errno == ENOENT) {
			closedir(d);
			return rc;
		}
	}
	closedir(d);
	return -1;
}

/* Remove REL (a path below the directory dirfd, no . or .. components),
 * walking its parents without following links. */
static int rm_below(int at, const char *rel)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", rel);
	int fd = dup(at), rc;
	char *save = NULL, *c = strtok_r(buf, "/", &save), *next;
	if (fd < 0)
		return -1;
	while (c && (next = strtok_r(NULL, "/", &save))) {
		int nfd = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (nfd < 0)
			return errno == ENOENT ? 0 : -1;
		fd = nfd;
		c = next;
	}
	rc = c ? rm_tree_at(fd, c, 0) : 0;
	close(fd);
	return rc;
}

/* Run fn as the job's user in a child; its exit status (0 ok). */
static int as_user(const struct plan *p, int (*fn)(const struct plan *, void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bbcache: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		if (become_user(p->uid, p->gid))
			_exit(1);
		int rc = fn(p, arg);
		fflush(NULL);
		_exit(rc);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 1;
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "bbcache: the child running as %s died of signal %d\n", p->user,
			WTERMSIG(st));
		return 1;
	}
	return WEXITSTATUS(st);
}

/* Files and bytes a manifest lists; -1 when it cannot be read. */
static int manifest_totals(const char *path, uint64_t *files, uint64_t *bytes)
{
	struct bb_manifest *m;
	char err[1024];
	if (bb_manifest_open(path, &m, err, sizeof(err)) != BB_OK)
		return -1;
	for (uint32_t i = 0; i < bb_manifest_count(m); i++) {
		struct bb_mentry e;
		bb_manifest_entry(m, i, &e);
		if ((e.mode & S_IFMT) != S_IFDIR)
			(*files)++, *bytes += e.size;
	}
	bb_manifest_close(m);
	return 0;
}

/* ---- data-in ------------------------------------------------------------ */

struct list_arg {
	const struct sopts *o;
	const char *udir;
};

static int list_as_user(const struct plan *p, void *arg)
{
	const struct list_arg *la = arg;
	for (size_t k = 0; k < p->spec.n_stage_in; k++) {
		const struct bb_stage *st = &p->spec.stage_in[k];
		char mf[PATH_MAX + 64], err[2048] = "", sz[32];
		struct bb_stage_summary sum;
		struct bb_stage_opts so = {0};
		snprintf(mf, sizeof(mf), "%s/in.%zu.manifest", la->udir, k);
		so.source = st->source;
		so.dest = st->destination;
		so.type = st->type == BB_STAGE_DIRECTORY ? BB_STAGE_DIRECTORY : BB_STAGE_FILE;
		so.verify = st->verify;
		so.include = st->include;
		so.exclude = st->exclude;
		so.manifest = mf;
		so.conf = &la->o->conf;
		so.block_size = (uint32_t)la->o->conf.block_size;
		so.list_only = 1;
		so.sync_manifest = 1; /* the job's snapshot, in Slurm's state directory */
		memset(&sum, 0, sizeof(sum));
		int rc = bb_stage_in(&so, &sum, err, sizeof(err));
		if (rc != BB_OK) {
			fprintf(stderr, "bbcache: line %d: stage_in source=%s: %s\n", st->line,
				st->source, err[0] ? err : bb_strerror(rc));
			return 1;
		}
		uint64_t files = 0, bytes = 0;
		manifest_totals(mf, &files, &bytes);
		printf("bbcache: job %s: line %d: listed %s: %llu file(s), %s\n", p->job, st->line,
		       st->source, (unsigned long long)files, bb_format_size(bytes, sz, sizeof(sz)));
	}
	return 0;
}

static int make_dir(const char *path, mode_t mode)
{
	struct stat st;
	if (mkdir(path, mode) == 0)
		return chmod(path, mode);
	if (errno != EEXIST || lstat(path, &st) || !S_ISDIR(st.st_mode)) {
		if (errno == EEXIST)
			errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* mkdir -p of an admin-owned root (state_dir, nvme_root): what it
 * creates is 0755, so that users reach their own job.ID below it. */
static int make_root(const char *root)
{
	char b[PATH_MAX];
	struct stat st;
	snprintf(b, sizeof(b), "%s", root);
	for (char *s = b + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(b, 0755) == 0)
			chmod(b, 0755);
		else if (errno != EEXIST)
			return -1;
		*s = c;
		if (!c)
			break;
	}
	if (lstat(root, &st) || !S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* setup (Slurm passes uid and gid to it in every version; 22.05 does not
 * pass them to data_in): state_dir/job.ID/owner = "UID GID". */
static int write_owner(const struct sopts *o)
{
	char sdir[PATH_MAX], path[PATH_MAX + 16], text[64];
	state_path(o, NULL, sdir, sizeof(sdir));
	snprintf(path, sizeof(path), "%s/owner", sdir);
	snprintf(text, sizeof(text), "%ld %ld\n", o->uid, o->gid);
	if (make_root(o->conf.state_dir) || make_dir(sdir, 0711) ||
	    write_file_mode(path, text, strlen(text), 0644)) {
		fprintf(stderr, "bbcache: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

static int cmd_setup(struct sopts *o)
{
	if (o->uid < 0 || o->gid < 0)
		die_usage();
	return write_owner(o);
}

static int cmd_data_in(struct sopts *o, const char *script_path)
{
	char err[1024] = "", sdir[PATH_MAX], udir[PATH_MAX + 8];
	struct plan p;
	size_t len;

	if (o->uid < 0 || o->gid < 0) {
		char path[PATH_MAX + 16], *t;
		snprintf(path, sizeof(path), "%s/owner", state_path(o, NULL, sdir, sizeof(sdir)));
		t = slurp(path, NULL);
		if (!t || sscanf(t, "%ld %ld", &o->uid, &o->gid) != 2) {
			fprintf(stderr, "bbcache: job %s: no --uid/--gid and no %s (setup did not run)\n",
				o->job, path);
			free(t);
			return 1;
		}
		free(t);
	}
	memset(&p, 0, sizeof(p));
	/* slurmscriptd's own file, given as /proc/PID/fd/N: a link to follow. */
	char *script = slurp_flags(script_path, &len, 0);
	if (!script) {
		fprintf(stderr, "bbcache: cannot read the job script %s: %s\n", script_path,
			strerror(errno));
		return 1;
	}
	p.directives = directives_of(script, len, &p.directives_len);
	free(script);
	if (!p.directives)
		return 1;
	struct passwd *pw = getpwuid((uid_t)o->uid);
	if (!pw) {
		fprintf(stderr, "bbcache: uid %ld has no passwd entry here\n", o->uid);
		return 1;
	}
	snprintf(p.job, sizeof(p.job), "%s", o->job);
	p.uid = (uid_t)o->uid;
	p.gid = (gid_t)o->gid;
	snprintf(p.user, sizeof(p.user), "%s", pw->pw_name);
	job_dir(o, p.job_dir, sizeof(p.job_dir));
	if (parse_plan_directives(&p, o, err, sizeof(err)) != BB_OK) {
		fprintf(stderr, "bbcache: %s\n", err);
		free_plan(&p);
		return 1;
	}
	state_path(o, NULL, sdir, sizeof(sdir));
	snprintf(udir, sizeof(udir), "%s/user", sdir);
	int dfd = -1;
	if (make_root(o->conf.state_dir)) {
		fprintf(stderr, "bbcache: state_dir %s: %s\n", o->conf.state_dir, strerror(errno));
		goto fail;
	}
	/* A requeued job lists again: its old state goes. */
	dfd = open(o->conf.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(err, sizeof(err), "job.%s", o->job);
	if (dfd < 0 || rm_tree_at(dfd, err, 0)) {
		fprintf(stderr, "bbcache: cannot clear %s: %s\n", sdir, strerror(errno));
		goto fail;
	}
	if (make_dir(sdir, 0711) || write_owner(o) || write_plan(sdir, &p) || make_dir(udir, 0700) ||
	    (geteuid() == 0 && chown(udir, p.uid, p.gid))) {
		fprintf(stderr, "bbcache: cannot write the state of job %s in %s: %s\n", o->job,
			sdir, strerror(errno));
		goto fail;
	}
	struct list_arg la = {o, udir};
	int rc = geteuid() == 0 ? as_user(&p, list_as_user, &la) : list_as_user(&p, &la);
	close(dfd);
	free_plan(&p);
	return rc ? 1 : 0;
fail:
	if (dfd >= 0)
		close(dfd);
	free_plan(&p);
	return 1;
}

/* ---- prolog (root, each node) ---------------------------------------------- */

struct prolog_arg {
	const char *sdir;
};

static int prolog_as_user(const struct plan *p, void *arg)
{
	const struct prolog_arg *pa = arg;
	char dir[PATH_MAX + 16], src[PATH_MAX + 64], dst[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/.bbcache", p->job_dir);
	if (make_dir(dir, 0700) || write_plan(dir, p)) {
		fprintf(stderr, "bbcache: cannot write %s: %s\n", dir, strerror(errno));
		return 1;
	}
	for (size_t k = 0; k < p->spec.n_stage_in; k++) {
		const struct bb_stage *st = &p->spec.stage_in[k];
		snprintf(src, sizeof(src), "%s/user/in.%zu.manifest", pa->sdir, k);
		if (node_manifest_path(st->destination, dst, sizeof(dst)) != BB_OK ||
		    copy_file(src, dst)) {
			fprintf(stderr, "bbcache: job %s: cannot copy the listing %s to %s: %s\n",
				p->job, src, dst, strerror(errno));
			return 1;
		}
	}
	return 0;
}

static int cmd_prolog(struct sopts *o)
{
	char sdir[PATH_MAX], jd[PATH_MAX];
	struct plan p;
	struct stat st;
	int rc = load_plan(state_path(o, NULL, sdir, sizeof(sdir)), o, &p, 1);

	if (rc == BB_ENOENT)
		return 0; /* no #BB lines: not ours */
	if (rc != BB_OK)
		return 1;
	job_dir(o, jd, sizeof(jd));
	if (strcmp(jd, p.job_dir)) {
		fprintf(stderr, "bbcache: job %s: the plan's job dir %s is not %s (nvme_root changed?)\n",
			o->job, p.job_dir, jd);
		goto fail;
	}
	if (make_root(o->conf.nvme_root)) {
		fprintf(stderr, "bbcache: nvme_root %s: %s\n", o->conf.nvme_root, strerror(errno));
		goto fail;
	}
	if (lstat(jd, &st) == 0 && (!S_ISDIR(st.st_mode) || st.st_uid != p.uid)) {
		int dfd = open(o->conf.nvme_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		char name[64];
		snprintf(name, sizeof(name), "job.%s", o->job);
		if (dfd < 0 || rm_tree_at(dfd, name, 0)) {
			fprintf(stderr, "bbcache: cannot remove a stale %s: %s\n", jd, strerror(errno));
			if (dfd >= 0)
				close(dfd);
			goto fail;
		}
		close(dfd);
	}
	if (make_dir(jd, 0700) || lchown(jd, p.uid, p.gid)) {
		fprintf(stderr, "bbcache: cannot create %s for %s: %s\n", jd, p.user, strerror(errno));
		goto fail;
	}
	struct prolog_arg pa = {sdir};
	if (as_user(&p, prolog_as_user, &pa))
		goto fail;
	printf("bbcache: job %s: BB_JOB_DIR=%s ready for %s (%zu dataset(s) to stage)\n", o->job,
	       jd, p.user, p.spec.n_stage_in);
	free_plan(&p);
	return 0;
fail:
	free_plan(&p);
	return 1;
}

/* ---- agent (the overlap step, as the user, one per node) ------------------- */

static const char *verify_arg(const struct plan *p)
{
	int v = -1;
	for (size_t k = 0; k < p->spec.n_stage_in; k++)
		if (v < 0 || p->spec.stage_in[k].verify == BB_VERIFY_SHA256)
			v = (int)p->spec.stage_in[k].verify;
	return v < 0 ? NULL : bb_verify_name((enum bb_verify)v);
}

static int cmd_agent(struct sopts *o)
{
	char jd[PATH_MAX], dir[PATH_MAX + 16], exe[PATH_MAX], shm[32];
	char mf[64][PATH_MAX];
	const char *av[160];
	struct plan p;
	int n = 0, m = 0;

	job_dir(o, jd, sizeof(jd));
	snprintf(dir, sizeof(dir), "%s/.bbcache", jd);
	if (load_plan(dir, o, &p, 0) != BB_OK)
		return 1;
	if (!p.spec.n_stage_in) {
		printf("bbcache: job %s: no stage_in line: no agent needed\n", o->job);
		free_plan(&p);
		return 0;
	}
	if (p.spec.n_stage_in > 64) {
		fprintf(stderr, "bbcache: job %s: more than 64 stage_in lines\n", o->job);
		free_plan(&p);
		return 1;
	}
	agent_find_bbcached(exe, sizeof(exe));
	av[n++] = exe;
	av[n++] = "--job";
	av[n++] = o->job;
	av[n++] = "--job-dir";
	av[n++] = jd;
	/* mode=wait datasets first: the agent prefetches in this order. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t k = 0; k < p.spec.n_stage_in; k++) {
			const struct bb_stage *st = &p.spec.stage_in[k];
			if ((st->mode == BB_MODE_WAIT) != (pass == 0))
				continue;
			node_manifest_path(st->destination, mf[m], sizeof(mf[m]));
			av[n++] = "--manifest";
			av[n++] = mf[m++];
		}
	if (p.spec.cache.present && p.spec.cache.shm_bytes) {
		snprintf(shm, sizeof(shm), "%llu", (unsigned long long)p.spec.cache.shm_bytes);
		av[n++] = "--shm-limit";
		av[n++] = shm;
	}
	if (verify_arg(&p)) {
		av[n++] = "--verify";
		av[n++] = verify_arg(&p);
	}
	if (o->conf_path) {
		av[n++] = "--config";
		av[n++] = o->conf_path;
	}
	av[n++] = "--foreground";
	av[n] = NULL;
	unsetenv("LD_PRELOAD");
	fflush(NULL);
	execv(exe, (char *const *)av);
	execvp("bbcached", (char *const *)av);
	fprintf(stderr, "bbcache: cannot run %s: %s\n", exe, strerror(errno));
	free_plan(&p);
	return 1;
}

/* ---- wait (batch step, before the script) --------------------------------- */

/* The agent's STATUS as JSON into buf; 0 when it answered. */
static int agent_json(const char *jd, char *buf, size_t len)
{
	return agent_status_json(jd, buf, len) == BB_OK ? 0 : -1;
}

static void json_str(const char *json, const char *key, char *out, size_t len)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\":\"", key);
	const char *s = strstr(json, k);
	size_t n = 0;
	out[0] = '\0';
	if (!s)
		return;
	for (s += strlen(k); *s && *s != '"' && n + 1 < len; s++) {
		if (*s == '\\' && s[1])
			s++;
		out[n++] = *s;
	}
	out[n] = '\0';
}

struct wait_ds {
	const struct bb_stage *st;
	struct bb_manifest *m;
	char root[PATH_MAX];
	uint32_t next, count;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_wait(struct sopts *o)
{
	char jd[PATH_MAX], dir[PATH_MAX + 16], mf[PATH_MAX], err[1024], json[16384];
	struct wait_ds ds[64];
	struct plan p;
	size_t nds = 0;
	int rc = 1;

	job_dir(o, jd, sizeof(jd));
	snprintf(dir, sizeof(dir), "%s/.bbcache", jd);
	if (load_plan(dir, o, &p, 0) != BB_OK)
		return 1;
	for (size_t k = 0; k < p.spec.n_stage_in && nds < 64; k++) {
		struct wait_ds *w = &ds[nds];
		w->st = &p.spec.stage_in[k];
		if (w->st->mode != BB_MODE_WAIT)
			continue;
		node_manifest_path(w->st->destination, mf, sizeof(mf));
		if (bb_manifest_open(mf, &w->m, err, sizeof(err)) != BB_OK) {
			fprintf(stderr, "bbcache: job %s: %s\n", o->job, err);
			goto out;
		}
		snprintf(w->root, sizeof(w->root), "%s", w->st->destination);
		if (bb_manifest_is_single(w->m)) {
			char *slash = strrchr(w->root, '/');
			if (slash)
				*slash = '\0';
		}
		w->next = 0;
		w->count = bb_manifest_count(w->m);
		nds++;
	}
	double t0 = now_s(), last = t0, seen = 0;
	/* Every job with stage_in lines waits for its agent to serve (a read
	 * before that finds no socket): mode=async jobs only for that. */
	while (p.spec.n_stage_in && agent_json(jd, json, sizeof(json))) {
		if (now_s() - t0 > 60) {
			fprintf(stderr, "bbcache: job %s: no agent serves %s after 60 s: see %s/agents.out\n",
				o->job, jd, dir);
			goto out;
		}
		usleep(20000);
	}
	seen = now_s();
	if (!nds) {
		if (p.spec.n_stage_in)
			printf("bbcache: job %s: the agent serves %s (%.2f s)\n", o->job, jd, seen - t0);
		rc = 0;
		goto out;
	}
	int done_seen = 0; /* the agent said complete: one more scan, then judge */
	for (;;) {
		uint64_t left = 0, left_bytes = 0, total = 0;
		for (size_t d = 0; d < nds; d++) {
			struct wait_ds *w = &ds[d];
			total += w->count;
			for (uint32_t i = w->next; i < w->count; i++) {
				struct bb_mentry e;
				char path[2 * PATH_MAX];
				bb_manifest_entry(w->m, i, &e);
				if ((e.mode & S_IFMT) == S_IFDIR) {
					if (i == w->next)
						w->next++;
					continue;
				}
				snprintf(path, sizeof(path), "%s/%s", w->root, e.path);
				if (bb_stage_file_complete(path, &e)) {
					if (i == w->next)
						w->next++;
					continue;
				}
				left++;
				left_bytes += e.size;
			}
		}
		double t = now_s();
		if (!left) {
			printf("bbcache: job %s: mode=wait data staged (%zu dataset(s)) in %.1f s\n",
			       o->job, nds, t - t0);
			rc = 0;
			goto out;
		}
		if (agent_json(jd, json, sizeof(json)) == 0) {
			char state[32];
			seen = t;
			json_str(json, "state", state, sizeof(state));
			if (!strcmp(state, "failed") || (!strcmp(state, "complete") && done_seen++)) {
				json_str(json, "first_error", err, sizeof(err));
				fprintf(stderr, "bbcache: job %s: staging %s with %llu file(s) missing: %s\n",
					o->job, state, (unsigned long long)left,
					err[0] ? err : "see $BB_JOB_DIR/.bbcache/agent.log");
				goto out;
			}
		} else if (t - (seen > 0 ? seen : t0) > 60) {
			fprintf(stderr, "bbcache: job %s: no agent serves %s after 60 s: see %s/agents.out\n",
				o->job, jd, dir);
			goto out;
		}
		if (o->timeout > 0 && t - t0 > o->timeout) {
			char b[32];
			fprintf(stderr, "bbcache: job %s: mode=wait staging timed out after %.0f s: "
					"%llu file(s) (%s) still missing\n",
				o->job, o->timeout, (unsigned long long)left,
				bb_format_size(left_bytes, b, sizeof(b)));
			goto out;
		}
		if (t - last >= 10) {
			char b[32];
			fprintf(stderr, "bbcache: job %s: waiting for %llu of %llu file(s) (%s) to stage\n",
				o->job, (unsigned long long)left, (unsigned long long)total,
				bb_format_size(left_bytes, b, sizeof(b)));
			last = t;
		}
		usleep(100000);
	}
out:
	for (size_t d = 0; d < nds; d++)
		bb_manifest_close(ds[d].m);
	free_plan(&p);
	return rc;
}

/* ---- stage-out (batch step, after the script) ------------------------------ */

struct out_arg {
	const struct sopts *o;
	const char *sdir; /* NULL: not reachable (run as the user, no state dir) */
};

static void put_result(const struct plan *p, const struct out_arg *oa, const char *line)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/.bbcache/out.result", p->job_dir);
	if (write_file(path, line, strlen(line)))
		fprintf(stderr, "bbcache: cannot write %s: %s\n", path, strerror(errno));
	if (oa->sdir) {
		snprintf(path, sizeof(path), "%s/user/out.result", oa->sdir);
		if (write_file(path, line, strlen(line)))
			fprintf(stderr, "bbcache: cannot write %s: %s\n", path, strerror(errno));
	}
}

static int stage_out_as_user(const struct plan *p, void *arg)
{
	const struct out_arg *oa = arg;
	uint64_t files = 0, bytes = 0;
	double t0 = now_s();
	char line[4096], sz[32], path[PATH_MAX + 32];

	/* The batch script never ran (mode=wait staging failed, or the agents
	 * did not start; bbcache_spank wrote why): the job wrote nothing worth
	 * copying, and each stage_out destination keeps what it had.  Not a
	 * failed stage-out: nothing is kept on the node for it (epilog). */
	snprintf(path, sizeof(path), "%s/.bbcache/script.not-run", p->job_dir);
	char *why = slurp(path, NULL);
	if (why) {
		for (char *c = why; *c; c++)
			if ((unsigned char)*c < ' ')
				*c = ' ';
		snprintf(line, sizeof(line), "skipped\tthe batch script did not run (%.3000s)\n",
			 why);
		free(why);
		printf("bbcache: job %s: not staged out: %s", p->job, line + 8);
		put_result(p, oa, line);
		return 0;
	}
	for (size_t k = 0; k < p->spec.n_stage_out; k++) {
		const struct bb_stage *st = &p->spec.stage_out[k];
		struct bb_stage_opts so = {0};
		struct bb_stage_summary sum;
		char err[2048] = "";
		struct stat sb;
		int rc;
		if (lstat(st->source, &sb)) {
			snprintf(err, sizeof(err), "%s: %s (the job wrote nothing there)", st->source,
				 strerror(errno));
			rc = BB_ENOENT;
		} else {
			so.source = st->source;
			so.dest = st->destination;
			so.type = st->type == BB_STAGE_DIRECTORY ? BB_STAGE_DIRECTORY : BB_STAGE_FILE;
			so.include = st->include;
			so.exclude = st->exclude;
			so.conf = &oa->o->conf;
			memset(&sum, 0, sizeof(sum));
			rc = bb_stage_out(&so, &sum, err, sizeof(err));
			files += sum.files;
			bytes += sum.bytes;
		}
		if (rc != BB_OK) {
			snprintf(line, sizeof(line), "failed\tline %d: stage_out %s -> %s: %.3000s\n",
				 st->line, st->source, st->destination, err[0] ? err : bb_strerror(rc));
			fprintf(stderr, "bbcache: job %s: %s", p->job, line + 7);
			put_result(p, oa, line);
			return 1;
		}
		printf("bbcache: job %s: line %d: staged out %s -> %s\n", p->job, st->line,
		       st->source, st->destination);
	}
	snprintf(line, sizeof(line), "ok\t%llu file(s), %s in %.1f s\n", (unsigned long long)files,
		 bb_format_size(bytes, sz, sizeof(sz)), now_s() - t0);
	printf("bbcache: job %s: stage-out %s", p->job, line + 3);
	put_result(p, oa, line);
	return 0;
}

static int cmd_stage_out_job(struct sopts *o)
{
	char sdir[PATH_MAX], jd[PATH_MAX + 16];
	struct plan p;
	int rc;

	state_path(o, NULL, sdir, sizeof(sdir));
	if (geteuid() == 0) {
		/* Root trusts only its own copy of the plan. */
		rc = load_plan(sdir, o, &p, 1);
		if (rc == BB_ENOENT)
			return 0;
		if (rc != BB_OK)
			return 1;
	} else {
		snprintf(jd, sizeof(jd), "%s/job.%s/.bbcache", o->conf.nvme_root, o->job);
		rc = load_plan(jd, o, &p, 1);
		if (rc == BB_ENOENT)
			return 0;
		if (rc != BB_OK)
			return 1;
	}
	if (!p.spec.n_stage_out) {
		free_plan(&p);
		return 0;
	}
	struct stat st;
	snprintf(jd, sizeof(jd), "%s/user", sdir);
	struct out_arg oa = {o, stat(jd, &st) == 0 ? sdir : NULL};
	rc = geteuid() == 0 ? as_user(&p, stage_out_as_user, &oa) : stage_out_as_user(&p, &oa);
	free_plan(&p);
	return rc ? 1 : 0;
}

/* ---- epilog (root, each node) ---------------------------------------------- */

/* SIGTERM (then SIGKILL) every bbcached of this job on this node. */
static int kill_agents(const char *job, uid_t uid)
{
	int found = 0;
	for (int round = 0; round < 60; round++) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		int alive = 0;
		if (!d)
			return 0;
		while ((de = readdir(d))) {
			char path[64], cmd[4096];
			struct stat st;
			if (!isdigit((unsigned char)de->d_name[0]))
				continue;
			snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
			close(fd);
			snprintf(path, sizeof(path), "/proc/%s", de->d_name);
			if (n <= 0 || stat(path, &st) || st.st_uid != uid)
				continue;
			cmd[n] = '\0';
			const char *a0 = strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd;
			if (strcmp(a0, "bbcached"))
				continue;
			int match = 0;
			for (char *a = cmd; a < cmd + n; a += strlen(a) + 1)
				if (!strcmp(a, "--job") && a + strlen(a) + 1 < cmd + n &&
				    !strcmp(a + strlen(a) + 1, job))
					match = 1;
			if (!match)
				continue;
			pid_t pid = (pid_t)atoi(de->d_name);
			alive++;
			found++;
			kill(pid, round < 50 ? SIGTERM : SIGKILL);
		}
		closedir(d);
		if (!alive)
			break;
		usleep(100000);
	}
	return found;
}

static int cmd_epilog(struct sopts *o)
{
	char sdir[PATH_MAX], jd[PATH_MAX], seg[PATH_MAX], name[64], res[PATH_MAX + 64];
	struct plan p;
	struct stat st;
	uid_t uid;
	int have_plan = load_plan(state_path(o, NULL, sdir, sizeof(sdir)), o, &p, 1) == BB_OK;

	job_dir(o, jd, sizeof(jd));
	if (!have_plan && (lstat(jd, &st) || !S_ISDIR(st.st_mode)))
		return 0; /* not ours, or clean already */
	uid = have_plan ? p.uid : st.st_uid;
	int killed = kill_agents(o->job, uid);
	if (killed)
		printf("bbcache: job %s: stopped %d leftover agent process(es)\n", o->job, killed);
	/* The shm segment (and any temporary of it) of this job. */
	DIR *d = opendir(o->conf.shm_dir);
	snprintf(name, sizeof(name), "bbcache.%s", o->job);
	if (d) {
		struct dirent *de;
		size_t nl = strlen(name);
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, name, nl) || (de->d_name[nl] && de->d_name[nl] != '.'))
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				printf("bbcache: job %s: removed %s/%s\n", o->job, o->conf.shm_dir,
				       de->d_name);
			else
				fprintf(stderr, "bbcache: job %s: cannot remove %s/%s: %s\n", o->job,
					o->conf.shm_dir, de->d_name, strerror(errno));
		}
		closedir(d);
	}
	(void)seg;
	/* A failed stage-out keeps what it was to copy. */
	snprintf(res, sizeof(res), "%s/.bbcache/out.result", jd);
	char *r = slurp(res, NULL);
	int failed = r && !strncmp(r, "failed", 6);
	free(r);
	int nfd = open(o->conf.nvme_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;
	if (nfd < 0) {
		if (errno != ENOENT)
			fprintf(stderr, "bbcache: nvme_root %s: %s\n", o->conf.nvme_root, strerror(errno));
	} else if (failed && have_plan) {
		size_t rl = strlen(jd);
		for (size_t k = 0; k < p.spec.n_stage_in; k++) {
			const char *dst = p.spec.stage_in[k].destination;
			if (!strncmp(dst, jd, rl) && dst[rl] == '/')
				rm_below(nfd, dst + strlen(o->conf.nvme_root) + 1);
		}
		snprintf(name, sizeof(name), "job.%s/.bbcache", o->job);
		int jfd = openat(nfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (jfd >= 0) {
			DIR *bd = fdopendir(jfd);
			struct dirent *de;
			while (bd && (de = readdir(bd)))
				if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
				    strcmp(de->d_name, "out.result") && strcmp(de->d_name, "agent.log"))
					rm_tree_at(dirfd(bd), de->d_name, 0);
			if (bd)
				closedir(bd);
			else
				close(jfd);
		}
		fprintf(stderr, "bbcache: job %s: stage-out failed: kept %s with what it was to "
				"copy (see %s); remove it when done\n",
			o->job, jd, res);
	} else {
		snprintf(name, sizeof(name), "job.%s", o->job);
		if (rm_tree_at(nfd, name, 0)) {
			fprintf(stderr, "bbcache: job %s: cannot remove %s: %s\n", o->job, jd,
				strerror(errno));
			rc = 1;
		} else {
			printf("bbcache: job %s: removed %s\n", o->job, jd);
		}
	}
	if (nfd >= 0)
		close(nfd);
	if (have_plan)
		free_plan(&p);
	return rc;
}

/* ---- data-out, teardown, status (controller) ----------------------------- */

static int cmd_data_out(struct sopts *o)
{
	char sdir[PATH_MAX], res[PATH_MAX + 64];
	struct plan p;
	int rc = load_plan(state_path(o, NULL, sdir, sizeof(sdir)), o, &p, 1);

	if (rc == BB_ENOENT) {
		printf("bbcache: job %s: no state (nothing to stage out)\n", o->job);
		return 0;
	}
	if (rc != BB_OK)
		return 1;
	size_t n = p.spec.n_stage_out;
	free_plan(&p);
	if (!n) {
		printf("bbcache: job %s: no stage_out line\n", o->job);
		return 0;
	}
	snprintf(res, sizeof(res), "%s/user/out.result", sdir);
	double t0 = now_s();
	for (;;) {
		char *r = slurp(res, NULL);
		if (r) {
			char *nl = strchr(r, '\n');
			if (nl)
				*nl = '\0';
			int ok = !strncmp(r, "ok\t", 3), skipped = !strncmp(r, "skipped\t", 8);
			if (ok)
				printf("bbcache: job %s: stage-out done: %s\n", o->job, r + 3);
			else if (skipped)
				printf("bbcache: job %s: not staged out: %s\n", o->job, r + 8);
			else
				fprintf(stderr, "stage-out failed: %s; the data stays in the job's "
						"directory on its node\n",
					strchr(r, '\t') ? strchr(r, '\t') + 1 : r);
			free(r);
			return ok || skipped ? 0 : 1;
		}
		if (now_s() - t0 > o->timeout) {
			fprintf(stderr, "stage-out did not report within %.0f s (the job's batch step "
					"ended without it: cancelled, or its node failed)\n",
				o->timeout);
			return 1;
		}
		usleep(200000);
	}
}

static int cmd_teardown(struct sopts *o)
{
	char name[64];
	int dfd = open(o->conf.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : 1;
	snprintf(name, sizeof(name), "job.%s", o->job);
	int rc = rm_tree_at(dfd, name, 0);
	if (rc)
		fprintf(stderr, "bbcache: cannot remove %s/%s: %s\n", o->conf.state_dir, name,
			strerror(errno));
	close(dfd);
	return rc ? 1 : 0;
}

static void status_line(struct sopts *o, const char *job)
{
	char sdir[PATH_MAX], path[PATH_MAX + 64], jd[PATH_MAX], json[16384], b1[32], b2[32];
	struct plan p;
	struct sopts jo = *o;
	uint64_t files = 0, bytes = 0;

	jo.job = job;
	if (load_plan(state_path(&jo, NULL, sdir, sizeof(sdir)), &jo, &p, 1) != BB_OK)
		return;
	for (size_t k = 0; k < p.spec.n_stage_in; k++) {
		snprintf(path, sizeof(path), "%s/user/in.%zu.manifest", sdir, k);
		manifest_totals(path, &files, &bytes);
	}
	printf("%-10s %-10s in=%zu out=%zu listed %llu file(s) %s", job, p.user,
	       p.spec.n_stage_in, p.spec.n_stage_out, (unsigned long long)files,
	       bb_format_size(bytes, b1, sizeof(b1)));
	snprintf(jd, sizeof(jd), "%s", p.job_dir);
	if (agent_json(jd, json, sizeof(json)) == 0) {
		char st[32], pct[32];
		json_str(json, "state", st, sizeof(st));
		const char *q = strstr(json, "\"progress_pct\":");
		const char *bs = strstr(json, "\"bytes_staged\":");
		snprintf(pct, sizeof(pct), "%.1f", q ? atof(q + 15) : 0.0);
		printf("; here: %s %s%% (%s)", st, pct,
		       bb_format_size(bs ? strtoull(bs + 15, NULL, 10) : 0, b2, sizeof(b2)));
	}
	snprintf(path, sizeof(path), "%s/user/out.result", sdir);
	char *r = slurp(path, NULL);
	if (r) {
		char *nl = strchr(r, '\n');
		if (nl)
			*nl = '\0';
		char *tab = strchr(r, '\t');
		if (tab)
			*tab = ' ';
		printf("; stage-out %s", r);
		free(r);
	}
	putchar('\n');
	free_plan(&p);
}

static int cmd_slurm_status(struct sopts *o)
{
	printf("%-10s %-10s %s\n", "JOBID", "USER", "STATE");
	if (o->job) {
		status_line(o, o->job);
		return 0;
	}
	DIR *d = opendir(o->conf.state_dir);
	struct dirent *de;
	if (!d) {
		if (errno != ENOENT)
			fprintf(stderr, "bbcache: %s: %s\n", o->conf.state_dir, strerror(errno));
		return errno == ENOENT ? 0 : 1;
	}
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "job.", 4) && valid_job(de->d_name + 4))
			status_line(o, de->d_name + 4);
	closedir(d);
	return 0;
}

/* bbcache slurm SUBCOMMAND ... */
int cmd_slurm(int argc, char **argv)
{
	static const struct option opts[] = {
		{"job", required_argument, NULL, 'j'},	{"uid", required_argument, NULL, 'u'},
		{"gid", required_argument, NULL, 'g'},	{"conf", required_argument, NULL, 'c'},
		{"hurry", no_argument, NULL, 'H'},	{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},	{NULL, 0, NULL, 0}};
	struct sopts o = {.uid = -1, .gid = -1};
	char err[1024] = "";
	int opt, rc;

	if (argc < 2)
		die_usage();
	const char *sub = argv[1];
	o.timeout = !strcmp(sub, "wait") ? 3600 : 120;
	optind = 2;
	while ((opt = getopt_long(argc, argv, "j:u:g:c:Ht:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			o.job = optarg;
			break;
		case 'u':
			o.uid = strtol(optarg, NULL, 10);
			break;
		case 'g':
			o.gid = strtol(optarg, NULL, 10);
			break;
		case 'c':
			o.conf_path = optarg;
			break;
		case 'H':
			o.hurry = 1;
			break;
		case 't':
			o.timeout = atof(optarg);
			break;
		case 'h':
			die_usage();
			break;
		default:
			die_usage();
		}
	}
	if (o.job && !valid_job(o.job)) {
		fprintf(stderr, "bbcache: --job %s: not a job id\n", o.job);
		return 2;
	}
	if (!o.job && strcmp(sub, "status"))
		die_usage();
	bb_conf_defaults(&o.conf);
	rc = o.conf_path ? bb_conf_load(&o.conf, o.conf_path, err, sizeof(err))
			 : bb_conf_load_optional(&o.conf, BB_CONF_DEFAULT_PATH, err, sizeof(err));
	if (rc != BB_OK) {
		fprintf(stderr, "bbcache: %s\n", err);
		return 1;
	}
	umask(022);
	if (!strcmp(sub, "data-in") && optind == argc - 1)
		rc = cmd_data_in(&o, argv[optind]);
	else if (optind != argc)
		die_usage();
	else if (!strcmp(sub, "setup"))
		rc = cmd_setup(&o);
	else if (!strcmp(sub, "prolog"))
		rc = cmd_prolog(&o);
	else if (!strcmp(sub, "agent"))
		rc = cmd_agent(&o);
	else if (!strcmp(sub, "wait"))
		rc = cmd_wait(&o);
	else if (!strcmp(sub, "stage-out"))
		rc = cmd_stage_out_job(&o);
	else if (!strcmp(sub, "epilog"))
		rc = cmd_epilog(&o);
	else if (!strcmp(sub, "data-out"))
		rc = cmd_data_out(&o);
	else if (!strcmp(sub, "teardown"))
		rc = cmd_teardown(&o);
	else if (!strcmp(sub, "status"))
		rc = cmd_slurm_status(&o);
	else
		die_usage();
	bb_conf_free(&o.conf);
	return rc;
}
