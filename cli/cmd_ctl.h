/* The control commands of the postern CLI (cli/cmd_ctl.c), listed in the command table of cli/main.c, and the
 * instance check behind `postern check` (cli/ctl_check.c). */
#ifndef POSTERN_CLI_CMD_CTL_H
#define POSTERN_CLI_CMD_CTL_H

#include <stdio.h>

int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_reload(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_check(int argc, char **argv);

/* Prints each problem of the instance in dir on its own line (what is wrong, where, what to do) to out;
 * returns the number of problems. */
int ctl_check_instance(const char *dir, FILE *out);

#endif
