/* postern queue: look at and act on the mail queue.
 *   postern queue list [--json] [-c DIR]              every queued message with its recipients' state
 *   postern queue show [-c DIR] ID                    one message: envelope, state, then headers and body
 *   postern queue flush [-c DIR] [ID]                 retry now (all deferred messages, or one)
 *   postern queue hold|release|requeue [-c DIR] [ID|ALL]
 *   postern queue delete [-c DIR] ID|ALL|deferred
 *   postern queue inject [-c DIR] -f SENDER RCPT...   queue the message on standard input (tests, scripts)
 * While Postern runs everything goes through qmgr (cli/queue_client.c); when it is stopped the queue is read and
 * changed directly under master's lock (cli/queue_disk.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "commands.h"
#include "config.h"
#include "ipc.h"
#include "log.h"
#include "qfile.h"
#include "qproto.h"
#include "qstate.h"
#include "queue.h"

static const struct cli_command queue_cmd = {
	"queue", cmd_queue,
	"list [--json] | show ID | flush [ID] | hold|release|requeue [ID|ALL] | delete ID|ALL|deferred | "
	"inject -f SENDER RCPT... < MESSAGE   [-c DIR]"
};

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

/* Log what is done to the queue where the daemons log, so postern trace shows it. A log file root creates here
 * is given to the owner of its directory (the mail owner), so the daemons can still append to it. */
static bool log_to_instance(struct config *cfg)
{
	const char *dest = config_str(cfg, "log_destination"), *file = dest;
	struct stat st;
	if (strcmp(dest, "syslog") == 0 && !(stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode)))
		file = config_str(cfg, "log_file");
	if (file[0] == '/' && access(file, F_OK) != 0) {
		char *parent = xstrdup(file);
		*strrchr(parent, '/') = '\0';
		int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (fd >= 0 && geteuid() == 0 && stat(*parent ? parent : "/", &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
			fprintf(stderr, "postern queue: chown %s: %s\n", file, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(parent);
	}
	if (log_to_dest(dest, config_str(cfg, "log_file")) == 0)
		return true;
	log_to_stderr();
	return false;
}

/* Tell qmgr new mail is waiting; it also scans on its own, so failing here only delays delivery. */
static void wakeup(struct config *cfg)
{
	struct buf err = BUF_INIT(1024);
	int fd = qclient_connect(cfg);
	if (fd >= 0) {
		struct ipc_msg *m = ipc_msg_new(QP_WAKEUP);
		ipc_send(fd, m, 1000, &err);
		ipc_msg_free(&m);
		close(fd);
	}
	buf_free(&err);
}

/* An administrative request: to qmgr when it answers, else on disk when master is not running. */
static int queue_op(struct config *cfg, enum queue_op op, const char *id, const char *select)
{
	struct buf err = BUF_INIT(4096);
	int n, fd = qclient_connect(cfg);

	if (fd >= 0) {
		n = qclient_op(fd, op, id, select, &err);
		close(fd);
	} else if (errno != ENOENT && errno != ECONNREFUSED) {
		int e = errno;
		fprintf(stderr, "postern queue: cannot reach qmgr on %s/qmgr: %s%s\n", config_str(cfg, "private_directory"),
		        strerror(e), e == EACCES ? " (run as root or the mail owner)" : "");
		buf_free(&err);
		return e == EACCES ? EX_NOPERM : EX_UNAVAILABLE;
	} else {
		int lock = qdisk_lock(cfg, &err);
		if (lock == -1) {
			fprintf(stderr, "postern queue: %s\n", buf_cstr(&err));
			buf_free(&err);
			return EX_TEMPFAIL;
		}
		log_to_instance(cfg);
		n = qdisk_op(config_str(cfg, "queue_directory"), op, id, select, &err);
		log_to_stderr();
		if (lock >= 0)
			close(lock);
	}
	if (n == -1) {
		fprintf(stderr, "postern queue: no such message: %s\n", id);
		buf_free(&err);
		return EX_NOINPUT;
	}
	if (n < 0) {
		fprintf(stderr, "postern queue: %s\n", buf_cstr(&err));
		buf_free(&err);
		return EX_SOFTWARE;
	}
	printf("%d message%s\n", n, n == 1 ? "" : "s");
	buf_free(&err);
	return 0;
}

static void print_time(const char *label, double when)
{
	char s[64] = "";
	time_t t = (time_t)when;
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(s, sizeof(s), "%a, %d %b %Y %H:%M:%S %z", &tm);
	printf("%s: %s\n", label, s);
}

static void print_field(const char *label, const char *v)
{
	if (v && *v)
		printf("%s: %s\n", label, log_safe(v, strlen(v), 1000));
}

/* The envelope and delivery state as "Name: value" lines, a blank line, then the message as stored. */
static int queue_show(const char *qdir, const char *id)
{
	const char *dir = qfile_id_valid(id) ? qdisk_find(qdir, id) : NULL;
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(4096);
	struct qfile_envelope env;
	int rc = 0;

	if (!dir) {
		fprintf(stderr, "postern queue: no such message: %s\n", log_safe(id, strlen(id), 64));
		return EX_NOINPUT;
	}
	buf_printf(&path, "%s/%s/%s", qdir, dir, id);
	int fd = open(buf_cstr(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fprintf(stderr, "postern queue: %s: %s%s\n", buf_cstr(&path), strerror(errno),
		        errno == EACCES ? " (run as root or the mail owner)" : "");
		buf_free(&path);
		return errno == EACCES ? EX_NOPERM : EX_NOINPUT;
	}
	if (!qfile_read_envelope(fd, &env, &err)) {
		fprintf(stderr, "postern queue: %s: %s\n", buf_cstr(&path), buf_cstr(&err));
		close(fd);
		buf_free(&path);
		buf_free(&err);
		return EX_DATAERR;
	}
	printf("Queue-ID: %s\nQueue: %s\n", id, dir);
	print_time("Arrival", env.arrival);
	printf("Size: %llu\nSender: <%s>\n", (unsigned long long)env.content_len,
	       log_safe(env.sender, strlen(env.sender), 1000));
	print_field("Client-Name", env.client_name);
	print_field("Client-Address", env.client_addr);
	print_field("Helo", env.helo);
	print_field("Protocol", env.protocol);
	print_field("Auth-User", env.auth_user);
	print_field("TLS", env.tls);
	print_field("Origin", env.origin);
	if (env.uid >= 0)
		printf("Uid: %ld\n", env.uid);
	print_field("Envelope-ID", env.envid);
	print_field("Return", env.ret);
	print_field("Body", env.body);

	struct qstate_rcpt *st = NULL;
	size_t nst = 0;
	struct buf spath = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&spath, "%s/state.lmdb", qdir);
	struct qstate *db = access(buf_cstr(&spath), F_OK) == 0 ? qstate_open(buf_cstr(&spath), false, &err) : NULL;
	buf_free(&spath);
	if (!db || !qstate_get_msg(db, id, &st, &nst, &err))
		nst = 0;
	for (size_t i = 0; i < (nst ? nst : env.nrcpts); i++) {
		const char *addr = nst ? st[i].addr : env.rcpts[i].addr;
		printf("Recipient: <%s> %s", log_safe(addr, strlen(addr), 1000),
		       nst ? qstate_status_name(st[i].status) : "new");
		if (nst && st[i].attempts)
			printf(", %u attempt%s", st[i].attempts, st[i].attempts == 1 ? "" : "s");
		if (nst && st[i].dsn[0])
			printf(", %s (%s)", st[i].dsn, log_safe(st[i].text, strlen(st[i].text), 1000));
		printf("\n");
	}
	qstate_free_list(&st, nst);
	qstate_close(&db);
	printf("\n");
	fflush(stdout);
	/* the content as stored (LF line endings), whatever bytes it holds: this is the administrator's copy */
	char chunk[65536];
	ssize_t k;
	uint64_t left = env.content_len;
	while (left > 0 && (k = read(fd, chunk, left < sizeof(chunk) ? (size_t)left : sizeof(chunk))) > 0) {
		if (fwrite(chunk, 1, (size_t)k, stdout) != (size_t)k)
			break;
		left -= (uint64_t)k;
	}
	if (left > 0) {
		fprintf(stderr, "postern queue: %s: content ends early\n", buf_cstr(&path));
		rc = EX_IOERR;
	}
	close(fd);
	qfile_envelope_free(&env);
	buf_free(&path);
	buf_free(&err);
	return rc;
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
	if (log_to_instance(cfg))
		log_info("%s: from=<%s>, nrcpt=%d (postern queue inject)", id, log_safe(sender, strlen(sender), 256),
		         nrcpts);
	log_to_stderr();
	free(id);
	buf_free(&err);
	wakeup(cfg);
	return 0;
}

/* The request a sub-command names, with its one argument: an ID, ALL, or (delete) deferred. */
static int admin(struct config *cfg, const char *sub, int nargs, char **args)
{
	static const struct {
		const char *name;
		enum queue_op op;
	} ops[] = { { "flush", QOP_FLUSH }, { "hold", QOP_HOLD }, { "release", QOP_RELEASE },
		    { "requeue", QOP_REQUEUE }, { "delete", QOP_DELETE } };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(sub, ops[i].name) != 0)
			continue;
		const char *arg = nargs ? args[0] : NULL;
		if (nargs > 1 || (ops[i].op == QOP_DELETE && !arg))
			return cli_usage(&queue_cmd);
		if (arg && (strcmp(arg, "ALL") == 0 || (ops[i].op == QOP_DELETE && strcmp(arg, "deferred") == 0)))
			return queue_op(cfg, ops[i].op, NULL, ops[i].op == QOP_DELETE ? arg : NULL);
		if (arg && !qfile_id_valid(arg)) {
			fprintf(stderr, "postern queue: not a queue ID: %s\n", log_safe(arg, strlen(arg), 64));
			return EX_USAGE;
		}
		return queue_op(cfg, ops[i].op, arg, NULL);
	}
	return cli_usage(&queue_cmd);
}

int cmd_queue(int argc, char **argv)
{
	const char *dir = NULL, *sender = NULL;
	char **args = xcalloc((size_t)argc + 1, sizeof(*args));
	int nargs = 0, rc;
	bool opts = true, json = false;

	if (argc < 2) {
		free(args);
		return cli_usage(&queue_cmd);
	}
	const char *sub = argv[1];
	static const char *const subs[] = { "list", "show", "inject", "flush", "hold", "release", "requeue", "delete" };
	size_t k = 0;
	while (k < sizeof(subs) / sizeof(subs[0]) && strcmp(sub, subs[k]) != 0)
		k++;
	if (k == sizeof(subs) / sizeof(subs[0])) {
		fprintf(stderr, "postern queue: unknown sub-command '%s'\n", log_safe(sub, strlen(sub), 64));
		free(args);
		return cli_usage(&queue_cmd);
	}
	/* options may come anywhere (the CLI convention puts -c DIR last); "--" ends them */
	for (int i = 2; i < argc; i++) {
		if (opts && strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (opts && strcmp(argv[i], "-f") == 0 && i + 1 < argc)
			sender = argv[++i];
		else if (opts && strcmp(argv[i], "--json") == 0)
			json = true;
		else if (opts && strcmp(argv[i], "--") == 0)
			opts = false;
		else if (opts && argv[i][0] == '-') {
			free(args);
			return cli_usage(&queue_cmd);
		} else
			args[nargs++] = argv[i];
	}
	if ((json && strcmp(sub, "list") != 0) || (sender && strcmp(sub, "inject") != 0)) {
		free(args);
		return cli_usage(&queue_cmd);
	}
	struct config *cfg = load(dir);
	if (!cfg) {
		free(args);
		return EX_CONFIG;
	}
	char *qdir = xstrdup(config_str(cfg, "queue_directory"));
	if (strcmp(sub, "list") == 0 && nargs == 0)
		rc = queue_print(cfg, json ? QLIST_JSON : QLIST_TEXT, stdout, stderr);
	else if (strcmp(sub, "show") == 0 && nargs == 1)
		rc = queue_show(qdir, args[0]);
	else if (strcmp(sub, "inject") == 0 && sender && nargs > 0)
		rc = queue_inject(cfg, qdir, sender, args, nargs);
	else
		rc = admin(cfg, sub, nargs, args);
	free(qdir);
	free(args);
	config_free(&cfg);
	return rc;
}
