/* imapd FETCH and UID FETCH (RFC 3501 6.4.5): per message, the items parsed by fetchargs.c, with the message
 * read and MIME-parsed only when some item needs its text. Stored messages use LF line ends; everything sent is
 * CRLF, and partial offsets count CRLF bytes. A non-peek body fetch sets \Seen first and reports FLAGS. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "cmdtab.h"
#include "condstore.h"
#include "fetchargs.h"
#include "fetchcache.h"
#include "flags.h"
#include "imap_body.h"
#include "log.h"
#include "mbox.h"
#include "mime.h"
#include "selected.h"
#include "str.h"

/* "17-Jul-1996 02:44:25 +0000" */
static void put_date(struct buf *out, int64_t t)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
		"Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		memset(&tm, 0, sizeof(tm));
	buf_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900,
		   tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Bytes with every bare LF made CRLF (memchr, not a byte loop: this runs over every fetched body). */
static void to_crlf(const char *p, size_t n, struct buf *out)
{
	size_t start = 0;
	const char *nl;

	while (start < n && (nl = memchr(p + start, '\n', n - start)) != NULL) {
		size_t i = (size_t)(nl - p);
		if (i > 0 && p[i - 1] == '\r') {
			buf_append(out, p + start, i + 1 - start);
		} else {
			buf_append(out, p + start, i - start);
			buf_puts(out, "\r\n");
		}
		start = i + 1;
	}
	buf_append(out, p + start, n - start);
}

static size_t crlf_len(const char *p, size_t n)
{
	size_t len = n;
	const char *nl;

	for (size_t start = 0; start < n && (nl = memchr(p + start, '\n', n - start)) != NULL;
	     start = (size_t)(nl - p) + 1)
		if (nl == p || nl[-1] != '\r')
			len++;
	return len;
}

/* BODY[] and RFC822: the stored message as it is, no MIME tree needed. */
static bool whole_message(const struct imap_section *sec)
{
	return sec->kind == IMAP_SECTION_ALL && sec->npath == 0;
}

/* A section's bytes as a literal, cut by the partial (CRLF terms). msg is the stored message; m its MIME tree,
 * which whole-message sections do not use (it may be empty then). */
static void put_section(struct buf *out, const struct buf *msg, const struct mime_message *m,
			const struct imap_section *sec, const struct imap_fetch_item *it)
{
	struct imap_section_data d;
	struct buf crlf = BUF_INIT(BUF_NOLIMIT);

	if (whole_message(sec) && !(it && it->partial)) {
		/* straight into out: no copy of the message through a second buffer */
		const char *p = msg->data ? msg->data : "";
		buf_printf(out, "{%zu}\r\n", crlf_len(p, msg->len));
		to_crlf(p, msg->len, out);
		return;
	}
	memset(&d, 0, sizeof(d));
	if (whole_message(sec)) {
		to_crlf(msg->data ? msg->data : "", msg->len, &crlf);
	} else if (imap_section_fetch(m, sec, &d)) {
		if (d.built)
			to_crlf(d.data.data ? d.data.data : "", d.data.len, &crlf);
		else
			to_crlf(m->data + d.off, d.len, &crlf);
		imap_section_data_free(&d);
	}
	size_t off = 0, len = crlf.len;
	if (it && it->partial) {
		off = it->start < crlf.len ? (size_t)it->start : crlf.len;
		len = crlf.len - off;
		if (it->count < len)
			len = (size_t)it->count;
	}
	buf_printf(out, "{%zu}\r\n", len);
	buf_append(out, crlf.data ? crlf.data + off : "", len);
	buf_free(&crlf);
}

static enum imapd_fc_kind fc_kind(enum imap_fetch_kind k)
{
	return k == IMAP_FETCH_ENVELOPE ? IMAPD_FC_ENVELOPE : k == IMAP_FETCH_BODY ? IMAPD_FC_BODY :
	       k == IMAP_FETCH_BODYSTRUCTURE ? IMAPD_FC_BODYSTRUCTURE : 0;
}

static bool needs_text(enum imap_fetch_kind k)
{
	return k == IMAP_FETCH_ENVELOPE || k == IMAP_FETCH_BODY || k == IMAP_FETCH_BODYSTRUCTURE ||
	       k == IMAP_FETCH_RFC822 || k == IMAP_FETCH_RFC822_HEADER || k == IMAP_FETCH_RFC822_TEXT ||
	       k == IMAP_FETCH_SECTION;
}

/* One "* n FETCH (...)" response, written straight to the stream (it may carry big literals). false when the
 * message is gone. */
static bool fetch_one(struct imapd_session *sess, const struct imap_fetch *f, size_t i, bool uid, bool text,
		      bool modseq, struct buf *out, struct buf *data)
{
	struct imapd_selected *sel = sess->sel;
	size_t k = imapd_sel_mbox_index(sess, i);
	struct mime_message m;
	bool flags_done = false, ok = false, filled = false;

	if (k == (size_t)-1)
		return false;
	memset(&m, 0, sizeof(m));
	/* ENVELOPE, BODY and BODYSTRUCTURE may come from the cache; then the file is read only for other items */
	struct buf cached[IMAP_FETCH_MAX_ITEMS];
	bool have[IMAP_FETCH_MAX_ITEMS] = { false };
	uint32_t msguid = sel->v[i].uid;
	if (text) {
		text = false;
		for (size_t j = 0; j < f->count && j < IMAP_FETCH_MAX_ITEMS; j++) {
			enum imapd_fc_kind fk = fc_kind(f->items[j].kind);
			buf_init(&cached[j], BUF_NOLIMIT);
			if (fk)
				have[j] = imapd_fcache_get(sel->fc, sel->uidvalidity, msguid, fk, &cached[j]);
			if (!have[j] && needs_text(f->items[j].kind))
				text = true;
		}
	} else {
		for (size_t j = 0; j < f->count && j < IMAP_FETCH_MAX_ITEMS; j++)
			buf_init(&cached[j], BUF_NOLIMIT);
	}
	/* read first: opening the file may sync the index, which moves its list */
	if (text && !imapd_sel_read(sess, i, data))
		goto done;
	k = imapd_sel_mbox_index(sess, i);
	if (k == (size_t)-1)
		goto done;
	const struct mbox_msg *mm = mbox_get(sel->mb, k);
	/* the MIME tree only for what needs it: not for BODY[] / RFC822 or items served from the cache */
	bool tree = false;
	for (size_t j = 0; text && j < f->count && j < IMAP_FETCH_MAX_ITEMS; j++) {
		enum imap_fetch_kind fk = f->items[j].kind;
		if (fk == IMAP_FETCH_SECTION ? !whole_message(&f->items[j].sec) :
		    fk != IMAP_FETCH_RFC822 && needs_text(fk) && !have[j])
			tree = true;
	}
	if (tree)
		mime_message_parse(&m, data->data ? data->data : "", data->len);
	buf_reset(out);
	buf_printf(out, "* %zu FETCH (", i + 1);
	bool first = true;
#define SEP() do { if (!first) buf_putc(out, ' '); first = false; } while (0)
	if (uid) {
		SEP();
		buf_printf(out, "UID %u", mm->uid);
	}
	for (size_t j = 0; j < f->count; j++) {
		const struct imap_fetch_item *it = &f->items[j];
		struct imap_section sec;
		memset(&sec, 0, sizeof(sec));
		switch (it->kind) {
		case IMAP_FETCH_MODSEQ:
			continue;	/* at the end, once (CHANGEDSINCE and FLAGS add it too) */
		case IMAP_FETCH_UID:
			if (uid)
				continue;
			SEP();
			buf_printf(out, "UID %u", mm->uid);
			break;
		case IMAP_FETCH_FLAGS:
			SEP();
			buf_puts(out, "FLAGS ");
			imapd_sel_msg_flags(sel, i, out);
			flags_done = true;
			break;
		case IMAP_FETCH_INTERNALDATE:
			SEP();
			buf_puts(out, "INTERNALDATE ");
			put_date(out, mm->idate);
			break;
		case IMAP_FETCH_RFC822_SIZE:
			SEP();
			buf_printf(out, "RFC822.SIZE %llu", (unsigned long long)mm->wsize);
			break;
		case IMAP_FETCH_ENVELOPE:
		case IMAP_FETCH_BODY:
		case IMAP_FETCH_BODYSTRUCTURE:
			SEP();
			buf_puts(out, it->kind == IMAP_FETCH_ENVELOPE ? "ENVELOPE " :
				      it->kind == IMAP_FETCH_BODY ? "BODY (" : "BODYSTRUCTURE (");
			if (!have[j]) {
				if (it->kind == IMAP_FETCH_ENVELOPE) {
					struct mime_header h = MIME_HEADER_INIT;
					mime_part_header(&m, m.root, &h);
					imap_envelope(&h, &cached[j]);
					mime_header_free(&h);
				} else {
					imap_bodystructure(&m, it->kind == IMAP_FETCH_BODYSTRUCTURE, &cached[j]);
				}
				imapd_fcache_put(sel->fc, sel->uidvalidity, msguid, fc_kind(it->kind),
						 cached[j].data, cached[j].len);
				filled = true;
			}
			buf_append(out, cached[j].data ? cached[j].data : "", cached[j].len);
			if (it->kind != IMAP_FETCH_ENVELOPE)
				buf_putc(out, ')');
			break;
		case IMAP_FETCH_RFC822:
		case IMAP_FETCH_RFC822_HEADER:
		case IMAP_FETCH_RFC822_TEXT:
			sec.kind = it->kind == IMAP_FETCH_RFC822 ? IMAP_SECTION_ALL :
				   it->kind == IMAP_FETCH_RFC822_HEADER ? IMAP_SECTION_HEADER : IMAP_SECTION_TEXT;
			SEP();
			buf_printf(out, "%s ", it->resp_name);
			put_section(out, data, &m, &sec, NULL);
			break;
		case IMAP_FETCH_SECTION:
			SEP();
			buf_printf(out, "%s ", it->resp_name);
			put_section(out, data, &m, &it->sec, it);
			break;
		}
	}
	if (f->sets_seen && !flags_done && !sel->readonly) {
		/* the \Seen this fetch set is reported with it (RFC 3501 6.4.5) */
		SEP();
		buf_puts(out, "FLAGS ");
		imapd_sel_msg_flags(sel, i, out);
	}
	/* a CONDSTORE client gets the modseq with every FLAGS (RFC 7162 3.1.4.1) */
	if (modseq || (sess->condstore && flags_done)) {
		SEP();
		buf_printf(out, "MODSEQ (%llu)", (unsigned long long)mm->modseq);
	}
#undef SEP
	buf_puts(out, ")\r\n");
	stream_write(sess->s, out->data, out->len);
	ok = true;
	/* the message was read for the cache's sake anyway: keep its header for later header SEARCH keys too */
	if (filled)
		imapd_fcache_put_header(sel->fc, sel->uidvalidity, msguid, data->data ? data->data : "", data->len);
	if (tree)
		mime_message_free(&m);
done:
	for (size_t j = 0; j < f->count && j < IMAP_FETCH_MAX_ITEMS; j++)
		buf_free(&cached[j]);
	return ok;
}

/* FETCH's RFC 7162 modifiers: (CHANGEDSINCE m [VANISHED]); false after a BAD. */
static bool fetch_modifiers(struct imapd_session *sess, const struct imap_arg *a, bool uid, uint64_t *since,
			    bool *changedsince, bool *vanished)
{
	const char *w;

	if (a->type != IMAP_ARG_LIST || a->count == 0)
		goto bad;
	for (size_t i = 0; i < a->count; i++) {
		if (!imap_arg_atom(&a->list[i], &w))
			goto bad;
		if (str_eq_ci(w, "CHANGEDSINCE") && i + 1 < a->count && !*changedsince) {
			if (!imap_arg_atom(&a->list[++i], &w) || !str_to_u64(w, INT64_MAX, since))
				goto bad;
			*changedsince = true;
		} else if (str_eq_ci(w, "VANISHED") && !*vanished) {
			*vanished = true;
		} else {
			goto bad;
		}
	}
	/* VANISHED only with UID FETCH, CHANGEDSINCE and QRESYNC enabled (RFC 7162 3.2.6) */
	if (*vanished && (!uid || !*changedsince || !sess->qresync))
		goto bad;
	return true;
bad:
	imapd_bad(sess, "FETCH modifiers must be (CHANGEDSINCE mod-sequence [VANISHED])");
	return false;
}

void imapd_cmd_fetch(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct imap_fetch f;
	struct buf err = BUF_INIT(1024), out = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(BUF_NOLIMIT);
	uint32_t *seqs = NULL;
	size_t n = 0;
	const char *set;

	uint64_t since = 0;
	bool changedsince = false, vanished = false;

	memset(&f, 0, sizeof(f));
	if ((nargs != 2 && nargs != 3) || !imap_arg_atom(&args[0], &set)) {
		imapd_bad(sess, "FETCH needs a sequence set and data items");
		goto out;
	}
	if (!imap_fetch_parse(&args[1], &f, &err)) {
		imapd_bad(sess, "%s", buf_cstr(&err));
		goto out;
	}
	if (nargs == 3 && !fetch_modifiers(sess, &args[2], uid, &since, &changedsince, &vanished))
		goto out;
	if (!imapd_sel_set(sess, set, uid, &seqs, &n)) {
		imapd_bad(sess, "invalid sequence set");
		goto out;
	}
	bool text = false, modseq = changedsince;
	for (size_t j = 0; j < f.count; j++) {
		text |= needs_text(f.items[j].kind);
		modseq |= f.items[j].kind == IMAP_FETCH_MODSEQ;
	}
	if (modseq)
		sess->condstore = true;
	if (vanished) {
		/* UID FETCH ... (CHANGEDSINCE m VANISHED): what of the UID set was expunged since m, first */
		struct imap_seqset us = { 0 };
		if (imap_seqset_parse(set, &us, IMAPD_SET_MAX_RANGES)) {
			imap_seqset_resolve(&us, mbox_uidnext(sess->sel->mb) - 1);
			imapd_vanished_earlier(sess, since, &us);
		}
		imap_seqset_free(&us);
	}
	if (changedsince) {
		size_t kept = 0;
		for (size_t j = 0; j < n; j++) {
			size_t k = imapd_sel_mbox_index(sess, seqs[j] - 1);
			if (k != (size_t)-1 && mbox_get(sess->sel->mb, k)->modseq > since)
				seqs[kept++] = seqs[j];
		}
		n = kept;
	}
	/* a body item without PEEK sets \Seen first, for all the messages in one index transaction */
	if (f.sets_seen && !sess->sel->readonly)
		imapd_sel_add_seen(sess, seqs, n);
	bool missing = false;
	imapd_fcache_begin(sess->sel->fc);
	for (size_t j = 0; j < n; j++) {
		if (!fetch_one(sess, &f, seqs[j] - 1, uid, text, modseq, &out, &data))
			missing = true;
		/* the stream sends whenever its buffer fills (a write per message cost more than the rest of a
		 * small FETCH); a zero-length write only reports a failed earlier one, to stop for a gone client */
		if (stream_write(sess->s, "", 0) != STREAM_OK)
			break;
	}
	imapd_fcache_end(sess->sel->fc);
	sess->sel->no_expunge = true;
	if (missing && !uid)
		imapd_no(sess, "some messages were expunged meanwhile");
	else
		imapd_ok(sess, "FETCH completed");
out:
	free(seqs);
	imap_fetch_free(&f);
	buf_free(&err);
	buf_free(&out);
	buf_free(&data);
}
