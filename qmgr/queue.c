/* The queue engine. Invariants: a result is committed to state.lmdb before anything acts on it (bounce, file
 * removal); a file is removed only after every recipient is final and notified, and its state is dropped only
 * after the file is gone, so a crash at any point leaves either a file to retry or nothing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "queue.h"
#include "queue_impl.h"
#include "str.h"

#define TMP_MAX_AGE 86400	/* seconds: a tmp/ file this old was left by a crashed writer */

/* ---- paths and files ---- */

char *qmgr_path(const struct qmgr *q, const char *dir, const char *id)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&b, "%s/%s%s%s", q->p.queue_dir, dir, id ? "/" : "", id ? id : "");
	return buf_steal(&b, NULL);
}

static bool move_file(struct qmgr *q, const char *id, const char *from, const char *to, bool sync)
{
	char *a = qmgr_path(q, from, id), *b = qmgr_path(q, to, id), *da = qmgr_path(q, from, NULL), *db = qmgr_path(q, to, NULL);
	bool ok = rename(a, b) == 0;
	if (!ok)
		log_error("%s: move %s to %s: %s", id, from, to, strerror(errno));
	else if (sync && (!fsutil_fsync_dir(db) || !fsutil_fsync_dir(da)))
		log_warn("%s: fsync %s or %s: %s", id, from, to, strerror(errno));
	free(a);
	free(b);
	free(da);
	free(db);
	return ok;
}

bool qmgr_move_file(struct qmgr *q, const char *id, const char *from, const char *to)
{
	return move_file(q, id, from, to, true);
}

bool qmgr_move_file_nosync(struct qmgr *q, const char *id, const char *from, const char *to)
{
	return move_file(q, id, from, to, false);
}

static void to_corrupt(struct qmgr *q, const char *id, const char *dir, const char *why)
{
	log_error("%s: corrupt queue file in %s (%s): moved to corrupt/", id, dir, why);
	qmgr_move_file(q, id, dir, "corrupt");
}

/* local's delivery receipts of a message (see local/deliver.h): removed once the message is gone. */
void qmgr_remove_receipts(struct qmgr *q, const char *id)
{
	char *dir = qmgr_path(q, "receipts", id);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	if (rmdir(dir) != 0 && errno != ENOENT)
		log_warn("%s: remove %s: %s", id, dir, strerror(errno));
	free(dir);
}

/* ---- messages in memory ---- */

static void msg_free(struct qmsg *m)
{
	free(m->id);
	qfile_envelope_free(&m->env);
	qstate_free_list(&m->st, m->nst);
	free(m->busy);
	free(m->dirty);
	free(m);
}

struct qmsg *qmgr_find_msg(struct qmgr *q, const char *id)
{
	for (struct qmsg *m = q->msgs; m; m = m->next)
		if (!m->removed && strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static void unlink_msg(struct qmgr *q, struct qmsg *m)
{
	struct qmsg **pp = &q->msgs, *prev = NULL;
	while (*pp && *pp != m) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		panic("qmgr: message %s not in list", m->id);
	*pp = m->next;
	if (q->tail == m)
		q->tail = prev;
	q->nmsgs--;
}

static void grow_state(struct qmsg *m, size_t n)
{
	m->st = xreallocarray(m->st, n, sizeof(*m->st));
	m->busy = xreallocarray(m->busy, n, sizeof(*m->busy));
	m->dirty = xreallocarray(m->dirty, n, sizeof(*m->dirty));
	for (size_t i = m->nst; i < n; i++) {
		memset(&m->st[i], 0, sizeof(m->st[i]));
		m->busy[i] = m->dirty[i] = false;
	}
	m->nst = n;
}

bool qmgr_commit(struct qmgr *q, struct qmsg *m)
{
	struct qstate_rcpt *recs = xcalloc(m->nst ? m->nst : 1, sizeof(*recs));
	struct buf err = BUF_INIT(1024);
	size_t n = 0;
	for (size_t i = 0; i < m->nst; i++)
		if (m->dirty[i])
			recs[n++] = m->st[i];	/* shallow: qstate_put only reads */
	bool ok = n == 0 || qstate_put(q->db, m->id, recs, n, &err);
	if (!ok)
		log_error("%s: %s", m->id, buf_cstr(&err));	/* kept dirty: written with the next commit */
	else
		for (size_t i = 0; i < m->nst; i++)
			m->dirty[i] = false;
	if (n > 0)
		m->stored = true;	/* even after a failure: part of it may have been written before */
	free(recs);
	buf_free(&err);
	return ok;
}

/* Open and parse dir/id, match it with its state (building what is missing), add it to the list. */
static struct qmsg *load_msg(struct qmgr *q, const char *id, const char *dir, uint64_t now)
{
	char *path = qmgr_path(q, dir, id);
	struct buf err = BUF_INIT(1024);
	struct qmsg *m = xcalloc(1, sizeof(*m));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	free(path);
	m->id = xstrdup(id);
	m->dir = dir;
	if (fd < 0) {
		if (errno != ENOENT)
			log_error("%s: open %s/%s: %s", id, dir, id, strerror(errno));
		goto fail;
	}
	bool parsed = qfile_read_envelope(fd, &m->env, &err);
	close(fd);
	if (!parsed) {
		to_corrupt(q, id, dir, buf_cstr(&err));
		goto fail;
	}
	if (m->env.nrcpts == 0 || m->env.nrcpts > QSTATE_IDX_MAX) {
		to_corrupt(q, id, dir, "no recipients or too many");
		goto fail;
	}
	struct qstate_rcpt *st;
	size_t n;
	bool had = true;	/* whether state.lmdb may hold records of it; when it cannot be read, it may */
	buf_reset(&err);
	if (!qstate_get_msg(q->db, id, &st, &n, &err)) {
		log_warn("%s: %s: state rebuilt from the envelope", id, buf_cstr(&err));
		st = NULL;
		n = 0;
	} else {
		had = n > 0;
	}
	/* State must be a dense 0..n-1 series whose envelope part names the envelope's recipients. */
	bool good = true;
	for (size_t i = 0; i < n && good; i++)
		good = st[i].idx == i && (i >= m->env.nrcpts || strcmp(st[i].addr, m->env.rcpts[i].addr) == 0);
	if (!good) {
		log_warn("%s: state does not match the queue file: rebuilt from the envelope", id);
		qstate_free_list(&st, n);
		n = 0;
		buf_reset(&err);
		if (qstate_delete_msg(q->db, id, &err))
			had = false;
	}
	m->st = st;
	m->nst = n;
	m->stored = had;
	m->busy = xcalloc(n ? n : 1, sizeof(bool));
	m->dirty = xcalloc(n ? n : 1, sizeof(bool));
	if (n < m->env.nrcpts) {
		grow_state(m, m->env.nrcpts);
		for (size_t i = n; i < m->env.nrcpts; i++) {
			struct qstate_rcpt *r = &m->st[i];
			r->idx = (uint32_t)i;
			r->status = QSTATE_PENDING;
			r->parent = QSTATE_NO_PARENT;
			r->next_try = now;
			qstate_rcpt_set(r, m->env.rcpts[i].addr, "", "");
			m->dirty[i] = true;
		}
		/* Not committed now: state that says only "pending" is what the envelope gives after a crash too,
		 * so it is written with the first result (a message delivered at once never needs it at all). */
	}
	if (q->tail)
		q->tail->next = m;
	else
		q->msgs = m;
	q->tail = m;
	q->nmsgs++;
	buf_free(&err);
	return m;
fail:
	msg_free(m);
	buf_free(&err);
	return NULL;
}

/* ---- setup ---- */

struct qmgr *qmgr_new(const struct qmgr_params *p, qmgr_dispatch_fn *dispatch, void *arg, struct buf *err)
{
	struct qmgr *q = xcalloc(1, sizeof(*q));
	q->p = *p;
	q->dispatch = dispatch;
	q->arg = arg;
	if (!q->p.global_limit)
		q->p.global_limit = 20;
	if (!q->p.dest_limit)
		q->p.dest_limit = 20;
	if (!q->p.rcpt_limit)
		q->p.rcpt_limit = 50;
	static const char *dirs[] = { "tmp", "incoming", "active", "deferred", "hold", "corrupt", "receipts" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *d = qmgr_path(q, dirs[i], NULL);
		bool ok = fsutil_mkdir_p(d, 0700);
		if (!ok)
			buf_printf(err, "mkdir %s: %s", d, strerror(errno));
		free(d);
		if (!ok) {
			free(q);
			return NULL;
		}
	}
	char *path = qmgr_path(q, "state.lmdb", NULL);
	q->db = qstate_open(path, true, err);
	free(path);
	if (!q->db) {
		free(q);
		return NULL;
	}
	return q;
}

void qmgr_free(struct qmgr **qp)
{
	struct qmgr *q = *qp;
	if (!q)
		return;
	qmgr_flush_removals(q);
	free(q->rm);
	while (q->msgs) {
		struct qmsg *m = q->msgs;
		q->msgs = m->next;
		msg_free(m);
	}
	while (q->dests) {
		struct dest *d = q->dests;
		q->dests = d->next;
		free(d->name);
		free(d->why);
		free(d);
	}
	qstate_close(&q->db);
	xfree(qp);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir that are queue IDs, sorted (arrival order). */
static char **list_dir(struct qmgr *q, const char *dir, size_t *count)
{
	char *path = qmgr_path(q, dir, NULL);
	DIR *d = opendir(path);
	char **v = NULL;
	size_t n = 0;
	struct dirent *e;

	*count = 0;
	if (!d) {
		log_error("open %s: %s", path, strerror(errno));
		free(path);
		return NULL;
	}
	while ((e = readdir(d))) {
		if (!qfile_id_valid(e->d_name))
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	free(path);
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_str);
	*count = n;
	return v;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void sweep_tmp(struct qmgr *q)
{
	char *path = qmgr_path(q, "tmp", NULL);
	DIR *d = opendir(path);
	struct dirent *e;
	time_t now = time(NULL);

	while (d && (e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    now - st.st_mtime > TMP_MAX_AGE) {
			if (unlinkat(dirfd(d), e->d_name, 0) == 0)
				log_info("removed stale temporary file tmp/%s", log_safe(e->d_name, strlen(e->d_name), 64));
		}
	}
	if (d)
		closedir(d);
	free(path);
}

struct id_set {
	char **v;
	size_t n;
	struct qmgr *q;
};

static bool in_set(const struct id_set *s, const char *id)
{
	const char *key = id;
	return s->n > 0 && bsearch(&key, s->v, s->n, sizeof(*s->v), cmp_str) != NULL;
}

static bool drop_orphan(const char *id, void *arg)
{
	struct id_set *s = arg;
	if (in_set(s, id))
		return true;
	struct buf err = BUF_INIT(1024);
	if (qstate_delete_msg(s->q->db, id, &err))
		log_info("%s: state without a queue file dropped", id);
	else
		log_error("%s: %s", id, buf_cstr(&err));
	buf_free(&err);
	return true;
}

void qmgr_start(struct qmgr *q, uint64_t now)
{
	static const char *dirs[] = { "active", "deferred", "hold", "incoming" };
	struct id_set all = { NULL, 0, q };

	sweep_tmp(q);
	for (size_t i = 0; i < 4; i++) {
		size_t n;
		char **v = list_dir(q, dirs[i], &n);
		for (size_t j = 0; j < n; j++) {
			if (i < 3) {
				struct qmsg *m = load_msg(q, v[j], dirs[i], now);
				if (!m) {
					/* set aside as corrupt (or gone): its state goes; a file we merely could not open
					 * keeps it, so that what was delivered is not delivered again */
					char *p = qmgr_path(q, dirs[i], v[j]);
					bool gone = access(p, F_OK) != 0 && errno == ENOENT;
					free(p);
					if (gone)
						continue;
				}
				/* Files left in active/ by a crash are simply retried: their state says what is done. */
				else if (i == 0)
					log_info("%s: resumed from active/", m->id);
			}
			all.v = xreallocarray(all.v, all.n + 1, sizeof(*all.v));
			all.v[all.n++] = xstrdup(v[j]);
		}
		free_names(v, n);
	}
	if (all.n > 1)
		qsort(all.v, all.n, sizeof(*all.v), cmp_str);
	struct buf err = BUF_INIT(1024);
	if (!qstate_foreach_id(q->db, drop_orphan, &all, &err))
		log_error("state reconciliation: %s", buf_cstr(&err));
	size_t nr;
	char **rv = list_dir(q, "receipts", &nr);
	for (size_t i = 0; i < nr; i++)
		if (!in_set(&all, rv[i]))
			qmgr_remove_receipts(q, rv[i]);
	free_names(rv, nr);
	buf_free(&err);
	free_names(all.v, all.n);
	qmgr_scan(q, now);
}

size_t qmgr_scan(struct qmgr *q, uint64_t now)
{
	size_t n, taken = 0;
	char **v = list_dir(q, "incoming", &n);

	for (size_t i = 0; i < n; i++) {
		if (qmgr_find_msg(q, v[i])) {
			/* the same ID in two directories cannot come from our writers */
			log_error("%s: queue ID already active; left in incoming/", v[i]);
			continue;
		}
		if (!qmgr_move_file_nosync(q, v[i], "incoming", "active"))
			continue;
		struct qmsg *m = load_msg(q, v[i], "active", now);
		if (!m)
			continue;
		uint64_t size = m->env.content_len;
		log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", m->id,
		         log_safe(m->env.sender, strlen(m->env.sender), 256), (unsigned long long)size, m->env.nrcpts);
		taken++;
	}
	free_names(v, n);
	return taken;
}

/* ---- results ---- */

uint64_t qmgr_arrival_ms(const struct qmsg *m)
{
	return m->env.arrival > 0 ? (uint64_t)(m->env.arrival * 1000.0) : 0;
}

static void log_result(struct qmsg *m, const struct qstate_rcpt *r, const char *relay, uint64_t now)
{
	uint64_t a = qmgr_arrival_ms(m);
	double delay = now > a ? (double)(now - a) / 1000.0 : 0.0;
	const char *st = r->status == QSTATE_SENT ? "sent" : r->status == QSTATE_BOUNCED ? "bounced" : "deferred";
	struct buf orig = BUF_INIT(BUF_NOLIMIT);
	if (r->parent != QSTATE_NO_PARENT && r->parent < m->nst)
		buf_printf(&orig, ", orig_to=<%s>", log_safe(m->st[r->parent].addr, strlen(m->st[r->parent].addr), 256));
	log_info("%s: to=<%s>%s, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", m->id,
	         log_safe(r->addr, strlen(r->addr), 256), buf_cstr(&orig), relay, delay, r->dsn, st,
	         log_safe(r->text, strlen(r->text), 512));
	buf_free(&orig);
}

/* Record a result for state record i of m (in memory, marked dirty). */
static void record(struct qmgr *q, struct qmsg *m, size_t i, int code, const char *dsn, const char *text,
                   const char *relay, uint64_t now)
{
	struct qstate_rcpt *r = &m->st[i];
	r->attempts++;
	r->last_try = now;
	qstate_rcpt_set(r, NULL, dsn, text);
	if (code == 2) {
		r->status = QSTATE_SENT;
	} else if (code == 5) {
		r->status = QSTATE_BOUNCED;
	} else if (qsched_expired(&q->p.sched, qmgr_arrival_ms(m), now)) {
		struct buf t = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&t, "delivery time expired: %s", text);
		qstate_rcpt_set(r, NULL, NULL, t.data);
		buf_free(&t);
		r->status = QSTATE_BOUNCED;
	} else {
		r->status = QSTATE_DEFERRED;
		r->next_try = now + qsched_backoff(&q->p.sched, r->attempts);
	}
	m->dirty[i] = true;
	log_result(m, r, relay, now);
}

const struct qfile_rcpt *qmgr_env_rcpt(const struct qmsg *m, size_t i)
{
	while (i < m->nst && i >= m->env.nrcpts && m->st[i].parent != QSTATE_NO_PARENT)
		i = m->st[i].parent;
	return i < m->env.nrcpts ? &m->env.rcpts[i] : NULL;
}

void qmgr_forget(struct qmgr *q, struct qmsg *m)
{
	unlink_msg(q, m);
	if (m->jobs)
		m->removed = true;	/* freed when its last job ends */
	else
		msg_free(m);
}

/* Remove the file; its directory's fsync, then its state and receipts, follow in qmgr_flush_removals, once for
 * all the messages that finished in the same turn of the event loop (group commit: with many deliveries
 * finishing at once, one fsync per message in this single process was the limit of the delivered rate). */
static void finish(struct qmgr *q, struct qmsg *m)
{
	char *path = qmgr_path(q, m->dir, m->id);
	if (unlink(path) != 0 && errno != ENOENT) {
		log_error("%s: remove %s: %s", m->id, path, strerror(errno));
	} else {
		if (q->nrm == q->caprm) {
			q->caprm = q->caprm ? 2 * q->caprm : 64;
			q->rm = xreallocarray(q->rm, q->caprm, sizeof(*q->rm));
		}
		q->rm[q->nrm++] = (struct removal){ .id = xstrdup(m->id), .dir = m->dir, .stored = m->stored };
		qmgr_forget(q, m);
	}
	free(path);
}

void qmgr_flush_removals(struct qmgr *q)
{
	static const char *const dirs[] = { "active", "deferred", "hold", "incoming" };
	struct buf err = BUF_INIT(1024);

	if (q->nrm == 0)
		return;
	for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
		bool used = false;
		for (size_t i = 0; i < q->nrm && !used; i++)
			used = strcmp(q->rm[i].dir, dirs[d]) == 0;
		if (!used)
			continue;
		char *dir = qmgr_path(q, dirs[d], NULL);
		if (!fsutil_fsync_dir(dir))
			log_warn("fsync %s: %s", dir, strerror(errno));
		free(dir);
	}
	for (size_t i = 0; i < q->nrm; i++) {
		struct removal *r = &q->rm[i];
		buf_reset(&err);
		if (r->stored && !qstate_delete_msg(q->db, r->id, &err))
			log_warn("%s: %s (dropped at next start)", r->id, buf_cstr(&err));
		qmgr_remove_receipts(q, r->id);
		log_info("%s: removed", r->id);
		free(r->id);
	}
	q->nrm = 0;
	buf_free(&err);
}

static bool all_final(const struct qmsg *m)
{
	for (size_t i = 0; i < m->nst; i++)
		if (!qstate_final(m->st[i].status))
			return false;
	return true;
}

/* After results: notify, remove when done, or park the file in deferred/. */
static void settle(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	if (m->jobs || m->removed)
		return;
	bool notified = qmgr_notify(q, m, now);
	if (all_final(m)) {
		if (notified)
			finish(q, m);
		return;
	}
	qmgr_warn_delayed(q, m, now);
	bool due = false;
	for (size_t i = 0; i < m->nst; i++)
		if (!qstate_final(m->st[i].status) && m->st[i].next_try <= now)
			due = true;
	if (!due && strcmp(m->dir, "active") == 0 && qmgr_move_file_nosync(q, m->id, "active", "deferred"))
		m->dir = "deferred";
}

/* ---- jobs ---- */

static struct dest *get_dest(struct qmgr *q, const char *name)
{
	for (struct dest *d = q->dests; d; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	struct dest *d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	d->next = q->dests;
	q->dests = d;
	return d;
}

static struct qjob *job_new(struct qmgr *q, struct qmsg *m, const char *transport, const char *dest, uint64_t now)
{
	struct qjob *j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->msg = m;
	j->queue_id = m->id;
	j->queue_path = qmgr_path(q, m->dir, m->id);
	j->dir = m->dir;
	j->sender = m->env.sender;
	j->transport = xstrdup(transport);
	j->dest = xstrdup(dest);
	j->started = now;
	return j;
}

static void job_free(struct qjob *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->rcpts[i].addr);
	free(j->rcpts);
	free((char *)j->queue_path);
	free(j->transport);
	free(j->dest);
	free(j->unreached_text);
	free(j);
}

static struct qjob_rcpt *job_rcpt(struct qjob *job, uint32_t idx)
{
	for (size_t i = 0; i < job->n; i++)
		if (job->rcpts[i].idx == idx)
			return &job->rcpts[i];
	return NULL;
}

void qmgr_job_result(struct qjob *job, uint32_t idx, int code, const char *dsn, const char *text)
{
	struct qjob_rcpt *jr = job_rcpt(job, idx);
	struct qmsg *m = job->msg;
	if (!jr || jr->done || m->removed) {
		if (!jr || jr->done)
			log_warn("%s: result for recipient %u that the job does not hold: ignored", job->queue_id, idx);
		if (jr)
			jr->done = true;
		return;
	}
	if (code != 2 && code != 4 && code != 5) {
		code = 4;
		text = "transport gave a malformed status";
	}
	jr->done = true;
	uint64_t now = qsched_now();
	if (!job->nresults++)
		job->first_result = now;
	if (code == 4 && dsn && strncmp(dsn, "4.4.", 4) == 0) {
		job->nunreached++;
		if (!job->unreached_text)
			job->unreached_text = xstrdup(text ? text : dsn);
	}
	record(job->q, m, idx, code, dsn, text, job->transport, now);
}

/* A new state record expanded from recipient idx; its index, or -1 when refused. */
static long add_child(struct qjob *job, uint32_t idx, const char *addr)
{
	struct qmsg *m = job->msg;
	if (m->removed || !job_rcpt(job, idx) || m->nst >= QSTATE_IDX_MAX || strlen(addr) > QSTATE_ADDR_MAX ||
	    strlen(addr) == 0) {
		log_warn("%s: added recipient refused", job->queue_id);
		return -1;
	}
	size_t i = m->nst;
	grow_state(m, i + 1);
	struct qstate_rcpt *r = &m->st[i];
	r->idx = (uint32_t)i;
	r->status = QSTATE_PENDING;
	r->parent = idx;
	r->next_try = 0;
	qstate_rcpt_set(r, addr, "", "");
	m->dirty[i] = true;
	return (long)i;
}

void qmgr_job_add_rcpt(struct qjob *job, uint32_t idx, const char *addr)
{
	struct qmsg *m = job->msg;
	if (add_child(job, idx, addr) < 0)
		return;
	log_info("%s: to=<%s>, orig_to=<%s>, relay=%s, status=expanded (alias)", m->id, log_safe(addr, strlen(addr), 256),
	         log_safe(m->st[idx].addr, strlen(m->st[idx].addr), 256), job->transport);
}

void qmgr_job_add_failed(struct qjob *job, uint32_t idx, const char *target, const char *dsn, const char *text)
{
	if (dsn[0] != '5')
		return;		/* only final failures; anything else is the recipient's own status */
	long i = add_child(job, idx, target);
	if (i >= 0)
		record(job->q, job->msg, (size_t)i, 5, dsn, text, job->transport, qsched_now());
}

/* What a finished smtp job says about its destination. Only answers count (a transport that crashed or could
 * not be reached says nothing about the next hop): all of them "no server reached" (4.4.x) makes the
 * destination dead for the first retry interval, and while it has failures only one job at a time probes it;
 * any other answer (even a refusal) shows a server is there. */
static void dest_outcome(struct qmgr *q, struct dest *d, const struct qjob *job, uint64_t now)
{
	if (job->nunreached == job->nresults) {
		uint64_t pause = qsched_backoff(&q->p.sched, 1);
		bool was_alive = d->dead_until <= now;
		d->failures++;
		/* counted from the first answer: no later than the retry of this job's own recipients, which must
		 * find the destination open again, not be suspended for a moment more */
		d->dead_until = job->first_result + pause;
		free(d->why);
		d->why = xstrdup(job->unreached_text ? job->unreached_text : "no server reached");
		if (was_alive)
			log_warn("%s: destination %s marked dead for %.1f s: %s", job->queue_id, d->name, (double)pause / 1000,
			         log_safe(d->why, strlen(d->why), 512));
	} else if (d->failures) {
		log_info("%s: destination %s reachable again", job->queue_id, d->name);
		d->failures = 0;
		d->dead_until = 0;
		xfree(&d->why);
	}
}

/* Recipient i of m is for the dead destination d: deferred until d may be tried again, without an attempt of
 * its own (or bounced when its time in the queue is up). */
static void suspend(struct qmgr *q, struct qmsg *m, size_t i, const struct dest *d, uint64_t now)
{
	struct qstate_rcpt *r = &m->st[i];
	if (qsched_expired(&q->p.sched, qmgr_arrival_ms(m), now)) {
		record(q, m, i, 4, "4.4.1", d->why, "smtp", now);
		return;
	}
	struct buf t = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&t, "delivery temporarily suspended: %s", d->why);
	qstate_rcpt_set(r, NULL, r->dsn[0] ? NULL : "4.4.1", t.data);
	r->status = QSTATE_DEFERRED;
	r->next_try = d->dead_until;
	m->dirty[i] = true;
	log_result(m, r, "smtp", now);
	buf_free(&t);
}

static void job_done(struct qjob *job, uint64_t now, const char *why, bool do_settle)
{
	struct qmgr *q = job->q;
	struct qmsg *m = job->msg;

	for (size_t i = 0; i < job->n; i++) {
		struct qjob_rcpt *jr = &job->rcpts[i];
		if (!jr->done && !m->removed)
			record(q, m, jr->idx, 4, job->fail_dsn ? job->fail_dsn : "4.3.0",
			       why ? why : "no result from transport", job->transport, now);
		if (jr->idx < m->nst)
			m->busy[jr->idx] = false;
	}
	/* A message this job completes without a notification to send is removed next (settle, finish): the
	 * removal of its file is then the durable record, and committing its results first would only cost a
	 * synced transaction per message. A crash before the removal retries it, and the receipts answer. */
	if (!m->removed && !(do_settle && m->jobs == 1 && qmgr_done_quietly(m)))
		qmgr_commit(q, m);
	m->jobs--;
	struct dest *d = get_dest(q, job->dest);
	d->jobs--;
	q->jobs--;
	if (strcmp(job->transport, "smtp") == 0 && job->nresults > 0)
		dest_outcome(q, d, job, now);
	job_free(job);
	if (m->removed) {
		if (m->jobs == 0)
			msg_free(m);
		return;
	}
	if (do_settle)
		settle(q, m, now);
}

void qmgr_job_done(struct qjob *job, uint64_t now, const char *why)
{
	job_done(job, now, why, true);
}

/* false when the transport refused it (the recipients are then deferred; the caller settles the message). */
static bool start_job(struct qmgr *q, struct qjob *j, struct dest *d, uint64_t now)
{
	struct qmsg *m = j->msg;
	m->jobs++;
	d->jobs++;
	q->jobs++;
	for (size_t i = 0; i < j->n; i++)
		m->busy[j->rcpts[i].idx] = true;
	if (q->dispatch(j, q->arg))
		return true;
	job_done(j, now, j->fail_text ? j->fail_text : "transport unavailable", false);
	return false;
}

static void add_job_rcpt(struct qjob *j, struct qmsg *m, size_t i)
{
	j->rcpts = xreallocarray(j->rcpts, j->n + 1, sizeof(*j->rcpts));
	j->rcpts[j->n++] = (struct qjob_rcpt){ (uint32_t)i, xstrdup(m->st[i].addr), false };
}

/* Schedule one message's due recipients: one job per destination ("local", or the recipient domain for
 * smtp), at most rcpt_limit recipients each, within the global and per-destination limits. */
static void schedule_msg(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	bool need_settle = false;
	struct qjob **open = NULL;	/* jobs being filled, one per destination */
	size_t nopen = 0;

	if (strcmp(m->dir, "deferred") == 0 && !qmgr_move_file_nosync(q, m->id, "deferred", "active"))
		return;
	m->dir = "active";
	for (size_t i = 0; i < m->nst; i++) {
		struct qstate_rcpt *r = &m->st[i];
		if (qstate_final(r->status) || m->busy[i] || r->next_try > now)
			continue;
		bool smtp = qroute_recipient(&q->p.route, r->addr) == QROUTE_SMTP;
		char *dname = smtp ? qroute_destination(&q->p.route, r->addr) : xstrdup("local");
		if (smtp) {
			struct dest *dd = get_dest(q, dname);
			if (dd->dead_until > now) {
				suspend(q, m, i, dd, now);
				need_settle = true;
				free(dname);
				continue;
			}
		}
		struct qjob *j = NULL;
		size_t k;
		for (k = 0; k < nopen; k++)
			if (strcmp(open[k]->dest, dname) == 0) {
				j = open[k];
				break;
			}
		if (!j) {
			struct dest *d = get_dest(q, dname);
			/* count the jobs being filled too: they start below */
			/* a destination that failed lately gets one probe at a time */
			unsigned limit = d->failures ? 1 : q->p.dest_limit;
			if (q->jobs + nopen >= q->p.global_limit || d->jobs + 1 > limit) {
				free(dname);
				continue;
			}
			j = job_new(q, m, smtp ? "smtp" : "local", dname, now);
			open = xreallocarray(open, nopen + 1, sizeof(*open));
			open[nopen++] = j;
			k = nopen - 1;
		}
		free(dname);
		add_job_rcpt(j, m, i);
		m->busy[i] = true;	/* not picked twice before its job starts */
		if (j->n >= q->p.rcpt_limit) {
			if (!start_job(q, j, get_dest(q, j->dest), now))
				need_settle = true;
			open[k] = open[--nopen];
		}
	}
	for (size_t k = 0; k < nopen; k++)
		if (!start_job(q, open[k], get_dest(q, open[k]->dest), now))
			need_settle = true;
	free(open);
	if (need_settle) {
		qmgr_commit(q, m);
		settle(q, m, now);
	}
}

uint64_t qmgr_run(struct qmgr *q, uint64_t now)
{
	uint64_t next = 0;

	qmgr_flush_removals(q);
	if (q->rescan) {
		q->rescan = false;
		qmgr_scan(q, now);
	}
	struct qmsg *m = q->msgs;

	while (m) {
		struct qmsg *nx = m->next;	/* m may be removed while scheduled */
		if (strcmp(m->dir, "hold") != 0 && !m->removed) {
			bool due = false;
			for (size_t i = 0; i < m->nst; i++)
				if (!qstate_final(m->st[i].status) && !m->busy[i] && m->st[i].next_try <= now)
					due = true;
			if (due && q->jobs < q->p.global_limit)
				schedule_msg(q, m, now);
			if (!due && m->jobs == 0 && all_final(m))
				settle(q, m, now);	/* left over from a failed notification or removal */
		}
		m = nx;
	}
	for (m = q->msgs; m; m = m->next) {
		if (strcmp(m->dir, "hold") == 0)
			continue;
		/* delay warnings on their own timer, not only when an attempt ends (which can be an hour later) */
		uint64_t w = qmgr_warn_time(q, m);
		if (w && w <= now) {
			qmgr_warn_delayed(q, m, now);
			/* a report that could not be queued is tried again later, never in a busy loop */
			w = qmgr_warn_time(q, m) ? now + qsched_backoff(&q->p.sched, 1) : 0;
		}
		if (w && (next == 0 || w < next))
			next = w;
		for (size_t i = 0; i < m->nst; i++)
			if (!qstate_final(m->st[i].status) && !m->busy[i]) {
				/* due but not started (concurrency limits): the end of a job runs the schedule again; the
				 * timer is only a safety net, never a busy loop */
				uint64_t t = m->st[i].next_try > now ? m->st[i].next_try : now + 1000;
				if (next == 0 || t < next)
					next = t;
			}
		if (m->jobs == 0 && all_final(m)) {
			uint64_t t = now + qsched_backoff(&q->p.sched, 1);
			if (next == 0 || t < next)
				next = t;
		}
	}
	qmgr_flush_removals(q);
	return next;
}

