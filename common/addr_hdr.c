/* RFC 5322 §3.4 address lists in header fields, lenient (§4.4 obsolete syntax tolerated); see addr.h.
 * A small lexer turns the field into words and specials (dropping white space, folding and comments, with a
 * bounded comment depth); each list element is collected up to its delimiter and then interpreted, so a bad
 * element can be skipped without losing the rest of the list. */
#include "addr.h"
#include "addr_impl.h"

#include <string.h>

#include "alloc.h"
#include "buf.h"

/* Local parts in headers are not held to the 64-octet SMTP limit (real mail exceeds it), only to this cap. */
#define HDR_LOCAL_MAX 256

enum tok_type { T_END, T_ATOM, T_QSTR, T_LIT, T_SPECIAL };

struct tok {
	enum tok_type type;
	char c;          /* the character of a T_SPECIAL */
	char *text;      /* atom, decoded quoted-string, or literal with brackets; xmalloc'd */
	size_t len;
	size_t off;      /* offset in the field, for error reports */
	bool space;      /* white space or a comment came before it */
	char *comment;   /* the last comment before it (its content: escapes removed, line breaks dropped) */
};

struct lexer {
	const char *s;
	size_t len;
	size_t pos;
};

struct toks {
	struct tok *v;
	size_t n;
	size_t cap;
};

static void toks_clear(struct toks *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].text);
		free(t->v[i].comment);
	}
	t->n = 0;
}

static void tok_free(struct tok *t)
{
	xfree(&t->text);
	xfree(&t->comment);
}

static void toks_push(struct toks *t, struct tok *k)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
	}
	t->v[t->n++] = *k;
	k->text = NULL;
	k->comment = NULL;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip white space and (nested) comments. Iterative, with a depth cap, so hostile nesting costs nothing. The
 * last comment's content goes to *comment (Dovecot names a bare address by it: "u@h (Real Name)"). */
static enum addr_err skip_cfws(struct lexer *L, bool *space, char **comment)
{
	while (L->pos < L->len) {
		char c = L->s[L->pos];
		if (is_ws(c)) {
			L->pos++;
			*space = true;
			continue;
		}
		if (c != '(')
			break;
		unsigned depth = 0;
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		do {
			if (L->pos >= L->len) {
				buf_free(&b);
				return ADDR_ERR_UNTERMINATED;
			}
			c = L->s[L->pos++];
			if (c == '\0') {
				buf_free(&b);
				return ADDR_ERR_SYNTAX;
			}
			if (c == '\\') {
				if (L->pos >= L->len) {
					buf_free(&b);
					return ADDR_ERR_UNTERMINATED;
				}
				c = L->s[L->pos++];
			} else if (c == '(') {
				if (++depth > ADDR_COMMENT_DEPTH) {
					buf_free(&b);
					return ADDR_ERR_COMMENT_DEPTH;
				}
				if (depth == 1)
					continue;
			} else if (c == ')') {
				if (--depth == 0)
					continue;
			}
			if (c != '\r' && c != '\n')
				buf_putc(&b, c);
		} while (depth > 0);
		free(*comment);
		*comment = buf_steal(&b, NULL);
		*space = true;
	}
	return ADDR_OK;
}

static enum addr_err lex_one(struct lexer *L, struct tok *t)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	enum addr_err e;

	memset(t, 0, sizeof(*t));
	if ((e = skip_cfws(L, &t->space, &t->comment)) != ADDR_OK)
		return e;
	t->off = L->pos;
	if (L->pos >= L->len) {
		t->type = T_END;
		return ADDR_OK;
	}
	char c = L->s[L->pos];
	if (c == '\0')
		return ADDR_ERR_SYNTAX;
	if (c == '"') {
		L->pos++;
		for (;;) {
			if (L->pos >= L->len) {
				buf_free(&b);
				return ADDR_ERR_UNTERMINATED;
			}
			c = L->s[L->pos++];
			if (c == '"')
				break;
			if (c == '\\') {
				if (L->pos >= L->len) {
					buf_free(&b);
					return ADDR_ERR_UNTERMINATED;
				}
				c = L->s[L->pos++];
			} else if (c == '\r' || c == '\n') {
				continue;	/* unfolding: the CRLF of FWS is not part of the content */
			}
			if (c == '\0') {
				buf_free(&b);
				return ADDR_ERR_SYNTAX;
			}
			buf_putc(&b, c);
		}
		t->type = T_QSTR;
	} else if (c == '[') {
		size_t start = L->pos++;
		while (L->pos < L->len && L->s[L->pos] != ']') {
			if (L->s[L->pos] == '[' || L->s[L->pos] == '\0' || L->s[L->pos] == '\\')
				return ADDR_ERR_SYNTAX;
			L->pos++;
		}
		if (L->pos >= L->len)
			return ADDR_ERR_UNTERMINATED;
		L->pos++;
		buf_append(&b, L->s + start, L->pos - start);
		t->type = T_LIT;
	} else if (addr_is_atext((unsigned char)c) || (unsigned char)c >= 0x80) {
		size_t start = L->pos;
		while (L->pos < L->len &&
		       (addr_is_atext((unsigned char)L->s[L->pos]) || (unsigned char)L->s[L->pos] >= 0x80))
			L->pos++;
		buf_append(&b, L->s + start, L->pos - start);
		t->type = T_ATOM;
	} else {
		L->pos++;
		t->type = T_SPECIAL;
		t->c = c;
		buf_putc(&b, c);
	}
	t->text = buf_steal(&b, &t->len);
	return ADDR_OK;
}

/* The next token; on an error nothing is left allocated in t. */
static enum addr_err lex_next(struct lexer *L, struct tok *t)
{
	enum addr_err e = lex_one(L, t);
	if (e != ADDR_OK)
		tok_free(t);
	return e;
}

static bool tok_is(const struct tok *t, char c)
{
	return t->type == T_SPECIAL && t->c == c;
}

static bool tok_is_word(const struct tok *t)
{
	return t->type == T_ATOM || t->type == T_QSTR;
}

/* Display name or group name: words joined as written, white space collapsed to one space. The obsolete "."
 * in phrases ("John Q. Public") is kept; so is anything else odd, since display names are informational. */
static char *phrase_join(const struct toks *v, size_t from, size_t to)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	for (size_t i = from; i < to; i++) {
		if (v->v[i].space && b.len > 0)
			buf_putc(&b, ' ');
		buf_append(&b, v->v[i].text, v->v[i].len);
	}
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

/* addr-spec (or obs-local-part without a domain) from tokens v[from..to). */
static enum addr_err addr_spec(const struct toks *v, size_t from, size_t to, unsigned flags,
                               struct addr_mailbox *mb, size_t *err_off)
{
	struct buf local = BUF_INIT(HDR_LOCAL_MAX), dom = BUF_INIT(ADDR_DOMAIN_MAX);
	bool quoted = false;
	size_t i = from;
	enum addr_err e = ADDR_ERR_SYNTAX;

	if (i >= to) {
		*err_off = i < v->n ? v->v[i].off : 0;
		goto done;
	}
	for (;;) {
		const struct tok *t = &v->v[i];
		*err_off = t->off;
		if (!tok_is_word(t)) {
			e = ADDR_ERR_LOCAL_SYNTAX;
			goto done;
		}
		quoted |= t->type == T_QSTR;
		if (!buf_append(&local, t->text, t->len)) {
			e = ADDR_ERR_LOCAL_TOO_LONG;
			goto done;
		}
		if (++i >= to || !tok_is(&v->v[i], '.'))
			break;
		if (!buf_putc(&local, '.')) {
			e = ADDR_ERR_LOCAL_TOO_LONG;
			goto done;
		}
		if (++i >= to) {
			e = ADDR_ERR_LOCAL_SYNTAX;	/* trailing dot */
			goto done;
		}
	}
	/* obs-qtext lets control characters into quoted local parts; nothing downstream (SMTP envelopes, logs)
	 * can carry them, so they are refused here rather than passed on */
	for (size_t k = 0; k < local.len; k++) {
		if ((unsigned char)local.data[k] < 32 || local.data[k] == 127) {
			e = ADDR_ERR_LOCAL_SYNTAX;
			goto done;
		}
	}
	if ((e = addr_check_8bit(local.data, local.len, flags)) != ADDR_OK)
		goto done;
	if (i == to) {
		addr_build(&mb->a, buf_cstr(&local), local.len, "", 0, quoted);
		mb->nodomain = true;
		e = ADDR_OK;
		goto done;
	}
	*err_off = v->v[i].off;
	e = ADDR_ERR_LOCAL_SYNTAX;
	if (!tok_is(&v->v[i], '@'))
		goto done;	/* "john doe@x": two words without a dot */
	e = ADDR_ERR_DOMAIN_SYNTAX;
	if (++i >= to)
		goto done;
	*err_off = v->v[i].off;
	if (v->v[i].type == T_LIT) {
		buf_append(&dom, v->v[i].text, v->v[i].len);
		i++;
	} else {
		for (;;) {
			if (v->v[i].type != T_ATOM)
				goto done;
			if (!buf_append(&dom, v->v[i].text, v->v[i].len)) {
				e = ADDR_ERR_DOMAIN_TOO_LONG;
				goto done;
			}
			if (++i >= to || !tok_is(&v->v[i], '.'))
				break;
			if (!buf_putc(&dom, '.')) {
				e = ADDR_ERR_DOMAIN_TOO_LONG;
				goto done;
			}
			if (++i >= to)
				goto done;	/* trailing dot */
		}
	}
	if (i != to) {
		*err_off = v->v[i].off;
		e = ADDR_ERR_SYNTAX;
		goto done;
	}
	if ((e = addr_domain_check(buf_cstr(&dom), dom.len, flags)) != ADDR_OK)
		goto done;
	addr_build(&mb->a, buf_cstr(&local), local.len, buf_cstr(&dom), dom.len, quoted);
done:
	buf_free(&local);
	buf_free(&dom);
	return e;
}

static void list_push(struct addr_list *l, struct addr_mailbox *mb)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = *mb;
	memset(mb, 0, sizeof(*mb));
}

static void mailbox_free(struct addr_mailbox *mb)
{
	addr_free(&mb->a);
	xfree(&mb->display);
	xfree(&mb->group);
	xfree(&mb->route);
	mb->nodomain = false;
	mb->empty_group = false;
}

void addr_list_free(struct addr_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		mailbox_free(&l->v[i]);
	xfree(&l->v);
	l->n = l->cap = l->bad = l->groups = 0;
}

/* Collect tokens into v until one of the delimiters (not stored; returned in *delim). */
static enum addr_err collect(struct lexer *L, struct toks *v, const char *delims, struct tok *delim)
{
	enum addr_err e;
	for (;;) {
		if ((e = lex_next(L, delim)) != ADDR_OK)
			return e;
		if (delim->type == T_END || (delim->type == T_SPECIAL && strchr(delims, delim->c) != NULL))
			return ADDR_OK;
		toks_push(v, delim);
	}
}

/* One mailbox written as "[phrase] < [route] addr-spec >"; v holds the phrase, the lexer is past '<'. */
static enum addr_err angle_addr(struct lexer *L, struct toks *v, unsigned flags, struct addr_mailbox *mb,
                                size_t *err_off, bool *lexfail)
{
	struct tok t;
	size_t start = v->n, i;
	enum addr_err e;

	mb->display = phrase_join(v, 0, v->n);
	e = collect(L, v, ">", &t);
	tok_free(&t);
	if (e == ADDR_OK && t.type == T_END)
		e = ADDR_ERR_UNTERMINATED;
	if (e != ADDR_OK) {
		*err_off = L->pos;
		*lexfail = true;
		return e;
	}
	i = start;
	/* obs-route "@a,@b:" before the address: not used for delivery (RFC 5322 §4.4 says to ignore it), but kept
	 * as "@a,@b" for IMAP ENVELOPE's adl */
	if (i < v->n && tok_is(&v->v[i], '@')) {
		struct buf route = BUF_INIT(ADDR_PATH_MAX);
		for (; i < v->n && !tok_is(&v->v[i], ':'); i++) {
			if (tok_is(&v->v[i], ','))
				continue;
			if (tok_is(&v->v[i], '@') && route.len)
				buf_putc(&route, ',');
			buf_append(&route, v->v[i].text, v->v[i].len);
		}
		if (i == v->n) {
			buf_free(&route);
			*err_off = v->v[start].off;
			return ADDR_ERR_SYNTAX;
		}
		mb->route = buf_steal(&route, NULL);
		i++;
	}
	return addr_spec(v, i, v->n, flags, mb, err_off);
}

/* Close the current group; under ADDR_F_EMPTY_GROUPS an empty one becomes a marker entry so that consumers
 * which must show it (IMAP ENVELOPE) can. */
static void end_group(struct addr_list *out, char **group, size_t members, unsigned flags)
{
	if (*group != NULL && members == 0 && (flags & ADDR_F_EMPTY_GROUPS)) {
		struct addr_mailbox mb;
		memset(&mb, 0, sizeof(mb));
		addr_build(&mb.a, "", 0, "", 0, false);
		mb.a.canon[0] = '\0';	/* "" not "\"\"": there is no address */
		mb.group = *group;
		*group = NULL;
		mb.empty_group = true;
		list_push(out, &mb);
	}
	xfree(group);
}

/* Dovecot's rule for a bare addr-spec: the last comment after its first token (up to the delimiter token d)
 * names it, unless that comment is empty. */
static char *comment_name(const struct toks *v, const struct tok *d)
{
	const char *c = d->comment;
	for (size_t i = v->n; !c && i > 1; i--)
		c = v->v[i - 1].comment;
	return c && *c ? xstrdup(c) : NULL;
}

static bool phrase_ok(const struct toks *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (!tok_is_word(&v->v[i]) && !tok_is(&v->v[i], '.'))
			return false;
	return v->n > 0;
}

enum addr_err addr_parse_header(const char *s, size_t len, unsigned flags, struct addr_list *out, size_t *err_off)
{
	struct lexer L = { s, len, 0 };
	struct toks v = { NULL, 0, 0 };
	struct addr_mailbox mb;
	struct tok t = { 0 };
	char *group = NULL;
	size_t members = 0;	/* mailboxes in the current group */
	size_t off = 0;
	enum addr_err e = ADDR_OK;

	memset(&mb, 0, sizeof(mb));
	for (;;) {
		toks_clear(&v);
		tok_free(&t);
		if ((e = collect(&L, &v, ",;:<", &t)) != ADDR_OK) {
			off = L.pos;
			break;	/* the lexer lost its place: nothing after this can be trusted */
		}
		off = t.off;
		if (tok_is(&t, ':')) {
			if (group != NULL || !phrase_ok(&v)) {
				e = ADDR_ERR_SYNTAX;
				goto bad_element;
			}
			group = phrase_join(&v, 0, v.n);
			members = 0;
			out->groups++;
			continue;
		}
		if (tok_is(&t, '<')) {
			bool lexfail = false;
			if ((e = angle_addr(&L, &v, flags, &mb, &off, &lexfail)) != ADDR_OK) {
				if (lexfail)
					break;
				goto bad_element;
			}
			/* after "<...>" only a list delimiter may follow */
			tok_free(&t);
			if ((e = lex_next(&L, &t)) != ADDR_OK) {
				off = L.pos;
				break;
			}
			if (t.type != T_END && !tok_is(&t, ',') && !tok_is(&t, ';')) {
				off = t.off;
				e = ADDR_ERR_SYNTAX;
				goto bad_element;
			}
		} else if (v.n > 0) {
			if ((e = addr_spec(&v, 0, v.n, flags, &mb, &off)) != ADDR_OK)
				goto bad_element;
			if (flags & ADDR_F_COMMENT_NAMES)
				mb.display = comment_name(&v, &t);
		}
		if (mb.a.canon != NULL) {
			if (group) {
				mb.group = xstrdup(group);
				members++;
			}
			list_push(out, &mb);
		}
		goto delimiter;
bad_element:
		mailbox_free(&mb);
		if (!(flags & ADDR_F_SKIP_BAD))
			break;
		out->bad++;
		e = ADDR_OK;
		/* resynchronise on the next list delimiter */
		while (t.type != T_END && !tok_is(&t, ',') && !tok_is(&t, ';')) {
			tok_free(&t);
			if ((e = lex_next(&L, &t)) != ADDR_OK) {
				off = L.pos;
				goto out;
			}
		}
delimiter:
		if (tok_is(&t, ';')) {
			/* end of a group; a stray ';' outside one is tolerated as an empty element */
			end_group(out, &group, members, flags);
		}
		if (t.type == T_END)
			break;
	}
out:
	/* an unterminated group ("g: a@b" at the end) is tolerated */
	if (e == ADDR_OK)
		end_group(out, &group, members, flags);
	tok_free(&t);
	toks_clear(&v);
	free(v.v);
	free(group);
	mailbox_free(&mb);
	if (e != ADDR_OK && err_off != NULL)
		*err_off = off;
	return e;
}
