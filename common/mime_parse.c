/* The MIME tree of a message (RFC 2045/2046): one forward pass over the lines. Each active multipart pushes its
 * boundary on a stack; every line starting with "--" is compared with the stack (a boundary of an enclosing
 * multipart also ends the inner ones, which then count as unterminated), so each byte is looked at a bounded
 * number of times whatever the nesting. Line and CRLF counts come from one running counter that only moves
 * forward. See mime.h. */
#include "mime.h"

#include <string.h>

#include "alloc.h"
#include "str.h"

struct bstack {
	const char *s;
	size_t len;
};

struct ctx {
	struct mime_message *m;
	const char *p;
	size_t len;
	struct bstack stack[MIME_MAX_DEPTH + 2];
	int nstack;
	int hit;            /* stack index of the boundary that ended the last scan, -1 at end of input */
	bool hit_close;     /* it was a closing boundary "--b--" */
	size_t cpos, clines, cbare;   /* running counts: LFs and bare LFs in p[0..cpos) */
};

struct cnt {
	size_t lines, bare;
};

/* Counts of p[0..pos). pos moves forward, except by the line end before a boundary (a part whose header ends
 * right at a boundary reaches one byte or two past its parent's body end), so the total work stays linear. */
static struct cnt counts_at(struct ctx *c, size_t pos)
{
	const char *p = c->p;
	while (c->cpos > pos) {
		size_t k = --c->cpos;
		if (p[k] == '\n') {
			c->clines--;
			if (k == 0 || p[k - 1] != '\r')
				c->cbare--;
		}
	}
	size_t i = c->cpos;
	while (i < pos) {
		const char *nl = memchr(p + i, '\n', pos - i);
		if (!nl)
			break;
		size_t k = (size_t)(nl - p);
		c->clines++;
		if (k == 0 || p[k - 1] != '\r')
			c->cbare++;
		i = k + 1;
	}
	c->cpos = pos;
	return (struct cnt){ c->clines, c->cbare };
}

size_t mime_crlf_size(const char *p, size_t len)
{
	size_t n = len;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			n++;
	return n;
}

/* Is the line at i a boundary of the stack? Innermost first. */
static int boundary_at(struct ctx *c, size_t i, bool *close)
{
	const char *p = c->p;
	if (i + 2 > c->len || p[i] != '-' || p[i + 1] != '-')
		return -1;
	for (int k = c->nstack - 1; k >= 0; k--) {
		const struct bstack *b = &c->stack[k];
		if (i + 2 + b->len <= c->len && memcmp(p + i + 2, b->s, b->len) == 0) {
			/* "--b" then only white space (transport padding), or "--b--" and anything: "--bx" is content */
			size_t e = i + 2 + b->len;
			if (e + 2 <= c->len && p[e] == '-' && p[e + 1] == '-') {
				*close = true;
				return k;
			}
			while (e < c->len && (p[e] == ' ' || p[e] == '\t' || p[e] == '\r'))
				e++;
			if (e == c->len || p[e] == '\n') {
				*close = false;
				return k;
			}
		}
	}
	return -1;
}

static size_t next_line(const struct ctx *c, size_t i)
{
	const char *nl = memchr(c->p + i, '\n', c->len - i);
	return nl ? (size_t)(nl - c->p) + 1 : c->len;
}

/* Advance line by line from i (a line start) to the next boundary line; returns its start, or len. */
static size_t scan_to_boundary(struct ctx *c, size_t i)
{
	c->hit = -1;
	c->hit_close = false;
	if (c->nstack == 0)
		return c->len;
	while (i < c->len) {
		bool cl;
		int k = boundary_at(c, i, &cl);
		if (k >= 0) {
			c->hit = k;
			c->hit_close = cl;
			return i;
		}
		i = next_line(c, i);
	}
	return c->len;
}

/* Where the content before a boundary line at b ends: the line end before b belongs to the boundary. */
static size_t end_before(const struct ctx *c, size_t b, size_t start)
{
	if (c->hit < 0)
		return b;
	size_t e = b;
	if (e > start && c->p[e - 1] == '\n') {
		e--;
		if (e > start && c->p[e - 1] == '\r')
			e--;
	}
	return e;
}

static bool token_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 32 || (unsigned char)*s >= 127 || strchr("()<>@,;:\\\"/[]?=", *s))
			return false;
	return true;
}

static struct mime_part *part_new(struct ctx *c, struct mime_part *parent, size_t off)
{
	struct mime_part *np = xcalloc(1, sizeof(*np));
	np->parent = parent;
	np->depth = parent ? parent->depth + 1 : 0;
	np->hdr_off = off;
	c->m->nparts++;
	if (parent) {
		if (parent->last_child)
			parent->last_child->next = np;
		else
			parent->children = np;
		parent->last_child = np;
		parent->nchildren++;
	}
	return np;
}

static void read_fields(struct ctx *c, struct mime_part *part)
{
	struct mime_header h = MIME_HEADER_INIT;
	mime_header_parse(&h, c->p + part->hdr_off, part->hdr_size);
	if (h.truncated)
		part->flags |= MIME_PART_HDR_TRUNC;
	struct buf v = BUF_INIT(MIME_MAX_VALUE);
	for (size_t i = 0; i < h.n; i++) {
		const struct mime_field *f = &h.v[i];
		if (f->name_len < 8 || !str_eqn_ci(h.base + f->off, "content-", 8))
			continue;
		buf_reset(&v);
		mime_field_value(&h, f, &v);
		char **dst = NULL;
		if (mime_field_is(&h, f, "content-type")) {
			if (!part->ct.type) {
				mime_ctype_parse(buf_cstr(&v), v.len, true, &part->ct);
				if (!part->ct.type)
					mime_ctype_free(&part->ct);
			}
			continue;
		}
		if (mime_field_is(&h, f, "content-disposition")) {
			if (!part->disp.type)
				mime_ctype_parse(buf_cstr(&v), v.len, false, &part->disp);
			continue;
		}
		if (mime_field_is(&h, f, "content-transfer-encoding")) {
			if (!part->encoding) {
				char *copy = xstrdup(buf_cstr(&v));
				char *e = str_trim(copy);   /* points into copy */
				if (token_ok(e))
					part->encoding = xstrdup(e);
				free(copy);
			}
			continue;
		}
		if (mime_field_is(&h, f, "content-id"))
			dst = &part->id;
		else if (mime_field_is(&h, f, "content-description"))
			dst = &part->description;
		else if (mime_field_is(&h, f, "content-md5"))
			dst = &part->md5;
		else if (mime_field_is(&h, f, "content-language"))
			dst = &part->language;
		else if (mime_field_is(&h, f, "content-location"))
			dst = &part->location;
		if (dst && !*dst)
			*dst = xstrdup(buf_cstr(&v));
	}
	buf_free(&v);
	mime_header_free(&h);
}

/* Scan a leaf body for 8-bit bytes and NULs. */
static unsigned body_flags(const char *p, size_t n)
{
	unsigned f = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch >= 0x80)
			f |= MIME_PART_8BIT;
		else if (ch == 0)
			f |= MIME_PART_NUL;
		if (f == (MIME_PART_8BIT | MIME_PART_NUL))
			break;
	}
	return f;
}

static bool encoding_is_identity(const struct mime_part *p)
{
	return !p->encoding || str_eq_ci(p->encoding, "7bit") || str_eq_ci(p->encoding, "8bit") ||
	       str_eq_ci(p->encoding, "binary");
}

/* Take the bytes [from, to) off the end of a range and its counts. */
static void drop_tail(const char *p, size_t from, size_t to, size_t *size, size_t *crlf, size_t *lines)
{
	for (size_t k = from; k < to; k++) {
		(*size)--;
		(*crlf)--;
		if (p[k] == '\n') {
			(*lines)--;
			if (k == 0 || p[k - 1] != '\r')
				(*crlf)--;
		}
	}
}

/* Move an empty last child that began at the boundary line (past end, by the line end before the boundary)
 * back to end. */
static void clamp_last(const struct ctx *c, struct mime_part *part, size_t end)
{
	for (; part; part = part->last_child) {
		size_t bend = part->body_off + part->body_size;
		if (bend <= end)
			return;
		if (part->hdr_off >= end) {
			/* a part that began at the boundary line itself: empty, placed at the end */
			part->hdr_off = part->body_off = end;
			part->hdr_size = part->hdr_size_crlf = part->hdr_lines = 0;
			part->body_size = part->body_size_crlf = part->body_lines = 0;
		} else if (part->body_off > end) {
			drop_tail(c->p, end, part->body_off, &part->hdr_size, &part->hdr_size_crlf, &part->hdr_lines);
			part->body_off = end;
			part->body_size = part->body_size_crlf = part->body_lines = 0;
		} else {
			drop_tail(c->p, end, bend, &part->body_size, &part->body_size_crlf, &part->body_lines);
		}
	}
}

/* Parse the entity (header + body) starting at part->hdr_off. Returns the position where it ends: the start of
 * the boundary line that ended it (c->hit set), or len. */
static size_t parse_entity(struct ctx *c, struct mime_part *part)
{
	size_t pos = part->hdr_off;
	struct cnt c0 = counts_at(c, pos);

	/* header: up to the blank line, a boundary line, the size cap, or the end */
	size_t i = pos;
	bool at_boundary = false;
	c->hit = -1;
	while (i < c->len) {
		size_t e = next_line(c, i);
		if (c->p[i] == '\n' || (c->p[i] == '\r' && i + 1 < c->len && c->p[i + 1] == '\n')) {
			i = e;
			break;
		}
		bool cl;
		int k = c->nstack ? boundary_at(c, i, &cl) : -1;
		if (k >= 0) {
			c->hit = k;
			c->hit_close = cl;
			at_boundary = true;
			break;
		}
		if (e - pos > MIME_MAX_HEADER) {
			part->flags |= MIME_PART_HDR_TRUNC;
			break;
		}
		i = e;
	}
	part->hdr_size = i - pos;
	struct cnt c1 = counts_at(c, i);
	part->hdr_lines = c1.lines - c0.lines;
	part->hdr_size_crlf = part->hdr_size + (c1.bare - c0.bare);
	part->body_off = i;
	if (body_flags(c->p + pos, part->hdr_size) & MIME_PART_8BIT)
		part->flags |= MIME_PART_HDR_8BIT;
	read_fields(c, part);

	size_t end;       /* end of this entity's body */
	size_t stop;      /* where scanning stopped (boundary line start or len) */
	bool limits_ok = part->depth < MIME_MAX_DEPTH && c->m->nparts < MIME_MAX_PARTS;

	if (at_boundary) {
		stop = i;
		end = i;
	} else if (mime_part_is(part, "multipart", NULL) && limits_ok) {
		const struct mime_param *bp = mime_ctype_find(&part->ct, "boundary");
		size_t bl = bp ? strlen(bp->value) : 0;
		if (bl == 0 || bl > MIME_MAX_BOUNDARY) {
			stop = scan_to_boundary(c, i);
			end = end_before(c, stop, i);
		} else {
			part->boundary = xstrdup(bp->value);
			part->flags |= MIME_PART_MULTIPART;
			int me = c->nstack;
			c->stack[c->nstack++] = (struct bstack){ part->boundary, bl };
			bool digest = mime_part_is(part, "multipart", "digest");
			size_t at = scan_to_boundary(c, i);   /* preamble */
			for (;;) {
				if (c->hit != me || c->hit_close)
					break;
				if (c->m->nparts >= MIME_MAX_PARTS) {
					part->flags |= MIME_PART_TOO_DEEP;
					at = scan_to_boundary(c, next_line(c, at));
					continue;
				}
				struct mime_part *child = part_new(c, part, next_line(c, at));
				child->ct_default_rfc822 = digest;
				at = parse_entity(c, child);
				part->flags |= child->flags & (MIME_PART_8BIT | MIME_PART_NUL);
			}
			if (c->hit == me && c->hit_close) {
				/* epilogue: up to an enclosing boundary or the end. When there is none, the line end
				 * of the close delimiter stays with this part (as Dovecot counts it). */
				c->nstack = me;
				size_t epi = next_line(c, at);
				at = scan_to_boundary(c, epi);
				stop = at;
				end = at == epi ? at : end_before(c, stop, i);
			} else {
				part->flags |= MIME_PART_NO_END;
				c->nstack = me;
				stop = at;
				end = end_before(c, stop, i);
			}
		}
	} else if (mime_part_is(part, "message", "rfc822") || mime_part_is(part, "message", "global")) {
		if (limits_ok && encoding_is_identity(part)) {
			part->flags |= MIME_PART_MESSAGE;
			struct mime_part *child = part_new(c, part, i);
			stop = parse_entity(c, child);
			part->flags |= child->flags & (MIME_PART_8BIT | MIME_PART_NUL);
			end = end_before(c, stop, i);
		} else {
			if (!limits_ok)
				part->flags |= MIME_PART_TOO_DEEP;
			stop = scan_to_boundary(c, i);
			end = end_before(c, stop, i);
			part->flags |= body_flags(c->p + i, end - i);
		}
	} else {
		if (!limits_ok && mime_part_is(part, "multipart", NULL))
			part->flags |= MIME_PART_TOO_DEEP;
		stop = scan_to_boundary(c, i);
		end = end_before(c, stop, i);
		part->flags |= body_flags(c->p + i, end - i);
	}
	/* A last child whose header ended with its blank line right before the enclosing boundary owns that line
	 * end (as in a part with an empty body, and as Dovecot counts it): the parent grows to cover it. A child
	 * that began at the boundary line itself is empty and is moved back inside. */
	struct mime_part *last = part->last_child;
	if (last && last->hdr_off >= end)
		clamp_last(c, last, end);
	else if (last && last->body_off + last->body_size > end)
		end = last->body_off + last->body_size;
	part->body_size = end - i;
	struct cnt c2 = counts_at(c, end);
	part->body_lines = c2.lines - c1.lines;
	part->body_size_crlf = part->body_size + (c2.bare - c1.bare);
	return stop;
}

void mime_message_parse(struct mime_message *m, const char *data, size_t len)
{
	memset(m, 0, sizeof(*m));
	m->data = data;
	m->len = len;
	struct ctx *c = xcalloc(1, sizeof(*c));
	c->m = m;
	c->p = data;
	c->len = len;
	c->hit = -1;
	m->root = part_new(c, NULL, 0);
	parse_entity(c, m->root);
	free(c);
}

static void part_free(struct mime_part *p)
{
	while (p) {
		struct mime_part *next = p->next;
		part_free(p->children);
		mime_ctype_free(&p->ct);
		mime_ctype_free(&p->disp);
		free(p->encoding);
		free(p->id);
		free(p->description);
		free(p->md5);
		free(p->language);
		free(p->location);
		free(p->boundary);
		free(p);
		p = next;
	}
}

void mime_message_free(struct mime_message *m)
{
	part_free(m->root);
	m->root = NULL;
}

const char *mime_part_type(const struct mime_part *p)
{
	if (p->ct.type)
		return p->ct.type;
	return p->ct_default_rfc822 ? "message" : "text";
}

const char *mime_part_subtype(const struct mime_part *p)
{
	if (p->ct.type)
		return p->ct.subtype;
	return p->ct_default_rfc822 ? "rfc822" : "plain";
}

bool mime_part_is(const struct mime_part *p, const char *type, const char *subtype)
{
	return str_eq_ci(mime_part_type(p), type) && (!subtype || str_eq_ci(mime_part_subtype(p), subtype));
}

void mime_part_header(const struct mime_message *m, const struct mime_part *p, struct mime_header *h)
{
	mime_header_parse(h, m->data + p->hdr_off, p->hdr_size);
}
