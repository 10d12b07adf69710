/* postern trace ID: the life of one message from the logs, in order: received (smtpd, with the client),
 * taken into the queue (qmgr), every delivery attempt with relay, delay and status, held/released/removed,
 * and the notifications (bounces, DSNs) it caused, whose own lines follow under their new queue IDs.
 * Every daemon starts a line about a message with "QUEUEID: " (common/log.h), which is what is matched.
 * The log is the file log_destination names (or log_file when syslog has no socket); on a syslog host the
 * usual mail log files; --log FILE overrides. A rotated FILE.1 is read before FILE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "commands.h"
#include "config.h"
#include "qfile.h"

static const struct cli_command trace_cmd = { "trace", cmd_trace, "ID [--log FILE] [-c DIR]" };

#define TRACE_MAX_IDS 32	/* a message and the notifications it and they caused */
#define TRACE_LINE_MAX 65536	/* longer lines are not ours: skipped */

struct ids {
	char v[TRACE_MAX_IDS][QFILE_ID_MAX + 1];
	size_t n;
};

static void add_id(struct ids *ids, const char *s, size_t len)
{
	char id[QFILE_ID_MAX + 1];
	if (len == 0 || len > QFILE_ID_MAX || ids->n == TRACE_MAX_IDS)
		return;
	memcpy(id, s, len);
	id[len] = '\0';
	if (!qfile_id_valid(id))
		return;
	for (size_t i = 0; i < ids->n; i++)
		if (strcmp(ids->v[i], id) == 0)
			return;
	memcpy(ids->v[ids->n++], id, len + 1);
}

/* The line is about one of ids when it holds ": ID: "; a notification line names the message it queued,
 * which is traced from then on. */
static bool about(const char *line, struct ids *ids)
{
	for (size_t i = 0; i < ids->n; i++) {
		size_t k = strlen(ids->v[i]);
		for (const char *p = strstr(line, ids->v[i]); p; p = strstr(p + 1, ids->v[i])) {
			if (p >= line + 2 && p[-2] == ':' && p[-1] == ' ' && p[k] == ':' && p[k + 1] == ' ') {
				const char *n = strstr(p, " notification: ");
				if (n) {
					n += strlen(" notification: ");
					add_id(ids, n, strspn(n, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
				}
				return true;
			}
		}
	}
	return false;
}

static size_t scan(const char *path, struct ids *ids)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, found = 0;
	ssize_t len;
	if (!f)
		return 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (len > TRACE_LINE_MAX || memchr(line, '\0', (size_t)len))
			continue;
		if (about(line, ids)) {
			fputs(line, stdout);
			if (line[len - 1] != '\n')
				putchar('\n');
			found++;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* The files to read, in order: "FILE.1 FILE" for each candidate that exists. */
static void candidates(struct config *cfg, const char *given, struct buf *out)
{
	static const char *const syslog_files[] = { "/var/log/mail.log", "/var/log/maillog", "/var/log/syslog" };
	const char *dest = config_str(cfg, "log_destination");
	const char *files[4] = { NULL };
	size_t n = 0;
	struct stat st;

	if (given)
		files[n++] = given;
	else if (dest[0] == '/')
		files[n++] = dest;
	else if (strcmp(dest, "syslog") == 0 && !(stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode)))
		files[n++] = config_str(cfg, "log_file");
	else if (strcmp(dest, "syslog") == 0)
		for (size_t i = 0; i < sizeof(syslog_files) / sizeof(syslog_files[0]); i++)
			files[n++] = syslog_files[i];
	for (size_t i = 0; i < n; i++) {
		struct buf old = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&old, "%s.1", files[i]);
		if (access(buf_cstr(&old), R_OK) == 0)
			buf_printf(out, "%s\n", buf_cstr(&old));
		if (given || access(files[i], F_OK) == 0)
			buf_printf(out, "%s\n", files[i]);
		buf_free(&old);
	}
}

int cmd_trace(int argc, char **argv)
{
	const char *dir = NULL, *log = NULL, *id = NULL;
	struct ids ids = { .n = 0 };
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
			log = argv[++i];
		else if (argv[i][0] == '-' || id)
			return cli_usage(&trace_cmd);
		else
			id = argv[i];
	}
	if (!id)
		return cli_usage(&trace_cmd);
	if (!qfile_id_valid(id)) {
		fprintf(stderr, "postern trace: not a queue ID: %.*s\n", QFILE_ID_MAX, id);
		return EX_USAGE;
	}
	add_id(&ids, id, strlen(id));

	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT), files = BUF_INIT(BUF_NOLIMIT);
	if (!config_load_dir(cfg, cli_instance_dir(dir), NULL, &err, &warn)) {
		fprintf(stderr, "postern trace: %s\n", buf_cstr(&err));
		config_free(&cfg);
		buf_free(&err);
		buf_free(&warn);
		return EX_CONFIG;
	}
	candidates(cfg, log, &files);
	size_t found = 0;
	int rc = 0;
	char *list = buf_steal(&files, NULL), *save = NULL;
	if (!list || !*list) {
		fprintf(stderr, "postern trace: no log file to read (log_destination = %s): give one with --log FILE\n",
		        config_str(cfg, "log_destination"));
		rc = EX_NOINPUT;
	}
	for (char *f = list ? strtok_r(list, "\n", &save) : NULL; f; f = strtok_r(NULL, "\n", &save)) {
		if (access(f, R_OK) != 0) {
			int e = errno;
			fprintf(stderr, "postern trace: %s: %s\n", f, strerror(e));
			rc = e == EACCES ? EX_NOPERM : EX_NOINPUT;
			continue;
		}
		found += scan(f, &ids);
	}
	if (rc == 0 && found == 0) {
		fprintf(stderr, "postern trace: no log lines about %s\n", id);
		rc = 1;
	}
	free(list);
	config_free(&cfg);
	buf_free(&err);
	buf_free(&warn);
	return rc;
}
