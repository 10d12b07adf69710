/* The queue read and changed directly on disk, for when qmgr is not running (see queue.h). Reading needs only
 * the files and a read-only look at state.lmdb (LMDB allows that beside a writer). Changes are made under
 * master's instance lock, so no qmgr can run meanwhile, and only in ways qmgr's start-up reconciliation
 * expects: files renamed between subdirectories, unlinked, or their state records rewritten. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "qfile.h"
#include "qstate.h"
#include "queue.h"

static const char *const queue_dirs[] = { "incoming", "active", "deferred", "hold" };
#define NQUEUE_DIRS (sizeof(queue_dirs) / sizeof(queue_dirs[0]))

struct qname {
	char *id;
	const char *dir;
};

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct qname *)a)->id, ((const struct qname *)b)->id);
}

/* Every queued message's name, in arrival order (IDs sort by arrival). false when a directory is unreadable. */
static bool collect(const char *qdir, struct qname **v, size_t *n, FILE *errf)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	bool ok = true;
	*v = NULL;
	*n = 0;
	for (size_t i = 0; i < NQUEUE_DIRS && ok; i++) {
		buf_reset(&path);
		buf_printf(&path, "%s/%s", qdir, queue_dirs[i]);
		DIR *d = opendir(buf_cstr(&path));
		struct dirent *de;
		if (!d) {
			if (errno == ENOENT)	/* a queue without this directory has nothing in it */
				continue;
			if (errf)
				fprintf(errf, "postern: cannot read the queue (%s: %s)%s\n", buf_cstr(&path), strerror(errno),
				        errno == EACCES ? ": run as root or the mail owner" : "");
			ok = false;
			break;
		}
		while ((de = readdir(d)) != NULL) {
			if (!qfile_id_valid(de->d_name))
				continue;
			*v = xreallocarray(*v, *n + 1, sizeof(**v));
			(*v)[(*n)++] = (struct qname){ xstrdup(de->d_name), queue_dirs[i] };
		}
		closedir(d);
	}
	buf_free(&path);
	if (*n > 1)
		qsort(*v, *n, sizeof(**v), by_id);
	return ok;
}

static void free_names(struct qname *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].id);
	free(v);
}

static struct qstate *open_state(const char *qdir, bool writable, FILE *errf)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct qstate *db = NULL;
	buf_printf(&path, "%s/state.lmdb", qdir);
	if (access(buf_cstr(&path), F_OK) == 0 && (db = qstate_open(buf_cstr(&path), writable, &err)) == NULL && errf)
		fprintf(errf, "postern: %s (delivery state not shown)\n", buf_cstr(&err));
	buf_free(&path);
	buf_free(&err);
	return db;
}

int qdisk_list(const char *qdir, enum qlist_format f, FILE *out, FILE *errf, size_t *count,
               unsigned long long *bytes)
{
	struct qname *v;
	size_t n;
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(4096), text = BUF_INIT(BUF_NOLIMIT);

	*count = 0;
	*bytes = 0;
	if (!collect(qdir, &v, &n, errf)) {
		free_names(v, n);
		return EX_NOPERM;
	}
	struct qstate *db = n ? open_state(qdir, false, errf) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct qfile_envelope env;
		struct qstate_rcpt *st = NULL;
		size_t nst = 0;
		buf_reset(&path);
		buf_printf(&path, "%s/%s/%s", qdir, v[i].dir, v[i].id);
		/* a message may move to another directory while we look: a vanished file is skipped */
		int fd = open(buf_cstr(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		buf_reset(&err);
		if (!qfile_read_envelope(fd, &env, &err)) {
			fprintf(errf, "postern: %s: %s\n", buf_cstr(&path), buf_cstr(&err));
			close(fd);
			continue;
		}
		close(fd);
		if (db && !qstate_get_msg(db, v[i].id, &st, &nst, &err))
			nst = 0;
		struct qlist_entry e = { v[i].id, v[i].dir, &env, st, nst };
		if (*count == 0 && f == QLIST_MAILQ)
			fputs(QLIST_MAILQ_HEADER, out);
		buf_reset(&text);
		qlist_format(&e, f, &text);
		fwrite(text.data, 1, text.len, out);
		++*count;
		*bytes += env.content_len;
		qstate_free_list(&st, nst);
		qfile_envelope_free(&env);
	}
	qstate_close(&db);
	free_names(v, n);
	buf_free(&path);
	buf_free(&err);
	buf_free(&text);
	return 0;
}

void qdisk_list_corrupt(const char *qdir, FILE *out)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&path, "%s/corrupt", qdir);
	DIR *d = opendir(buf_cstr(&path));
	struct dirent *de;
	size_t n = 0;
	while (d && (de = readdir(d)) != NULL) {
		if (!qfile_id_valid(de->d_name))
			continue;
		if (n++ == 0)
			fprintf(out, "Corrupt queue files (set aside in %s, never delivered):\n", buf_cstr(&path));
		fprintf(out, "%-16s corrupt\n", de->d_name);
	}
	if (d)
		closedir(d);
	buf_free(&path);
}

int qdisk_lock(struct config *cfg, struct buf *err)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&path, "%s/master.lock", config_str(cfg, "pid_directory"));
	/* read-only and never created: a lock file root made here could keep an unprivileged master from starting */
	int fd = open(buf_cstr(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		fd = QDISK_NOLOCK;	/* master never ran here */
	} else if (fd < 0) {
		buf_printf(err, "open %s: %s", buf_cstr(&path), strerror(errno));
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			buf_printf(err, "master runs (it holds %s) but qmgr does not answer: try again, or 'postern stop'",
			           buf_cstr(&path));
		else
			buf_printf(err, "lock %s: %s", buf_cstr(&path), strerror(errno));
		close(fd);
		fd = -1;
	}
	buf_free(&path);
	return fd;
}

const char *qdisk_find(const char *qdir, const char *id)
{
	static const char *const all[] = { "incoming", "active", "deferred", "hold", "corrupt" };
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	const char *found = NULL;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && !found; i++) {
		buf_reset(&path);
		buf_printf(&path, "%s/%s/%s", qdir, all[i], id);
		if (access(buf_cstr(&path), F_OK) == 0)
			found = all[i];
	}
	buf_free(&path);
	return found;
}

static bool move(const char *qdir, const char *id, const char *from, const char *to, struct buf *err)
{
	struct buf a = BUF_INIT(BUF_NOLIMIT), b = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&a, "%s/%s/%s", qdir, from, id);
	buf_printf(&b, "%s/%s/%s", qdir, to, id);
	bool ok = rename(buf_cstr(&a), buf_cstr(&b)) == 0;
	if (!ok) {
		buf_printf(err, "move %s to %s: %s", buf_cstr(&a), buf_cstr(&b), strerror(errno));
	} else {
		buf_reset(&a);
		buf_printf(&a, "%s/%s", qdir, to);
		buf_reset(&b);
		buf_printf(&b, "%s/%s", qdir, from);
		fsutil_fsync_dir(buf_cstr(&a));
		fsutil_fsync_dir(buf_cstr(&b));
	}
	buf_free(&a);
	buf_free(&b);
	return ok;
}

/* Rewrite the unfinished recipients' state: due now (flush, release), or as if never tried (requeue). */
static bool reschedule(struct qstate *db, const char *id, bool reset, struct buf *err)
{
	struct qstate_rcpt *st = NULL;
	size_t n = 0;
	uint64_t now = (uint64_t)time(NULL) * 1000;
	bool ok = qstate_get_msg(db, id, &st, &n, err), any = false;
	for (size_t i = 0; ok && i < n; i++) {
		if (qstate_final(st[i].status))
			continue;
		st[i].next_try = now;
		if (reset) {
			st[i].status = QSTATE_PENDING;
			st[i].attempts = 0;
		}
		any = true;
	}
	if (ok && any)
		ok = qstate_put(db, id, st, n, err);
	qstate_free_list(&st, n);
	return ok && any;
}

static bool act(const char *qdir, struct qstate *db, enum queue_op op, const struct qname *m, struct buf *err)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	bool done = false;
	switch (op) {
	case QOP_HOLD:
		if ((done = strcmp(m->dir, "hold") != 0 && move(qdir, m->id, m->dir, "hold", err)))
			log_info("%s: held (qmgr not running)", m->id);
		break;
	case QOP_RELEASE:
		if ((done = strcmp(m->dir, "hold") == 0 && move(qdir, m->id, "hold", "active", err))) {
			if (db)
				reschedule(db, m->id, false, err);
			log_info("%s: released from hold (qmgr not running)", m->id);
		}
		break;
	case QOP_DELETE:
		/* the state and receipts left behind are dropped by qmgr's start-up reconciliation */
		buf_printf(&path, "%s/%s/%s", qdir, m->dir, m->id);
		if (unlink(buf_cstr(&path)) == 0) {
			buf_reset(&path);
			buf_printf(&path, "%s/%s", qdir, m->dir);
			fsutil_fsync_dir(buf_cstr(&path));
			log_info("%s: removed by the administrator (qmgr not running)", m->id);
			done = true;
		} else if (errno != ENOENT) {
			buf_printf(err, "remove %s: %s", buf_cstr(&path), strerror(errno));
		}
		break;
	case QOP_FLUSH:
	case QOP_REQUEUE:
		if (strcmp(m->dir, "hold") != 0 && db && (done = reschedule(db, m->id, op == QOP_REQUEUE, err)))
			log_info("%s: %s (qmgr not running)", m->id, op == QOP_FLUSH ? "flushed" : "requeued");
		break;
	}
	buf_free(&path);
	return done;
}

int qdisk_op(const char *qdir, enum queue_op op, const char *id, const char *select, struct buf *err)
{
	struct qname *v;
	size_t n;
	int count = 0;
	bool found = false;

	if (!collect(qdir, &v, &n, NULL)) {
		buf_printf(err, "cannot read the queue under %s: %s", qdir, strerror(errno));
		free_names(v, n);
		return -2;
	}
	struct qstate *db = NULL;
	if (op == QOP_FLUSH || op == QOP_RELEASE || op == QOP_REQUEUE) {
		struct buf path = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&path, "%s/state.lmdb", qdir);
		if (access(buf_cstr(&path), F_OK) == 0 && (db = qstate_open(buf_cstr(&path), true, err)) == NULL) {
			buf_free(&path);
			free_names(v, n);
			return -2;
		}
		buf_free(&path);
	}
	for (size_t i = 0; i < n; i++) {
		if (id ? strcmp(v[i].id, id) != 0 : select && strcmp(select, "deferred") == 0 && strcmp(v[i].dir, "deferred"))
			continue;
		found = true;
		if (act(qdir, db, op, &v[i], err))
			count++;
	}
	qstate_close(&db);
	free_names(v, n);
	if (id && !found)
		return -1;
	return err->len && count == 0 ? -2 : count;
}
