/* POP3 command syntax (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH): a table of commands with the
 * states they are allowed in and their argument shapes, and a parser that checks a line against it. The parser
 * does no I/O and keeps no state, so pop3d's session code only acts on commands already known to be well formed. */
#ifndef POSTERN_POP3_CMD_H
#define POSTERN_POP3_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POP3_LINE_MAX 512	/* RFC 2449 allows 255 octets per command; room for long AUTH initial responses */
#define POP3_ARG_MAX 255	/* RFC 2449: arguments up to 40 octets; user names up to our address limit */

enum pop3_cmd_id {
	POP3_CMD_USER, POP3_CMD_PASS, POP3_CMD_APOP, POP3_CMD_AUTH, POP3_CMD_STLS, POP3_CMD_CAPA, POP3_CMD_QUIT,
	POP3_CMD_STAT, POP3_CMD_LIST, POP3_CMD_RETR, POP3_CMD_DELE, POP3_CMD_NOOP, POP3_CMD_RSET, POP3_CMD_TOP,
	POP3_CMD_UIDL,
};

/* States a command is allowed in. */
#define POP3_IN_AUTH 1u		/* AUTHORIZATION */
#define POP3_IN_TRANS 2u	/* TRANSACTION */

/* Argument shapes. */
enum pop3_args {
	POP3_ARGS_NONE,		/* nothing */
	POP3_ARGS_WORD,		/* one word (USER) */
	POP3_ARGS_REST,		/* the rest of the line, spaces included, not empty (PASS) */
	POP3_ARGS_WORD_WORD,	/* two words (APOP name digest) */
	POP3_ARGS_AUTH,		/* optional mechanism, optional initial response */
	POP3_ARGS_MSG,		/* one message number */
	POP3_ARGS_OPT_MSG,	/* optional message number (LIST, UIDL) */
	POP3_ARGS_MSG_NUM,	/* message number and a count (TOP) */
};

struct pop3_cmd_def {
	const char *name;
	enum pop3_cmd_id id;
	unsigned states;
	enum pop3_args args;
};

struct pop3_cmd {
	const struct pop3_cmd_def *def;
	size_t nargs;
	const char *arg[2];	/* point into the parsed line */
	uint32_t num[2];	/* numeric arguments (message numbers are 1-based) */
};

enum pop3_parse_result { POP3_PARSE_OK, POP3_PARSE_UNKNOWN, POP3_PARSE_SYNTAX };

/* Parse line (len bytes, without CR LF; modified in place: arguments are NUL-terminated). A NUL byte or a
 * control character in the line is a syntax error. */
enum pop3_parse_result pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *out);

#endif
