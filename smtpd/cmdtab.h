/* smtpd's command table: the syntax side of SMTP commands, apart from their actions. Parses one command line
 * (terminator already removed) into a command and its argument, and says per command whether it is allowed
 * before STARTTLS on a TLS-required service, whether it ends a pipelined group (RFC 2920), and whether it
 * counts toward the junk-command limit. Used by smtpd/session.c. */
#ifndef POSTERN_SMTPD_CMDTAB_H
#define POSTERN_SMTPD_CMDTAB_H

#include <stddef.h>

enum smtpd_cmd_id {
	SMTPD_CMD_UNKNOWN = 0,
	SMTPD_CMD_EHLO, SMTPD_CMD_HELO, SMTPD_CMD_MAIL, SMTPD_CMD_RCPT, SMTPD_CMD_DATA, SMTPD_CMD_BDAT,
	SMTPD_CMD_RSET, SMTPD_CMD_NOOP, SMTPD_CMD_QUIT, SMTPD_CMD_VRFY, SMTPD_CMD_EXPN, SMTPD_CMD_HELP,
	SMTPD_CMD_STARTTLS, SMTPD_CMD_AUTH,
	/* not SMTP: HTTP requests sent to the SMTP port, refused and disconnected like Postfix does */
	SMTPD_CMD_HTTP,
};

#define SMTPD_CF_PRE_TLS    0x01  /* allowed before STARTTLS where TLS is required */
#define SMTPD_CF_SYNC       0x02  /* ends a pipelined group: the client waits for the reply (RFC 2920 §3.1) */
#define SMTPD_CF_JUNK       0x04  /* counts toward the limit of commands that do not move a transaction */
#define SMTPD_CF_NOARG      0x08  /* takes no argument ("DATA x" is a syntax error) */
#define SMTPD_CF_ARG        0x10  /* requires an argument */

struct smtpd_cmd {
	enum smtpd_cmd_id id;
	const char *name;      /* canonical upper-case name, "" for unknown */
	unsigned flags;
	const char *arg;       /* points into the parsed line: after the verb and one space; "" when none */
	size_t arglen;
};

enum smtpd_parse_result {
	SMTPD_PARSE_OK,
	SMTPD_PARSE_UNKNOWN,     /* 500 5.5.2 */
	SMTPD_PARSE_SYNTAX,      /* 501 5.5.4: argument where none is allowed, or missing */
	SMTPD_PARSE_NUL,         /* a NUL byte in the line: 500 5.5.2, never passed on as a C string */
};

/* line/len: the command line without CRLF. */
enum smtpd_parse_result smtpd_cmd_parse(const char *line, size_t len, struct smtpd_cmd *out);

#endif
