/* imapd QUOTA (RFC 9208) with the STORAGE resource: one quota root "" per account covering INBOX and every
 * folder, its limit the account's quota from the auth database (given at login), its usage the S= sizes of the
 * messages in all folders (maildirsize_scan: what local counts against the quota). Limits are set with `postern user`, so
 * SETQUOTA is refused. */
#include <string.h>

#include "alloc.h"
#include "cmdtab.h"
#include "log.h"
#include "maildirsize.h"
#include "mailboxes.h"
#include "str.h"

/* Bytes in INBOX and every folder, counted afresh (the maildirsize file may lag behind other programs). */
static uint64_t usage(const char *root)
{
	struct buf err = BUF_INIT(1024);
	uint64_t bytes = 0, count = 0;

	if (!maildirsize_scan(root, &bytes, &count, &err))
		log_warn("imapd: quota: %s", buf_cstr(&err));
	buf_free(&err);
	return bytes;
}

/* "* QUOTA "" (STORAGE used limit)" in KiB (RFC 9208 5.1: units of 1024 octets). */
static void quota_response(struct imapd_session *sess)
{
	uint64_t used = usage(sess->login.maildir);

	imapd_untagged(sess, "QUOTA \"\" (STORAGE %llu %llu)", (unsigned long long)((used + 1023) / 1024),
		       (unsigned long long)(sess->login.quota / 1024));
}

void imapd_cmd_getquotaroot(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf name = BUF_INIT(4096), line = BUF_INIT(BUF_NOLIMIT);

	(void)uid;
	if (nargs != 1) {
		imapd_bad(sess, "GETQUOTAROOT needs a mailbox name");
		goto out;
	}
	if (!imapd_arg_mailbox(sess, &args[0], &name))
		goto out;
	if (!imapd_mailbox_exists(sess->login.maildir, buf_cstr(&name))) {
		imapd_no(sess, "[NONEXISTENT] no such mailbox");
		goto out;
	}
	buf_puts(&line, "QUOTAROOT ");
	imapd_put_mailbox(sess, &line, buf_cstr(&name));
	/* an account without a quota has no quota root */
	if (sess->login.quota)
		buf_puts(&line, " \"\"");
	imapd_untagged(sess, "%s", buf_cstr(&line));
	if (sess->login.quota)
		quota_response(sess);
	imapd_ok(sess, "GETQUOTAROOT completed");
out:
	buf_free(&name);
	buf_free(&line);
}

void imapd_cmd_getquota(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	const char *root;

	(void)uid;
	if (nargs != 1 || !imap_arg_astring(&args[0], &root)) {
		imapd_bad(sess, "GETQUOTA needs a quota root");
		return;
	}
	if (root[0] != '\0' || !sess->login.quota) {
		imapd_no(sess, "[NONEXISTENT] no such quota root");
		return;
	}
	quota_response(sess);
	imapd_ok(sess, "GETQUOTA completed");
}

void imapd_cmd_setquota(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs != 2 || args[1].type != IMAP_ARG_LIST) {
		imapd_bad(sess, "SETQUOTA needs a quota root and a list of limits");
		return;
	}
	imapd_no(sess, "[NOPERM] quotas are set by the administrator");
}
