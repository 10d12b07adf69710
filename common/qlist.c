/* Queue listing formats (see qlist.h). Addresses and error texts come from peers: the human forms make them
 * printable, the JSON form escapes them. */
#include <string.h>
#include <time.h>

#include "json.h"
#include "qlist.h"

#define ADDR_CAP 300	/* bytes of an address shown in the human forms */
#define TEXT_CAP 500	/* bytes of a delivery error shown in the human forms */

static void put_safe(struct buf *b, const char *s, size_t cap)
{
	buf_append_printable(b, s, strlen(s), cap);
}

static void put_time(struct buf *b, double when)
{
	char s[32] = "";
	time_t t = (time_t)when;
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(s, sizeof(s), "%a %b %e %H:%M:%S", &tm);
	buf_printf(b, "%-20s", s);
}

/* Recipient i's address and status, from state when there is some, else the envelope's (pending). */
static const char *rcpt_addr(const struct qlist_entry *e, size_t i)
{
	return e->nst ? e->st[i].addr : e->env->rcpts[i].addr;
}

static size_t rcpt_count(const struct qlist_entry *e)
{
	return e->nst ? e->nst : e->env->nrcpts;
}

static void format_json(const struct qlist_entry *e, struct buf *b)
{
	buf_puts(b, "{");
	json_put_key(b, "queue_name", 1);
	json_put_str(b, e->queue);
	json_put_key(b, "queue_id", 0);
	json_put_str(b, e->id);
	json_put_key(b, "arrival_time", 0);
	buf_printf(b, "%lld", (long long)e->env->arrival);
	json_put_key(b, "message_size", 0);
	buf_printf(b, "%llu", (unsigned long long)e->env->content_len);
	json_put_key(b, "forced_expire", 0);
	buf_puts(b, "false");
	json_put_key(b, "sender", 0);
	json_put_str(b, e->env->sender ? e->env->sender : "");
	json_put_key(b, "recipients", 0);
	buf_puts(b, "[");
	for (size_t i = 0; i < rcpt_count(e); i++) {
		const struct qstate_rcpt *r = e->nst ? &e->st[i] : NULL;
		buf_puts(b, i ? ",{" : "{");
		json_put_key(b, "address", 1);
		json_put_str(b, rcpt_addr(e, i));
		if (r && r->parent != QSTATE_NO_PARENT && r->parent < e->nst) {
			json_put_key(b, "orig_address", 0);
			json_put_str(b, e->st[r->parent].addr);
		}
		json_put_key(b, "status", 0);
		json_put_str(b, r ? qstate_status_name(r->status) : qstate_status_name(QSTATE_PENDING));
		if (r && r->status == QSTATE_DEFERRED) {
			json_put_key(b, "delay_reason", 0);
			json_put_str(b, r->text);
		}
		if (r && r->dsn[0]) {
			json_put_key(b, "dsn", 0);
			json_put_str(b, r->dsn);
			json_put_key(b, "last_result", 0);
			json_put_str(b, r->text);
		}
		json_put_key(b, "attempts", 0);
		buf_printf(b, "%u", r ? r->attempts : 0);
		if (r && !qstate_final(r->status) && r->next_try) {
			json_put_key(b, "next_attempt", 0);
			buf_printf(b, "%llu", (unsigned long long)(r->next_try / 1000));
		}
		buf_puts(b, "}");
	}
	buf_puts(b, "]}\n");
}

static void format_text(const struct qlist_entry *e, struct buf *b)
{
	buf_printf(b, "%-16s %-9s %8llu ", e->id, e->queue, (unsigned long long)e->env->content_len);
	put_time(b, e->env->arrival);
	buf_puts(b, " <");
	put_safe(b, e->env->sender ? e->env->sender : "", ADDR_CAP);
	buf_puts(b, ">\n");
	for (size_t i = 0; i < rcpt_count(e); i++) {
		const struct qstate_rcpt *r = e->nst ? &e->st[i] : NULL;
		size_t start = b->len;
		buf_puts(b, "    ");
		put_safe(b, rcpt_addr(e, i), ADDR_CAP);
		while (b->len - start < 44)
			buf_putc(b, ' ');
		buf_printf(b, " %s", r ? qstate_status_name(r->status) : "new");
		if (r && r->dsn[0]) {
			buf_printf(b, " %s (", r->dsn);
			put_safe(b, r->text, TEXT_CAP);
			buf_puts(b, ")");
		}
		buf_puts(b, "\n");
	}
}

/* Postfix's layout: ID with '*' (being delivered) or '!' (held), size, arrival, sender; then each recipient
 * still to be delivered, a deferred one after its last error in parentheses; a blank line. */
static void format_mailq(const struct qlist_entry *e, struct buf *b)
{
	char mark = strcmp(e->queue, "active") == 0 ? '*' : strcmp(e->queue, "hold") == 0 ? '!' : ' ';
	buf_printf(b, "%-10s%c %8llu ", e->id, mark, (unsigned long long)e->env->content_len);
	put_time(b, e->env->arrival);
	buf_puts(b, "  ");
	if (e->env->sender && *e->env->sender)
		put_safe(b, e->env->sender, ADDR_CAP);
	else
		buf_puts(b, "MAILER-DAEMON");
	buf_puts(b, "\n");
	for (size_t i = 0; i < rcpt_count(e); i++) {
		const struct qstate_rcpt *r = e->nst ? &e->st[i] : NULL;
		if (r && qstate_final(r->status))
			continue;
		if (r && r->status == QSTATE_DEFERRED && r->text[0]) {
			buf_puts(b, "(");
			put_safe(b, r->text, TEXT_CAP);
			buf_puts(b, ")\n");
		}
		buf_printf(b, "%42s", "");
		put_safe(b, rcpt_addr(e, i), ADDR_CAP);
		buf_puts(b, "\n");
	}
	buf_puts(b, "\n");
}

void qlist_format(const struct qlist_entry *e, enum qlist_format f, struct buf *out)
{
	switch (f) {
	case QLIST_JSON: format_json(e, out); break;
	case QLIST_MAILQ: format_mailq(e, out); break;
	default: format_text(e, out); break;
	}
}

void qlist_trailer(enum qlist_format f, size_t count, unsigned long long bytes, struct buf *out)
{
	if (f == QLIST_JSON)
		return;
	if (count == 0)
		buf_puts(out, "Mail queue is empty\n");
	else if (f == QLIST_MAILQ)
		buf_printf(out, "-- %llu Kbytes in %zu Request%s.\n", (bytes + 1023) / 1024, count, count == 1 ? "" : "s");
	else
		buf_printf(out, "-- %zu message%s, %llu Kbytes\n", count, count == 1 ? "" : "s", (bytes + 1023) / 1024);
}
