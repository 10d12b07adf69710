/* The POP3 command table and the line parser. */
#include <string.h>

#include "pop3_cmd.h"
#include "str.h"

static const struct pop3_cmd_def cmds[] = {
	{ "USER", POP3_CMD_USER, POP3_IN_AUTH, POP3_ARGS_WORD },
	{ "PASS", POP3_CMD_PASS, POP3_IN_AUTH, POP3_ARGS_REST },
	{ "APOP", POP3_CMD_APOP, POP3_IN_AUTH, POP3_ARGS_WORD_WORD },
	{ "AUTH", POP3_CMD_AUTH, POP3_IN_AUTH, POP3_ARGS_AUTH },
	{ "STLS", POP3_CMD_STLS, POP3_IN_AUTH, POP3_ARGS_NONE },
	{ "CAPA", POP3_CMD_CAPA, POP3_IN_AUTH | POP3_IN_TRANS, POP3_ARGS_NONE },
	{ "QUIT", POP3_CMD_QUIT, POP3_IN_AUTH | POP3_IN_TRANS, POP3_ARGS_NONE },
	{ "STAT", POP3_CMD_STAT, POP3_IN_TRANS, POP3_ARGS_NONE },
	{ "LIST", POP3_CMD_LIST, POP3_IN_TRANS, POP3_ARGS_OPT_MSG },
	{ "RETR", POP3_CMD_RETR, POP3_IN_TRANS, POP3_ARGS_MSG },
	{ "DELE", POP3_CMD_DELE, POP3_IN_TRANS, POP3_ARGS_MSG },
	{ "NOOP", POP3_CMD_NOOP, POP3_IN_TRANS, POP3_ARGS_NONE },
	{ "RSET", POP3_CMD_RSET, POP3_IN_TRANS, POP3_ARGS_NONE },
	{ "TOP", POP3_CMD_TOP, POP3_IN_TRANS, POP3_ARGS_MSG_NUM },
	{ "UIDL", POP3_CMD_UIDL, POP3_IN_TRANS, POP3_ARGS_OPT_MSG },
};

/* Split off words at single or repeated spaces; returns the count (up to max stored, more counted). */
static size_t words(char *s, char **w, size_t max)
{
	size_t n = 0;

	while (*s) {
		while (*s == ' ')
			*s++ = '\0';
		if (!*s)
			break;
		if (n < max)
			w[n] = s;
		n++;
		while (*s && *s != ' ')
			s++;
	}
	return n;
}

static bool number(const char *s, bool msg, uint32_t *out)
{
	uint64_t v;

	if (strlen(s) > 10 || !str_to_u64(s, UINT32_MAX, &v) || (msg && v == 0))
		return false;
	*out = (uint32_t)v;
	return true;
}

enum pop3_parse_result pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *out)
{
	const struct pop3_cmd_def *def = NULL;
	char *w[3];
	size_t kwlen, n;
	char *rest;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			return POP3_PARSE_SYNTAX;
	}
	kwlen = strcspn(line, " ");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strlen(cmds[i].name) == kwlen && str_eqn_ci(line, cmds[i].name, kwlen))
			def = &cmds[i];
	if (!def)
		return POP3_PARSE_UNKNOWN;
	out->def = def;
	rest = line + kwlen;
	if (*rest == ' ')
		*rest++ = '\0';
	else if (*rest != '\0')
		return POP3_PARSE_SYNTAX;

	if (def->args == POP3_ARGS_REST) {
		/* A password may hold spaces; only the single separator after PASS is not part of it. */
		if (*rest == '\0' || strlen(rest) > POP3_ARG_MAX)
			return POP3_PARSE_SYNTAX;
		out->arg[0] = rest;
		out->nargs = 1;
		return POP3_PARSE_OK;
	}
	n = words(rest, w, 3);
	if (n > 2)
		return POP3_PARSE_SYNTAX;
	for (size_t i = 0; i < n; i++) {
		if (strlen(w[i]) > POP3_LINE_MAX)
			return POP3_PARSE_SYNTAX;
		out->arg[i] = w[i];
	}
	out->nargs = n;
	switch (def->args) {
	case POP3_ARGS_NONE:
		return n == 0 ? POP3_PARSE_OK : POP3_PARSE_SYNTAX;
	case POP3_ARGS_WORD:
		return n == 1 && strlen(w[0]) <= POP3_ARG_MAX ? POP3_PARSE_OK : POP3_PARSE_SYNTAX;
	case POP3_ARGS_WORD_WORD:
		return n == 2 && strlen(w[0]) <= POP3_ARG_MAX && strlen(w[1]) <= POP3_ARG_MAX ? POP3_PARSE_OK
		                                                                              : POP3_PARSE_SYNTAX;
	case POP3_ARGS_AUTH:
		if (n >= 1 && strlen(w[0]) > 20)
			return POP3_PARSE_SYNTAX;
		return POP3_PARSE_OK;
	case POP3_ARGS_MSG:
		return n == 1 && number(w[0], true, &out->num[0]) ? POP3_PARSE_OK : POP3_PARSE_SYNTAX;
	case POP3_ARGS_OPT_MSG:
		return n == 0 || (n == 1 && number(w[0], true, &out->num[0])) ? POP3_PARSE_OK : POP3_PARSE_SYNTAX;
	case POP3_ARGS_MSG_NUM:
		return n == 2 && number(w[0], true, &out->num[0]) && number(w[1], false, &out->num[1])
		           ? POP3_PARSE_OK
		           : POP3_PARSE_SYNTAX;
	case POP3_ARGS_REST:
		break;
	}
	return POP3_PARSE_SYNTAX;
}
