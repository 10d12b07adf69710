/* BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) from the MIME tree. Choices where the RFC leaves room follow what
 * deployed servers (Dovecot) send, since clients are tested against them: a text part without a charset gets
 * ("charset" "us-ascii"), an unknown or invalid transfer encoding reads "7bit", a multipart with no parts gets
 * one empty text/plain part (the grammar needs at least one). See imap_body.h. */
#include "imap_body.h"

#include <string.h>

#include "str.h"

static const char empty_part[] = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";

static bool put_params(const struct mime_ctype *ct, bool add_charset, struct buf *out)
{
	bool have_charset = mime_ctype_find(ct, "charset") != NULL;
	if (ct->nparams == 0 && !(add_charset && !have_charset))
		return buf_puts(out, "NIL");
	bool ok = buf_putc(out, '(');
	bool first = true;
	if (add_charset && !have_charset) {
		ok = ok && buf_puts(out, "\"charset\" \"us-ascii\"");
		first = false;
	}
	for (size_t i = 0; i < ct->nparams && ok; i++) {
		if (!first)
			ok = buf_putc(out, ' ');
		first = false;
		ok = ok && imap_append_nstring(out, ct->params[i].name) && buf_putc(out, ' ') &&
		     imap_append_nstring(out, ct->params[i].value);
	}
	return ok && buf_putc(out, ')');
}

static bool put_disposition(const struct mime_part *p, struct buf *out)
{
	if (!p->disp.type)
		return buf_puts(out, "NIL");
	return buf_putc(out, '(') && imap_append_nstring(out, p->disp.type) && buf_putc(out, ' ') &&
	       put_params(&p->disp, false, out) && buf_putc(out, ')');
}

/* Content-Language "en, fi" -> ("en" "fi") */
static bool put_language(const struct mime_part *p, struct buf *out)
{
	if (!p->language)
		return buf_puts(out, "NIL");
	const char *s = p->language;
	bool ok = buf_putc(out, '(');
	size_t count = 0;
	while (*s && ok) {
		while (*s == ',' || *s == ' ' || *s == '\t')
			s++;
		size_t n = strcspn(s, ", \t(");
		if (*s == '(') {          /* a comment: skip it */
			const char *e = strchr(s, ')');
			s = e ? e + 1 : s + strlen(s);
			continue;
		}
		if (n == 0)
			break;
		if (count++ > 0)
			ok = buf_putc(out, ' ');
		ok = ok && imap_append_string(out, s, n);
		s += n;
	}
	if (count == 0) {
		out->len--;   /* drop the '(' */
		return buf_puts(out, "NIL");
	}
	return ok && buf_putc(out, ')');
}

static bool encoding_known(const char *e)
{
	static const char *const known[] = { "7bit", "8bit", "binary", "base64", "quoted-printable" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (str_eq_ci(e, known[i]))
			return true;
	return str_has_prefix_ci(e, "x-");
}

static bool put_part(const struct mime_message *m, const struct mime_part *p, bool ext, struct buf *out);

static bool put_multipart(const struct mime_message *m, const struct mime_part *p, bool ext, struct buf *out)
{
	bool ok = true;
	if (!p->children) {
		ok = buf_putc(out, '(') && buf_append(out, empty_part + 1, sizeof(empty_part) - 3) &&
		     (!ext || buf_puts(out, " NIL NIL NIL NIL")) && buf_putc(out, ')');
	}
	for (const struct mime_part *c = p->children; c && ok; c = c->next)
		ok = buf_putc(out, '(') && put_part(m, c, ext, out) && buf_putc(out, ')');
	ok = ok && buf_putc(out, ' ') && imap_append_nstring(out, mime_part_subtype(p));
	if (ext && ok)
		ok = buf_putc(out, ' ') && put_params(&p->ct, false, out) && buf_putc(out, ' ') &&
		     put_disposition(p, out) && buf_putc(out, ' ') && put_language(p, out) && buf_putc(out, ' ') &&
		     imap_append_nstring(out, p->location);
	return ok;
}

static bool put_part(const struct mime_message *m, const struct mime_part *p, bool ext, struct buf *out)
{
	if (mime_part_is(p, "multipart", NULL))
		return put_multipart(m, p, ext, out);
	bool text = mime_part_is(p, "text", NULL);
	bool message = mime_part_is(p, "message", "rfc822") || mime_part_is(p, "message", "global");
	const char *enc = p->encoding && encoding_known(p->encoding) ? p->encoding : "7bit";
	bool ok = imap_append_nstring(out, mime_part_type(p)) && buf_putc(out, ' ') &&
	          imap_append_nstring(out, mime_part_subtype(p)) && buf_putc(out, ' ') &&
	          put_params(&p->ct, text, out) && buf_putc(out, ' ') && imap_append_nstring(out, p->id) &&
	          buf_putc(out, ' ') && imap_append_nstring(out, p->description) && buf_putc(out, ' ') &&
	          imap_append_nstring(out, enc) && buf_printf(out, " %zu", p->body_size_crlf);
	if (!ok)
		return false;
	if (text) {
		ok = buf_printf(out, " %zu", p->body_lines);
	} else if (message) {
		const struct mime_part *c = (p->flags & MIME_PART_MESSAGE) ? p->children : NULL;
		if (c) {
			struct mime_header h = MIME_HEADER_INIT;
			mime_part_header(m, c, &h);
			ok = buf_putc(out, ' ') && imap_envelope(&h, out) && buf_puts(out, " (") &&
			     put_part(m, c, ext, out) && buf_putc(out, ')');
			mime_header_free(&h);
		} else {
			ok = buf_puts(out, " (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ") && buf_puts(out, empty_part);
		}
		ok = ok && buf_printf(out, " %zu", p->body_lines);
	}
	if (ext && ok)
		ok = buf_putc(out, ' ') && imap_append_nstring(out, p->md5) && buf_putc(out, ' ') &&
		     put_disposition(p, out) && buf_putc(out, ' ') && put_language(p, out) && buf_putc(out, ' ') &&
		     imap_append_nstring(out, p->location);
	return ok;
}

bool imap_bodystructure_part(const struct mime_message *m, const struct mime_part *p, bool extended,
                             struct buf *out)
{
	return put_part(m, p, extended, out);
}

bool imap_bodystructure(const struct mime_message *m, bool extended, struct buf *out)
{
	return put_part(m, m->root, extended, out);
}
