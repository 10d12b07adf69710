/* postern: the administrator's command. Dispatches to one function per sub-command; the table below is the
 * whole list. Invoked as sendmail, mailq or newaliases (links to this binary) it takes those personalities. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "commands.h"
#include "log.h"

#define POSTERN_DEFAULT_DIR "/etc/postern"

static int cmd_help(int argc, char **argv);

static const struct cli_command commands[] = {
	{ "help", cmd_help, "[COMMAND]  list commands, or show one command's usage" },
	{ "start", cmd_start, "[-c DIR] [--foreground]  start master (waits until every listener is bound)" },
	{ "stop", cmd_stop, "[-c DIR]  stop master and every daemon, wait until they are gone" },
	{ "reload", cmd_reload, "[-c DIR]  re-read main.cf and master.cf (SIGHUP to master)" },
	{ "status", cmd_status, "[-c DIR]  services: listeners, busy/idle processes, restarts" },
	{ "check", cmd_check, "[-c DIR]  check configuration, directories, TLS files and ports" },
	{ "config", cmd_config, "show [-c DIR] [--non-default] [NAME...] | set [-c DIR] NAME=VALUE... | params  main.cf" },
	{ "dkim", cmd_dkim, "keygen DOMAIN SELECTOR [--ed25519] [-c DIR]  make a DKIM key, print its DNS record" },
	{ "init", cmd_init, "DIR [--domain D] [--hostname H] [--port NAME=PORT]... [--user USER] [--dev]  create an instance" },
	{ "map", cmd_map, "compile FILE [--aliases] | get FILE KEY   build FILE.lmdb, or look KEY up" },
	{ "sendmail", cmd_sendmail, "[-t] [-i] [-f SENDER] [-bs|-bp|-bi|-q] [RCPT...]  submit a message (sendmail(8))" },
	{ "mailq", cmd_mailq, "[-C DIR]  list the mail queue (sendmail -bp)" },
	{ "newaliases", cmd_newaliases, "[-C DIR]  compile $config_directory/aliases (sendmail -bi)" },
	{ "queue", cmd_queue, "list [--json] | show ID | flush [ID] | hold|release|requeue [ID|ALL] | delete ID|ALL|deferred | inject ...  the queue" },
	{ "trace", cmd_trace, "ID [--log FILE] [-c DIR]  the life of one message from the logs" },
	{ "user", cmd_user, "add|passwd|del|list|apop|enable|disable [ADDRESS] [-c DIR]  manage mail accounts" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_command *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int cli_usage(const struct cli_command *cmd)
{
	fprintf(stderr, "usage: postern %s %s\n", cmd->name, cmd->usage);
	return EX_USAGE;
}

const char *cli_instance_dir(const char *opt)
{
	const char *env = getenv("POSTERN_DIR");
	if (opt)
		return opt;
	if (env && *env)
		return env;
	return POSTERN_DEFAULT_DIR;
}

static void list_commands(FILE *f)
{
	fprintf(f, "usage: postern COMMAND [ARGS]   (postern COMMAND --help for details)\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].usage);
}

static int cmd_help(int argc, char **argv)
{
	const struct cli_command *c;
	if (argc > 1 && (c = find(argv[1])) != NULL) {
		printf("usage: postern %s %s\n", c->name, c->usage);
		return 0;
	}
	list_commands(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const struct cli_command *c;

	log_init("postern");
	/* called through the sendmail, mailq or newaliases link: that command, with all the arguments */
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (strcmp(base, "sendmail") == 0 || strcmp(base, "mailq") == 0 || strcmp(base, "newaliases") == 0)
		return find(base)->run(argc, argv);
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		list_commands(argc < 2 ? stderr : stdout);
		return argc < 2 ? EX_USAGE : 0;
	}
	if ((c = find(argv[1])) == NULL) {
		fprintf(stderr, "postern: unknown command '%s'\n", argv[1]);
		list_commands(stderr);
		return EX_USAGE;
	}
	/* --help anywhere before "--" (postern queue list --help), or -h right after the command */
	for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0 || (i == 2 && strcmp(argv[i], "-h") == 0)) {
			printf("usage: postern %s %s\n", c->name, c->usage);
			return 0;
		}
	}
	return c->run(argc - 1, argv + 1);
}
