/* RFC 3464 delivery status notifications: a text part for people, a message/delivery-status part for programs,
 * and the original message (message/rfc822) or its header (text/rfc822-headers). See mime_dsn.h. */
#include "mime_dsn.h"

#include <string.h>

#include "alloc.h"
#include "mime.h"

static const char *action_name(enum mime_dsn_action a)
{
	switch (a) {
	case MIME_DSN_FAILED: return "failed";
	case MIME_DSN_DELAYED: return "delayed";
	case MIME_DSN_DELIVERED: return "delivered";
	case MIME_DSN_RELAYED: return "relayed";
	case MIME_DSN_EXPANDED: return "expanded";
	}
	return "failed";
}

/* Peer-supplied text inside a header line: control characters become spaces, length is capped. */
static bool put_safe(struct buf *out, const char *s, bool *eightbit)
{
	size_t n = 0;
	for (; s && *s && n < 900; s++, n++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x80 && eightbit)
			*eightbit = true;
		if (!buf_putc(out, (c < 32 || c == 127) ? ' ' : (char)c))
			return false;
	}
	return true;
}

static bool put_date_field(struct buf *out, const char *name, time_t t)
{
	return buf_printf(out, "%s: ", name) && mime_date_format(t, 0, out) && buf_putc(out, '\n');
}

/* A boundary that does not occur in the returned message. */
static void make_boundary(const struct mime_dsn *d, struct buf *b)
{
	for (unsigned k = 0;; k++) {
		buf_reset(b);
		buf_printf(b, "%s.%lld/%u/", d->queue_id ? d->queue_id : "dsn", (long long)d->now, k);
		put_safe(b, d->reporting_mta ? d->reporting_mta : "localhost", NULL);
		for (size_t i = 0; i < b->len; i++)
			if (b->data[i] == ' ' || b->data[i] == '"' || (unsigned char)b->data[i] >= 0x80)
				b->data[i] = '_';
		if (!d->msg || !memmem(d->msg, d->msg_len, b->data, b->len))
			return;
	}
}

bool mime_dsn_build(const struct mime_dsn *d, struct buf *out, bool *eightbit)
{
	bool eight = false;
	bool any_failed = false, any_delayed = false;
	for (size_t i = 0; i < d->nrcpts; i++) {
		any_failed |= d->rcpts[i].action == MIME_DSN_FAILED;
		any_delayed |= d->rcpts[i].action == MIME_DSN_DELAYED;
	}
	const char *subject = any_failed    ? "Undelivered Mail Returned to Sender"
	                      : any_delayed ? "Delayed Mail (still being retried)"
	                                    : "Successful Mail Delivery Report";
	struct buf bnd = BUF_INIT(1024);
	make_boundary(d, &bnd);
	const char *b = buf_cstr(&bnd);
	bool full = d->ret_full && d->msg && (d->full_max == 0 || d->msg_len <= d->full_max);
	bool ok = true;

	ok = ok && buf_puts(out, "From: ") && put_safe(out, d->from, &eight) && buf_putc(out, '\n');
	ok = ok && buf_puts(out, "To: ") && put_safe(out, d->to, &eight) && buf_putc(out, '\n');
	ok = ok && buf_printf(out, "Subject: %s\n", subject) && put_date_field(out, "Date", d->now);
	/* a notification is a message of its own: the original's queue ID makes its Message-ID unique */
	if (d->queue_id && d->reporting_mta)
		ok = ok && buf_printf(out, "Message-ID: <%s.%lld@", d->queue_id, (long long)d->now) &&
		     put_safe(out, d->reporting_mta, &eight) && buf_puts(out, ">\n");
	ok = ok && buf_puts(out, "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
	ok = ok && buf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\n"
	                           "\tboundary=\"%s\"\n\n", b);
	ok = ok && buf_puts(out, "This is a MIME-encapsulated message.\n\n");

	/* for people */
	ok = ok && buf_printf(out, "--%s\nContent-Description: Notification\n"
	                           "Content-Type: text/plain; charset=utf-8\n\n", b);
	ok = ok && buf_puts(out, "This is the mail system at host ") && put_safe(out, d->reporting_mta, &eight) &&
	     buf_puts(out, ".\n\n");
	if (any_failed)
		ok = ok && buf_puts(out, "Your message could not be delivered to one or more recipients.\n"
		                         "It is attached below.\n\n");
	else if (any_delayed)
		ok = ok && buf_puts(out, "Your message could not be delivered yet; the mail system will keep trying.\n"
		                         "You do not need to send it again.\n\n");
	else
		ok = ok && buf_puts(out, "Your message was delivered to the recipients listed below.\n\n");
	for (size_t i = 0; i < d->nrcpts && ok; i++) {
		const struct mime_dsn_rcpt *r = &d->rcpts[i];
		const char *text = r->text ? r->text : r->diagnostic;
		ok = buf_putc(out, '<') && put_safe(out, r->final_rcpt, &eight) && buf_putc(out, '>');
		if (ok && r->target)
			ok = buf_puts(out, " (delivery to ") && put_safe(out, r->target, &eight) && buf_putc(out, ')');
		ok = ok && buf_printf(out, ": %s", action_name(r->action));
		if (ok && text)
			ok = buf_puts(out, ": ") && put_safe(out, text, &eight);
		if (ok && r->remote_mta && !r->text)
			ok = buf_puts(out, " (from ") && put_safe(out, r->remote_mta, &eight) && buf_putc(out, ')');
		ok = ok && buf_putc(out, '\n');
	}
	ok = ok && buf_putc(out, '\n');

	/* for programs */
	ok = ok && buf_printf(out, "--%s\nContent-Description: Delivery report\n"
	                           "Content-Type: message/delivery-status\n\n", b);
	ok = ok && buf_puts(out, "Reporting-MTA: dns; ") && put_safe(out, d->reporting_mta, &eight) &&
	     buf_putc(out, '\n');
	if (d->queue_id)
		ok = ok && buf_puts(out, "X-Postern-Queue-ID: ") && put_safe(out, d->queue_id, &eight) &&
		     buf_putc(out, '\n');
	if (d->envid)
		ok = ok && buf_puts(out, "Original-Envelope-Id: ") && put_safe(out, d->envid, &eight) &&
		     buf_putc(out, '\n');
	if (d->received_from)
		ok = ok && buf_puts(out, "Received-From-MTA: dns; ") && put_safe(out, d->received_from, &eight) &&
		     buf_putc(out, '\n');
	if (d->arrival)
		ok = ok && put_date_field(out, "Arrival-Date", d->arrival);
	for (size_t i = 0; i < d->nrcpts && ok; i++) {
		const struct mime_dsn_rcpt *r = &d->rcpts[i];
		ok = buf_putc(out, '\n');
		if (r->orcpt)
			ok = ok && buf_puts(out, "Original-Recipient: ") && put_safe(out, r->orcpt, &eight) &&
			     buf_putc(out, '\n');
		ok = ok && buf_puts(out, "Final-Recipient: rfc822; ") && put_safe(out, r->final_rcpt, &eight) &&
		     buf_putc(out, '\n');
		ok = ok && buf_printf(out, "Action: %s\n", action_name(r->action));
		ok = ok && buf_puts(out, "Status: ") &&
		     put_safe(out, r->status ? r->status : (r->action == MIME_DSN_FAILED ? "5.0.0"
		                                           : r->action == MIME_DSN_DELAYED ? "4.0.0" : "2.0.0"), &eight) &&
		     buf_putc(out, '\n');
		if (r->remote_mta)
			ok = ok && buf_puts(out, "Remote-MTA: dns; ") && put_safe(out, r->remote_mta, &eight) &&
			     buf_putc(out, '\n');
		/* RFC 3464 2.3.6: type smtp only for an SMTP reply; our own reasons are X-Postern (Postfix: X-Postfix) */
		if (r->diagnostic)
			ok = ok && buf_puts(out, "Diagnostic-Code: ") &&
			     put_safe(out, r->diag_type ? r->diag_type : "X-Postern", &eight) && buf_puts(out, "; ") &&
			     put_safe(out, r->diagnostic, &eight) && buf_putc(out, '\n');
		if (r->target)
			ok = ok && buf_puts(out, "X-Postern-Target: ") && put_safe(out, r->target, &eight) &&
			     buf_putc(out, '\n');
		if (r->last_attempt)
			ok = ok && put_date_field(out, "Last-Attempt-Date", r->last_attempt);
		if (r->retry_until && r->action == MIME_DSN_DELAYED)
			ok = ok && put_date_field(out, "Will-Retry-Until", r->retry_until);
	}
	ok = ok && buf_putc(out, '\n');

	/* the original */
	if (d->msg) {
		bool msg8 = !mime_is_7bit(d->msg, d->msg_len);
		if (full) {
			eight |= msg8;
			ok = ok && buf_printf(out, "--%s\nContent-Description: %s\nContent-Type: message/rfc822\n%s\n", b,
			                      any_failed ? "Undelivered Message" : "Message",
			                      msg8 ? "Content-Transfer-Encoding: 8bit\n" : "");
			ok = ok && buf_append(out, d->msg, d->msg_len);
			if (ok && d->msg_len > 0 && d->msg[d->msg_len - 1] != '\n')
				ok = buf_putc(out, '\n');
		} else {
			struct mime_header h = MIME_HEADER_INIT;
			mime_header_parse(&h, d->msg, d->msg_len);
			size_t hl = h.size;
			/* without its blank line: the part body is the header block alone */
			if (h.has_blank && hl > 0 && d->msg[hl - 1] == '\n') {
				hl--;
				if (hl > 0 && d->msg[hl - 1] == '\r')
					hl--;
			}
			bool h8 = !mime_is_7bit(d->msg, hl);
			eight |= h8;
			ok = ok && buf_printf(out, "--%s\nContent-Description: %s\nContent-Type: text/rfc822-headers\n%s\n", b,
			                      any_failed ? "Undelivered Message Headers" : "Message Headers",
			                      h8 ? "Content-Transfer-Encoding: 8bit\n" : "");
			ok = ok && buf_append(out, d->msg, hl);
			if (ok && (hl == 0 || d->msg[hl - 1] != '\n'))
				ok = buf_putc(out, '\n');
			mime_header_free(&h);
		}
	}
	ok = ok && buf_printf(out, "\n--%s--\n", b);
	buf_free(&bnd);
	if (eightbit)
		*eightbit = eight;
	return ok;
}

bool mime_dsn_split_said(const char *text, char **mta, char **reply)
{
	static const char said[] = " said: ", tail[] = " (in reply to ";
	if (!text || strncmp(text, "host ", 5) != 0)
		return false;
	const char *name = text + 5, *s = strstr(name, said);
	if (!s || s == name)
		return false;
	/* the last " (in reply to ": the reply's own text may hold one */
	const char *r = s + sizeof(said) - 1, *t = NULL;
	for (const char *p = strstr(r, tail); p; p = strstr(p + 1, tail))
		t = p;
	const char *end = t ? t : r + strlen(r);
	if (end == r)
		return false;
	/* the name only: "[addr]" is not a DNS name */
	const char *br = memchr(name, '[', (size_t)(s - name));
	*mta = xstrndup(name, (size_t)((br && br > name ? br : s) - name));
	*reply = xstrndup(r, (size_t)(end - r));
	return true;
}
