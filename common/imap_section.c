/* BODY[section] addressing (RFC 3501 §6.4.5): parse the section text and map it onto the MIME tree. A part
 * number selects a child of a multipart; a non-multipart message has one part, 1, its body; a number after a
 * message/rfc822 part descends into the encapsulated message. See imap_body.h. */
#include "imap_body.h"

#include <string.h>

#include "alloc.h"
#include "str.h"

static bool kw(const char *s, size_t n, size_t *i, const char *word)
{
	size_t l = strlen(word);
	if (*i + l <= n && str_eqn_ci(s + *i, word, l)) {
		*i += l;
		return true;
	}
	return false;
}

void imap_section_free(struct imap_section *sec)
{
	for (size_t i = 0; i < sec->nfields; i++)
		free(sec->fields[i]);
	free(sec->fields);
	sec->fields = NULL;
	sec->nfields = 0;
}

/* "(" astring *(SP astring) ")": field names are atoms or quoted strings. */
static bool parse_fields(const char *s, size_t n, size_t *i, struct imap_section *sec)
{
	if (*i >= n || s[*i] != ' ')
		return false;
	(*i)++;
	if (*i >= n || s[*i] != '(')
		return false;
	(*i)++;
	for (;;) {
		if (*i >= n)
			return false;
		if (s[*i] == ')' && sec->nfields > 0) {
			(*i)++;
			return true;
		}
		if (sec->nfields > 0) {
			if (s[*i] != ' ')
				return false;
			(*i)++;
		}
		if (sec->nfields >= IMAP_SECTION_MAX_FIELDS)
			return false;
		struct buf b = BUF_INIT(1000);
		if (*i < n && s[*i] == '"') {
			(*i)++;
			while (*i < n && s[*i] != '"') {
				if (s[*i] == '\\' && *i + 1 < n)
					(*i)++;
				buf_putc(&b, s[(*i)++]);
			}
			if (*i >= n) {
				buf_free(&b);
				return false;
			}
			(*i)++;
		} else {
			/* a field name: printable ASCII except ':' (RFC 5322 ftext) and IMAP specials */
			while (*i < n && (unsigned char)s[*i] > 32 && (unsigned char)s[*i] < 127 &&
			       !strchr("():\"{%*\\]", s[*i]))
				buf_putc(&b, s[(*i)++]);
		}
		if (b.len == 0 || strchr(buf_cstr(&b), ':') || strlen(buf_cstr(&b)) != b.len) {
			buf_free(&b);
			return false;
		}
		sec->fields = xreallocarray(sec->fields, sec->nfields + 1, sizeof(*sec->fields));
		sec->fields[sec->nfields++] = buf_steal(&b, NULL);
	}
}

bool imap_section_parse(const char *s, size_t n, struct imap_section *sec)
{
	memset(sec, 0, sizeof(*sec));
	sec->kind = IMAP_SECTION_ALL;
	size_t i = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9') {
		size_t st = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		uint64_t v;
		if (s[st] == '0' || !str_to_u64n(s + st, i - st, 1000000, &v) || sec->npath >= IMAP_SECTION_MAX_PATH)
			return false;
		sec->path[sec->npath++] = (unsigned)v;
		if (i == n)
			return true;
		if (s[i] != '.')
			return false;
		i++;
		if (i == n)
			return false;   /* trailing dot */
	}
	if (i == n)
		return true;
	bool ok = false;
	if (kw(s, n, &i, "HEADER.FIELDS.NOT")) {
		sec->kind = IMAP_SECTION_HEADER_FIELDS_NOT;
		ok = parse_fields(s, n, &i, sec);
	} else if (kw(s, n, &i, "HEADER.FIELDS")) {
		sec->kind = IMAP_SECTION_HEADER_FIELDS;
		ok = parse_fields(s, n, &i, sec);
	} else if (kw(s, n, &i, "HEADER")) {
		sec->kind = IMAP_SECTION_HEADER;
		ok = true;
	} else if (kw(s, n, &i, "TEXT")) {
		sec->kind = IMAP_SECTION_TEXT;
		ok = true;
	} else if (sec->npath > 0 && kw(s, n, &i, "MIME")) {
		sec->kind = IMAP_SECTION_MIME;
		ok = true;
	}
	if (!ok || i != n) {
		imap_section_free(sec);
		return false;
	}
	return true;
}

static const struct mime_part *nth_child(const struct mime_part *p, unsigned n)
{
	const struct mime_part *c = p->children;
	while (c && --n > 0)
		c = c->next;
	return c;
}

/* The parts of a message node: its children when multipart, else itself as part 1. */
static const struct mime_part *message_part(const struct mime_part *msg, unsigned n)
{
	if (msg->flags & MIME_PART_MULTIPART)
		return nth_child(msg, n);
	return n == 1 ? msg : NULL;
}

static bool field_wanted(const struct imap_section *sec, const struct mime_header *h, const struct mime_field *f)
{
	for (size_t i = 0; i < sec->nfields; i++)
		if (mime_field_is(h, f, sec->fields[i]))
			return true;
	return false;
}

static bool header_has_blank_line(const struct mime_message *m, const struct mime_part *msg)
{
	const char *h = m->data + msg->hdr_off;
	size_t n = msg->hdr_size;

	if (n && h[n - 1] == '\n')
		n--;
	else
		return false;
	if (n && h[n - 1] == '\r')
		n--;
	return n == 0 || h[n - 1] == '\n';
}

bool imap_section_fetch(const struct mime_message *m, const struct imap_section *sec,
                        struct imap_section_data *out)
{
	memset(out, 0, sizeof(*out));
	const struct mime_part *part = NULL;     /* selected part, NULL: the whole message */
	for (size_t i = 0; i < sec->npath; i++) {
		const struct mime_part *next;
		if (!part)
			next = message_part(m->root, sec->path[i]);
		else if (part->flags & MIME_PART_MULTIPART)
			next = nth_child(part, sec->path[i]);
		else if ((part->flags & MIME_PART_MESSAGE) && part->children)
			next = message_part(part->children, sec->path[i]);
		else
			next = NULL;
		if (!next)
			return false;
		part = next;
	}
	const struct mime_part *msg = NULL;      /* the message HEADER/TEXT refer to */
	if (sec->kind == IMAP_SECTION_HEADER || sec->kind == IMAP_SECTION_TEXT ||
	    sec->kind == IMAP_SECTION_HEADER_FIELDS || sec->kind == IMAP_SECTION_HEADER_FIELDS_NOT) {
		if (!part)
			msg = m->root;
		else if ((part->flags & MIME_PART_MESSAGE) && part->children)
			msg = part->children;
		else
			return false;
	}
	switch (sec->kind) {
	case IMAP_SECTION_ALL:
		if (!part) {
			out->off = 0;
			out->len = m->len;
		} else {
			out->off = part->body_off;
			out->len = part->body_size;
		}
		return true;
	case IMAP_SECTION_MIME:
		out->off = part->hdr_off;
		out->len = part->hdr_size;
		return true;
	case IMAP_SECTION_HEADER:
		out->off = msg->hdr_off;
		out->len = msg->hdr_size;
		return true;
	case IMAP_SECTION_TEXT:
		out->off = msg->body_off;
		out->len = msg->body_size;
		return true;
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT: {
		struct mime_header h = MIME_HEADER_INIT;
		mime_part_header(m, msg, &h);
		out->built = true;
		buf_init(&out->data, BUF_NOLIMIT);
		bool want = sec->kind == IMAP_SECTION_HEADER_FIELDS;
		for (size_t i = 0; i < h.n; i++) {
			const struct mime_field *f = &h.v[i];
			if (field_wanted(sec, &h, f) != want)
				continue;
			buf_append(&out->data, h.base + f->off, f->len);
			buf_putc(&out->data, '\n');
		}
		/* the blank line that ends the header, when the message has one (a header-only message may not:
		 * then neither does HEADER, and the two must agree) */
		if (header_has_blank_line(m, msg))
			buf_putc(&out->data, '\n');
		mime_header_free(&h);
		return true;
	}
	}
	return false;
}

void imap_section_data_free(struct imap_section_data *d)
{
	if (d->built)
		buf_free(&d->data);
	d->built = false;
}
