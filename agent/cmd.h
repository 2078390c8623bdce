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

#endif
