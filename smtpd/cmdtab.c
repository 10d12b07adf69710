/* The SMTP command table and line parser; see cmdtab.h. */
#include "cmdtab.h"

#include <string.h>

#include "str.h"

static const struct {
	enum smtpd_cmd_id id;
	const char *name;
	unsigned flags;
} table[] = {
	{ SMTPD_CMD_EHLO, "EHLO", SMTPD_CF_PRE_TLS | SMTPD_CF_SYNC | SMTPD_CF_ARG },
	{ SMTPD_CMD_HELO, "HELO", SMTPD_CF_PRE_TLS | SMTPD_CF_SYNC | SMTPD_CF_ARG },
	{ SMTPD_CMD_MAIL, "MAIL", SMTPD_CF_ARG },
	{ SMTPD_CMD_RCPT, "RCPT", SMTPD_CF_ARG },
	{ SMTPD_CMD_DATA, "DATA", SMTPD_CF_SYNC | SMTPD_CF_NOARG },
	{ SMTPD_CMD_BDAT, "BDAT", SMTPD_CF_ARG },
	{ SMTPD_CMD_RSET, "RSET", SMTPD_CF_PRE_TLS | SMTPD_CF_NOARG },
	{ SMTPD_CMD_NOOP, "NOOP", SMTPD_CF_PRE_TLS | SMTPD_CF_SYNC | SMTPD_CF_JUNK },
	{ SMTPD_CMD_QUIT, "QUIT", SMTPD_CF_PRE_TLS | SMTPD_CF_SYNC | SMTPD_CF_NOARG },
	{ SMTPD_CMD_VRFY, "VRFY", SMTPD_CF_SYNC | SMTPD_CF_JUNK | SMTPD_CF_ARG },
	{ SMTPD_CMD_EXPN, "EXPN", SMTPD_CF_SYNC | SMTPD_CF_JUNK | SMTPD_CF_ARG },
	{ SMTPD_CMD_HELP, "HELP", SMTPD_CF_PRE_TLS | SMTPD_CF_SYNC | SMTPD_CF_JUNK },
	{ SMTPD_CMD_STARTTLS, "STARTTLS", SMTPD_CF_PRE_TLS | SMTPD_CF_SYNC | SMTPD_CF_NOARG },
	{ SMTPD_CMD_AUTH, "AUTH", SMTPD_CF_SYNC | SMTPD_CF_ARG },
	{ SMTPD_CMD_HTTP, "GET", SMTPD_CF_SYNC },
	{ SMTPD_CMD_HTTP, "POST", SMTPD_CF_SYNC },
	{ SMTPD_CMD_HTTP, "CONNECT", SMTPD_CF_SYNC },
};

enum smtpd_parse_result smtpd_cmd_parse(const char *line, size_t len, struct smtpd_cmd *out)
{
	size_t vlen = 0;

	out->id = SMTPD_CMD_UNKNOWN;
	out->name = "";
	out->flags = SMTPD_CF_SYNC | SMTPD_CF_JUNK;
	out->arg = "";
	out->arglen = 0;
	if (memchr(line, '\0', len))
		return SMTPD_PARSE_NUL;
	/* Verbs are letters only; tolerate trailing white space after the whole line (some clients send it). */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	while (vlen < len && ((line[vlen] >= 'A' && line[vlen] <= 'Z') || (line[vlen] >= 'a' && line[vlen] <= 'z')))
		vlen++;
	if (vlen == 0 || (vlen < len && line[vlen] != ' '))
		return SMTPD_PARSE_UNKNOWN;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strlen(table[i].name) != vlen || !str_eqn_ci(line, table[i].name, vlen))
			continue;
		out->id = table[i].id;
		out->name = table[i].name;
		out->flags = table[i].flags;
		if (vlen < len) {
			size_t a = vlen + 1;
			/* RFC 5321 says one space; accept more, as Postfix does, rather than fail real clients. */
			while (a < len && line[a] == ' ')
				a++;
			out->arg = line + a;
			out->arglen = len - a;
		}
		if ((out->flags & SMTPD_CF_NOARG) && out->arglen > 0)
			return SMTPD_PARSE_SYNTAX;
		if ((out->flags & SMTPD_CF_ARG) && out->arglen == 0)
			return SMTPD_PARSE_SYNTAX;
		return SMTPD_PARSE_OK;
	}
	return SMTPD_PARSE_UNKNOWN;
}
