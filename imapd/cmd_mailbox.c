/* imapd mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB, STATUS,
 * NAMESPACE, CLOSE/UNSELECT, CHECK. Names arrive in modified UTF-7 and are handled as UTF-8 (mailboxes.c). */
#include <string.h>

#include "alloc.h"
#include "cmdtab.h"
#include "listmatch.h"
#include "log.h"
#include "flags.h"
#include "mailboxes.h"
#include "condstore.h"
#include "mbox.h"
#include "selected.h"
#include "str.h"
#include "utf7imap.h"

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
		imapd_untagged(sess, "OK [PERMANENTFLAGS %s \\*)] flags", buf_cstr(&kw));
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

void imapd_cmd_rename(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf from = BUF_INIT(NAME_MAX_BYTES), to = BUF_INIT(NAME_MAX_BYTES), err = BUF_INIT(1024);

	(void)uid;
	if (nargs != 2) {
		imapd_bad(sess, "RENAME needs two mailbox names");
	} else if (get_name(sess, &args[0], &from) && get_name(sess, &args[1], &to)) {
		size_t fl = from.len;
		if (strncmp(buf_cstr(&to), buf_cstr(&from), fl) == 0 && buf_cstr(&to)[fl] == IMAPD_HIER_SEP)
			imapd_no(sess, "[CANNOT] a mailbox cannot move below itself");
		else
			answer_result(sess, imapd_mailbox_rename(root(sess), buf_cstr(&from), buf_cstr(&to), &err), &err,
				      "RENAME");
	}
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

/* ---- LIST / LSUB ---- */

static bool has_children(const struct imapd_names *all, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < all->count; i++)
		if (strncmp(all->v[i], name, n) == 0 && all->v[i][n] == IMAPD_HIER_SEP)
			return true;
	return false;
}

/* Add the parents of every name that do not exist themselves: "%" must show "a" for "a/b" (as \Noselect). */
static void add_parents(struct imapd_names *all, struct imapd_names *noselect)
{
	size_t n = all->count;
	for (size_t i = 0; i < n; i++) {
		char *copy = xstrdup(all->v[i]);
		char *slash;
		while ((slash = strrchr(copy, IMAPD_HIER_SEP)) != NULL) {
			*slash = '\0';
			if (*copy && !imapd_names_has(all, copy)) {
				imapd_names_add(all, copy);
				imapd_names_add(noselect, copy);
			}
		}
		free(copy);
	}
}

static void do_list(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool lsub)
{
	const char *ref, *mbox;
	struct buf refd = BUF_INIT(NAME_MAX_BYTES), patd = BUF_INIT(NAME_MAX_BYTES), pat = BUF_INIT(2 * NAME_MAX_BYTES + 8);
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	struct imapd_names all = { 0 }, noselect = { 0 }, existing = { 0 };
	const char *what = lsub ? "LSUB" : "LIST";

	if (nargs != 2 || !imap_arg_astring(&args[0], &ref) || !imap_arg_astring(&args[1], &mbox)) {
		imapd_bad(sess, "%s needs a reference and a mailbox pattern", what);
		goto out;
	}
	if (!utf7imap_decode(ref, strlen(ref), &refd) || !utf7imap_decode(mbox, strlen(mbox), &patd)) {
		imapd_no(sess, "[CANNOT] name is not valid modified UTF-7");
		goto out;
	}
	if (patd.len == 0 && !lsub) {
		/* LIST "" "": the hierarchy separator and root */
		imapd_untagged(sess, "LIST (\\Noselect) \"%c\" \"\"", IMAPD_HIER_SEP);
		imapd_ok(sess, "LIST completed");
		goto out;
	}
	if (!imap_list_pattern(buf_cstr(&refd), buf_cstr(&patd), IMAPD_HIER_SEP, &pat)) {
		imapd_no(sess, "[CANNOT] pattern too long");
		goto out;
	}
	imapd_mailboxes_list(root(sess), &existing);
	if (lsub)
		imapd_subscriptions_read(root(sess), &all);
	else
		for (size_t i = 0; i < existing.count; i++)
			imapd_names_add(&all, existing.v[i]);
	add_parents(&all, &noselect);
	for (size_t i = 0; i < all.count; i++) {
		const char *n = all.v[i];
		if (!imap_list_match(buf_cstr(&pat), n, IMAPD_HIER_SEP))
			continue;
		buf_reset(&line);
		buf_printf(&line, "%s (", what);
		bool ns = imapd_names_has(&noselect, n) || (lsub && !imapd_names_has(&existing, n));
		if (ns)
			buf_puts(&line, "\\Noselect ");
		if (!lsub) {
			buf_puts(&line, has_children(&all, n) ? "\\HasChildren" : "\\HasNoChildren");
			const char *use = imapd_special_use(n);
			if (use)
				buf_printf(&line, " %s", use);
		} else if (ns) {
			buf_truncate(&line, line.len - 1);
		}
		buf_printf(&line, ") \"%c\" ", IMAPD_HIER_SEP);
		imapd_put_mailbox(sess, &line, n);
		imapd_untagged(sess, "%s", buf_cstr(&line));
	}
	imapd_ok(sess, "%s completed", what);
out:
	imapd_names_free(&all);
	imapd_names_free(&noselect);
	imapd_names_free(&existing);
	buf_free(&refd);
	buf_free(&patd);
	buf_free(&pat);
	buf_free(&line);
}

void imapd_cmd_list(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_list(sess, args, nargs, false);
}

void imapd_cmd_lsub(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_list(sess, args, nargs, true);
}

/* ---- STATUS / NAMESPACE ---- */

void imapd_cmd_status(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf name = BUF_INIT(NAME_MAX_BYTES), path = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT);
	struct imapd_counts c;

	(void)uid;
	if (nargs != 2 || args[1].type != IMAP_ARG_LIST || args[1].count == 0) {
		imapd_bad(sess, "STATUS needs a mailbox name and a list of items");
		goto out;
	}
	for (size_t i = 0; i < args[1].count; i++) {
		const char *item;
		if (!imap_arg_atom(&args[1].list[i], &item) ||
		    !(str_eq_ci(item, "MESSAGES") || str_eq_ci(item, "RECENT") || str_eq_ci(item, "UIDNEXT") ||
		      str_eq_ci(item, "UIDVALIDITY") || str_eq_ci(item, "UNSEEN") || str_eq_ci(item, "HIGHESTMODSEQ"))) {
			imapd_bad(sess, "unknown STATUS item");
			goto out;
		}
		if (str_eq_ci(item, "HIGHESTMODSEQ"))
			sess->condstore = true;	/* a CONDSTORE enabling command (RFC 7162 3.1) */
	}
	if (!get_name(sess, &args[0], &name))
		goto out;
	if (!imapd_mailbox_exists(root(sess), buf_cstr(&name)) ||
	    !imapd_mailbox_path(root(sess), buf_cstr(&name), &path)) {
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
			imapd_no(sess, "[SERVERBUG] cannot read the mailbox");
			goto out;
		}
		imapd_mbox_counts(mb, &c);
		c.recent = 0;
		for (size_t i = 0; i < sess->sel->n; i++)
			c.recent += sess->sel->v[i].recent;
	} else if (!imapd_mailbox_counts(buf_cstr(&path), &c)) {
		imapd_no(sess, "[NONEXISTENT] no such mailbox");
		goto out;
	}
	buf_puts(&line, "STATUS ");
	imapd_put_mailbox(sess, &line, buf_cstr(&name));
	buf_puts(&line, " (");
	for (size_t i = 0; i < args[1].count; i++) {
		const char *item = args[1].list[i].str;
		uint64_t v = str_eq_ci(item, "HIGHESTMODSEQ") ? c.highestmodseq : str_eq_ci(item, "MESSAGES") ? c.messages : str_eq_ci(item, "RECENT") ? c.recent :
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
	imapd_ok(sess, "STATUS completed");
out:
	buf_free(&name);
	buf_free(&path);
	buf_free(&line);
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
