/* Whom a notification goes to, what it returns, and queueing it (the RFC 3464 format: common/mime_dsn.c). */
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bounce.h"
#include "log.h"
#include "str.h"

const char *bounce_recipient(const struct qfile_envelope *env, const char *postmaster, const char **origin)
{
	*origin = BOUNCE_ORIGIN;
	if (env->sender && env->sender[0] != '\0')
		return env->sender;
	if (env->origin && strcmp(env->origin, BOUNCE_ORIGIN_DOUBLE) == 0)
		return NULL;
	*origin = BOUNCE_ORIGIN_DOUBLE;
	return postmaster;
}

bool bounce_build(const struct bounce_info *bi, struct buf *out, bool *eightbit)
{
	bool failed = false;
	for (size_t i = 0; i < bi->nrcpts; i++)
		failed |= bi->rcpts[i].action == MIME_DSN_FAILED;
	struct buf from = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&from, "MAILER-DAEMON@%s (Mail Delivery System)", bi->hostname);
	/* RFC 3461 4.3: a report of delay or success returns the headers only */
	struct mime_dsn d = {
		.reporting_mta = bi->hostname, .from = buf_cstr(&from), .to = bi->to, .envid = bi->env->envid,
		.queue_id = bi->queue_id, .arrival = (time_t)bi->env->arrival, .now = (time_t)bi->now,
		.rcpts = bi->rcpts, .nrcpts = bi->nrcpts,
		.ret_full = failed && bi->max_content > 0 && !(bi->env->ret && str_eq_ci(bi->env->ret, "HDRS")),
		.full_max = bi->max_content, .msg = bi->content, .msg_len = bi->content_len,
	};
	bool ok = mime_dsn_build(&d, out, eightbit);
	buf_free(&from);
	return ok;
}

bool bounce_queue(const char *queue_dir, const char *rcpt, const char *origin, bool eightbit, const struct buf *msg,
                  char **new_id, struct buf *err)
{
	struct qfile_writer *w = qfile_create(queue_dir, err);

	if (!w)
		return false;
	char *id = xstrdup(qfile_writer_id(w));
	bool ok = qfile_put_str(w, QREC_SENDER, "") && qfile_put_rcpt(w, rcpt, 0, NULL) &&
	          qfile_put_str(w, QREC_ORIGIN, origin) && qfile_put_str(w, QREC_PROTOCOL, "LOCAL") &&
	          (!eightbit || qfile_put_str(w, QREC_BODY, "8BITMIME")) && qfile_write(w, msg->data, msg->len);
	if (!ok) {
		buf_printf(err, "%s", qfile_writer_error(w));
		qfile_abort(&w);
		free(id);
		return false;
	}
	if (!qfile_commit(&w, err)) {
		free(id);
		return false;
	}
	if (new_id)
		*new_id = id;
	else
		free(id);
	return true;
}
