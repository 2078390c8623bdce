/* Logging with levels and a component prefix.
 *
 * Each source file names its component before including this header:
 *     #define BB_LOG_COMPONENT "shmcache"
 * Lines go to stderr (default), a file, and/or syslog, formatted as
 *     bbcache[pid] shmcache: error: message
 */
#ifndef BB_COMMON_LOG_H
#define BB_COMMON_LOG_H

#include <stdarg.h>

enum bb_log_level {
	BB_LOG_ERROR = 0,
	BB_LOG_WARN,
	BB_LOG_INFO,
	BB_LOG_DEBUG,
};

#define BB_LOG_STDERR 0x1
#define BB_LOG_SYSLOG 0x2
#define BB_LOG_FILE 0x4

/* Parse "error", "warn"/"warning", "info", "debug"; -1 if unknown. */
int bb_log_level_parse(const char *s);
const char *bb_log_level_name(int level);

/* Configure the process's log: level, sinks (BB_LOG_* flags), and for
 * BB_LOG_FILE a path opened in append mode (0600).  Returns an rc.
 * Without a call, level INFO (or $BBCACHE_LOG_LEVEL) goes to stderr. */
int bb_log_open(const char *ident, int level, int sinks, const char *path);
void bb_log_close(void);
void bb_log_set_level(int level);
int bb_log_get_level(void);

void bb_log(int level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void bb_vlog(int level, const char *component, const char *fmt, va_list ap);

#ifndef BB_LOG_COMPONENT
#define BB_LOG_COMPONENT "bbcache"
#endif

#define bb_error(...) bb_log(BB_LOG_ERROR, BB_LOG_COMPONENT, __VA_ARGS__)
#define bb_warn(...) bb_log(BB_LOG_WARN, BB_LOG_COMPONENT, __VA_ARGS__)
#define bb_info(...) bb_log(BB_LOG_INFO, BB_LOG_COMPONENT, __VA_ARGS__)
#define bb_debug(...)                                                         \
	do {                                                                  \
		if (bb_log_get_level() >= BB_LOG_DEBUG)                       \
			bb_log(BB_LOG_DEBUG, BB_LOG_COMPONENT, __VA_ARGS__);  \
	} while (0)

#endif
