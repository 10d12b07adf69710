/* imapd mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, STATUS,
 * NAMESPACE, CLOSE/UNSELECT, CHECK (LIST and LSUB are cmd_list.c's). Names arrive in modified UTF-7 and are
 * handled as UTF-8 (mailboxes.c). */
#include <string.h>

#include "alloc.h"
#include "cmdtab.h"
#include "log.h"
#include "fetchcache.h"
#include "flags.h"
#include "keywords.h"
#include "mailboxes.h"
#include "condstore.h"
#include "mbox.h"
#include "selected.h"
#include "str.h"

#define NAME_MAX_BYTES 1024

static const char *root(struct imapd_session *sess) { return sess->login.maildir; }

/* A mailbox argument, decoded; false after answering. */
static bool get_name(struct imapd_session *sess, const struct imap_arg *a, struct buf *name)
{
	return imapd_arg_mailbox(sess, a, name);
}

static void answer_result(struct imapd_session *sess, enum imapd_mbox_result r, struct buf *err, const char *done)
{
	switch (r) {
	case IMAPD_MBOX_OK:
		imapd_ok(sess, "%s completed", done);
		break;
	case IMAPD_MBOX_EXISTS:
		imapd_no(sess, "[ALREADYEXISTS] mailbox already exists");
		break;
	case IMAPD_MBOX_NONEXISTENT:
		imapd_no(sess, "[NONEXISTENT] no such mailbox");
		break;
	case IMAPD_MBOX_BADNAME:
		imapd_no(sess, "[CANNOT] invalid mailbox name");
		break;
	case IMAPD_MBOX_FAILED:
		log_error("imapd: user %s: %s failed: %s", sess->login.user, done, buf_cstr(err));
		imapd_no(sess, "[SERVERBUG] %s failed", done);
		break;
	}
}

/* ---- SELECT / EXAMINE ---- */

static void do_select(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool readonly)
{
	struct buf name = BUF_INIT(NAME_MAX_BYTES), path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct imapd_counts c;
	struct imapd_qresync qr = { 0 };

	/* a failed SELECT leaves no mailbox selected (RFC 3501 6.3.1); QRESYNC clients are told (RFC 7162 3.2.11) */
	if (sess->sel)
		imapd_untagged(sess, "OK [CLOSED] previous mailbox closed");
	imapd_unselect(sess);
	if (nargs != 1 && nargs != 2) {
		imapd_bad(sess, "%s needs one mailbox name", readonly ? "EXAMINE" : "SELECT");
		goto out;
	}
	if (nargs == 2 && !imapd_select_params(sess, &args[1], &qr))
		goto out;
	if (!get_name(sess, &args[0], &name))
		goto out;
	if (!imapd_mailbox_exists(root(sess), buf_cstr(&name)) ||
	    !imapd_mailbox_path(root(sess), buf_cstr(&name), &path) || !imapd_mailbox_counts(buf_cstr(&path), &c)) {
		imapd_no(sess, "[NONEXISTENT] no such mailbox");
		goto out;
	}
	sess->sel = xcalloc(1, sizeof(*sess->sel));
	sess->sel->name = buf_steal(&name, NULL);
	sess->sel->path = buf_steal(&path, NULL);
	sess->sel->readonly = readonly;
	if (!imapd_sel_open(sess->sel, &err)) {
		log_error("imapd: user %s: %s", sess->login.user, buf_cstr(&err));
		imapd_unselect(sess);
		imapd_no(sess, "[SERVERBUG] cannot open the mailbox");
		goto out;
	}
	sess->state = IMAPD_SELECTED;

	struct buf kw = BUF_INIT(BUF_NOLIMIT);
	imapd_sel_flags_list(sess->sel, 0xffffffffu, &kw);
	imapd_untagged(sess, "FLAGS %s", buf_cstr(&kw));
	imapd_untagged(sess, "%u EXISTS", sess->sel->exists);
	imapd_untagged(sess, "%u RECENT", sess->sel->recent);
	if (readonly) {
		imapd_untagged(sess, "OK [PERMANENTFLAGS ()] read-only");
	} else {
		buf_truncate(&kw, kw.len - 1);
		imapd_untagged(sess, "OK [PERMANENTFLAGS %s%s)] flags", buf_cstr(&kw),
			       imapd_keywords_full(sess->sel->keywords) ? "" : " \\*");
	}
	buf_free(&kw);
	for (size_t i = 0; i < sess->sel->n; i++)
		if (!(sess->sel->v[i].flags & IMAP_FLAG_SEEN)) {
			imapd_untagged(sess, "OK [UNSEEN %zu] first unseen", i + 1);
			break;
		}
	imapd_untagged(sess, "OK [UIDVALIDITY %u] UIDs valid", sess->sel->uidvalidity);
	imapd_untagged(sess, "OK [UIDNEXT %u] predicted next UID", sess->sel->uidnext);
	imapd_untagged(sess, "OK [HIGHESTMODSEQ %llu] highest", (unsigned long long)mbox_highestmodseq(sess->sel->mb));
	imapd_qresync_select(sess, &qr);
	imapd_ok(sess, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE", readonly ? "EXAMINE" : "SELECT");
out:
	imapd_select_params_free(&qr);
	buf_free(&name);
	buf_free(&path);
	buf_free(&err);
}

void imapd_cmd_select(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_select(sess, args, nargs, false);
}

void imapd_cmd_examine(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_select(sess, args, nargs, true);
}

void imapd_cmd_close(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "CLOSE takes no arguments");
		return;
	}
	/* CLOSE expunges silently (RFC 3501 6.4.2); EXAMINE'd mailboxes are left alone */
	if (!sess->sel->readonly)
		imapd_expunge_deleted(sess, NULL, 0);
	imapd_unselect(sess);
	imapd_ok(sess, "CLOSE completed");
}

void imapd_cmd_unselect(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "UNSELECT takes no arguments");
		return;
	}
	imapd_unselect(sess);
	imapd_ok(sess, "UNSELECT completed");
}

void imapd_cmd_check(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "CHECK takes no arguments");
		return;
	}
	imapd_ok(sess, "CHECK completed");
}

/* ---- CREATE / DELETE / RENAME ---- */

void imapd_cmd_create(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf name = BUF_INIT(NAME_MAX_BYTES), err = BUF_INIT(1024);

	(void)uid;
	if (nargs != 1) {
		imapd_bad(sess, "CREATE needs one mailbox name");
	} else if (get_name(sess, &args[0], &name)) {
		/* "a/b/" means the client intends a/b to have children: Maildir++ needs nothing more than a/b */
		while (name.len > 1 && name.data[name.len - 1] == IMAPD_HIER_SEP)
			buf_truncate(&name, name.len - 1);
		answer_result(sess, imapd_mailbox_create(root(sess), buf_cstr(&name), &err), &err, "CREATE");
	}
	buf_free(&name);
	buf_free(&err);
}

void imapd_cmd_delete(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf name = BUF_INIT(NAME_MAX_BYTES), err = BUF_INIT(1024);

	(void)uid;
	if (nargs != 1) {
		imapd_bad(sess, "DELETE needs one mailbox name");
	} else if (get_name(sess, &args[0], &name)) {
		if (strcmp(buf_cstr(&name), "INBOX") == 0) {
			imapd_no(sess, "[CANNOT] INBOX cannot be deleted");
		} else {
			if (sess->sel && strcmp(sess->sel->name, buf_cstr(&name)) == 0)
				imapd_unselect(sess);
			answer_result(sess, imapd_mailbox_delete(root(sess), buf_cstr(&name), &err), &err, "DELETE");
		}
	}
	buf_free(&name);
	buf_free(&err);
}

/* Is name from itself or below it? */
static bool in_tree(const char *name, const char *from)
{
	size_t fl = strlen(from);
	return strncmp(name, from, fl) == 0 && (name[fl] == '\0' || name[fl] == IMAPD_HIER_SEP);
}

/* RENAME of the selected folder (or of a parent): its index moves with the directory and keeps the UIDs, so the
 * session stays selected under the new name. The index is closed across the rename (an LMDB environment must
 * not be open twice in one process) and opened again at wherever the folder is afterwards. */
static void rename_selected(struct imapd_session *sess, const char *from, const char *to)
{
	struct imapd_selected *sel = sess->sel;
	struct buf name = BUF_INIT(BUF_NOLIMIT), path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);

	if (to) {
		buf_printf(&name, "%s%s", to, sel->name + strlen(from));
		if (imapd_mailbox_path(root(sess), buf_cstr(&name), &path)) {
			free(sel->name);
			free(sel->path);
			sel->name = buf_steal(&name, NULL);
			sel->path = buf_steal(&path, NULL);
		}
	}
	if ((sel->mb = mbox_open(sel->path, &err)) == NULL) {
		log_error("imapd: user %s: %s", sess->login.user, buf_cstr(&err));
		imapd_unselect(sess);
	} else {
		sel->fc = imapd_fcache_open(sel->path);
	}
	buf_free(&name);
	buf_free(&path);
	buf_free(&err);
}

void imapd_cmd_rename(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf from = BUF_INIT(NAME_MAX_BYTES), to = BUF_INIT(NAME_MAX_BYTES), err = BUF_INIT(1024);

	(void)uid;
	if (nargs != 2) {
		imapd_bad(sess, "RENAME needs two mailbox names");
	} else if (get_name(sess, &args[0], &from) && get_name(sess, &args[1], &to)) {
		if (strcmp(buf_cstr(&to), buf_cstr(&from)) != 0 && in_tree(buf_cstr(&to), buf_cstr(&from))) {
			imapd_no(sess, "[CANNOT] a mailbox cannot move below itself");
			goto out;
		}
		/* renaming INBOX moves its messages and leaves INBOX itself in place */
		bool moves_sel = sess->sel && strcmp(buf_cstr(&from), "INBOX") != 0 &&
				 in_tree(sess->sel->name, buf_cstr(&from));
		if (moves_sel) {
			mbox_close(&sess->sel->mb);
			imapd_fcache_close(&sess->sel->fc);
		}
		enum imapd_mbox_result r = imapd_mailbox_rename(root(sess), buf_cstr(&from), buf_cstr(&to), &err);
		if (moves_sel)
			rename_selected(sess, buf_cstr(&from), r == IMAPD_MBOX_OK ? buf_cstr(&to) : NULL);
		answer_result(sess, r, &err, "RENAME");
	}
out:
	buf_free(&from);
	buf_free(&to);
	buf_free(&err);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

static void do_subscribe(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool on)
{
	struct buf name = BUF_INIT(NAME_MAX_BYTES), err = BUF_INIT(1024);
	const char *what = on ? "SUBSCRIBE" : "UNSUBSCRIBE";

	if (nargs != 1) {
		imapd_bad(sess, "%s needs one mailbox name", what);
	} else if (get_name(sess, &args[0], &name)) {
		if (on && !imapd_mailbox_exists(root(sess), buf_cstr(&name)))
			imapd_no(sess, "[NONEXISTENT] no such mailbox");
		else if (!imapd_subscribe(root(sess), buf_cstr(&name), on, &err))
			answer_result(sess, IMAPD_MBOX_FAILED, &err, what);
		else
			imapd_ok(sess, "%s completed", what);
	}
	buf_free(&name);
	buf_free(&err);
}

void imapd_cmd_subscribe(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_subscribe(sess, args, nargs, true);
}

void imapd_cmd_unsubscribe(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_subscribe(sess, args, nargs, false);
}

/* ---- STATUS / NAMESPACE ---- */

bool imapd_status_items_ok(const struct imap_arg *items)
{
	if (items->type != IMAP_ARG_LIST || items->count == 0)
		return false;
	for (size_t i = 0; i < items->count; i++) {
		const char *item;
		if (!imap_arg_atom(&items->list[i], &item) ||
		    !(str_eq_ci(item, "MESSAGES") || str_eq_ci(item, "RECENT") || str_eq_ci(item, "UIDNEXT") ||
		      str_eq_ci(item, "UIDVALIDITY") || str_eq_ci(item, "UNSEEN") || str_eq_ci(item, "HIGHESTMODSEQ")))
			return false;
	}
	return true;
}

bool imapd_status_send(struct imapd_session *sess, const char *name, const struct imap_arg *items, bool answer)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT);
	struct imapd_counts c;
	bool ok = false;

	if (!imapd_mailbox_exists(root(sess), name) || !imapd_mailbox_path(root(sess), name, &path)) {
		if (answer)
			imapd_no(sess, "[NONEXISTENT] no such mailbox");
		goto out;
	}
	if (sess->sel && strcmp(sess->sel->path, buf_cstr(&path)) == 0) {
		/* the selected folder: its index is open here already (one LMDB environment per process) */
		bool own;
		struct buf err = BUF_INIT(1024);
		struct mbox *mb = imapd_sel_borrow(sess, buf_cstr(&path), &own, &err);
		buf_free(&err);
		if (!mb) {
			if (answer)
				imapd_no(sess, "[SERVERBUG] cannot read the mailbox");
			goto out;
		}
		imapd_mbox_counts(mb, &c);
		c.recent = 0;
		for (size_t i = 0; i < sess->sel->n; i++)
			c.recent += sess->sel->v[i].recent;
	} else if (!imapd_mailbox_counts(buf_cstr(&path), &c)) {
		if (answer)
			imapd_no(sess, "[NONEXISTENT] no such mailbox");
		goto out;
	}
	buf_puts(&line, "STATUS ");
	imapd_put_mailbox(sess, &line, name);
	buf_puts(&line, " (");
	for (size_t i = 0; i < items->count; i++) {
		const char *item = items->list[i].str;
		if (str_eq_ci(item, "HIGHESTMODSEQ"))
			sess->condstore = true;	/* a CONDSTORE enabling command (RFC 7162 3.1) */
		uint64_t v = str_eq_ci(item, "HIGHESTMODSEQ") ? c.highestmodseq : str_eq_ci(item, "MESSAGES") ? c.messages :
			     str_eq_ci(item, "RECENT") ? c.recent :
			     str_eq_ci(item, "UIDNEXT") ? c.uidnext : str_eq_ci(item, "UIDVALIDITY") ? c.uidvalidity :
			     c.unseen;
		char upper[16];
		str_copy(upper, sizeof(upper), item);
		for (char *u = upper; *u; u++)
			if (*u >= 'a' && *u <= 'z')
				*u = (char)(*u - 32);
		buf_printf(&line, "%s%s %llu", i ? " " : "", upper, (unsigned long long)v);
	}
	buf_puts(&line, ")");
	imapd_untagged(sess, "%s", buf_cstr(&line));
	ok = true;
out:
	buf_free(&path);
	buf_free(&line);
	return ok;
}

void imapd_cmd_status(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf name = BUF_INIT(NAME_MAX_BYTES);

	(void)uid;
	if (nargs != 2 || args[1].type != IMAP_ARG_LIST || args[1].count == 0) {
		imapd_bad(sess, "STATUS needs a mailbox name and a list of items");
	} else if (!imapd_status_items_ok(&args[1])) {
		imapd_bad(sess, "unknown STATUS item");
	} else if (get_name(sess, &args[0], &name) && imapd_status_send(sess, buf_cstr(&name), &args[1], true)) {
		imapd_ok(sess, "STATUS completed");
	}
	buf_free(&name);
}

void imapd_cmd_namespace(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "NAMESPACE takes no arguments");
		return;
	}
	imapd_untagged(sess, "NAMESPACE ((\"\" \"%c\")) NIL NIL", IMAPD_HIER_SEP);
	imapd_ok(sess, "NAMESPACE completed");
}
