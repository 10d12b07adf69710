/* The message text on its way from stdin to the submit socket: the classic input rules (CRLF or LF lines, a
 * lone "." ending input unless -i), the header section (-t recipients, Bcc removed, From/Date/Message-ID
 * added when missing) and the SMTP DATA encoding. Everything here is pure, for unit tests and the fuzzer. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "alloc.h"
#include "mime.h"
#include "sendmail.h"
#include "str.h"

void sendmail_filter_init(struct sendmail_filter *f, bool ignore_dots)
{
	memset(f, 0, sizeof(*f));
	f->ignore_dots = ignore_dots;
	f->bol = true;
}

static bool filter_char(struct sendmail_filter *f, char c, struct buf *out)
{
	if (c == '\n') {
		if (f->dot && !f->ignore_dots) {
			f->done = true;
			return true;
		}
		if (f->dot && !buf_putc(out, '.'))
			return false;
		f->dot = false;
		f->bol = true;
		return buf_putc(out, '\n');
	}
	if (f->dot) {
		f->dot = false;
		if (!buf_putc(out, '.'))
			return false;
	} else if (f->bol && c == '.' && !f->ignore_dots) {
		f->dot = true;
		f->bol = false;
		return true;
	}
	f->bol = false;
	return buf_putc(out, c);
}

bool sendmail_filter(struct sendmail_filter *f, const char *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n && !f->done; i++) {
		char c = p[i];
		if (f->cr) {
			f->cr = false;
			/* CR LF is a line end; a CR not followed by LF is kept as text */
			if (c != '\n' && !filter_char(f, '\r', out))
				return false;
		}
		if (c == '\r') {
			f->cr = true;
			continue;
		}
		if (!filter_char(f, c, out))
			return false;
	}
	return true;
}

bool sendmail_filter_end(struct sendmail_filter *f, struct buf *out)
{
	if (f->done)
		return true;
	if (f->cr) {
		f->cr = false;
		if (!filter_char(f, '\r', out))
			return false;
	}
	if (f->dot) {
		f->dot = false;
		return buf_putc(out, '.');
	}
	return true;
}

bool sendmail_smtp_encode(bool *bol, const char *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		bool ok;
		if (p[i] == '\n') {
			ok = buf_append(out, "\r\n", 2);
			*bol = true;
			if (!ok)
				return false;
			continue;
		}
		if (*bol && p[i] == '.' && !buf_putc(out, '.'))
			return false;
		*bol = false;
		if (!buf_putc(out, p[i]))
			return false;
	}
	return true;
}

bool sendmail_smtp_encode_end(bool *bol, struct buf *out)
{
	if (!*bol && !buf_append(out, "\r\n", 2))
		return false;
	*bol = true;
	return buf_append(out, ".\r\n", 3);
}

/* Length of a field name at p ("Subject" in "Subject: x"), or 0 when the line is not a header field.
 * RFC 5322 ftext is printable ASCII except ":"; obsolete syntax allows white space before the colon. */
static size_t field_name_len(const char *p, size_t len)
{
	size_t i = 0, n;
	while (i < len && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127 && p[i] != ':')
		i++;
	n = i;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return (n > 0 && i < len && p[i] == ':') ? n : 0;
}

size_t sendmail_header_end(const char *p, size_t len, bool eof, bool *blank)
{
	size_t off = 0;

	*blank = false;
	while (off < len) {
		const char *nl = memchr(p + off, '\n', len - off);
		size_t linelen = nl ? (size_t)(nl - (p + off)) : len - off;
		if (!nl && !eof)
			return (size_t)-1;	/* an incomplete line decides nothing yet */
		if (linelen == 0) {
			*blank = true;
			return off;
		}
		if (!(off > 0 && (p[off] == ' ' || p[off] == '\t')) && field_name_len(p + off, linelen) == 0)
			return off;
		off += linelen + (nl ? 1 : 0);
	}
	return eof ? off : (size_t)-1;
}

static bool name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && str_eqn_ci(p, name, n);
}

void sendmail_collect(struct sendmail_headers *h, const char *v, size_t n)
{
	struct addr_list l = ADDR_LIST_INIT;

	/* SMTPUTF8 so that UTF-8 addresses are passed on for smtpd to judge, not silently dropped */
	(void)addr_parse_header(v, n, ADDR_F_SKIP_BAD | ADDR_F_SMTPUTF8, &l, NULL);
	h->bad += l.bad;
	for (size_t i = 0; i < l.n; i++) {
		const struct addr_mailbox *mb = &l.v[i];
		struct buf a = BUF_INIT(BUF_NOLIMIT);
		if (mb->empty_group || h->nrcpts >= SENDMAIL_MAX_RCPTS)
			continue;
		if (mb->nodomain) {
			/* the caller qualifies "user" with myorigin, like Postfix's cleanup does */
			size_t cl = strlen(mb->a.canon);
			buf_append(&a, mb->a.canon, cl > 0 && mb->a.canon[cl - 1] == '@' ? cl - 1 : cl);
			buf_putc(&a, '@');
		} else {
			buf_puts(&a, mb->a.canon);
		}
		h->rcpts = xreallocarray(h->rcpts, h->nrcpts + 2, sizeof(*h->rcpts));
		h->rcpts[h->nrcpts++] = buf_steal(&a, NULL);
		h->rcpts[h->nrcpts] = NULL;
	}
	addr_list_free(&l);
}

void sendmail_headers_scan(const char *p, size_t len, bool extract, struct sendmail_headers *h, struct buf *out)
{
	size_t off = 0;
	struct sendmail_headers resent = { 0 };
	bool has_resent = false;

	memset(h, 0, sizeof(*h));
	while (off < len) {
		/* one field: its first line and every continuation line */
		size_t end = off, nlen;
		do {
			const char *nl = memchr(p + end, '\n', len - end);
			end = nl ? (size_t)(nl - p) + 1 : len;
		} while (end < len && (p[end] == ' ' || p[end] == '\t'));
		nlen = field_name_len(p + off, end - off);
		if (nlen > 0) {
			const char *v = memchr(p + off, ':', end - off) + 1;
			size_t vlen = (size_t)(p + end - v);
			bool bcc = name_is(p + off, nlen, "bcc") || name_is(p + off, nlen, "resent-bcc");
			bool re = nlen > 7 && str_eqn_ci(p + off, "resent-", 7);
			has_resent |= re;
			if (extract && (bcc || name_is(p + off, nlen, re ? "resent-to" : "to") ||
			                name_is(p + off, nlen, re ? "resent-cc" : "cc")))
				sendmail_collect(re ? &resent : h, v, vlen);
			h->has_from |= name_is(p + off, nlen, "from");
			h->has_sender |= name_is(p + off, nlen, "sender");
			h->has_date |= name_is(p + off, nlen, "date");
			h->has_msgid |= name_is(p + off, nlen, "message-id");
			if (bcc) {
				off = end;
				continue;
			}
		}
		buf_append(out, p + off, end - off);
		off = end;
	}
	/* a resent message goes to its Resent- recipients only, as sendmail -t and Postfix do it */
	if (has_resent) {
		sendmail_headers_free(h);
		h->rcpts = resent.rcpts;
		h->nrcpts = resent.nrcpts;
		h->bad = resent.bad;
	} else {
		sendmail_headers_free(&resent);
	}
}

void sendmail_headers_free(struct sendmail_headers *h)
{
	for (size_t i = 0; i < h->nrcpts; i++)
		free(h->rcpts[i]);
	xfree(&h->rcpts);
	h->nrcpts = 0;
}

/* A display name as a quoted-string when it is not plain atoms, so "Doe, John" stays one name. */
static void put_display(struct buf *out, const char *name)
{
	bool plain = *name != '\0';
	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == ' ' ||
		      strchr("!#$%&'*+-/=?^_`{|}~", *c) || (unsigned char)*c >= 128))
			plain = false;
	if (plain) {
		buf_puts(out, name);
		return;
	}
	buf_putc(out, '"');
	for (const char *c = name; *c; c++) {
		if (*c == '\r' || *c == '\n')
			continue;	/* a full name never starts a new header line */
		if (*c == '"' || *c == '\\')
			buf_putc(out, '\\');
		buf_putc(out, *c);
	}
	buf_putc(out, '"');
}

void sendmail_missing_headers(const struct sendmail_headers *h, const char *login, const char *fullname,
                              const char *origin, const char *hostname, long now, struct buf *out)
{
	time_t t = (time_t)now;
	struct tm tm;

	if (!h->has_from) {
		buf_puts(out, "From: ");
		if (fullname && *fullname) {
			put_display(out, fullname);
			buf_printf(out, " <%s@%s>\n", login, origin);
		} else {
			buf_printf(out, "%s@%s\n", login, origin);
		}
	}
	if (!h->has_date && localtime_r(&t, &tm)) {
		buf_puts(out, "Date: ");
		mime_date_format(t, (int)(tm.tm_gmtoff / 60), out);
		buf_putc(out, '\n');
	}
	if (!h->has_msgid) {
		struct tm g;
		uint32_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint32_t)random();	/* uniqueness still comes from the time and pid */
		if (!gmtime_r(&t, &g))
			memset(&g, 0, sizeof(g));
		buf_printf(out, "Message-ID: <%04d%02d%02d%02d%02d%02d.%ld.%08lx@%s>\n", g.tm_year + 1900, g.tm_mon + 1,
		           g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec, (long)getpid(), (unsigned long)rnd,
		           hostname);
	}
}
