/* The bbcache CLI's subcommands. */
#ifndef BB_AGENT_CMD_H
#define BB_AGENT_CMD_H

#include <stdio.h>

void usage(FILE *f);
int cmd_stage_in(int argc, char **argv);
int cmd_stage_out(int argc, char **argv);
int cmd_ls(int argc, char **argv, int stat_only);
int cmd_verify(int argc, char **argv);
int cmd_shm(int argc, char **argv, int drop);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);

#include <stdint.h>

/* Start bbcached over one manifest (stage-in --async); 0 once it serves. */
struct agent_start_opts {
	uint64_t job;
	const char *manifest;  /* DIR/.bbcache/NAME.manifest */
	const char *shm_limit; /* --shm SIZE as given, or NULL */
	int jobs;
	const char *verify;    /* or NULL */
	const char *conf;      /* or NULL */
	int no_verify_tls;
	int no_sign_request;
};
int agent_start(const struct agent_start_opts *o);
/* The bbcached next to this bbcache, else "bbcached" (PATH). */
void agent_find_bbcached(char *buf, size_t len);
/* The agent of job directory dir: its STATUS as JSON into buf (quietly);
 * BB_OK when it answered. */
int agent_status_json(const char *dir, char *buf, size_t len);

/* bbcache slurm ...: the Slurm glue's steps (cmd_slurm.c, docs/slurm.md). */
int cmd_slurm(int argc, char **argv);

#endif
