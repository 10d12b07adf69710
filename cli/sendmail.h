/* The sendmail personality of the postern binary (also mailq and newaliases): the interface programs use to
 * hand mail to the host MTA. Option parsing, the stdin filter, -t header handling and the SMTP encoding are
 * pure functions here so unit tests and the fuzzer reach them; cli/sendmail.c runs them against the local
 * submission socket (public/submit, served by smtpd in local mode). */
#ifndef POSTERN_CLI_SENDMAIL_H
#define POSTERN_CLI_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "buf.h"

#define SENDMAIL_HEADER_MAX (1024 * 1024)	/* a longer header section is refused (EX_DATAERR) */
#define SENDMAIL_MAX_RCPTS 10000		/* recipients from the command line and -t together */
#define SENDMAIL_REPLY_MAX 65536		/* one (multi-line) SMTP reply from the submit socket */

enum sendmail_mode {
	SENDMAIL_DELIVER,	/* default: read a message on stdin and submit it */
	SENDMAIL_SMTP,		/* -bs: SMTP on stdin/stdout */
	SENDMAIL_MAILQ,		/* -bp, or invoked as mailq */
	SENDMAIL_NEWALIASES,	/* -bi, or invoked as newaliases */
	SENDMAIL_FLUSH,		/* -q */
	SENDMAIL_VERSION,	/* --version */
};

struct sendmail_opts {
	enum sendmail_mode mode;
	bool extract;		/* -t */
	bool ignore_dots;	/* -i, -oi: a lone "." line is data, not the end of input */
	bool verbose;		/* -v */
	const char *sender;	/* -f / -r; "" for the null sender; NULL: the login name */
	const char *fullname;	/* -F */
	const char *notify;	/* -N, as given ("never" or a list of success, failure, delay) */
	const char *envid;	/* -V */
	const char *dir;	/* -C: instance or configuration directory */
	char **rcpts;		/* command line recipients (point into argv) */
	size_t nrcpts;
};

/* Parse the arguments after the program name (argv[0] is the name it was called by: "sendmail", "mailq",
 * "newaliases"). Unknown sendmail options that take no action here (-oX, -B, -h, -m, -n, -U, -L, -X...) are
 * accepted and ignored, as Postfix does. false with a message in err on a usage error. rcpts is xmalloc'd. */
bool sendmail_parse_args(int argc, char **argv, struct sendmail_opts *o, struct buf *err);
void sendmail_opts_free(struct sendmail_opts *o);
/* -N: "never" or a comma list of success, failure, delay -> the SMTP NOTIFY= value; false when invalid. */
bool sendmail_notify_value(const char *s, struct buf *out);

/* The stdin filter: CRLF becomes LF and, unless ignore_dots, a line holding only "." ends the input (the
 * classic sendmail rule; the rest is discarded). Output is a plain LF text stream. */
struct sendmail_filter {
	bool ignore_dots;
	bool bol;		/* at the beginning of a line */
	bool dot;		/* a "." was seen at the beginning of a line, not yet emitted */
	bool cr;		/* a CR was seen, not yet emitted */
	bool done;		/* the terminating "." line was seen */
};
void sendmail_filter_init(struct sendmail_filter *f, bool ignore_dots);
/* Feed n bytes; output is appended to out. Returns false when out's cap was reached. Once f->done is set the
 * remaining input is ignored. */
bool sendmail_filter(struct sendmail_filter *f, const char *p, size_t n, struct buf *out);
bool sendmail_filter_end(struct sendmail_filter *f, struct buf *out);

/* SMTP DATA encoding of an LF text stream: LF -> CRLF, a "." at the start of a line is doubled. *bol starts
 * true. sendmail_smtp_encode_end() completes a last line without LF and appends the ".\r\n" terminator. */
bool sendmail_smtp_encode(bool *bol, const char *p, size_t n, struct buf *out);
bool sendmail_smtp_encode_end(bool *bol, struct buf *out);

/* The header section at the start of an LF text: the run of "Name: value" lines and their continuations.
 * Returns its length (up to and including the last header line's LF) and sets *blank when an empty line
 * follows it (part of neither), or returns (size_t)-1 when more input is needed to decide (no complete
 * non-header line or empty line yet, and !eof). */
size_t sendmail_header_end(const char *p, size_t len, bool eof, bool *blank);

/* What the header section says, for -t and for headers added when missing. */
struct sendmail_headers {
	char **rcpts;		/* To, Cc, Bcc addresses, or Resent-To/Cc/Bcc when there are Resent- fields
				 * (canonical form); unqualified ones end in "@" */
	size_t nrcpts;
	size_t bad;		/* unparsable list entries skipped */
	bool has_from, has_date, has_msgid, has_sender;
};
/* Scan a header section (as delimited by sendmail_header_end). When extract, the To/Cc/Bcc addresses are
 * collected (at most SENDMAIL_MAX_RCPTS). Every field except Bcc is copied to out, so Bcc never leaves the
 * host. */
void sendmail_headers_scan(const char *p, size_t len, bool extract, struct sendmail_headers *h, struct buf *out);
void sendmail_headers_free(struct sendmail_headers *h);
/* Append the addresses of one address list ("a@b, Name <c@d>", "root") to h->rcpts, counting bad entries in
 * h->bad. Used for To/Cc/Bcc and for each command-line recipient, which may also be a list (as in Postfix). */
void sendmail_collect(struct sendmail_headers *h, const char *v, size_t n);

/* Header lines Postfix's cleanup would add to locally submitted mail, appended to out when missing:
 * "From: Full Name <login@origin>", "Date: ...", "Message-ID: <...@hostname>". fullname may be NULL. now is
 * the time to stamp. */
void sendmail_missing_headers(const struct sendmail_headers *h, const char *login, const char *fullname,
                              const char *origin, const char *hostname, long now, struct buf *out);

/* -bp / mailq (cli/cmd_mailq.c): list queue_dir's messages in the classic format; returns an exit status. */
int mailq_list(const char *queue_dir, FILE *out, FILE *errf);

#endif
