/* qmgr's notices to senders: bounces of failed recipients, success notices (NOTIFY=SUCCESS) and delay warnings,
 * each an RFC 3464 report built by bounce.c and queued as a new message. Called by queue.c when results come
 * in (qmgr_notify), and from the schedule (the delay warnings' own timer). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "bounce.h"
#include "log.h"
#include "queue_impl.h"
#include "str.h"

static void read_content(struct qmgr *q, struct qmsg *m, struct buf *out)
{
	char *path = qmgr_path(q, m->dir, m->id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return;
	size_t want = m->env.content_len > q->p.bounce_size_limit ? q->p.bounce_size_limit + 1 : m->env.content_len;
	if (buf_reserve(out, want)) {
		ssize_t k;
		while (out->len < want &&
		       (k = pread(fd, out->data + out->len, want - out->len, (off_t)(m->env.content_offset + out->len))) > 0)
			out->len += (size_t)k;
		out->data[out->len] = '\0';
	}
	close(fd);
}

static void free_owned(char **own, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(own[i]);
	free(own);
}

static bool any_action(const struct mime_dsn_rcpt *br, size_t n, enum mime_dsn_action a)
{
	for (size_t i = 0; i < n; i++)
		if (br[i].action == a)
			return true;
	return false;
}

/* One recipient line of a report about state record r (whose envelope recipient is er, if any). own[0] and
 * own[1] receive strings the line points to (free them after the report is built). */
static struct mime_dsn_rcpt report_rcpt(const struct qmgr *q, const struct qmsg *m, const struct qstate_rcpt *r,
                                        const struct qfile_rcpt *er, enum mime_dsn_action action, char **own)
{
	struct mime_dsn_rcpt d = { .final_rcpt = r->addr, .orcpt = er ? er->orcpt : NULL, .action = action,
		                   .status = r->dsn[0] ? r->dsn : NULL, .diagnostic = r->text[0] ? r->text : NULL,
		                   .last_attempt = (time_t)(r->last_try / 1000) };
	if (mime_dsn_split_said(d.diagnostic, &own[0], &own[1])) {
		d.text = d.diagnostic;
		d.remote_mta = own[0];
		d.diagnostic = own[1];
		d.diag_type = "smtp";
	}
	/* a command or file an alias expanded to is no address: report the alias (as Postfix does) and name the
	 * target beside it */
	if ((r->addr[0] == '|' || r->addr[0] == '/') && r->parent != QSTATE_NO_PARENT && r->parent < m->nst) {
		d.final_rcpt = m->st[r->parent].addr;
		d.target = r->addr;
	}
	if (action == MIME_DSN_DELAYED && q->p.sched.lifetime_ms) {
		uint64_t scale = q->p.sched.time_scale ? q->p.sched.time_scale : 1;
		d.retry_until = (time_t)((qmgr_arrival_ms(m) + q->p.sched.lifetime_ms / scale) / 1000);
	}
	return d;
}

/* Build and queue one report about m's recipients br (to the sender, or as bounce_recipient() says). true when
 * queued or deliberately dropped (a double bounce), false when it must be tried again. */
static bool queue_report(struct qmgr *q, struct qmsg *m, const struct mime_dsn_rcpt *br, size_t n, uint64_t now)
{
	const char *origin;
	const char *to = bounce_recipient(&m->env, q->p.postmaster, &origin);
	bool ok = true;
	if (!to) {
		log_warn("%s: undeliverable notification to the postmaster discarded", m->id);
		return true;
	}
	struct buf content = BUF_INIT(BUF_NOLIMIT), msg = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	read_content(q, m, &content);
	bool failed = any_action(br, n, MIME_DSN_FAILED), eight = false;
	struct bounce_info bi = { q->p.hostname, m->id, &m->env, to, br, n, content.data, content.len,
	                          q->p.bounce_size_limit, now / 1000 };
	char *nid = NULL;
	if (!bounce_build(&bi, &msg, &eight)) {
		buf_puts(&err, "report too large");
		ok = false;
	} else {
		ok = bounce_queue(q->p.queue_dir, to, origin, eight, &msg, &nid, &err);
	}
	if (ok) {
		log_info("%s: sender %s notification: %s", m->id,
		         failed ? "non-delivery" : any_action(br, n, MIME_DSN_DELAYED) ? "delay" : "delivery status", nid);
		q->rescan = true;
	} else {
		log_error("%s: cannot queue notification: %s", m->id, buf_cstr(&err));
	}
	free(nid);
	buf_free(&content);
	buf_free(&msg);
	buf_free(&err);
	return ok;
}

/* Once per recipient, when delay_warning_time has passed and it is still deferred: a "delayed" report, if its
 * NOTIFY asks for delays (or was not given, as Postfix does) and the sender is not the null sender. A failure
 * to queue it is tried at the next attempt; the warning is never worth holding the message for. */
void qmgr_warn_delayed(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	if (!m->env.sender || !m->env.sender[0] || !qsched_warn_due(&q->p.sched, qmgr_arrival_ms(m), now))
		return;
	struct mime_dsn_rcpt *br = xcalloc(m->nst ? m->nst : 1, sizeof(*br));
	bool *inc = xcalloc(m->nst ? m->nst : 1, sizeof(*inc));
	char **own = xcalloc(2 * (m->nst ? m->nst : 1), sizeof(*own));
	size_t n = 0;
	bool changed = false;
	for (size_t i = 0; i < m->nst; i++) {
		struct qstate_rcpt *r = &m->st[i];
		if (r->status != QSTATE_DEFERRED || (r->flags & QSTATE_F_WARNED))
			continue;
		const struct qfile_rcpt *er = qmgr_env_rcpt(m, i);
		unsigned nf = er ? er->notify : 0;
		if (nf == 0 || (nf & QFILE_NOTIFY_DELAY)) {
			br[n] = report_rcpt(q, m, r, er, MIME_DSN_DELAYED, &own[2 * n]);
			n++;
			inc[i] = true;
		} else {
			r->flags |= QSTATE_F_WARNED, m->dirty[i] = true, changed = true;
		}
	}
	if (n > 0 && queue_report(q, m, br, n, now))
		for (size_t i = 0; i < m->nst; i++)
			if (inc[i])
				m->st[i].flags |= QSTATE_F_WARNED, m->dirty[i] = true, changed = true;
	if (changed)
		qmgr_commit(q, m);
	free_owned(own, 2 * n);
	free(inc);
	free(br);
}

/* When m next needs qmgr_warn_delayed(): 0 when never (warnings off, the null sender, no deferred recipient left to
 * warn about). */
uint64_t qmgr_warn_time(const struct qmgr *q, const struct qmsg *m)
{
	if (!m->env.sender || !m->env.sender[0] || strcmp(m->dir, "hold") == 0)
		return 0;
	for (size_t i = 0; i < m->nst; i++)
		if (m->st[i].status == QSTATE_DEFERRED && !(m->st[i].flags & QSTATE_F_WARNED))
			return qsched_warn_at(&q->p.sched, qmgr_arrival_ms(m));
	return 0;
}

/* Send one DSN for every bounced recipient not yet notified, and for delivered ones that asked
 * (NOTIFY=SUCCESS). false when it must be tried again. */
bool qmgr_notify(struct qmgr *q, struct qmsg *m, uint64_t now)
{
	struct mime_dsn_rcpt *br = xcalloc(m->nst ? m->nst : 1, sizeof(*br));
	size_t n = 0;
	bool changed = false, ok = true;

	bool *inc = xcalloc(m->nst ? m->nst : 1, sizeof(*inc));
	char **own = xcalloc(2 * (m->nst ? m->nst : 1), sizeof(*own));
	bool has_sender = m->env.sender && m->env.sender[0];
	for (size_t i = 0; i < m->nst; i++) {
		struct qstate_rcpt *r = &m->st[i];
		if (r->flags & QSTATE_F_NOTIFIED)
			continue;
		const struct qfile_rcpt *er = qmgr_env_rcpt(m, i);
		unsigned nf = er ? er->notify : 0;
		if (r->status == QSTATE_BOUNCED) {
			/* RFC 3461: without NOTIFY a failure is reported; NOTIFY=NEVER or without FAILURE it is not */
			if (nf == 0 || (nf & QFILE_NOTIFY_FAILURE)) {
				br[n] = report_rcpt(q, m, r, er, MIME_DSN_FAILED, &own[2 * n]);
				n++;
				inc[i] = true;
			} else {
				r->flags |= QSTATE_F_NOTIFIED, m->dirty[i] = true, changed = true;
			}
		} else if (r->status == QSTATE_SENT && (nf & QFILE_NOTIFY_SUCCESS) && has_sender && r->parent ==
		           QSTATE_NO_PARENT) {
			br[n] = report_rcpt(q, m, r, er, MIME_DSN_DELIVERED, &own[2 * n]);
			n++;
			inc[i] = true;
		}
	}
	if (n > 0) {
		ok = queue_report(q, m, br, n, now);
		if (ok)
			for (size_t i = 0; i < m->nst; i++)
				if (inc[i])
					m->st[i].flags |= QSTATE_F_NOTIFIED, m->dirty[i] = true, changed = true;
	}
	free_owned(own, 2 * n);
	free(inc);
	free(br);
	if (changed && !qmgr_commit(q, m))
		ok = false;
	return ok;
}

/* Every recipient delivered and none asked for a success notice still owed. */
bool qmgr_done_quietly(const struct qmsg *m)
{
	bool has_sender = m->env.sender && m->env.sender[0];
	for (size_t i = 0; i < m->nst; i++) {
		const struct qstate_rcpt *r = &m->st[i];
		if (r->status != QSTATE_SENT)
			return false;
		const struct qfile_rcpt *er = qmgr_env_rcpt(m, i);
		if (!(r->flags & QSTATE_F_NOTIFIED) && has_sender && r->parent == QSTATE_NO_PARENT && er &&
		    (er->notify & QFILE_NOTIFY_SUCCESS))
			return false;
	}
	return true;
}
