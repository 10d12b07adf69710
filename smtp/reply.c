/* SMTP reply and EHLO capability parsing (see reply.h). */
#include <string.h>

#include "reply.h"
#include "str.h"

void smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->text, SMTP_REPLY_TEXT_MAX);
}

void smtp_reply_reset(struct smtp_reply *r)
{
	r->code = 0;
	r->dsn[0] = '\0';
	buf_reset(&r->text);
	r->nlines = 0;
	r->done = false;
}

void smtp_reply_free(struct smtp_reply *r)
{
	buf_free(&r->text);
	memset(r, 0, sizeof(*r));
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "X.Y.Z" with X the class of the reply code, Y and Z 1-3 digits, followed by a space or the end. */
static size_t enhanced_len(const char *p, size_t n, int code)
{
	size_t i = 0;
	if (n < 5 || p[0] != '0' + code / 100 || p[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < n && is_digit(p[i]) && i - start < 4)
			i++;
		if (i == start || i - start > 3)
			return 0;
		if (part == 0) {
			if (i >= n || p[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && p[i] != ' ')
		return 0;
	return i;
}

int smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, struct buf *err)
{
	if (r->done)
		smtp_reply_reset(r);
	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) || line[0] < '2' ||
	    line[0] > '5' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
		buf_puts(err, "malformed reply line: ");
		buf_append_printable(err, line, len, 100);
		return -1;
	}
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code) {
		buf_printf(err, "reply code changed from %d to %d within one reply", r->code, code);
		return -1;
	}
	if (++r->nlines > SMTP_REPLY_LINES_MAX) {
		buf_printf(err, "reply longer than %d lines", SMTP_REPLY_LINES_MAX);
		return -1;
	}
	r->code = code;
	const char *t = len > 4 ? line + 4 : "";
	size_t tn = len > 4 ? len - 4 : 0;
	if (r->nlines == 1) {
		size_t el = enhanced_len(t, tn, code);
		if (el && el < sizeof(r->dsn)) {
			memcpy(r->dsn, t, el);
			r->dsn[el] = '\0';
		}
	} else {
		buf_putc(&r->text, '\n');
	}
	/* a reply longer than the cap is kept cut: the code is what counts, the text is for people */
	size_t room = r->text.max - r->text.len;
	buf_append(&r->text, t, tn < room ? tn : room);
	r->done = len == 3 || line[3] == ' ';
	return r->done ? 1 : 0;
}

const char *smtp_reply_first_line(const struct smtp_reply *r, struct buf *out)
{
	const char *s = buf_cstr(&r->text);
	const char *nl = strchr(s, '\n');
	size_t n = nl ? (size_t)(nl - s) : strlen(s);
	buf_reset(out);
	buf_append_printable(out, s, n, 512);
	return buf_cstr(out);
}

void smtp_caps_init(struct smtp_caps *c)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->name, 256);
}

void smtp_caps_free(struct smtp_caps *c)
{
	buf_free(&c->name);
}

static bool word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && str_eqn_ci(p, w, n);
}

void smtp_caps_parse(struct smtp_caps *c, const struct smtp_reply *r)
{
	struct buf name = c->name;
	buf_reset(&name);
	memset(c, 0, sizeof(*c));
	c->name = name;
	const char *s = buf_cstr(&r->text), *end = s + r->text.len;
	for (size_t lineno = 0; s < end; lineno++) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		const char *w = s, *we = s;
		while (we < le && *we != ' ' && *we != '=')
			we++;
		size_t wn = (size_t)(we - w);
		if (lineno == 0) {
			buf_append_printable(&c->name, w, wn, 255);
		} else if (word_is(w, wn, "PIPELINING")) {
			c->pipelining = true;
		} else if (word_is(w, wn, "8BITMIME")) {
			c->eightbitmime = true;
		} else if (word_is(w, wn, "SMTPUTF8")) {
			c->smtputf8 = true;
		} else if (word_is(w, wn, "DSN")) {
			c->dsn = true;
		} else if (word_is(w, wn, "STARTTLS")) {
			c->starttls = true;
		} else if (word_is(w, wn, "CHUNKING")) {
			c->chunking = true;
		} else if (word_is(w, wn, "AUTH")) {
			/* "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN" */
			const char *v = we;
			while (v < le) {
				while (v < le && (*v == ' ' || *v == '='))
					v++;
				const char *ve = v;
				while (ve < le && *ve != ' ')
					ve++;
				if (word_is(v, (size_t)(ve - v), "PLAIN"))
					c->auth_plain = true;
				else if (word_is(v, (size_t)(ve - v), "LOGIN"))
					c->auth_login = true;
				v = ve;
			}
		} else if (word_is(w, wn, "SIZE")) {
			c->size_given = true;
			c->size = 0;
			const char *v = we;
			while (v < le && *v == ' ')
				v++;
			uint64_t n;
			if (v < le && str_to_u64n(v, (size_t)(le - v), UINT64_MAX, &n))
				c->size = n;
		}
		s = nl ? nl + 1 : end;
	}
}
