/* The server side of an SMTP conversation as the smtp client sees it: multi-line replies ("250-..." then
 * "250 ..."), their enhanced status codes (RFC 3463) and the EHLO capability list. Fed one line at a time by
 * session.c; no I/O here, so it is fuzzed and unit-tested on its own. */
#ifndef POSTERN_SMTP_REPLY_H
#define POSTERN_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_REPLY_LINE_MAX 2048	/* bytes per reply line we accept (RFC 5321: 512) */
#define SMTP_REPLY_TEXT_MAX 8192	/* all lines of one reply; a longer reply is kept cut */
#define SMTP_REPLY_LINES_MAX 200	/* more continuation lines than this is a broken or hostile server */

struct smtp_reply {
	int code;		/* 200..599 once complete */
	char dsn[12];		/* "5.1.1" from the first line, "" when the server gave none */
	struct buf text;	/* the lines' text after "NNN-"/"NNN ", joined with '\n' (capped) */
	size_t nlines;
	bool done;
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_reset(struct smtp_reply *r);	/* for the next reply, memory kept */
void smtp_reply_free(struct smtp_reply *r);
/* Take one line (without CR LF). 1: the reply is complete; 0: more lines follow; -1: not a valid reply
 * line (bad code, code changed between lines, too many lines) with the reason in err. */
int smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, struct buf *err);
/* The text after the enhanced code of the first line (or the whole first line), for DSN texts. */
const char *smtp_reply_first_line(const struct smtp_reply *r, struct buf *out);

/* What the server said it can do in its EHLO reply. */
struct smtp_caps {
	bool pipelining, eightbitmime, smtputf8, dsn, starttls, chunking, size_given;
	bool auth_plain, auth_login;	/* AUTH mechanisms we can use */
	uint64_t size;		/* SIZE limit; 0 with size_given = no fixed limit */
	struct buf name;	/* the name the server gave on the first line (capped, printable) */
};
void smtp_caps_init(struct smtp_caps *c);
void smtp_caps_free(struct smtp_caps *c);
/* Parse a complete 250 reply to EHLO. */
void smtp_caps_parse(struct smtp_caps *c, const struct smtp_reply *r);

#endif
