/* Incremental IMAP command parser: a byte-driven state machine that keeps everything it needs to resume in
 * struct imap_parser, so a command may arrive in any number of pieces. See parser.h for the contract. */
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "parser.h"
#include "str.h"

#define DEF_MAX_LINE	(64u * 1024)
#define DEF_MAX_LITERAL	(64u * 1024 * 1024)
#define DEF_MAX_DEPTH	16u
#define DEF_MAX_ARGS	10000u
#define LIT_DIGITS_MAX	20	/* more digits than any uint64 has is an error, not an overflow */

enum pstate {
	ST_TAG,		/* reading the tag */
	ST_CMD,		/* reading the command name */
	ST_ARGS,	/* between arguments; see expect */
	ST_ATOM,
	ST_QUOTED,
	ST_LIT_SIZE,	/* after '{': digits, optional '+', '}' */
	ST_LIT_EOL,	/* after '}': CR LF */
	ST_LIT_DATA,
	ST_CR,		/* saw the line's CR, need its LF */
	ST_SKIP,	/* after an error: drop the rest of the line (and any {n+} literal it announces) */
	ST_SKIP_LIT,
	ST_END,		/* a result was returned; waiting for reset */
};

enum expect {
	EXPECT_ARG,		/* after SP: an argument (or, at top level, the end of the line) */
	EXPECT_ARG_OR_CLOSE,	/* right after '(' */
	EXPECT_DELIM,		/* after an argument: SP, ')' or the end of the line */
};

struct imap_parser {
	struct imap_parser_limits lim;
	enum pstate state;
	enum expect expect;
	struct buf tok;			/* the atom, quoted string or tag being read */
	struct buf lit;			/* literal data being read */
	char *tag, *cmd;
	struct imap_arg root;
	struct imap_arg **stack;	/* stack[0] = &root, stack[depth] = innermost open list */
	unsigned depth;
	size_t nargs;
	size_t linelen;
	uint64_t lit_total;		/* literal bytes of this command so far */
	uint64_t lit_size, lit_left;
	unsigned lit_digits;
	bool lit_plus, lit_closed;
	bool quoted_esc, in_bracket, cr_seen;
	const char *err;
	bool fatal;
	/* skip mode: recognises "{n+}" just before the end of a skipped line */
	int sk;				/* 0 none, 1 digits, 2 '+', 3 '}' after '+', 4 CR after that */
	uint64_t sk_n;
	unsigned sk_digits;
};

static void arg_free(struct imap_arg *a)
{
	for (size_t i = 0; i < a->count; i++)
		arg_free(&a->list[i]);
	free(a->list);
	free(a->str);
	memset(a, 0, sizeof(*a));
}

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	if (limits)
		p->lim = *limits;
	if (!p->lim.max_line)
		p->lim.max_line = DEF_MAX_LINE;
	if (!p->lim.max_literal)
		p->lim.max_literal = DEF_MAX_LITERAL;
	if (!p->lim.max_depth)
		p->lim.max_depth = DEF_MAX_DEPTH;
	if (!p->lim.max_args)
		p->lim.max_args = DEF_MAX_ARGS;
	buf_init(&p->tok, p->lim.max_line);
	buf_init(&p->lit, p->lim.max_literal);
	p->stack = xcalloc((size_t)p->lim.max_depth + 1, sizeof(*p->stack));
	imap_parser_reset(p);
	return p;
}

void imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (!p)
		return;
	arg_free(&p->root);
	buf_free(&p->tok);
	buf_free(&p->lit);
	free(p->tag);
	free(p->cmd);
	free(p->stack);
	xfree(pp);
}

void imap_parser_reset(struct imap_parser *p)
{
	arg_free(&p->root);
	p->root.type = IMAP_ARG_LIST;
	p->stack[0] = &p->root;
	p->depth = 0;
	p->nargs = 0;
	xfree(&p->tag);
	xfree(&p->cmd);
	buf_reset(&p->tok);
	buf_free(&p->lit);	/* a big APPEND literal should not stay allocated */
	buf_init(&p->lit, p->lim.max_literal);
	p->state = ST_TAG;
	p->expect = EXPECT_ARG;
	p->linelen = 0;
	p->lit_total = p->lit_size = p->lit_left = 0;
	p->lit_digits = 0;
	p->lit_plus = p->lit_closed = false;
	p->quoted_esc = p->in_bracket = p->cr_seen = false;
	p->err = NULL;
	p->fatal = false;
	p->sk = 0;
	p->sk_n = 0;
	p->sk_digits = 0;
}

/* ---- tree building ---- */

static bool add_arg(struct imap_parser *p, enum imap_arg_type type, const char *s, size_t len, struct imap_arg **out)
{
	struct imap_arg *parent = p->stack[p->depth];

	if (p->nargs >= p->lim.max_args) {
		p->err = "too many arguments";
		return false;
	}
	if (parent->count == parent->cap) {
		size_t ncap = parent->cap ? parent->cap * 2 : 4;
		parent->list = xreallocarray(parent->list, ncap, sizeof(*parent->list));
		parent->cap = ncap;
	}
	struct imap_arg *a = &parent->list[parent->count++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	if (type != IMAP_ARG_LIST) {
		a->str = xmalloc(len + 1);
		if (len)
			memcpy(a->str, s, len);
		a->str[len] = '\0';
		a->len = len;
	}
	p->nargs++;
	if (out)
		*out = a;
	return true;
}

/* ---- character classes ---- */

static bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* ATOM-CHAR, widened the usual server way: list wildcards, '\' (flags) and ']' are allowed because LIST
 * patterns, flags and fetch items are read as atoms; 8-bit bytes are allowed for UTF-8 names. */
static bool is_atom_char(unsigned char c)
{
	return !is_ctl(c) && c != ' ' && c != '(' && c != ')' && c != '{' && c != '"';
}

static bool is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '+' && c != '*' && c != '%' && c != '\\' && c < 0x80;
}

/* Fetch items whose atom carries a bracketed section that may hold spaces and lists: BODY[HEADER.FIELDS (A B)]. */
static bool bracket_atom(const struct buf *t)
{
	static const char *const names[] = { "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (t->len == strlen(names[i]) && str_eqn_ci(t->data, names[i], t->len))
			return true;
	return false;
}

/* ---- state helpers ---- */

/* An error: skip the rest of the line. at_eol says the byte that caused it was the line's LF. */
static enum imap_parse_result fail(struct imap_parser *p, const char *why, bool at_eol)
{
	if (!p->err)
		p->err = why;
	if (at_eol) {
		p->state = ST_END;
		return IMAP_PARSE_ERROR;
	}
	p->state = ST_SKIP;
	p->sk = 0;
	return IMAP_PARSE_MORE;
}

static enum imap_parse_result fail_fatal(struct imap_parser *p, const char *why)
{
	p->err = why;
	p->fatal = true;
	p->state = ST_END;
	return IMAP_PARSE_FATAL;
}

static enum imap_parse_result end_line(struct imap_parser *p)
{
	if (p->depth > 0)
		return fail(p, "unclosed list", true);
	p->state = ST_END;
	return IMAP_PARSE_DONE;
}

static bool finish_atom(struct imap_parser *p)
{
	const char *s = buf_cstr(&p->tok);
	enum imap_arg_type t = (p->tok.len == 3 && str_eqn_ci(s, "NIL", 3)) ? IMAP_ARG_NIL : IMAP_ARG_ATOM;

	if (!add_arg(p, t, s, p->tok.len, NULL))
		return false;
	buf_reset(&p->tok);
	p->state = ST_ARGS;
	p->expect = EXPECT_DELIM;
	return true;
}

/* A byte that ends a line or an argument, seen where arguments are expected. */
static enum imap_parse_result args_byte(struct imap_parser *p, unsigned char c, bool *handled)
{
	*handled = true;
	if (c == '\r') {
		p->state = ST_CR;
		return IMAP_PARSE_MORE;
	}
	if (c == '\n')
		return end_line(p);
	*handled = false;
	return IMAP_PARSE_MORE;
}

static enum imap_parse_result step_args(struct imap_parser *p, unsigned char c)
{
	bool handled;
	enum imap_parse_result r;

	if (p->expect == EXPECT_DELIM) {
		if (c == ' ') {
			p->expect = EXPECT_ARG;
			return IMAP_PARSE_MORE;
		}
		if (c == ')') {
			if (p->depth == 0)
				return fail(p, "unexpected ')'", false);
			p->depth--;
			return IMAP_PARSE_MORE;
		}
		r = args_byte(p, c, &handled);
		if (handled)
			return r;
		return fail(p, "missing space between arguments", c == '\n');
	}
	if (c == ')' && p->expect == EXPECT_ARG_OR_CLOSE) {
		p->depth--;
		p->expect = EXPECT_DELIM;
		return IMAP_PARSE_MORE;
	}
	if ((c == '\r' || c == '\n') && p->expect == EXPECT_ARG && p->depth == 0) {
		/* a trailing space before the end of the line: some clients send it, nothing is lost */
		r = args_byte(p, c, &handled);
		return r;
	}
	switch (c) {
	case '(': {
		struct imap_arg *a;
		if (p->depth >= p->lim.max_depth)
			return fail(p, "lists nested too deeply", false);
		if (!add_arg(p, IMAP_ARG_LIST, NULL, 0, &a))
			return fail(p, p->err, false);
		p->stack[++p->depth] = a;
		p->expect = EXPECT_ARG_OR_CLOSE;
		return IMAP_PARSE_MORE;
	}
	case '"':
		buf_reset(&p->tok);
		p->quoted_esc = false;
		p->state = ST_QUOTED;
		return IMAP_PARSE_MORE;
	case '{':
		p->lit_size = 0;
		p->lit_digits = 0;
		p->lit_plus = p->lit_closed = false;
		p->state = ST_LIT_SIZE;
		return IMAP_PARSE_MORE;
	default:
		if (!is_atom_char(c))
			return fail(p, c == ')' ? "unexpected ')'" : "unexpected character", c == '\n');
		buf_reset(&p->tok);
		p->in_bracket = false;
		p->state = ST_ATOM;
		if (!buf_putc(&p->tok, c))
			return fail(p, "argument too long", false);
		return IMAP_PARSE_MORE;
	}
}

static enum imap_parse_result step_atom(struct imap_parser *p, unsigned char c)
{
	if (p->in_bracket) {
		if (c == '\r' || c == '\n' || c == '\0')
			return fail(p, "unterminated '['", c == '\n');
		if (c == ']')
			p->in_bracket = false;
	} else if (c == '[' && bracket_atom(&p->tok)) {
		p->in_bracket = true;
	} else if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
		if (!finish_atom(p))
			return fail(p, p->err, c == '\n');
		return step_args(p, c);
	} else if (!is_atom_char(c)) {
		return fail(p, "invalid character in atom", c == '\n');
	}
	if (!buf_putc(&p->tok, c))
		return fail(p, "argument too long", false);
	return IMAP_PARSE_MORE;
}

static enum imap_parse_result step_quoted(struct imap_parser *p, unsigned char c)
{
	if (c == '\r' || c == '\n' || c == '\0')
		return fail(p, "unterminated quoted string", c == '\n');
	if (p->quoted_esc) {
		if (c != '"' && c != '\\')
			return fail(p, "bad escape in quoted string", false);
		p->quoted_esc = false;
	} else if (c == '\\') {
		p->quoted_esc = true;
		return IMAP_PARSE_MORE;
	} else if (c == '"') {
		if (!add_arg(p, IMAP_ARG_QUOTED, buf_cstr(&p->tok), p->tok.len, NULL))
			return fail(p, p->err, false);
		buf_reset(&p->tok);
		p->state = ST_ARGS;
		p->expect = EXPECT_DELIM;
		return IMAP_PARSE_MORE;
	}
	if (!buf_putc(&p->tok, c))
		return fail(p, "quoted string too long", false);
	return IMAP_PARSE_MORE;
}

static enum imap_parse_result finish_literal(struct imap_parser *p)
{
	if (!add_arg(p, IMAP_ARG_LITERAL, buf_cstr(&p->lit), p->lit.len, NULL))
		return fail(p, p->err, false);
	buf_reset(&p->lit);
	p->state = ST_ARGS;
	p->expect = EXPECT_DELIM;
	return IMAP_PARSE_MORE;
}

static enum imap_parse_result step_lit_size(struct imap_parser *p, unsigned char c)
{
	if (c >= '0' && c <= '9' && !p->lit_plus) {
		if (++p->lit_digits > LIT_DIGITS_MAX)
			return fail(p, "literal size too long", false);
		if (__builtin_mul_overflow(p->lit_size, 10, &p->lit_size) ||
		    __builtin_add_overflow(p->lit_size, (uint64_t)(c - '0'), &p->lit_size))
			p->lit_size = UINT64_MAX;
		return IMAP_PARSE_MORE;
	}
	if (c == '+' && !p->lit_plus && p->lit_digits) {
		p->lit_plus = true;
		return IMAP_PARSE_MORE;
	}
	if (c == '}' && p->lit_digits) {
		p->state = ST_LIT_EOL;
		p->cr_seen = false;
		return IMAP_PARSE_MORE;
	}
	return fail(p, "bad literal size", c == '\n');
}

static enum imap_parse_result step_lit_eol(struct imap_parser *p, unsigned char c)
{
	if (c == '\r' && !p->cr_seen) {
		p->cr_seen = true;
		return IMAP_PARSE_MORE;
	}
	if (c != '\n')
		return fail(p, "literal size not at the end of the line", false);
	uint64_t total;
	if (__builtin_add_overflow(p->lit_total, p->lit_size, &total) || total > p->lim.max_literal) {
		if (p->lit_plus)
			return fail_fatal(p, "[TOOBIG] literal too big");
		/* the client waits for our "+", so nothing follows: the line ends here */
		p->err = "[TOOBIG] literal too big";
		p->state = ST_END;
		return IMAP_PARSE_ERROR;
	}
	p->lit_total = total;
	p->lit_left = p->lit_size;
	buf_reset(&p->lit);	/* grows as bytes arrive: an announced size alone sets nothing aside */
	p->state = ST_LIT_DATA;
	/* a new line begins after the literal: its length is counted afresh */
	p->linelen = 0;
	return p->lit_plus ? IMAP_PARSE_MORE : IMAP_PARSE_CONT;
}

static enum imap_parse_result step_skip(struct imap_parser *p, unsigned char c)
{
	if (c == '\n') {
		if (p->sk == 3 || p->sk == 4) {
			if (p->sk_n > p->lim.max_literal)
				return fail_fatal(p, "[TOOBIG] literal too big");
			p->lit_left = p->sk_n;
			p->sk = 0;
			p->state = ST_SKIP_LIT;
			return IMAP_PARSE_MORE;
		}
		p->state = ST_END;
		return IMAP_PARSE_ERROR;
	}
	if (c == '{') {
		p->sk = 1;
		p->sk_n = 0;
		p->sk_digits = 0;
	} else if (p->sk == 1 && c >= '0' && c <= '9' && p->sk_digits < LIT_DIGITS_MAX) {
		p->sk_digits++;
		if (__builtin_mul_overflow(p->sk_n, 10, &p->sk_n) ||
		    __builtin_add_overflow(p->sk_n, (uint64_t)(c - '0'), &p->sk_n))
			p->sk_n = UINT64_MAX;
	} else if (p->sk == 1 && c == '+' && p->sk_digits) {
		p->sk = 2;
	} else if (p->sk == 2 && c == '}') {
		p->sk = 3;
	} else if (p->sk == 3 && c == '\r') {
		p->sk = 4;
	} else {
		p->sk = 0;
	}
	return IMAP_PARSE_MORE;
}

static enum imap_parse_result step(struct imap_parser *p, unsigned char c)
{
	switch (p->state) {
	case ST_TAG:
		if (c == ' ' && p->tok.len) {
			p->tag = xstrdup(buf_cstr(&p->tok));
			buf_reset(&p->tok);
			p->state = ST_CMD;
			return IMAP_PARSE_MORE;
		}
		if (!is_tag_char(c))
			return fail(p, p->tok.len && (c == ' ' || c == '\r' || c == '\n') ? "missing command" : "invalid tag",
				    c == '\n');
		if (!buf_putc(&p->tok, c))
			return fail(p, "tag too long", false);
		return IMAP_PARSE_MORE;
	case ST_CMD:
		if ((c == ' ' || c == '\r' || c == '\n') && p->tok.len) {
			p->cmd = xstrdup(buf_cstr(&p->tok));
			buf_reset(&p->tok);
			p->state = ST_ARGS;
			if (c == ' ') {
				p->expect = EXPECT_ARG;
				return IMAP_PARSE_MORE;
			}
			p->expect = EXPECT_DELIM;
			return step_args(p, c);
		}
		if (!is_atom_char(c) || c >= 0x80)
			return fail(p, "invalid command name", c == '\n');
		if (!buf_putc(&p->tok, c))
			return fail(p, "command name too long", false);
		return IMAP_PARSE_MORE;
	case ST_ARGS:
		return step_args(p, c);
	case ST_ATOM:
		return step_atom(p, c);
	case ST_QUOTED:
		return step_quoted(p, c);
	case ST_LIT_SIZE:
		return step_lit_size(p, c);
	case ST_LIT_EOL:
		return step_lit_eol(p, c);
	case ST_CR:
		if (c != '\n')
			return fail(p, "CR not followed by LF", false);
		return end_line(p);
	case ST_SKIP:
		return step_skip(p, c);
	case ST_LIT_DATA:
	case ST_SKIP_LIT:
	case ST_END:
		break;
	}
	panic("imap parser: byte step in state %d", (int)p->state);
}

enum imap_parse_result imap_parser_feed(struct imap_parser *p, const void *data, size_t len, size_t *used)
{
	const unsigned char *d = data;
	size_t i = 0;
	enum imap_parse_result r = IMAP_PARSE_MORE;

	for (;;) {
		if (p->state == ST_END) {
			r = p->fatal ? IMAP_PARSE_FATAL : p->err ? IMAP_PARSE_ERROR : IMAP_PARSE_DONE;
			break;
		}
		if (p->state == ST_LIT_DATA || p->state == ST_SKIP_LIT) {
			size_t n = len - i;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			if (p->state == ST_LIT_DATA && n && !buf_append(&p->lit, d + i, n))
				panic("literal append within the literal limit failed");
			i += n;
			p->lit_left -= n;
			if (p->lit_left)
				break;
			if (p->state == ST_SKIP_LIT) {
				p->state = ST_SKIP;
				continue;
			}
			r = finish_literal(p);
			if (r != IMAP_PARSE_MORE)
				break;
			continue;
		}
		if (i == len)
			break;
		unsigned char c = d[i++];
		if (p->state != ST_SKIP && ++p->linelen > p->lim.max_line) {
			r = fail(p, "line too long", c == '\n');
			if (r != IMAP_PARSE_MORE)
				break;
			continue;
		}
		r = step(p, c);
		if (r != IMAP_PARSE_MORE)
			break;
	}
	*used = i;
	return r;
}

const char *imap_parser_tag(const struct imap_parser *p) { return p->tag; }
const char *imap_parser_command(const struct imap_parser *p) { return p->cmd; }
const char *imap_parser_error(const struct imap_parser *p) { return p->err ? p->err : "syntax error"; }
uint64_t imap_parser_literal_size(const struct imap_parser *p) { return p->lit_size; }

bool imap_parser_in_command(const struct imap_parser *p)
{
	return p->state != ST_END && (p->state != ST_TAG || p->tok.len > 0);
}

const struct imap_arg *imap_parser_args(const struct imap_parser *p, size_t *count)
{
	*count = p->root.count;
	return p->root.list;
}

bool imap_arg_astring(const struct imap_arg *a, const char **out)
{
	if (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL)
		return (*out = a->str), true;
	return imap_arg_string(a, out);
}

bool imap_arg_string(const struct imap_arg *a, const char **out)
{
	if ((a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL) || memchr(a->str, '\0', a->len))
		return false;
	*out = a->str;
	return true;
}

bool imap_arg_atom(const struct imap_arg *a, const char **out)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL)
		return false;
	*out = a->str;
	return true;
}

bool imap_arg_is_list(const struct imap_arg *a) { return a->type == IMAP_ARG_LIST; }
