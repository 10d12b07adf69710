/* postern queue: look at and act on the mail queue.
 *   postern queue list [-c DIR]                      every queued message with its recipients' state
 *   postern queue inject [-c DIR] -f SENDER RCPT...  queue the message on standard input (tests, scripts)
 *   postern queue flush|hold|release|requeue [-c DIR] [ID]   all messages, or one
 *   postern queue delete [-c DIR] ID
 * list reads the queue directory and state.lmdb directly (read-only; LMDB allows that while qmgr writes), so it
 * works whether or not Postern runs. Commands that change state ask qmgr on private/qmgr (common/qproto.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "qstate.h"
#include "alloc.h"
#include "buf.h"
#include "commands.h"
#include "config.h"
#include "ipc.h"
#include "qfile.h"
#include "qproto.h"

static const struct cli_command queue_cmd = { "queue", cmd_queue,
	                                      "list | flush|hold|release|requeue [ID] | delete ID | "
	                                      "inject -f SENDER RCPT... < MESSAGE   [-c DIR]" };

#define QMGR_TIMEOUT_MS 10000

static char *qmgr_socket(struct config *cfg)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&b, "%s/qmgr", config_str(cfg, "private_directory"));
	return buf_steal(&b, NULL);
}

/* Tell qmgr new mail is waiting; it also scans on its own, so failing here only delays delivery. */
static void wakeup(struct config *cfg)
{
	char *path = qmgr_socket(cfg);
	struct buf err = BUF_INIT(1024);
	int fd = ipc_connect(path, 1000);
	if (fd >= 0) {
		struct ipc_msg *m = ipc_msg_new(QP_WAKEUP);
		ipc_send(fd, m, 1000, &err);
		ipc_msg_free(&m);
		close(fd);
	}
	buf_free(&err);
	free(path);
}

static int ask_qmgr(struct config *cfg, uint32_t type, const char *id)
{
	char *path = qmgr_socket(cfg);
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *req = ipc_msg_new(type), *reply = NULL;
	int rc = 0;
	int fd = ipc_connect(path, 2000);

	if (id)
		ipc_put_str(req, QP_F_ID, id);
	if (fd < 0) {
		fprintf(stderr, "postern queue: cannot reach qmgr at %s: %s (is Postern running?)\n", path,
		        strerror(errno));
		rc = EX_UNAVAILABLE;
	} else if (!ipc_call(fd, &qproto_qmgr_reply, req, &reply, QMGR_TIMEOUT_MS, &err)) {
		fprintf(stderr, "postern queue: %s\n", buf_cstr(&err));
		rc = strstr(buf_cstr(&err), "no such message") ? EX_NOINPUT : EX_SOFTWARE;
	} else {
		uint32_t n = 0;
		ipc_get_u32(reply, QP_F_COUNT, &n);
		printf("%u message%s\n", n, n == 1 ? "" : "s");
	}
	if (fd >= 0)
		close(fd);
	ipc_msg_free(&req);
	ipc_msg_free(&reply);
	buf_free(&err);
	free(path);
	return rc;
}

static struct config *load(const char *dir)
{
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	if (!config_load_dir(cfg, cli_instance_dir(dir), NULL, &err, &warn)) {
		fprintf(stderr, "postern queue: %s\n", buf_cstr(&err));
		config_free(&cfg);
	}
	buf_free(&err);
	buf_free(&warn);
	return cfg;
}

static void list_one(const char *qdir, const char *sub, const char *id, struct qstate *db)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct qfile_envelope env;
	buf_printf(&path, "%s/%s/%s", qdir, sub, id);
	int fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || !qfile_read_envelope(fd, &env, &err)) {
		if (fd >= 0)
			printf("%-16s %-9s (unreadable: %s)\n", id, sub, buf_cstr(&err));
		if (fd >= 0)
			close(fd);
		buf_free(&path);
		buf_free(&err);
		return;
	}
	close(fd);
	char when[64] = "";
	time_t t = (time_t)env.arrival;
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	printf("%-16s %-9s %8llu %s  <%s>\n", id, sub, (unsigned long long)env.content_len, when, env.sender);
	struct qstate_rcpt *st = NULL;
	size_t n = 0;
	if (db)
		qstate_get_msg(db, id, &st, &n, &err);
	for (size_t i = 0; i < (n ? n : env.nrcpts); i++) {
		if (n) {
			printf("    %-40s %s", st[i].addr, qstate_status_name(st[i].status));
			if (st[i].dsn[0])
				printf(" %s (%s)", st[i].dsn, st[i].text);
			printf("\n");
		} else {
			printf("    %-40s new\n", env.rcpts[i].addr);
		}
	}
	qstate_free_list(&st, n);
	qfile_envelope_free(&env);
	buf_free(&path);
	buf_free(&err);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int queue_list(const char *qdir)
{
	static const char *subs[] = { "incoming", "active", "deferred", "hold", "corrupt" };
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	buf_printf(&path, "%s/state.lmdb", qdir);
	struct qstate *db = access(path.data, F_OK) == 0 ? qstate_open(path.data, false, &err) : NULL;
	size_t total = 0;

	for (size_t s = 0; s < sizeof(subs) / sizeof(subs[0]); s++) {
		buf_reset(&path);
		buf_printf(&path, "%s/%s", qdir, subs[s]);
		DIR *d = opendir(path.data);
		struct dirent *e;
		char **names = NULL;
		size_t n = 0;
		while (d && (e = readdir(d))) {
			if (!qfile_id_valid(e->d_name))
				continue;
			names = xreallocarray(names, n + 1, sizeof(*names));
			names[n++] = xstrdup(e->d_name);
		}
		if (d)
			closedir(d);
		if (n > 1)
			qsort(names, n, sizeof(*names), cmp_name);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(subs[s], "corrupt") == 0)
				printf("%-16s corrupt\n", names[i]);
			else
				list_one(qdir, subs[s], names[i], db);
			free(names[i]);
		}
		free(names);
		total += n;
	}
	printf(total ? "-- %zu message%s\n" : "Mail queue is empty\n", total, total == 1 ? "" : "s");
	qstate_close(&db);
	buf_free(&path);
	buf_free(&err);
	return 0;
}

static int queue_inject(struct config *cfg, const char *qdir, const char *sender, char **rcpts, int nrcpts)
{
	struct buf err = BUF_INIT(4096);
	struct qfile_writer *w = qfile_create(qdir, &err);
	if (!w) {
		fprintf(stderr, "postern queue: %s\n", buf_cstr(&err));
		buf_free(&err);
		return EX_CANTCREAT;
	}
	bool ok = qfile_put_str(w, QREC_SENDER, sender) && qfile_put_str(w, QREC_PROTOCOL, "LOCAL") &&
	          qfile_put_str(w, QREC_ORIGIN, "sendmail");
	for (int i = 0; ok && i < nrcpts; i++)
		ok = qfile_put_rcpt(w, rcpts[i], 0, NULL);
	char chunk[65536];
	ssize_t k;
	while (ok && (k = read(0, chunk, sizeof(chunk))) > 0)
		ok = qfile_write(w, chunk, (size_t)k);
	if (!ok) {
		fprintf(stderr, "postern queue: %s\n", qfile_writer_error(w));
		qfile_abort(&w);
		buf_free(&err);
		return EX_IOERR;
	}
	char *id = xstrdup(qfile_writer_id(w));
	if (!qfile_commit(&w, &err)) {
		fprintf(stderr, "postern queue: %s\n", buf_cstr(&err));
		free(id);
		buf_free(&err);
		return EX_IOERR;
	}
	printf("%s\n", id);
	free(id);
	buf_free(&err);
	wakeup(cfg);
	return 0;
}

int cmd_queue(int argc, char **argv)
{
	const char *dir = NULL, *sender = NULL;
	char **args = xcalloc((size_t)argc + 1, sizeof(*args));
	int nargs = 0;
	bool opts = true;

	if (argc < 2) {
		free(args);
		return cli_usage(&queue_cmd);
	}
	const char *sub = argv[1];
	/* options may come anywhere (the CLI convention puts -c DIR last); "--" ends them */
	for (int i = 2; i < argc; i++) {
		if (opts && strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (opts && strcmp(argv[i], "-f") == 0 && i + 1 < argc)
			sender = argv[++i];
		else if (opts && strcmp(argv[i], "--") == 0)
			opts = false;
		else if (opts && argv[i][0] == '-') {
			free(args);
			return cli_usage(&queue_cmd);
		} else
			args[nargs++] = argv[i];
	}
	struct config *cfg = load(dir);
	if (!cfg) {
		free(args);
		return EX_CONFIG;
	}
	char *qdir = xstrdup(config_str(cfg, "queue_directory"));
	int rc;
	if (strcmp(sub, "list") == 0 && nargs == 0)
		rc = queue_list(qdir);
	else if (strcmp(sub, "inject") == 0 && sender && nargs > 0)
		rc = queue_inject(cfg, qdir, sender, args, nargs);
	else if (strcmp(sub, "delete") == 0 && nargs == 1)
		rc = ask_qmgr(cfg, QP_DELETE, args[0]);
	else if (nargs <= 1 && (strcmp(sub, "flush") == 0 || strcmp(sub, "hold") == 0 ||
	                        strcmp(sub, "release") == 0 || strcmp(sub, "requeue") == 0)) {
		uint32_t t = sub[0] == 'f' ? QP_FLUSH : sub[0] == 'h' ? QP_HOLD : sub[2] == 'l' ? QP_RELEASE : QP_REQUEUE;
		rc = ask_qmgr(cfg, t, nargs ? args[0] : NULL);
	} else
		rc = cli_usage(&queue_cmd);
	free(qdir);
	free(args);
	config_free(&cfg);
	return rc;
}
