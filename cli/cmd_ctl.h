/* The instance check behind `postern check` (cli/ctl_check.c), called by cmd_check in cli/cmd_ctl.c. */
#ifndef POSTERN_CLI_CMD_CTL_H
#define POSTERN_CLI_CMD_CTL_H

#include <stdio.h>

/* Prints each problem of the instance in dir on its own line (what is wrong, where, what to do) to out;
 * returns the number of problems. */
int ctl_check_instance(const char *dir, FILE *out);

#endif
