/* imapd CONDSTORE and QRESYNC (RFC 7162) outside FETCH/STORE/SEARCH: ENABLE, SELECT's (CONDSTORE) and
 * (QRESYNC (...)) parameters with the resynchronisation they ask for, and VANISHED (EARLIER) from the index's
 * tombstones. When the tombstones do not reach back far enough (pruned, or lost with a rebuilt index), every UID
 * the client may know and the index does not have is reported as vanished: more than needed, never less. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cmdtab.h"
#include "condstore.h"
#include "flags.h"
#include "log.h"
#include "mbox.h"
#include "selected.h"
#include "str.h"

bool imapd_enable_ext(struct imapd_session *sess, const char *name, struct buf *enabled)
{
	if (str_eq_ci(name, "CONDSTORE")) {
		if (!sess->condstore)
			buf_puts(enabled, " CONDSTORE");
		sess->condstore = true;
		return true;
	}
	if (str_eq_ci(name, "QRESYNC")) {
		/* QRESYNC implies CONDSTORE (RFC 7162 3.2.3) */
		if (!sess->qresync)
			buf_puts(enabled, " QRESYNC");
		sess->condstore = sess->qresync = true;
		return true;
	}
	return false;
}

static bool parse_u64(const struct imap_arg *a, uint64_t max, uint64_t *out)
{
	const char *s;
	return imap_arg_atom(a, &s) && str_to_u64(s, max, out);
}

bool imapd_select_params(struct imapd_session *sess, const struct imap_arg *list, struct imapd_qresync *qr)
{
	memset(qr, 0, sizeof(*qr));
	if (list->type != IMAP_ARG_LIST)
		goto bad;
	for (size_t i = 0; i < list->count; i++) {
		const char *name;
		if (!imap_arg_atom(&list->list[i], &name))
			goto bad;
		if (str_eq_ci(name, "CONDSTORE")) {
			sess->condstore = true;
			continue;
		}
		if (!str_eq_ci(name, "QRESYNC") || i + 1 >= list->count)
			goto bad;
		if (!sess->qresync) {
			imapd_bad(sess, "QRESYNC is not enabled");
			return false;
		}
		const struct imap_arg *q = &list->list[++i];
		uint64_t uv;
		if (q->type != IMAP_ARG_LIST || q->count < 2 || q->count > 4 || !parse_u64(&q->list[0], UINT32_MAX, &uv) ||
		    uv == 0 || !parse_u64(&q->list[1], INT64_MAX, &qr->modseq) || qr->modseq == 0)
			goto bad;
		qr->uidvalidity = (uint32_t)uv;
		qr->on = true;
		const char *set;
		if (q->count >= 3) {
			if (!imap_arg_atom(&q->list[2], &set) || !imap_seqset_parse(set, &qr->known, IMAPD_SET_MAX_RANGES))
				goto bad;
			qr->have_known = true;
		}
		/* the sequence match data only helps servers without tombstones: checked for syntax, not used */
		if (q->count == 4 && (q->list[3].type != IMAP_ARG_LIST || q->list[3].count != 2))
			goto bad;
	}
	return true;
bad:
	imapd_select_params_free(qr);
	imapd_bad(sess, "SELECT parameters must be (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids]))");
	return false;
}

void imapd_select_params_free(struct imapd_qresync *qr)
{
	imap_seqset_free(&qr->known);
	qr->have_known = false;
}

static void add_range(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (set->count && set->r[set->count - 1].hi + 1 == lo) {
		set->r[set->count - 1].hi = hi;
		return;
	}
	if (set->count == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 16;
		set->r = xrealloc(set->r, set->cap * sizeof(*set->r));
	}
	set->r[set->count++] = (struct imap_range){ lo, hi };
}

void imapd_vanished_earlier(struct imapd_session *sess, uint64_t since, const struct imap_seqset *known)
{
	struct imapd_selected *sel = sess->sel;
	struct buf err = BUF_INIT(1024), line = BUF_INIT(BUF_NOLIMIT);
	struct imap_seqset out = { 0 };
	uint32_t *uids = NULL;
	size_t n = 0;
	bool complete;

	if (!mbox_vanished(sel->mb, since, &uids, &n, &complete, &err)) {
		log_error("imapd: user %s: %s", sess->login.user, buf_cstr(&err));
		complete = false;
	}
	if (complete) {
		for (size_t j = 0; j < n; j++)
			if (!known || imap_seqset_contains(known, uids[j]))
				imapd_seqset_add(&out, uids[j]);
	} else {
		/* every UID below UIDNEXT that the client may know and the index does not have: the gaps between
		 * existing UIDs inside each known range (ranges are sorted and merged) */
		struct imap_range all = { 1, mbox_uidnext(sel->mb) - 1 };
		size_t nr = known ? known->count : 1, k = 0, cnt = mbox_count(sel->mb);
		for (size_t r = 0; r < nr; r++) {
			uint64_t lo = known ? known->r[r].lo : all.lo, hi = known ? known->r[r].hi : all.hi;
			if (hi > all.hi)
				hi = all.hi;
			while (lo <= hi) {
				while (k < cnt && mbox_get(sel->mb, k)->uid < lo)
					k++;
				uint64_t next = k < cnt ? mbox_get(sel->mb, k)->uid : (uint64_t)UINT32_MAX + 1;
				uint64_t end = next - 1 < hi ? next - 1 : hi;
				if (lo <= end)
					add_range(&out, (uint32_t)lo, (uint32_t)end);
				lo = next + 1;
			}
		}
	}
	if (out.count) {
		imap_seqset_format(&out, &line);
		imapd_untagged(sess, "VANISHED (EARLIER) %s", buf_cstr(&line));
	}
	imap_seqset_free(&out);
	free(uids);
	buf_free(&err);
	buf_free(&line);
}

void imapd_qresync_select(struct imapd_session *sess, struct imapd_qresync *qr)
{
	struct imapd_selected *sel = sess->sel;
	struct buf line = BUF_INIT(BUF_NOLIMIT);

	/* another UIDVALIDITY: the client starts over, nothing to tell */
	if (!qr->on || qr->uidvalidity != sel->uidvalidity)
		return;
	if (qr->have_known)
		imap_seqset_resolve(&qr->known, sel->n ? sel->v[sel->n - 1].uid : 0);
	imapd_vanished_earlier(sess, qr->modseq, qr->have_known ? &qr->known : NULL);
	for (size_t i = 0; i < sel->n; i++) {
		size_t k = imapd_sel_mbox_index(sess, i);
		if (k == (size_t)-1)
			continue;
		const struct mbox_msg *m = mbox_get(sel->mb, k);
		if (m->modseq <= qr->modseq || (qr->have_known && !imap_seqset_contains(&qr->known, m->uid)))
			continue;
		buf_reset(&line);
		imapd_sel_msg_flags(sel, i, &line);
		imapd_untagged(sess, "%zu FETCH (UID %u FLAGS %s MODSEQ (%llu))", i + 1, m->uid, buf_cstr(&line),
			       (unsigned long long)m->modseq);
	}
	buf_free(&line);
}
