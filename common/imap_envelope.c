/* IMAP string output (quoted / literal / NIL) and the ENVELOPE structure (RFC 3501 §7.4.2) built from a header
 * block with the RFC 5322 address parser of addr.h. See imap_body.h. */
#include "imap_body.h"

#include <string.h>

#include "addr.h"

#define QUOTED_MAX 4096   /* longer values go as literals: some clients choke on huge quoted strings */

bool imap_append_string(struct buf *out, const char *s, size_t n)
{
	bool quoted = n <= QUOTED_MAX;
	size_t nul = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0)
			nul++;
		else if (c >= 0x80 || c == '\r' || c == '\n')
			quoted = false;
	}
	if (nul > 0)
		quoted = false;
	if (quoted) {
		if (!buf_putc(out, '"'))
			return false;
		for (size_t i = 0; i < n; i++) {
			if ((s[i] == '"' || s[i] == '\\') && !buf_putc(out, '\\'))
				return false;
			if (!buf_putc(out, s[i]))
				return false;
		}
		return buf_putc(out, '"');
	}
	/* NUL cannot be sent: each becomes U+FFFD (3 bytes), as Dovecot does */
	if (!buf_printf(out, "{%zu}\r\n", n + 2 * nul))
		return false;
	if (nul == 0)
		return buf_append(out, s, n);
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == 0 ? buf_puts(out, "\xEF\xBF\xBD") : buf_putc(out, s[i])))
			return false;
	return true;
}

bool imap_append_nstring(struct buf *out, const char *s)
{
	if (!s)
		return buf_puts(out, "NIL");
	return imap_append_string(out, s, strlen(s));
}

static bool put_field(const struct mime_header *h, const char *name, struct buf *out)
{
	const struct mime_field *f = mime_header_find(h, name, 0);
	if (!f)
		return buf_puts(out, "NIL");
	struct buf v = BUF_INIT(BUF_NOLIMIT);
	mime_field_value(h, f, &v);
	bool ok = imap_append_string(out, v.data ? v.data : "", v.len);
	buf_free(&v);
	return ok;
}

/* A mailbox without a domain ("To: root") gets the host MISSING_DOMAIN, as Dovecot sends: NIL would mean a group
 * and "" makes clients show "root@". As in Dovecot, a bare address's comment is its name ("u@h (Real Name)"), an
 * obsolete source route is the adl ("@a,@b"), and an empty group keeps its place among the mailboxes. */
static bool put_addrs(const struct mime_header *h, const char *name, struct buf *out)
{
	const struct mime_field *f = mime_header_find(h, name, 0);
	if (!f)
		return buf_puts(out, "NIL");
	struct buf v = BUF_INIT(BUF_NOLIMIT);
	mime_field_value(h, f, &v);
	struct addr_list l = ADDR_LIST_INIT;
	(void)addr_parse_header(buf_cstr(&v), v.len,
	                        ADDR_F_SKIP_BAD | ADDR_F_SMTPUTF8 | ADDR_F_EMPTY_GROUPS | ADDR_F_COMMENT_NAMES, &l, NULL);
	bool ok = true;
	if (l.n == 0) {
		ok = buf_puts(out, "NIL");
	} else {
		ok = buf_putc(out, '(');
		const char *group = NULL;
		for (size_t i = 0; i < l.n && ok; i++) {
			const struct addr_mailbox *mb = &l.v[i];
			if (group && (!mb->group || strcmp(group, mb->group) != 0 || mb->empty_group)) {
				ok = buf_puts(out, "(NIL NIL NIL NIL)");
				group = NULL;
			}
			if (mb->group && !group) {
				group = mb->group;
				ok = ok && buf_puts(out, "(NIL NIL ") && imap_append_nstring(out, group) && buf_puts(out, " NIL)");
			}
			if (mb->empty_group)
				continue;	/* its start and end only */
			ok = ok && buf_putc(out, '(') && imap_append_nstring(out, mb->display) && buf_putc(out, ' ') &&
			     imap_append_nstring(out, mb->route) && buf_putc(out, ' ') &&
			     imap_append_nstring(out, mb->a.local ? mb->a.local : "") && buf_putc(out, ' ') &&
			     imap_append_nstring(out, mb->nodomain ? "MISSING_DOMAIN" : mb->a.domain) && buf_putc(out, ')');
		}
		if (group)
			ok = ok && buf_puts(out, "(NIL NIL NIL NIL)");
		ok = ok && buf_putc(out, ')');
	}
	addr_list_free(&l);
	buf_free(&v);
	return ok;
}

bool imap_envelope(const struct mime_header *h, struct buf *out)
{
	const char *from = "from";
	const char *sender = mime_header_find(h, "sender", 0) ? "sender" : from;
	const char *reply = mime_header_find(h, "reply-to", 0) ? "reply-to" : from;
	return buf_putc(out, '(') && put_field(h, "date", out) && buf_putc(out, ' ') &&
	       put_field(h, "subject", out) && buf_putc(out, ' ') && put_addrs(h, from, out) && buf_putc(out, ' ') &&
	       put_addrs(h, sender, out) && buf_putc(out, ' ') && put_addrs(h, reply, out) && buf_putc(out, ' ') &&
	       put_addrs(h, "to", out) && buf_putc(out, ' ') && put_addrs(h, "cc", out) && buf_putc(out, ' ') &&
	       put_addrs(h, "bcc", out) && buf_putc(out, ' ') && put_field(h, "in-reply-to", out) &&
	       buf_putc(out, ' ') && put_field(h, "message-id", out) && buf_putc(out, ')');
}
