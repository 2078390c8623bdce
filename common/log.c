#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_syslog[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

static struct {
	int inited;
	int level;
	int sinks;
	int fd;
	char ident[32];
} g_log = {0, BB_LOG_INFO, BB_LOG_STDERR, -1, "bbcache"};

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;

int bb_log_level_parse(const char *s)
{
	if (!s)
		return -1;
	if (!strcasecmp(s, "warning"))
		return BB_LOG_WARN;
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (!strcasecmp(s, level_names[i]))
			return i;
	return -1;
}

const char *bb_log_level_name(int level)
{
	if (level < BB_LOG_ERROR || level > BB_LOG_DEBUG)
		return "?";
	return level_names[level];
}

static void log_init_default(void)
{
	if (g_log.inited)
		return;
	g_log.inited = 1;
	int l = bb_log_level_parse(getenv("BBCACHE_LOG_LEVEL"));
	if (l >= 0)
		g_log.level = l;
}

int bb_log_open(const char *ident, int level, int sinks, const char *path)
{
	int rc = BB_OK;

	pthread_mutex_lock(&g_log_lock);
	g_log.inited = 1;
	if (ident)
		snprintf(g_log.ident, sizeof(g_log.ident), "%s", ident);
	if (level >= BB_LOG_ERROR && level <= BB_LOG_DEBUG)
		g_log.level = level;
	if (g_log.fd >= 0) {
		close(g_log.fd);
		g_log.fd = -1;
	}
	if ((sinks & BB_LOG_FILE) && path) {
		g_log.fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (g_log.fd < 0) {
			sinks &= ~BB_LOG_FILE;
			rc = BB_ESYS;
		}
	}
	if (sinks & BB_LOG_SYSLOG)
		openlog(g_log.ident, LOG_PID, LOG_DAEMON);
	g_log.sinks = sinks ? sinks : BB_LOG_STDERR;
	pthread_mutex_unlock(&g_log_lock);
	return rc;
}

void bb_log_close(void)
{
	pthread_mutex_lock(&g_log_lock);
	if (g_log.fd >= 0)
		close(g_log.fd);
	g_log.fd = -1;
	if (g_log.sinks & BB_LOG_SYSLOG)
		closelog();
	g_log.sinks = BB_LOG_STDERR;
	pthread_mutex_unlock(&g_log_lock);
}

void bb_log_set_level(int level)
{
	g_log.inited = 1;
	if (level >= BB_LOG_ERROR && level <= BB_LOG_DEBUG)
		g_log.level = level;
}

int bb_log_get_level(void)
{
	log_init_default();
	return g_log.level;
}

void bb_vlog(int level, const char *component, const char *fmt, va_list ap)
{
	char msg[1024];
	char line[1200];
	int n;

	log_init_default();
	if (level > g_log.level)
		return;
	if (level < BB_LOG_ERROR)
		level = BB_LOG_ERROR;
	if (level > BB_LOG_DEBUG)
		level = BB_LOG_DEBUG;
	vsnprintf(msg, sizeof(msg), fmt, ap);

	pthread_mutex_lock(&g_log_lock);
	if (g_log.sinks & BB_LOG_SYSLOG) {
		syslog(level_syslog[level], "%s: %s", component, msg);
	}
	if (g_log.sinks & (BB_LOG_STDERR | BB_LOG_FILE)) {
		n = snprintf(line, sizeof(line), "%s[%d] %s: %s: %s\n", g_log.ident,
			     (int)getpid(), component, level_names[level], msg);
		if (n > (int)sizeof(line) - 1)
			n = (int)sizeof(line) - 1;
		if (g_log.sinks & BB_LOG_STDERR)
			(void)!write(STDERR_FILENO, line, (size_t)n);
		if ((g_log.sinks & BB_LOG_FILE) && g_log.fd >= 0) {
			/* Files get a timestamp: they outlive the terminal. */
			char ts[40];
			struct timespec now;
			struct tm tm;
			clock_gettime(CLOCK_REALTIME, &now);
			localtime_r(&now.tv_sec, &tm);
			size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S ", &tm);
			(void)!write(g_log.fd, ts, tl);
			(void)!write(g_log.fd, line, (size_t)n);
		}
	}
	pthread_mutex_unlock(&g_log_lock);
}

void bb_log(int level, const char *component, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bb_vlog(level, component, fmt, ap);
	va_end(ap);
}
