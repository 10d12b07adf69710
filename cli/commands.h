/* The postern CLI: one function per sub-command, dispatched from the table in cli/main.c.
 * Each takes the arguments after the command name (argv[0] is the command name) and returns an exit status
 * from sysexits.h (0 on success, EX_USAGE for a usage error). */
#ifndef POSTERN_CLI_COMMANDS_H
#define POSTERN_CLI_COMMANDS_H

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;	/* one line: arguments and what it does */
};

int cli_usage(const struct cli_command *cmd);	/* prints "usage: postern NAME USAGE", returns EX_USAGE */
/* The instance directory: -c DIR if given, else $POSTERN_DIR, else the installed default. */
const char *cli_instance_dir(const char *opt);

int cmd_config(int argc, char **argv);	/* cli/cmd_config.c */
int cmd_init(int argc, char **argv);	/* cli/cmd_init.c */
int cmd_map(int argc, char **argv);	/* cli/cmd_map.c */
int cmd_dkim(int argc, char **argv);	/* cli/cmd_dkim.c */
int cmd_queue(int argc, char **argv);	/* cli/cmd_queue.c */
int cmd_user(int argc, char **argv);	/* cli/cmd_user.c */
int cmd_sendmail(int argc, char **argv);	/* cli/sendmail.c */
int cmd_newaliases(int argc, char **argv);	/* cli/sendmail.c */
int cmd_mailq(int argc, char **argv);	/* cli/sendmail.c */
int cmd_start(int argc, char **argv);	/* cli/cmd_ctl.c */
int cmd_stop(int argc, char **argv);	/* cli/cmd_ctl.c */
int cmd_reload(int argc, char **argv);	/* cli/cmd_ctl.c */
int cmd_status(int argc, char **argv);	/* cli/cmd_ctl.c */
int cmd_check(int argc, char **argv);	/* cli/cmd_ctl.c */
int cmd_trace(int argc, char **argv);	/* cli/cmd_trace.c */

#endif
