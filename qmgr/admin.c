/* Administrative requests on queued messages (flush, hold, release, delete, requeue) and the listing, for the
 * CLI through qmgr's socket. Each acts on one message by ID, or on all of them; the listing is formatted here
 * (common/qlist.c) in chunks that fit an IPC frame. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "qlist.h"
#include "queue_impl.h"

typedef bool msg_op(struct qmgr *q, struct qmsg *m, uint64_t now);

static int apply(struct qmgr *q, const char *id, msg_op *op, uint64_t now)
{
	int n = 0;
	if (id) {
		struct qmsg *m = qmgr_find_msg(q, id);
		if (!m)
			return -1;
		return op(q, m, now) ? 1 : 0;
	}
	for (struct qmsg *m = q->msgs, *nx; m; m = nx) {
		nx = m->next;
		if (!m->removed && op(q, m, now))
			n++;
	}
	return n;
}

static bool op_flush(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	(void)q;
	bool any = false;
	if (strcmp(m->dir, "hold") == 0)
		return false;
	for (size_t i = 0; i < m->nst; i++)
		if (!qstate_final(m->st[i].status) && m->st[i].next_try > now) {
			m->st[i].next_try = now;
			any = true;
		}
	return any;
}

int qmgr_flush(struct qmgr *q, const char *id, uint64_t now)
{
	return apply(q, id, op_flush, now);
}

static bool op_hold(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	(void)now;
	if (strcmp(m->dir, "hold") == 0 || !qmgr_move_file(q, m->id, m->dir, "hold"))
		return false;
	m->dir = "hold";
	log_info("%s: held", m->id);
	return true;
}

int qmgr_hold(struct qmgr *q, const char *id)
{
	return apply(q, id, op_hold, 0);
}

static bool op_release(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	if (strcmp(m->dir, "hold") != 0 || !qmgr_move_file(q, m->id, "hold", "active"))
		return false;
	m->dir = "active";
	op_flush(q, m, now);
	log_info("%s: released from hold", m->id);
	return true;
}

int qmgr_release(struct qmgr *q, const char *id, uint64_t now)
{
	return apply(q, id, op_release, now);
}

static bool op_delete_deferred(struct qmgr *q, struct qmsg *m, uint64_t now);

static bool op_delete(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	(void)now;
	char *path = qmgr_path(q, m->dir, m->id), *dir = qmgr_path(q, m->dir, NULL);
	struct buf err = BUF_INIT(1024);
	bool ok = unlink(path) == 0 || errno == ENOENT;
	if (ok) {
		fsutil_fsync_dir(dir);
		if (!qstate_delete_msg(q->db, m->id, &err))
			log_warn("%s: %s", m->id, buf_cstr(&err));
		qmgr_remove_receipts(q, m->id);
		log_info("%s: removed by the administrator", m->id);
		qmgr_forget(q, m);
	} else {
		log_error("%s: remove %s: %s", m->id, path, strerror(errno));
	}
	free(path);
	free(dir);
	buf_free(&err);
	return ok;
}

int qmgr_delete(struct qmgr *q, const char *id)
{
	return apply(q, id, op_delete, 0);
}

static bool op_delete_deferred(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	return strcmp(m->dir, "deferred") == 0 && op_delete(q, m, now);
}

int qmgr_delete_deferred(struct qmgr *q)
{
	return apply(q, NULL, op_delete_deferred, 0);
}

static bool op_requeue(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	bool any = false;
	for (size_t i = 0; i < m->nst; i++)
		if (!qstate_final(m->st[i].status) && !m->busy[i]) {
			m->st[i].status = QSTATE_PENDING;
			m->st[i].attempts = 0;
			m->st[i].next_try = now;
			m->dirty[i] = true;
			any = true;
		}
	if (any)
		qmgr_commit(q, m);
	return any;
}

int qmgr_requeue(struct qmgr *q, const char *id, uint64_t now)
{
	return apply(q, id, op_requeue, now);
}

size_t qmgr_list(struct qmgr *q, enum qlist_format f, size_t offset, size_t max_bytes, struct buf *out,
                 struct qmgr_list_stats *stats)
{
	size_t i = 0;
	memset(stats, 0, sizeof(*stats));
	for (struct qmsg *m = q->msgs; m; m = m->next) {
		if (m->removed || i++ < offset)
			continue;
		size_t before = out->len;
		struct qlist_entry e = { m->id, m->dir, &m->env, m->st, m->nst };
		qlist_format(&e, f, out);
		/* a message that does not fit waits for the next request (but one always goes, however long) */
		if (out->len > max_bytes && stats->count > 0) {
			buf_truncate(out, before);
			stats->more = true;
			break;
		}
		stats->count++;
		stats->bytes += m->env.content_len;
	}
	return stats->count;
}

struct qstate *qmgr_state(struct qmgr *q)
{
	return q->db;
}

size_t qmgr_count(const struct qmgr *q)
{
	return q->nmsgs;
}

size_t qmgr_inflight(const struct qmgr *q)
{
	return q->jobs;
}
