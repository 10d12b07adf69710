/* mailq (sendmail -bp): the classic Postfix-style queue listing, read from the queue directories directly with
 * the queue-file parser, so it works whether or not the mail system is running. Only root and the mail owner
 * can read the queue; everyone else gets a clear "permission denied". Recipients already delivered are left out
 * and deferred ones show qmgr's last error, read from state.lmdb (read-only; LMDB allows that while qmgr writes). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "qfile.h"
#include "qstate.h"
#include "sendmail.h"

struct entry {
	struct qfile_envelope env;
	char mark;	/* ' ' waiting, '*' being delivered, '!' on hold */
};

/* Directories a queued message can be in, with the mark Postfix shows for it. */
static const struct {
	const char *dir;
	char mark;
} dirs[] = { { "incoming", ' ' }, { "active", '*' }, { "deferred", ' ' }, { "hold", '!' } };

static int by_arrival(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->env.arrival != y->env.arrival)
		return x->env.arrival < y->env.arrival ? -1 : 1;
	return strcmp(x->env.id ? x->env.id : "", y->env.id ? y->env.id : "");
}

/* Read one directory's messages into *v. false (with a message) when the directory cannot be read. */
static bool read_dir(const char *queue_dir, const char *dir, char mark, struct entry **v, size_t *n, FILE *errf)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(4096);
	DIR *d;
	struct dirent *de;
	int dfd;

	buf_printf(&path, "%s/%s", queue_dir, dir);
	if ((d = opendir(buf_cstr(&path))) == NULL) {
		bool missing = errno == ENOENT;
		if (!missing)
			fprintf(errf, "mailq: cannot read the queue (%s: %s)%s\n", buf_cstr(&path), strerror(errno),
			        errno == EACCES ? ": run as root or the mail owner" : "");
		buf_free(&path);
		return missing;	/* a queue without this directory simply has nothing in it */
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		int fd;
		struct entry e = { .mark = mark };
		if (!qfile_id_valid(de->d_name))
			continue;
		/* a message may move to another directory while we look: a vanished file is skipped */
		if ((fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
			continue;
		buf_reset(&err);
		if (qfile_read_envelope(fd, &e.env, &err)) {
			if (!e.env.id)
				e.env.id = xstrdup(de->d_name);
			*v = xreallocarray(*v, *n + 1, sizeof(**v));
			(*v)[(*n)++] = e;
		} else {
			fprintf(errf, "mailq: %s/%s: %s\n", buf_cstr(&path), de->d_name, buf_cstr(&err));
		}
		close(fd);
	}
	closedir(d);
	buf_free(&path);
	buf_free(&err);
	return true;
}

/* The recipients still to be delivered, each deferred one after its last error in parentheses (Postfix style).
 * Without state (a new message, or no state.lmdb) every envelope recipient is listed. */
static void print_rcpts(FILE *out, const struct qfile_envelope *e, struct qstate *db)
{
	struct buf err = BUF_INIT(1024);
	struct qstate_rcpt *st = NULL;
	size_t n = 0;

	if (!db || !qstate_get_msg(db, e->id, &st, &n, &err))
		n = 0;
	if (n == 0) {
		for (size_t r = 0; r < e->nrcpts; r++)
			fprintf(out, "%42s%s\n", "", log_safe(e->rcpts[r].addr, strlen(e->rcpts[r].addr), 300));
	}
	for (size_t r = 0; r < n; r++) {
		if (qstate_final(st[r].status))
			continue;
		if (st[r].status == QSTATE_DEFERRED && st[r].text && *st[r].text)
			fprintf(out, "(%s)\n", log_safe(st[r].text, strlen(st[r].text), 300));
		fprintf(out, "%42s%s\n", "", log_safe(st[r].addr, strlen(st[r].addr), 300));
	}
	qstate_free_list(&st, n);
	buf_free(&err);
}

int mailq_list(const char *queue_dir, FILE *out, FILE *errf)
{
	struct entry *v = NULL;
	size_t n = 0;
	unsigned long long total = 0;
	struct qstate *db = NULL;
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!read_dir(queue_dir, dirs[i].dir, dirs[i].mark, &v, &n, errf)) {
			for (size_t k = 0; k < n; k++)
				qfile_envelope_free(&v[k].env);
			free(v);
			return EX_NOPERM;
		}
	}
	if (n == 0) {
		fprintf(out, "Mail queue is empty\n");
		free(v);
		return 0;
	}
	qsort(v, n, sizeof(*v), by_arrival);
	buf_printf(&path, "%s/state.lmdb", queue_dir);
	if (access(buf_cstr(&path), F_OK) == 0 && (db = qstate_open(buf_cstr(&path), false, &err)) == NULL)
		fprintf(errf, "mailq: %s (delivery state not shown)\n", buf_cstr(&err));
	buf_free(&path);
	buf_free(&err);
	fprintf(out, "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	for (size_t i = 0; i < n; i++) {
		const struct qfile_envelope *e = &v[i].env;
		time_t t = (time_t)e->arrival;
		struct tm tm;
		char when[32] = "";
		if (localtime_r(&t, &tm))
			strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
		fprintf(out, "%-10s%c %8llu %-20s  %s\n", e->id, v[i].mark, (unsigned long long)e->content_len, when,
		        e->sender && *e->sender ? log_safe(e->sender, strlen(e->sender), 300) : "MAILER-DAEMON");
		print_rcpts(out, e, db);
		fputc('\n', out);
		total += e->content_len;
		qfile_envelope_free(&v[i].env);
	}
	fprintf(out, "-- %llu Kbytes in %zu Request%s.\n", (total + 1023) / 1024, n, n == 1 ? "" : "s");
	qstate_close(&db);
	free(v);
	return 0;
}
