/* Content-Type / Content-Disposition values: type/subtype and parameters, with RFC 2231 continuations and
 * charsets reassembled. Lenient like deployed servers: an unquoted value runs to the next ';' (real boundaries
 * contain '=' and '/'), comments are dropped, junk between parameters is skipped. See mime.h. */
#include "mime.h"
#include "mime_codec.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "str.h"

struct raw_param {
	char *base;        /* lowercased name without the section suffix */
	long section;      /* -1: not sectioned */
	bool ext;          /* value is percent-encoded (name ended in '*') */
	char *value;
	size_t idx;        /* order as written: the first of duplicates wins */
};

static bool is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool is_token_char(char c)
{
	return (unsigned char)c > 32 && (unsigned char)c < 127 && !is_tspecial(c);
}

struct lex {
	const char *s;
	size_t len, pos;
};

static void skip_cfws(struct lex *L)
{
	int depth = 0;
	while (L->pos < L->len) {
		char c = L->s[L->pos];
		if (c == '(') {
			depth++;
		} else if (depth > 0) {
			if (c == ')')
				depth--;
			else if (c == '\\')
				L->pos++;
		} else if (!(c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
			break;
		}
		L->pos++;
	}
	if (L->pos > L->len)
		L->pos = L->len;
}

static size_t token(struct lex *L)
{
	size_t st = L->pos;
	while (L->pos < L->len && is_token_char(L->s[L->pos]))
		L->pos++;
	return L->pos - st;
}

/* A quoted-string (L->pos at the opening quote) decoded into b. */
static void quoted(struct lex *L, struct buf *b)
{
	L->pos++;
	while (L->pos < L->len) {
		char c = L->s[L->pos++];
		if (c == '"')
			return;
		if (c == '\\' && L->pos < L->len)
			c = L->s[L->pos++];
		if (c == '\r' || c == '\n')
			continue;   /* folding inside a quoted-string */
		buf_putc(b, c);
	}
}

static int raw_cmp(const void *a, const void *b)
{
	const struct raw_param *x = a, *y = b;
	int c = strcasecmp(x->base, y->base);
	if (c)
		return c;
	if (x->section != y->section)
		return (x->section > y->section) - (x->section < y->section);
	return (x->idx > y->idx) - (x->idx < y->idx);
}

static bool attr_char(unsigned char c)
{
	return c > 32 && c < 127 && !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

static void add_param(struct mime_ctype *ct, char *name, char *value)
{
	for (size_t i = 0; i < ct->nparams; i++)
		if (strcasecmp(ct->params[i].name, name) == 0) {
			free(name);
			free(value);
			return;
		}
	ct->params = xreallocarray(ct->params, ct->nparams + 1, sizeof(*ct->params));
	ct->params[ct->nparams].name = name;
	ct->params[ct->nparams].value = value;
	ct->nparams++;
}

/* Join the sections of one parameter (raw[from..to), sorted by section) into ct. */
static void assemble(struct mime_ctype *ct, struct raw_param *raw, size_t from, size_t to)
{
	if (raw[from].section < 0) {
		bool ext = raw[from].ext;
		struct buf n = BUF_INIT(BUF_NOLIMIT);
		buf_puts(&n, raw[from].base);
		if (ext)
			buf_putc(&n, '*');
		add_param(ct, buf_steal(&n, NULL), xstrdup(raw[from].value));
		return;
	}
	bool any_ext = false;
	size_t end = from;
	for (long want = 0; end < to && raw[end].section == want; end++, want++)
		any_ext |= raw[end].ext;
	if (end == from)
		return;   /* no section 0: nothing usable */
	struct buf v = BUF_INIT(MIME_MAX_VALUE);
	if (any_ext && !raw[from].ext)
		buf_puts(&v, "''");
	for (size_t i = from; i < end; i++) {
		if (!any_ext || raw[i].ext) {
			buf_puts(&v, raw[i].value);
			continue;
		}
		for (const unsigned char *p = (const unsigned char *)raw[i].value; *p; p++)
			if (attr_char(*p))
				buf_putc(&v, *p);
			else
				buf_printf(&v, "%%%02X", *p);
	}
	struct buf n = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&n, raw[from].base);
	if (any_ext)
		buf_putc(&n, '*');
	buf_putc(&v, '\0');
	v.len--;
	add_param(ct, buf_steal(&n, NULL), buf_steal(&v, NULL));
}

void mime_ctype_parse(const char *s, size_t len, bool with_subtype, struct mime_ctype *ct)
{
	memset(ct, 0, sizeof(*ct));
	if (len > MIME_MAX_VALUE)
		len = MIME_MAX_VALUE;
	struct lex L = { s, len, 0 };
	skip_cfws(&L);
	size_t st = L.pos, n = token(&L);
	if (n == 0)
		return;
	char *type = xstrndup(s + st, n);
	char *sub = NULL;
	if (with_subtype) {
		skip_cfws(&L);
		if (L.pos >= L.len || s[L.pos] != '/') {
			free(type);
			return;
		}
		L.pos++;
		skip_cfws(&L);
		st = L.pos;
		n = token(&L);
		if (n == 0) {
			free(type);
			return;
		}
		sub = xstrndup(s + st, n);
	}
	ct->type = type;
	ct->subtype = sub;

	struct raw_param *raw = NULL;
	size_t nraw = 0;
	while (L.pos < L.len && nraw < MIME_MAX_PARAMS) {
		/* skip to the next ';' */
		while (L.pos < L.len && s[L.pos] != ';') {
			if (s[L.pos] == '"') {
				struct buf junk = BUF_INIT(BUF_NOLIMIT);
				quoted(&L, &junk);
				buf_free(&junk);
			} else {
				L.pos++;
			}
		}
		if (L.pos >= L.len)
			break;
		L.pos++;
		skip_cfws(&L);
		st = L.pos;
		while (L.pos < L.len && (is_token_char(s[L.pos]) || s[L.pos] == '*'))
			L.pos++;
		size_t an = L.pos - st;
		skip_cfws(&L);
		if (an == 0 || L.pos >= L.len || s[L.pos] != '=')
			continue;
		L.pos++;
		skip_cfws(&L);
		struct buf val = BUF_INIT(MIME_MAX_VALUE);
		if (L.pos < L.len && s[L.pos] == '"') {
			quoted(&L, &val);
		} else {
			size_t vs = L.pos;
			while (L.pos < L.len && s[L.pos] != ';' && s[L.pos] != '"' && s[L.pos] != '(' &&
			       s[L.pos] != '\r' && s[L.pos] != '\n')
				L.pos++;
			size_t ve = L.pos;
			while (ve > vs && (s[ve - 1] == ' ' || s[ve - 1] == '\t'))
				ve--;
			buf_append(&val, s + vs, ve - vs);
		}
		buf_putc(&val, '\0');
		val.len--;
		/* name, name*, name*N, name*N* */
		struct raw_param rp = { NULL, -1, false, NULL, 0 };
		size_t bn = an;
		const char *a = s + st;
		if (bn > 0 && a[bn - 1] == '*') {
			rp.ext = true;
			bn--;
		}
		size_t star = bn;
		while (star > 0 && a[star - 1] != '*')
			star--;
		if (star > 0) {
			uint64_t sec;
			if (str_to_u64n(a + star, bn - star, 999, &sec) &&
			    (bn - star == 1 || a[star] != '0')) {
				rp.section = (long)sec;
				bn = star - 1;
			}
		}
		if (bn == 0) {
			buf_free(&val);
			continue;
		}
		rp.base = xstrndup(a, bn);
		rp.value = buf_steal(&val, NULL);
		raw = xreallocarray(raw, nraw + 1, sizeof(*raw));
		raw[nraw++] = rp;
	}
	/* parameters come out in the order their names first appear; sections are joined in number order */
	if (nraw > 0) {
		char **names = xcalloc(nraw, sizeof(*names));
		size_t nnames = 0;
		for (size_t i = 0; i < nraw; i++) {
			raw[i].idx = i;
			size_t k;
			for (k = 0; k < nnames; k++)
				if (strcasecmp(names[k], raw[i].base) == 0)
					break;
			if (k == nnames)
				names[nnames++] = raw[i].base;
		}
		qsort(raw, nraw, sizeof(*raw), raw_cmp);
		/* plain parameters first, then the RFC 2231 ones, each in order of appearance (as Dovecot sends them) */
		for (int pass = 0; pass < 2; pass++) {
			for (size_t k = 0; k < nnames; k++) {
				for (size_t i = 0; i < nraw;) {
					size_t j = i + 1;
					while (j < nraw && strcasecmp(raw[j].base, raw[i].base) == 0)
						j++;
					if (strcasecmp(raw[i].base, names[k]) == 0) {
						size_t p = i;
						for (; p < j && raw[p].section < 0; p++)
							if (raw[p].ext == (pass == 1))
								assemble(ct, raw, p, p + 1);
						if (p < j && pass == 1)
							assemble(ct, raw, p, j);
					}
					i = j;
				}
			}
		}
		free(names);
		for (size_t i = 0; i < nraw; i++) {
			free(raw[i].base);
			free(raw[i].value);
		}
		free(raw);
	}
}

void mime_ctype_free(struct mime_ctype *ct)
{
	free(ct->type);
	free(ct->subtype);
	for (size_t i = 0; i < ct->nparams; i++) {
		free(ct->params[i].name);
		free(ct->params[i].value);
	}
	free(ct->params);
	memset(ct, 0, sizeof(*ct));
}

const struct mime_param *mime_ctype_find(const struct mime_ctype *ct, const char *name)
{
	for (size_t i = 0; i < ct->nparams; i++)
		if (strcasecmp(ct->params[i].name, name) == 0)
			return &ct->params[i];
	return NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *mime_ctype_param(const struct mime_ctype *ct, const char *name)
{
	struct buf n = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&n, name);
	buf_putc(&n, '*');
	const struct mime_param *p = mime_ctype_find(ct, buf_cstr(&n));
	buf_free(&n);
	struct buf out = BUF_INIT(MIME_MAX_VALUE * 4);
	if (p) {
		const char *v = p->value;
		const char *q1 = strchr(v, '\'');
		const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
		char *charset = q1 ? xstrndup(v, (size_t)(q1 - v)) : xstrdup("us-ascii");
		const char *text = q2 ? q2 + 1 : v;
		struct buf raw = BUF_INIT(MIME_MAX_VALUE);
		for (size_t i = 0; text[i]; i++) {
			int h, l;
			if (text[i] == '%' && (h = hexval(text[i + 1])) >= 0 && (l = hexval(text[i + 2])) >= 0) {
				buf_putc(&raw, h * 16 + l);
				i += 2;
			} else {
				buf_putc(&raw, text[i]);
			}
		}
		mime_charset_to_utf8(*charset ? charset : "us-ascii", raw.data ? raw.data : "", raw.len, &out);
		buf_free(&raw);
		free(charset);
	} else {
		p = mime_ctype_find(ct, name);
		if (!p)
			return NULL;
		/* some clients put RFC 2047 words into parameters (filename="=?utf-8?...") */
		mime_words_decode(p->value, strlen(p->value), &out);
	}
	buf_putc(&out, '\0');
	out.len--;
	return buf_steal(&out, NULL);
}
