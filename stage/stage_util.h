/* Helpers of the stage drivers: directories, checksums, progress output. */
#ifndef BB_STAGE_UTIL_H
#define BB_STAGE_UTIL_H

#include <stdint.h>

/* mkdir -p of the directory part of path (mode 0700 for new ones). */
int bb_mkdirs_for(const char *path);
/* BB_OK if the first size bytes of fd hash to sha256 (32 bytes). */
int bb_sha256_fd_check(int fd, uint64_t size, const uint8_t *sha256);
int bb_sha256_fd(int fd, uint64_t size, uint8_t out[32]);
/* The digest md ("MD5", "SHA256") of the first size bytes of fd. */
int bb_digest_fd(int fd, uint64_t size, const char *md, unsigned char *out);

/* Progress: a line on stderr redrawn at most 4 times a second when it is a
 * terminal (files, bytes, rate, ETA), and/or one JSON object per event on
 * stdout. */
struct bb_progress {
	int tty, json;
	const char *phase;
	uint64_t files_total, bytes_total, files_done, bytes_done, skipped, errors;
	double t0, last;
};
void bb_progress_init(struct bb_progress *p, int want_bar, int json, const char *phase);
void bb_progress_start(struct bb_progress *p, uint64_t files, uint64_t bytes);
void bb_progress_bytes(struct bb_progress *p, uint64_t n);
void bb_progress_skip(struct bb_progress *p, uint64_t bytes);
void bb_progress_file(struct bb_progress *p, const char *path, uint64_t size);
void bb_progress_error(struct bb_progress *p, const char *path, const char *msg);
void bb_progress_end(struct bb_progress *p);
/* s as a JSON string body (quotes not included) into out. */
void bb_json_escape(const char *s, char *out, size_t len);

#endif
