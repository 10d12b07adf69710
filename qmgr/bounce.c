/* The DSN builder: a minimal, correct RFC 3464 report. Everything from the original envelope is untrusted and
 * goes into header fields only after control characters are replaced, so a crafted address cannot add lines. */
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

/* Untrusted text inside a header line or a report field: no line breaks, no controls. */
static void put_clean(struct buf *out, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		buf_putc(out, c < 0x20 || c == 0x7f ? '?' : c);
	}
}

static void put_date(struct buf *out, uint64_t t)
{
	char d[64];
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	if (strftime(d, sizeof(d), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		panic("bounce: strftime");
	buf_puts(out, d);
}

static bool is_ascii(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* The boundary must not occur in the returned content; derived from the queue ID, lengthened on a clash. */
static void make_boundary(const struct bounce_info *bi, struct buf *b)
{
	buf_printf(b, "%s.%llu/%s", bi->queue_id, (unsigned long long)bi->now, bi->hostname);
	for (unsigned i = 0; bi->content && i < 100; i++) {
		if (!memmem(bi->content, bi->content_len, b->data, b->len))
			return;
		buf_printf(b, ".%u", i);
	}
}

/* Length of the header section: up to and including the empty line, or everything when there is none. */
static size_t header_len(const char *c, size_t n)
{
	if (n > 0 && c[0] == '\n')
		return 1;
	for (size_t i = 0; i + 1 < n; i++)
		if (c[i] == '\n' && c[i + 1] == '\n')
			return i + 2;
	return n;
}

static bool any_action(const struct bounce_info *bi, const char *action)
{
	for (size_t i = 0; i < bi->nrcpts; i++)
		if (strcmp(bi->rcpts[i].action, action) == 0)
			return true;
	return false;
}

static void human_part(const struct bounce_info *bi, struct buf *out)
{
	buf_puts(out, "Content-Description: Notification\nContent-Type: text/plain; charset=utf-8\n"
	              "Content-Transfer-Encoding: 8bit\n\n");
	buf_puts(out, "This is the mail system at host ");
	put_clean(out, bi->hostname);
	buf_puts(out, ".\n\n");
	if (any_action(bi, "failed"))
		buf_puts(out, "I'm sorry to have to inform you that your message could not\n"
		              "be delivered to one or more recipients. It's attached below.\n\n"
		              "For further assistance, please send mail to postmaster.\n\n");
	if (any_action(bi, "delayed"))
		buf_puts(out, "Your message could not yet be delivered to one or more recipients.\n"
		              "The mail system will keep trying; you need not send it again.\n\n");
	if (any_action(bi, "delivered"))
		buf_puts(out, "Your message was delivered to the recipients listed below, as you asked.\n\n");
	buf_puts(out, "                   The mail system\n\n");
	for (size_t i = 0; i < bi->nrcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		buf_puts(out, "<");
		put_clean(out, r->addr);
		buf_puts(out, ">: ");
		put_clean(out, r->action);
		buf_puts(out, ": ");
		put_clean(out, r->text);
		buf_puts(out, "\n");
	}
	buf_puts(out, "\n");
}

static void status_part(const struct bounce_info *bi, struct buf *out)
{
	const struct qfile_envelope *env = bi->env;

	buf_puts(out, "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n");
	buf_puts(out, "Reporting-MTA: dns; ");
	put_clean(out, bi->hostname);
	buf_puts(out, "\nX-Postern-Queue-ID: ");
	put_clean(out, bi->queue_id);
	if (env->envid) {
		buf_puts(out, "\nOriginal-Envelope-Id: ");
		put_clean(out, env->envid);
	}
	buf_puts(out, "\nX-Postern-Sender: rfc822; ");
	put_clean(out, env->sender);
	if (env->arrival > 0) {
		buf_puts(out, "\nArrival-Date: ");
		put_date(out, (uint64_t)env->arrival);
	}
	buf_puts(out, "\n");
	for (size_t i = 0; i < bi->nrcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		buf_puts(out, "\nFinal-Recipient: ");
		buf_puts(out, is_ascii(r->addr) ? "rfc822; " : "utf-8; ");
		put_clean(out, r->addr);
		if (r->orcpt && strchr(r->orcpt, ';')) {
			buf_puts(out, "\nOriginal-Recipient: ");
			put_clean(out, r->orcpt);
		}
		buf_puts(out, "\nAction: ");
		put_clean(out, r->action);
		buf_puts(out, "\nStatus: ");
		put_clean(out, r->dsn);
		if (r->text && r->text[0]) {
			buf_puts(out, "\nDiagnostic-Code: X-Postern; ");
			put_clean(out, r->text);
		}
		if (r->last_try) {
			buf_puts(out, "\nLast-Attempt-Date: ");
			put_date(out, r->last_try);
		}
		buf_puts(out, "\n");
	}
	buf_puts(out, "\n");
}

void bounce_build(const struct bounce_info *bi, struct buf *out)
{
	struct buf boundary = BUF_INIT(BUF_NOLIMIT);
	const struct qfile_envelope *env = bi->env;
	bool delivered_only = !any_action(bi, "failed") && !any_action(bi, "delayed") && bi->nrcpts > 0;
	bool failed = any_action(bi, "failed");

	make_boundary(bi, &boundary);
	buf_puts(out, "From: MAILER-DAEMON@");
	put_clean(out, bi->hostname);
	buf_puts(out, " (Mail Delivery System)\nTo: <");
	put_clean(out, bi->to);
	buf_puts(out, ">\nSubject: ");
	buf_puts(out, failed ? "Undelivered Mail Returned to Sender"
	                     : delivered_only ? "Successful Mail Delivery Report" : "Delayed Mail (still being retried)");
	buf_puts(out, "\nDate: ");
	put_date(out, bi->now);
	buf_puts(out, "\nMessage-ID: <");
	put_clean(out, bi->queue_id);
	buf_printf(out, ".%llu@", (unsigned long long)bi->now);
	put_clean(out, bi->hostname);
	buf_puts(out, ">\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
	              "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"");
	buf_append(out, boundary.data, boundary.len);
	buf_puts(out, "\"\nContent-Transfer-Encoding: 8bit\n\nThis is a MIME-encapsulated message.\n\n--");
	buf_append(out, boundary.data, boundary.len);
	buf_puts(out, "\n");
	human_part(bi, out);
	buf_puts(out, "--");
	buf_append(out, boundary.data, boundary.len);
	buf_puts(out, "\n");
	status_part(bi, out);
	if (bi->content) {
		/* A report of success or delay returns headers only (RFC 3461 4.3); so do RET=HDRS and big messages. */
		bool full = failed && !(env->ret && str_eq_ci(env->ret, "HDRS")) && bi->content_len <= bi->max_content;
		size_t n = full ? bi->content_len : header_len(bi->content, bi->content_len);
		if (n > bi->max_content)
			n = bi->max_content;
		buf_puts(out, "--");
		buf_append(out, boundary.data, boundary.len);
		buf_puts(out, full ? "\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n"
		                   : "\nContent-Description: Message Headers\nContent-Type: text/rfc822-headers\n");
		buf_puts(out, "Content-Transfer-Encoding: 8bit\n\n");
		buf_append(out, bi->content, n);
		if (n > 0 && bi->content[n - 1] != '\n')
			buf_puts(out, "\n");
	}
	buf_puts(out, "\n--");
	buf_append(out, boundary.data, boundary.len);
	buf_puts(out, "--\n");
	buf_free(&boundary);
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
