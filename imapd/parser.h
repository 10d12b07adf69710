/* Incremental IMAP command parser (the idea of Dovecot's imap-parser): imapd feeds it whatever bytes arrived and
 * it either asks for more, asks for a "+ " continuation before a synchronising literal, or hands back a complete
 * command as a tree of arguments. It can stop anywhere and resume, so a byte-at-a-time client parses exactly like
 * a fast one. Every input is bounded: line length, literal sizes, list depth and the number of arguments. */
#ifndef POSTERN_IMAPD_PARSER_H
#define POSTERN_IMAPD_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imap_arg_type {
	IMAP_ARG_ATOM,		/* includes sequence sets, flags (\Seen), and BODY[...]<n.m> fetch items */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,	/* {n} or {n+}; may hold any byte, NUL included: check len */
	IMAP_ARG_NIL,		/* the atom NIL; str is "NIL" so astring readers can still take it as a name */
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	char *str;			/* NUL-terminated copy (atom, quoted, literal, NIL); NULL for lists */
	size_t len;
	struct imap_arg *list;		/* children of a list */
	size_t count;
	size_t cap;
};

struct imap_parser_limits {
	size_t max_line;	/* bytes of a command outside literal data */
	size_t max_literal;	/* bytes of all literals of one command together (APPENDLIMIT) */
	unsigned max_depth;	/* nesting of parenthesised lists */
	size_t max_args;	/* arguments in the whole tree */
};

enum imap_parse_result {
	IMAP_PARSE_MORE,	/* everything given was consumed; feed more */
	IMAP_PARSE_CONT,	/* a synchronising literal is announced: send "+ ..." then feed more */
	IMAP_PARSE_DONE,	/* a whole command is ready: tag, name, args */
	IMAP_PARSE_ERROR,	/* the line was bad and has been skipped: answer "TAG BAD error" (or "* BAD") */
	IMAP_PARSE_FATAL,	/* cannot resynchronise (oversized non-synchronising literal): say BYE and close */
};

struct imap_parser;

/* Limits of 0 take defaults (64 KiB line, 64 MiB literals, depth 16, 10000 args). */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser **pp);
/* Forget the last command (call after DONE or ERROR before feeding the next one). */
void imap_parser_reset(struct imap_parser *p);
/* Consume bytes from data; *used says how many (the rest belongs to the next call or the next command). After
 * DONE, ERROR or FATAL nothing more is consumed until imap_parser_reset(). */
enum imap_parse_result imap_parser_feed(struct imap_parser *p, const void *data, size_t len, size_t *used);

/* Valid after DONE (tag also after ERROR when it was read; NULL if not). */
const char *imap_parser_tag(const struct imap_parser *p);
const char *imap_parser_command(const struct imap_parser *p);
const struct imap_arg *imap_parser_args(const struct imap_parser *p, size_t *count);
/* Why the last ERROR/FATAL happened, suitable for a BAD reply (our text, never peer bytes). */
const char *imap_parser_error(const struct imap_parser *p);
/* A command has begun and is not complete yet (after MORE: the rest is still to come from the client). */
bool imap_parser_in_command(const struct imap_parser *p);
/* Size of the literal the last CONT announced (for APPENDLIMIT checks or logs). */
uint64_t imap_parser_literal_size(const struct imap_parser *p);

/* Readers for command handlers. astring: atom, NIL, quoted or literal without a NUL byte. */
bool imap_arg_astring(const struct imap_arg *a, const char **out);
/* string: quoted or literal only (no NUL). */
bool imap_arg_string(const struct imap_arg *a, const char **out);
bool imap_arg_atom(const struct imap_arg *a, const char **out);
bool imap_arg_is_list(const struct imap_arg *a);

#endif
