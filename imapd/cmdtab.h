/* imapd's command table: name, handler and flags (states it is allowed in, whether a UID variant exists).
 * session.c looks every command up here; the handlers live one command group per file (cmd_auth.c,
 * cmd_mailbox.c). Syntax of the whole line was already checked by the parser; handlers check their arguments. */
#ifndef POSTERN_IMAPD_CMDTAB_H
#define POSTERN_IMAPD_CMDTAB_H

#include <stdbool.h>
#include <stddef.h>

#include "imapd.h"
#include "parser.h"

/* A handler answers the command itself (tagged OK/NO/BAD); args are the arguments after the command name. */
typedef void imapd_cmd_fn(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid);

#define IMAPD_CMD_NOTAUTH	IMAPD_NOTAUTH	/* allowed before login */
#define IMAPD_CMD_AUTH		IMAPD_AUTH	/* allowed after login */
#define IMAPD_CMD_SELECTED	IMAPD_SELECTED	/* allowed with a mailbox selected */
#define IMAPD_CMD_ANY		(IMAPD_NOTAUTH | IMAPD_AUTH | IMAPD_SELECTED)
#define IMAPD_CMD_UID		0x100		/* "UID name" is valid too */
#define IMAPD_CMD_UIDONLY	0x200		/* only as "UID name" (EXPUNGE is both; this is for UID-only forms) */

struct imapd_cmd {
	const char *name;
	imapd_cmd_fn *fn;
	unsigned flags;
};

/* Case-insensitive lookup; NULL when unknown. */
const struct imapd_cmd *imapd_cmd_find(const char *name);

/* handlers (cmd_auth.c) */
imapd_cmd_fn imapd_cmd_capability, imapd_cmd_noop, imapd_cmd_logout, imapd_cmd_starttls, imapd_cmd_authenticate,
	imapd_cmd_login, imapd_cmd_id, imapd_cmd_enable;
/* handlers (cmd_mailbox.c) */
imapd_cmd_fn imapd_cmd_select, imapd_cmd_examine, imapd_cmd_create, imapd_cmd_delete, imapd_cmd_rename, imapd_cmd_subscribe,
	imapd_cmd_unsubscribe, imapd_cmd_status, imapd_cmd_namespace,
	imapd_cmd_close, imapd_cmd_unselect, imapd_cmd_check;
/* handlers (cmd_list.c) */
imapd_cmd_fn imapd_cmd_list, imapd_cmd_lsub;
/* STATUS items "(MESSAGES UNSEEN ...)" we know; the untagged STATUS answer for a folder (false when it cannot be
 * read: answered NO when answer is set, else silent, as LIST-STATUS wants). (cmd_mailbox.c, also for cmd_list.c) */
bool imapd_status_items_ok(const struct imap_arg *items);
bool imapd_status_send(struct imapd_session *sess, const char *name, const struct imap_arg *items, bool answer);
/* handlers (cmd_append.c) */
imapd_cmd_fn imapd_cmd_append;
/* handlers (cmd_fetch.c, cmd_store.c, cmd_search.c): selected state */
imapd_cmd_fn imapd_cmd_fetch, imapd_cmd_store, imapd_cmd_expunge, imapd_cmd_copy, imapd_cmd_move, imapd_cmd_search;
/* handlers (idle.c) */
imapd_cmd_fn imapd_cmd_idle;
/* handlers (compress.c) */
imapd_cmd_fn imapd_cmd_compress;
/* handlers (quota.c) */
imapd_cmd_fn imapd_cmd_getquotaroot, imapd_cmd_getquota, imapd_cmd_setquota;

#endif
