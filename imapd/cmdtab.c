/* The imapd command table; see cmdtab.h. */
#include <stddef.h>

#include "cmdtab.h"
#include "str.h"

#define AUTHED (IMAPD_CMD_AUTH | IMAPD_CMD_SELECTED)

static const struct imapd_cmd cmds[] = {
	{ "CAPABILITY",		imapd_cmd_capability,	IMAPD_CMD_ANY },
	{ "NOOP",		imapd_cmd_noop,		IMAPD_CMD_ANY },
	{ "LOGOUT",		imapd_cmd_logout,	IMAPD_CMD_ANY },
	{ "ID",			imapd_cmd_id,		IMAPD_CMD_ANY },
	{ "STARTTLS",		imapd_cmd_starttls,	IMAPD_CMD_NOTAUTH },
	{ "AUTHENTICATE",	imapd_cmd_authenticate,	IMAPD_CMD_NOTAUTH },
	{ "LOGIN",		imapd_cmd_login,	IMAPD_CMD_NOTAUTH },
	{ "ENABLE",		imapd_cmd_enable,	IMAPD_CMD_AUTH },	/* RFC 5161: not once selected */
	{ "SELECT",		imapd_cmd_select,	AUTHED },
	{ "EXAMINE",		imapd_cmd_examine,	AUTHED },
	{ "CREATE",		imapd_cmd_create,	AUTHED },
	{ "DELETE",		imapd_cmd_delete,	AUTHED },
	{ "RENAME",		imapd_cmd_rename,	AUTHED },
	{ "SUBSCRIBE",		imapd_cmd_subscribe,	AUTHED },
	{ "UNSUBSCRIBE",	imapd_cmd_unsubscribe,	AUTHED },
	{ "LIST",		imapd_cmd_list,		AUTHED },
	{ "LSUB",		imapd_cmd_lsub,		AUTHED },
	{ "STATUS",		imapd_cmd_status,	AUTHED },
	{ "NAMESPACE",		imapd_cmd_namespace,	AUTHED },
	{ "APPEND",		imapd_cmd_append,	AUTHED },
	{ "CHECK",		imapd_cmd_check,	IMAPD_CMD_SELECTED },
	{ "CLOSE",		imapd_cmd_close,	IMAPD_CMD_SELECTED },
	{ "UNSELECT",		imapd_cmd_unselect,	IMAPD_CMD_SELECTED },
	{ "FETCH",		imapd_cmd_fetch,	IMAPD_CMD_SELECTED | IMAPD_CMD_UID },
	{ "STORE",		imapd_cmd_store,	IMAPD_CMD_SELECTED | IMAPD_CMD_UID },
	{ "SEARCH",		imapd_cmd_search,	IMAPD_CMD_SELECTED | IMAPD_CMD_UID },
	{ "COPY",		imapd_cmd_copy,		IMAPD_CMD_SELECTED | IMAPD_CMD_UID },
	{ "MOVE",		imapd_cmd_move,		IMAPD_CMD_SELECTED | IMAPD_CMD_UID },
	{ "EXPUNGE",		imapd_cmd_expunge,	IMAPD_CMD_SELECTED | IMAPD_CMD_UID },
	{ "IDLE",		imapd_cmd_idle,		AUTHED },
	{ "COMPRESS",		imapd_cmd_compress,	AUTHED },
	{ "GETQUOTAROOT",	imapd_cmd_getquotaroot,	AUTHED },
	{ "GETQUOTA",		imapd_cmd_getquota,	AUTHED },
	{ "SETQUOTA",		imapd_cmd_setquota,	AUTHED },
};

const struct imapd_cmd *imapd_cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (str_eq_ci(name, cmds[i].name))
			return &cmds[i];
	return NULL;
}
