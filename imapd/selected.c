/* imapd selected state: the session's view of the mailbox over the shared index. The view is what the client
 * has been told; imapd_sel_update() brings it in line with the index and says what changed, at the moments the
 * command handlers allow. Flags live in the Maildir file names, so a flag change is a rename in cur/ that other
 * sessions (and pop3d) pick up at their next sync. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "fetchcache.h"
#include "flags.h"
#include "keywords.h"
#include "log.h"
#include "mailboxes.h"
#include "mbox.h"
#include "selected.h"

#define KW_BIT(c) IMAPD_KW_BIT(c)
#define MSG_MAX (256u * 1024 * 1024)

uint32_t imapd_sel_flags_from_letters(const char *letters)
{
	uint32_t f = imap_flags_from_maildir(letters);

	for (const char *p = letters; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			f |= KW_BIT(*p);
	return f;
}

static void flags_list(const struct imapd_selected *sel, uint32_t flags, bool recent, struct buf *out)
{
	struct buf sys = BUF_INIT(BUF_NOLIMIT);

	imap_flags_to_list(flags & IMAPD_SYS_FLAGS, &sys);
	/* "(...)": splice \Recent and the keywords in before the closing parenthesis (Dovecot's order) */
	buf_append(out, sys.data, sys.len - 1);
	bool first = sys.len == 2;
	if (recent) {
		buf_puts(out, first ? "\\Recent" : " \\Recent");
		first = false;
	}
	for (int c = 0; c < 26; c++) {
		if (!(flags & KW_BIT('a' + c)) || !sel->keywords[c])
			continue;
		buf_printf(out, "%s%s", first ? "" : " ", sel->keywords[c]);
		first = false;
	}
	buf_putc(out, ')');
	buf_free(&sys);
}

void imapd_sel_flags_list(const struct imapd_selected *sel, uint32_t flags, struct buf *out)
{
	flags_list(sel, flags, false, out);
}

void imapd_sel_msg_flags(const struct imapd_selected *sel, size_t i, struct buf *out)
{
	flags_list(sel, sel->v[i].flags, sel->v[i].recent, out);
}

static void view_push(struct imapd_selected *sel, const struct mbox_msg *m)
{
	if (sel->n == sel->cap) {
		sel->cap = sel->cap ? sel->cap * 2 : 64;
		sel->v = xrealloc(sel->v, sel->cap * sizeof(*sel->v));
	}
	sel->v[sel->n++] = (struct imapd_view_msg){ .uid = m->uid, .flags = imapd_sel_flags_from_letters(m->flags),
						    .modseq = m->modseq };
}

/* Messages from view position from on above the folder's recent mark are \Recent for this session (only one
 * read-write session gets them: the mark moves; EXAMINE looks without taking). */
static void claim_recent(struct imapd_selected *sel, size_t from)
{
	struct imapd_recent r;

	imapd_recent_read(sel->path, &r);
	for (size_t i = from; i < sel->n; i++)
		if (imapd_recent_has(&r, sel->v[i].uid)) {
			sel->v[i].recent = true;
			sel->recent++;
		}
	if (!sel->readonly && sel->n && (sel->v[sel->n - 1].uid > r.mark || r.n))
		imapd_recent_set(sel->path, sel->v[sel->n - 1].uid);
	imapd_recent_free(&r);
}

bool imapd_sel_open(struct imapd_selected *sel, struct buf *err)
{
	if ((sel->mb = mbox_open(sel->path, err)) == NULL)
		return false;
	imapd_keywords_load(sel->path, sel->keywords);
	sel->fc = imapd_fcache_open(sel->path);
	for (size_t i = 0; i < mbox_count(sel->mb); i++) {
		view_push(sel, mbox_get(sel->mb, i));
	}
	claim_recent(sel, 0);
	sel->exists = (uint32_t)sel->n;
	sel->uidvalidity = mbox_uidvalidity(sel->mb);
	sel->uidnext = mbox_uidnext(sel->mb);
	return true;
}

void imapd_sel_free(struct imapd_selected *sel)
{
	mbox_close(&sel->mb);
	imapd_fcache_close(&sel->fc);
	xfree(&sel->v);
	for (int c = 0; c < 26; c++)
		xfree(&sel->keywords[c]);
	sel->n = sel->cap = 0;
}

size_t imapd_sel_mbox_index(struct imapd_session *sess, size_t i)
{
	struct imapd_selected *sel = sess->sel;

	if (i >= sel->n || sel->v[i].gone)
		return (size_t)-1;
	return mbox_find(sel->mb, sel->v[i].uid);
}

void imapd_sel_update(struct imapd_session *sess, bool expunges)
{
	struct imapd_selected *sel = sess->sel;
	struct buf err = BUF_INIT(1024), line = BUF_INIT(BUF_NOLIMIT);

	if (!mbox_sync(sel->mb, &err)) {
		if (!imapd_mailbox_exists_at(sel->path)) {
			/* another session renamed or deleted the folder: its messages cannot be reached under the
			 * name this session knows, and IMAP has no way to say so but BYE (Dovecot does the same) */
			log_info("imapd: user %s: selected mailbox %s went away", sess->login.user, sel->name);
			imapd_untagged(sess, "BYE the selected mailbox was renamed or deleted by another session");
			sess->state = IMAPD_LOGOUT;
		} else {
			log_error("imapd: user %s: %s", sess->login.user, buf_cstr(&err));
		}
		goto out;
	}
	if (imapd_keywords_load(sel->path, sel->keywords)) {
		/* another session named a new keyword: the client learns it before seeing it on a message */
		imapd_sel_flags_list(sel, 0xffffffffu, &line);
		imapd_untagged(sess, "FLAGS %s", buf_cstr(&line));
		if (!sel->readonly) {
			buf_truncate(&line, line.len - 1);
			imapd_untagged(sess, "OK [PERMANENTFLAGS %s%s)] flags", buf_cstr(&line),
				       imapd_keywords_full(sel->keywords) ? "" : " \\*");
		}
	}
	for (size_t i = 0; i < sel->n; i++) {
		size_t k = mbox_find(sel->mb, sel->v[i].uid);
		if (k == (size_t)-1) {
			sel->v[i].gone = true;
			continue;
		}
		const struct mbox_msg *m = mbox_get(sel->mb, k);
		uint32_t f = imapd_sel_flags_from_letters(m->flags);
		bool report = f != sel->v[i].flags || (sess->condstore && m->modseq != sel->v[i].modseq);
		sel->v[i].modseq = m->modseq;
		if (report && !sel->v[i].gone) {
			sel->v[i].flags = f;
			buf_reset(&line);
			buf_printf(&line, "%zu FETCH (", i + 1);
			if (sess->qresync)
				buf_printf(&line, "UID %u ", sel->v[i].uid);
			buf_puts(&line, "FLAGS ");
			imapd_sel_msg_flags(sel, i, &line);
			if (sess->condstore)
				buf_printf(&line, " MODSEQ (%llu)", (unsigned long long)m->modseq);
			imapd_untagged(sess, "%s)", buf_cstr(&line));
		}
	}
	if (expunges && sess->qresync) {
		/* RFC 7162 3.2.10: one VANISHED with the UIDs instead of an EXPUNGE per message */
		struct imap_seqset set = { 0 };
		size_t kept = 0;
		for (size_t i = 0; i < sel->n; i++) {
			if (!sel->v[i].gone) {
				sel->v[kept++] = sel->v[i];
				continue;
			}
			imapd_seqset_add(&set, sel->v[i].uid);
			if (sel->v[i].recent)
				sel->recent--;
		}
		if (set.count) {
			buf_reset(&line);
			imap_seqset_format(&set, &line);
			imapd_untagged(sess, "VANISHED %s", buf_cstr(&line));
			sel->exists -= (uint32_t)(sel->n - kept);
			sel->n = kept;
		}
		imap_seqset_free(&set);
	}
	if (expunges) {
		/* from the top down, so each number is still right when it is sent */
		for (size_t i = sel->n; i-- > 0;) {
			if (!sel->v[i].gone)
				continue;
			imapd_untagged(sess, "%zu EXPUNGE", i + 1);
			if (sel->v[i].recent)
				sel->recent--;
			memmove(&sel->v[i], &sel->v[i + 1], (sel->n - i - 1) * sizeof(*sel->v));
			sel->n--;
			sel->exists--;	/* implied by EXPUNGE */
		}
	}
	uint32_t last = sel->n ? sel->v[sel->n - 1].uid : 0;
	size_t before = sel->n;
	for (size_t k = 0; k < mbox_count(sel->mb); k++) {
		const struct mbox_msg *m = mbox_get(sel->mb, k);
		if (m->uid > last)
			view_push(sel, m);
	}
	if (sel->n != before)
		claim_recent(sel, before);
	if (sel->n != before || sel->n != sel->exists) {
		sel->exists = (uint32_t)sel->n;
		imapd_untagged(sess, "%zu EXISTS", sel->n);
	}
	sel->uidnext = mbox_uidnext(sel->mb);
out:
	buf_free(&err);
	buf_free(&line);
}

void imapd_seqset_add(struct imap_seqset *set, uint32_t v)
{
	if (set->count && set->r[set->count - 1].hi + 1 == v) {
		set->r[set->count - 1].hi = v;
		return;
	}
	if (set->count == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 16;
		set->r = xrealloc(set->r, set->cap * sizeof(*set->r));
	}
	set->r[set->count++] = (struct imap_range){ v, v };
}

static int u32cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

bool imapd_sel_set(struct imapd_session *sess, const char *set, bool uid, uint32_t **seqs, size_t *n)
{
	struct imapd_selected *sel = sess->sel;
	struct imap_seqset ss = { 0 };
	size_t cap = 0;

	*seqs = NULL;
	*n = 0;
	if (!imap_seqset_parse(set, &ss, IMAPD_SET_MAX_RANGES)) {
		imap_seqset_free(&ss);
		return false;
	}
	if (uid) {
		/* '*' is the largest UID in use; "n:*" with n above it still names that message (RFC 3501 6.4.8) */
		imap_seqset_resolve(&ss, sel->n ? sel->v[sel->n - 1].uid : 0);
		for (size_t i = 0; i < sel->n; i++) {
			if (!imap_seqset_contains(&ss, sel->v[i].uid))
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				*seqs = xrealloc(*seqs, cap * sizeof(**seqs));
			}
			(*seqs)[(*n)++] = (uint32_t)i + 1;
		}
	} else {
		imap_seqset_resolve(&ss, (uint32_t)sel->n);
		for (size_t r = 0; r < ss.count; r++) {
			if (ss.r[r].lo < 1 || ss.r[r].hi > sel->n) {
				imap_seqset_free(&ss);
				free(*seqs);
				*seqs = NULL;
				*n = 0;
				return false;
			}
			for (uint64_t s = ss.r[r].lo; s <= ss.r[r].hi; s++) {
				if (*n == cap) {
					cap = cap ? cap * 2 : 64;
					*seqs = xrealloc(*seqs, cap * sizeof(**seqs));
				}
				(*seqs)[(*n)++] = (uint32_t)s;
			}
		}
		if (*n)	/* qsort(NULL, 0) is undefined */
			qsort(*seqs, *n, sizeof(**seqs), u32cmp);
	}
	imap_seqset_free(&ss);
	return true;
}

bool imapd_sel_read(struct imapd_session *sess, size_t i, struct buf *out)
{
	struct buf err = BUF_INIT(1024);
	size_t k = imapd_sel_mbox_index(sess, i);
	struct stat st;
	int fd;
	bool ok = false;

	if (k == (size_t)-1 || (fd = mbox_msg_open(sess->sel->mb, k, &err)) < 0) {
		if (k != (size_t)-1)
			log_warn("imapd: %s", buf_cstr(&err));
		buf_free(&err);
		return false;
	}
	buf_reset(out);
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size <= MSG_MAX) {
		ok = true;
		char blk[65536];
		ssize_t r;
		while ((r = read(fd, blk, sizeof(blk))) > 0)
			if (!buf_append(out, blk, (size_t)r)) {
				ok = false;
				break;
			}
		if (r < 0)
			ok = false;
	}
	close(fd);
	buf_free(&err);
	return ok;
}

void imapd_sel_flags_letters(uint32_t flags, struct buf *out)
{
	imap_flags_to_maildir(flags & IMAPD_SYS_FLAGS, out);
	/* Maildir wants the letters in ASCII order: upper case (system flags) first, then keyword letters */
	for (int c = 0; c < 26; c++)
		if (flags & KW_BIT('a' + c))
			buf_putc(out, (char)('a' + c));
}

struct flag_change {
	uint32_t set, add;	/* set: the new flags (when add is 0); add: bits added to the current ones */
};

static bool change_letters(void *ctx, size_t i, const char *cur, struct buf *next)
{
	const struct flag_change *c = ctx;

	(void)i;
	imapd_sel_flags_letters(c->add ? imapd_sel_flags_from_letters(cur) | c->add : c->set, next);
	return true;
}

/* The flag change through the index (rename and new modseq in one transaction); views follow the index. */
static bool store(struct imapd_session *sess, const uint32_t *seqs, size_t n, struct flag_change *c)
{
	struct imapd_selected *sel = sess->sel;
	struct buf err = BUF_INIT(1024);
	uint32_t *uids = xcalloc(n + 1, sizeof(*uids));
	enum mbox_store_result *res = xcalloc(n + 1, sizeof(*res));
	size_t nu = 0;
	bool ok = true;

	for (size_t j = 0; j < n; j++)
		if (imapd_sel_mbox_index(sess, seqs[j] - 1) != (size_t)-1)
			uids[nu++] = sel->v[seqs[j] - 1].uid;
	if (nu && !mbox_store(sel->mb, uids, nu, UINT64_MAX, change_letters, c, res, &err)) {
		log_error("imapd: user %s: %s", sess->login.user, buf_cstr(&err));
		ok = false;
	}
	for (size_t j = 0; ok && j < n; j++) {
		size_t i = seqs[j] - 1, k = imapd_sel_mbox_index(sess, i);
		if (k == (size_t)-1) {
			ok = false;
			continue;
		}
		const struct mbox_msg *m = mbox_get(sel->mb, k);
		sel->v[i].flags = imapd_sel_flags_from_letters(m->flags);
		sel->v[i].modseq = m->modseq;
	}
	free(uids);
	free(res);
	buf_free(&err);
	return ok;
}

bool imapd_sel_set_flags(struct imapd_session *sess, size_t i, uint32_t flags)
{
	uint32_t seq = (uint32_t)i + 1;
	struct flag_change c = { .set = flags };

	return imapd_sel_mbox_index(sess, i) != (size_t)-1 && store(sess, &seq, 1, &c);
}

void imapd_sel_add_seen(struct imapd_session *sess, const uint32_t *seqs, size_t n)
{
	uint32_t *unseen = xcalloc(n + 1, sizeof(*unseen));
	size_t nu = 0;
	struct flag_change c = { .add = IMAP_FLAG_SEEN };

	for (size_t j = 0; j < n; j++)
		if (!(sess->sel->v[seqs[j] - 1].flags & IMAP_FLAG_SEEN))
			unseen[nu++] = seqs[j];
	if (nu)
		(void)store(sess, unseen, nu, &c);
	free(unseen);
}

struct mbox *imapd_sel_borrow(struct imapd_session *sess, const char *path, bool *own, struct buf *err)
{
	/* one LMDB environment per file and process: a second open of the selected folder would break its locks */
	if (sess->sel && sess->sel->mb && strcmp(sess->sel->path, path) == 0) {
		*own = false;
		return mbox_sync(sess->sel->mb, err) ? sess->sel->mb : NULL;
	}
	*own = true;
	return mbox_open(path, err);
}

bool imapd_set_idate(const char *dir, char **name, int64_t when)
{
	struct buf from = BUF_INIT(BUF_NOLIMIT), to = BUF_INIT(BUF_NOLIMIT), nn = BUF_INIT(BUF_NOLIMIT);
	const char *dot = strchr(*name, '.');
	bool ok = false;

	if (!dot || when <= 0)
		goto out;
	/* the index takes the internal date from the seconds that start the name (mtime only as a fallback) */
	buf_printf(&nn, "%lld%s", (long long)when, dot);
	buf_printf(&from, "%s/cur/%s", dir, *name);
	buf_printf(&to, "%s/cur/%s", dir, buf_cstr(&nn));
	/* link + unlink: never replaces another message */
	if (strcmp(buf_cstr(&from), buf_cstr(&to)) != 0) {
		if (link(buf_cstr(&from), buf_cstr(&to)) != 0)
			goto out;
		(void)unlink(buf_cstr(&from));
		free(*name);
		*name = buf_steal(&nn, NULL);
	}
	struct timespec ts[2] = { { (time_t)when, 0 }, { (time_t)when, 0 } };
	(void)utimensat(AT_FDCWD, buf_cstr(&to), ts, 0);
	ok = true;
out:
	buf_free(&from);
	buf_free(&to);
	buf_free(&nn);
	return ok;
}
