/* imapd STORE, EXPUNGE, COPY and MOVE (and their UID forms, UIDPLUS and RFC 6851). Flags are renames in cur/
 * (selected.c); EXPUNGE goes through the shared index; COPY hard-links the message file into the target folder
 * under a new unique name (same bytes, same flags, same internal date), falling back to a copy. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "cmdtab.h"
#include "fetchcache.h"
#include "flags.h"
#include "keywords.h"
#include "log.h"
#include "maildir.h"
#include "maildirsize.h"
#include "mailboxes.h"
#include "mbox.h"
#include "selected.h"
#include "str.h"

/* ---- STORE ---- */

struct store_ctx {
	const struct imap_store *st;
	uint32_t kwmask;
};

/* The new flag letters from the message's current ones (as the index has them, not as last reported). */
static bool store_letters(void *ctx, size_t i, const char *cur, struct buf *next)
{
	const struct store_ctx *c = ctx;
	uint32_t f = imapd_sel_flags_from_letters(cur);
	uint32_t kw = f & ~IMAPD_SYS_FLAGS;

	(void)i;
	kw = c->st->op == IMAP_STORE_SET ? c->kwmask : c->st->op == IMAP_STORE_ADD ? kw | c->kwmask : kw & ~c->kwmask;
	imapd_sel_flags_letters(kw | imap_store_apply(c->st, f & IMAPD_SYS_FLAGS), next);
	return true;
}

/* STORE's RFC 7162 modifier list: (UNCHANGEDSINCE n). false after a BAD. */
static bool store_modifiers(struct imapd_session *sess, const struct imap_arg *a, uint64_t *unchangedsince)
{
	const char *name, *num;

	if (a->type != IMAP_ARG_LIST || a->count != 2 || !imap_arg_atom(&a->list[0], &name) ||
	    !str_eq_ci(name, "UNCHANGEDSINCE") || !imap_arg_atom(&a->list[1], &num) ||
	    !str_to_u64(num, INT64_MAX, unchangedsince)) {
		imapd_bad(sess, "STORE modifier must be (UNCHANGEDSINCE mod-sequence)");
		return false;
	}
	sess->condstore = true;
	return true;
}

void imapd_cmd_store(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct imapd_selected *sel = sess->sel;
	struct imap_store st;
	struct buf err = BUF_INIT(1024), line = BUF_INIT(BUF_NOLIMIT);
	struct imap_seqset modified = { 0 };
	uint32_t *seqs = NULL, *uids = NULL, *at = NULL;
	enum mbox_store_result *res = NULL;
	uint64_t unchangedsince = UINT64_MAX;
	size_t n = 0, nu = 0;
	const char *set;
	bool failed = false;

	if ((nargs != 3 && nargs != 4) || !imap_arg_atom(&args[0], &set)) {
		imapd_bad(sess, "STORE needs a sequence set, a data item and flags");
		goto out;
	}
	if (nargs == 4) {
		if (!store_modifiers(sess, &args[1], &unchangedsince))
			goto out;
		args++;
	}
	if (!imap_store_parse(&args[1], &args[2], &st, &err)) {
		imapd_bad(sess, "%s", buf_cstr(&err));
		goto out;
	}
	if (!imapd_sel_set(sess, set, uid, &seqs, &n)) {
		imapd_bad(sess, "invalid sequence set");
		goto out;
	}
	if (sel->readonly) {
		imapd_no(sess, "[READ-ONLY] mailbox is read-only");
		goto out;
	}
	unsigned kwl;
	bool bad;
	if (!imapd_keywords_from_args(sel->path, sel->keywords, &args[2], st.op != IMAP_STORE_REMOVE, &kwl, &bad,
				      &err)) {
		if (bad)
			imapd_bad(sess, "%s", buf_cstr(&err));
		else
			imapd_no(sess, "%s", buf_cstr(&err));
		goto out;
	}
	struct store_ctx ctx = { .st = &st, .kwmask = (uint32_t)kwl << 5 };
	uids = xcalloc(n + 1, sizeof(*uids));
	at = xcalloc(n + 1, sizeof(*at));
	res = xcalloc(n + 1, sizeof(*res));
	for (size_t j = 0; j < n; j++) {
		if (sel->v[seqs[j] - 1].gone) {
			failed = true;
			continue;
		}
		at[nu] = seqs[j] - 1;
		uids[nu++] = sel->v[seqs[j] - 1].uid;
	}
	/* one index transaction: the flag test, the renames and the new modseqs cannot interleave with others */
	if (nu && !mbox_store(sel->mb, uids, nu, unchangedsince, store_letters, &ctx, res, &err)) {
		log_error("imapd: user %s: STORE: %s", sess->login.user, buf_cstr(&err));
		imapd_no(sess, "[SERVERBUG] STORE failed");
		goto out;
	}
	for (size_t j = 0; j < nu; j++) {
		size_t i = at[j], k;
		if (res[j] == MBOX_STORE_MODIFIED) {
			imapd_seqset_add(&modified, uid ? uids[j] : (uint32_t)i + 1);
			continue;
		}
		if (res[j] != MBOX_STORE_OK || (k = mbox_find(sel->mb, uids[j])) == (size_t)-1) {
			failed = true;
			continue;
		}
		const struct mbox_msg *m = mbox_get(sel->mb, k);
		bool changed = m->modseq != sel->v[i].modseq;
		sel->v[i].flags = imapd_sel_flags_from_letters(m->flags);
		sel->v[i].modseq = m->modseq;
		/* .SILENT: the client knows what it set; a CONDSTORE client still learns the new modseq (RFC 7162
		 * 3.1.3); changes by others come with the next update */
		if (st.silent && !(sess->condstore && changed))
			continue;
		buf_reset(&line);
		buf_printf(&line, "%zu FETCH (", i + 1);
		if (uid || sess->qresync)
			buf_printf(&line, "UID %u ", sel->v[i].uid);
		if (!st.silent) {
			buf_puts(&line, "FLAGS ");
			imapd_sel_msg_flags(sel, i, &line);
		}
		if (sess->condstore)
			buf_printf(&line, "%sMODSEQ (%llu)", st.silent ? "" : " ", (unsigned long long)m->modseq);
		imapd_untagged(sess, "%s)", buf_cstr(&line));
	}
	sel->no_expunge = true;
	if (modified.count) {
		buf_reset(&line);
		imap_seqset_format(&modified, &line);
		imapd_ok(sess, "[MODIFIED %s] conditional STORE failed", buf_cstr(&line));
	} else if (failed && !uid) {
		imapd_no(sess, "some messages were expunged meanwhile");
	} else {
		imapd_ok(sess, "STORE completed");
	}
out:
	free(seqs);
	free(uids);
	free(at);
	free(res);
	imap_seqset_free(&modified);
	buf_free(&err);
	buf_free(&line);
}

/* ---- EXPUNGE ---- */

bool imapd_expunge_deleted(struct imapd_session *sess, const uint32_t *seqs, size_t n)
{
	struct imapd_selected *sel = sess->sel;
	struct buf err = BUF_INIT(1024);
	uint32_t *uids = xcalloc(sel->n + 1, sizeof(*uids));
	size_t nu = 0;
	bool ok;

	/* the flags as they are now, other sessions' changes included */
	if (!mbox_sync(sel->mb, &err))
		log_warn("imapd: %s", buf_cstr(&err));
	for (size_t j = 0; j < (seqs ? n : sel->n); j++) {
		size_t i = seqs ? seqs[j] - 1 : j;
		size_t k = imapd_sel_mbox_index(sess, i);
		if (k != (size_t)-1 && (imapd_sel_flags_from_letters(mbox_get(sel->mb, k)->flags) & IMAP_FLAG_DELETED))
			uids[nu++] = sel->v[i].uid;
	}
	ok = nu == 0 || mbox_expunge(sel->mb, uids, nu, &err);
	if (ok)
		imapd_fcache_drop(sel->fc, sel->uidvalidity, uids, nu);
	if (!ok)
		log_error("imapd: user %s: expunge: %s", sess->login.user, buf_cstr(&err));
	free(uids);
	buf_free(&err);
	return ok;
}

void imapd_cmd_expunge(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	uint32_t *seqs = NULL;
	size_t n = 0;
	const char *set;

	if (uid ? nargs != 1 || !imap_arg_atom(&args[0], &set) : nargs != 0) {
		imapd_bad(sess, uid ? "UID EXPUNGE needs a UID set" : "EXPUNGE takes no arguments");
		return;
	}
	if (uid && !imapd_sel_set(sess, set, true, &seqs, &n)) {
		imapd_bad(sess, "invalid UID set");
		return;
	}
	if (sess->sel->readonly)
		imapd_no(sess, "[READ-ONLY] mailbox is read-only");
	else if (!imapd_expunge_deleted(sess, uid ? seqs : NULL, n))
		imapd_no(sess, "[SERVERBUG] EXPUNGE failed");
	else
		imapd_ok(sess, "EXPUNGE completed");	/* the update before it sends the EXPUNGE responses */
	free(seqs);
}

/* ---- COPY / MOVE ---- */

/* The target folder's letters for the keyword letters of view flags f: the names are looked up (added when new)
 * in dest's own list, since a letter means another word in another folder. A keyword that finds no room in a
 * full list is dropped and logged: the message itself is still copied (no IMAP client could do anything better
 * with a failed COPY, and the rest of its flags survive). */
static void target_keywords(struct imapd_session *sess, uint32_t f, const char *dest, char *kwt[IMAPD_KEYWORDS_MAX],
			    struct buf *letters)
{
	struct buf kerr = BUF_INIT(1024);

	for (int c = 0; c < IMAPD_KEYWORDS_MAX; c++) {
		const char *kw = sess->sel->keywords[c];
		if (!(f & IMAPD_KW_BIT('a' + c)) || !kw)
			continue;
		buf_reset(&kerr);
		int t = imapd_keyword_letter(dest, kwt, kw, true, &kerr);
		if (t > 0)
			buf_putc(letters, (char)t);
		else
			log_warn("imapd: user %s: keyword %s not kept in %s: %s", sess->login.user, kw, dest,
				 buf_cstr(&kerr));
	}
	buf_free(&kerr);
}

/* Maildir wants the info letters in ASCII order: system flags (upper case) first, then keyword letters. */
static void sort_letters(struct buf *letters)
{
	for (size_t a = 1; a < letters->len; a++)
		for (size_t b = a; b > 0 && letters->data[b - 1] > letters->data[b]; b--) {
			char t = letters->data[b];
			letters->data[b] = letters->data[b - 1];
			letters->data[b - 1] = t;
		}
}

/* Put view message i into the folder at dest under a new name; the new file name in *name. kwt: dest's
 * keyword list (loaded by the caller, extended here). */
static bool copy_file(struct imapd_session *sess, size_t i, const char *dest, char *kwt[IMAPD_KEYWORDS_MAX],
		      char **name, struct buf *err)
{
	struct imapd_selected *sel = sess->sel;
	size_t k = imapd_sel_mbox_index(sess, i);
	struct buf data = BUF_INIT(BUF_NOLIMIT), letters = BUF_INIT(64), p = BUF_INIT(BUF_NOLIMIT);
	bool ok = false;

	if (k == (size_t)-1 || !imapd_sel_read(sess, i, &data) || (k = imapd_sel_mbox_index(sess, i)) == (size_t)-1) {
		buf_puts(err, "message expunged meanwhile");
		goto out;
	}
	const struct mbox_msg *m = mbox_get(sel->mb, k);
	struct maildir_writer *w = maildir_begin(dest, 0600, err);
	if (!w)
		goto out;
	if (!maildir_write(w, data.data ? data.data : "", data.len)) {
		maildir_abort(&w);
		buf_puts(err, "write failed");
		goto out;
	}
	imap_flags_to_maildir(imap_flags_from_maildir(m->flags), &letters);
	target_keywords(sess, imapd_sel_flags_from_letters(m->flags), dest, kwt, &letters);
	sort_letters(&letters);
	uint64_t size = maildir_size(w);
	if (!maildir_commit(&w, buf_cstr(&letters), name, err))
		goto out;
	maildirsize_update(dest, (int64_t)size, 1);	/* the Maildir++ quota count (a MOVE's expunge takes it back) */
	(void)imapd_set_idate(dest, name, m->idate);
	ok = true;
out:
	buf_free(&data);
	buf_free(&letters);
	buf_free(&p);
	return ok;
}

/* After the files are in dest: the UIDs the target index gave them (by base name), 0 when not found. */
static void target_uids(struct mbox *mb, char **names, size_t n, uint32_t *out)
{
	for (size_t j = 0; j < n; j++) {
		out[j] = 0;
		if (!names[j])
			continue;
		size_t bl = strcspn(names[j], ":");
		for (size_t k = mbox_count(mb); k-- > 0;) {
			const struct mbox_msg *m = mbox_get(mb, k);
			if (strncmp(m->name, names[j], bl) == 0 && (m->name[bl] == ',' || m->name[bl] == ':')) {
				out[j] = m->uid;
				break;
			}
		}
	}
}

static void uid_list(const uint32_t *u, size_t n, struct buf *out)
{
	for (size_t j = 0; j < n; j++)
		buf_printf(out, "%s%u", j ? "," : "", u[j]);
}

static void do_copy(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid, bool move)
{
	struct imapd_selected *sel = sess->sel;
	struct buf name = BUF_INIT(1024), path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct buf src = BUF_INIT(BUF_NOLIMIT), dst = BUF_INIT(BUF_NOLIMIT);
	const char *what = move ? "MOVE" : "COPY", *set;
	uint32_t *seqs = NULL, *suids = NULL, *duids = NULL;
	char **names = NULL;
	size_t n = 0, done = 0;
	struct mbox *tmb = NULL;
	bool own = false;
	char *kwt[IMAPD_KEYWORDS_MAX] = { 0 };

	if (nargs != 2 || !imap_arg_atom(&args[0], &set)) {
		imapd_bad(sess, "%s needs a sequence set and a mailbox", what);
		goto out;
	}
	if (!imapd_sel_set(sess, set, uid, &seqs, &n)) {
		imapd_bad(sess, "invalid sequence set");
		goto out;
	}
	if (!imapd_arg_mailbox(sess, &args[1], &name))
		goto out;
	if (!imapd_mailbox_exists(sess->login.maildir, buf_cstr(&name)) ||
	    !imapd_mailbox_path(sess->login.maildir, buf_cstr(&name), &path)) {
		imapd_no(sess, "[TRYCREATE] no such mailbox");
		goto out;
	}
	if (move && sel->readonly) {
		imapd_no(sess, "[READ-ONLY] mailbox is read-only");
		goto out;
	}
	/* (the selected folder has its mark already, and must not have its index opened a second time) */
	if (strcmp(sel->path, buf_cstr(&path)) != 0)
		imapd_recent_init(buf_cstr(&path));
	imapd_keywords_load(buf_cstr(&path), kwt);
	names = xcalloc(n + 1, sizeof(*names));
	suids = xcalloc(n + 1, sizeof(*suids));
	duids = xcalloc(n + 1, sizeof(*duids));
	for (size_t j = 0; j < n; j++) {
		size_t i = seqs[j] - 1;
		if (sel->v[i].gone)
			continue;
		if (!copy_file(sess, i, buf_cstr(&path), kwt, &names[done], &err)) {
			log_error("imapd: user %s: %s to %s: %s", sess->login.user, what, buf_cstr(&path), buf_cstr(&err));
			imapd_no(sess, "[SERVERBUG] %s failed", what);
			/* undo: a failed COPY copies nothing (RFC 3501 6.4.7) */
			for (size_t d = 0; d < done; d++) {
				buf_reset(&err);
				buf_printf(&err, "%s/cur/%s", buf_cstr(&path), names[d]);
				(void)unlink(buf_cstr(&err));
			}
			goto out;
		}
		suids[done++] = sel->v[i].uid;
	}
	if (!(tmb = imapd_sel_borrow(sess, buf_cstr(&path), &own, &err))) {
		log_error("imapd: user %s: %s", sess->login.user, buf_cstr(&err));
		imapd_no(sess, "[SERVERBUG] %s failed", what);
		goto out;
	}
	target_uids(tmb, names, done, duids);
	uid_list(suids, done, &src);
	uid_list(duids, done, &dst);
	if (move) {
		if (done)
			imapd_untagged(sess, "OK [COPYUID %u %s %s] moved", mbox_uidvalidity(tmb), buf_cstr(&src),
				       buf_cstr(&dst));
		if (done && !mbox_expunge(sel->mb, suids, done, &err))
			log_error("imapd: user %s: MOVE expunge: %s", sess->login.user, buf_cstr(&err));
		else
			imapd_fcache_drop(sel->fc, sel->uidvalidity, suids, done);
		imapd_ok(sess, "MOVE completed");
	} else if (done) {
		imapd_ok(sess, "[COPYUID %u %s %s] COPY completed", mbox_uidvalidity(tmb), buf_cstr(&src),
			 buf_cstr(&dst));
	} else {
		imapd_ok(sess, "COPY completed");
	}
out:
	if (names)
		for (size_t d = 0; d < done; d++)
			free(names[d]);
	free(names);
	free(seqs);
	free(suids);
	free(duids);
	if (own)
		mbox_close(&tmb);
	for (int c = 0; c < IMAPD_KEYWORDS_MAX; c++)
		free(kwt[c]);
	buf_free(&name);
	buf_free(&path);
	buf_free(&err);
	buf_free(&src);
	buf_free(&dst);
}

void imapd_cmd_copy(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	do_copy(sess, args, nargs, uid, false);
}

void imapd_cmd_move(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	do_copy(sess, args, nargs, uid, true);
}
