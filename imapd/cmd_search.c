/* imapd SEARCH and UID SEARCH (RFC 3501 6.4.4), with ESEARCH's RETURN (MIN MAX COUNT ALL) (RFC 4731). The key
 * tree comes from searchargs.c; header and text keys are answered here from the MIME-parsed message, with
 * encoded words and transfer encodings decoded and every charset converted to UTF-8, then compared
 * case-insensitively (ASCII letters). The message is read at most once per message, and only when a text key
 * is reached. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "cmdtab.h"
#include "fetchcache.h"
#include "flags.h"
#include "keywords.h"
#include "log.h"
#include "mbox.h"
#include "mime.h"
#include "mime_codec.h"
#include "searchargs.h"
#include "selected.h"
#include "str.h"

struct text_ctx {
	struct imapd_session *sess;
	size_t i;
	bool read, ok;		/* data read (ok: successfully) */
	bool loaded;		/* m parsed */
	bool hdr_read;		/* hdr filled (empty when the message is gone) */
	struct buf data, hdr;	/* the message; its top-level header */
	struct mime_message m;
};

static bool contains_ci(const char *hay, size_t n, const char *needle)
{
	size_t nl = strlen(needle);

	if (nl == 0)
		return true;
	for (size_t i = 0; i + nl <= n; i++)
		if (str_eqn_ci(hay + i, needle, nl))
			return true;
	return false;
}

static bool load_data(struct text_ctx *c)
{
	if (!c->read) {
		c->read = true;
		c->ok = imapd_sel_read(c->sess, c->i, &c->data);
	}
	return c->ok;
}

/* The top-level header, from the FETCH cache when it has it (a header SEARCH then opens no message file, like
 * Dovecot's cached fields), else from the message, and then cached. */
static bool load_header(struct text_ctx *c)
{
	struct imapd_selected *sel = c->sess->sel;
	uint32_t uid = sel->v[c->i].uid;

	if (c->hdr_read)
		return c->ok;
	c->hdr_read = true;
	if (imapd_fcache_get(sel->fc, sel->uidvalidity, uid, IMAPD_FC_HEADER, &c->hdr))
		return c->ok = true;
	if (!load_data(c))
		return false;
	struct mime_header h = MIME_HEADER_INIT;
	mime_header_parse(&h, c->data.data ? c->data.data : "", c->data.len);
	buf_append(&c->hdr, c->data.data ? c->data.data : "", h.size);
	mime_header_free(&h);
	imapd_fcache_put(sel->fc, sel->uidvalidity, uid, IMAPD_FC_HEADER, c->hdr.data, c->hdr.len);
	return true;
}

/* The MIME tree, only for body and text keys: header keys read the top-level header alone (mime_header_parse
 * stops at its end), which is most of the cost of a header SEARCH saved. */
static bool load(struct text_ctx *c)
{
	if (!load_data(c))
		return false;
	if (!c->loaded) {
		c->loaded = true;
		mime_message_parse(&c->m, c->data.data ? c->data.data : "", c->data.len);
	}
	return true;
}

/* Any field of header h named field (all fields when NULL) whose decoded value contains s. */
static bool header_has(const struct mime_header *h, const char *field, const char *s)
{
	struct buf raw = BUF_INIT(BUF_NOLIMIT), dec = BUF_INIT(BUF_NOLIMIT);
	bool found = false;

	for (size_t j = 0; j < h->n && !found; j++) {
		const struct mime_field *f = &h->v[j];
		if (field && !mime_field_is(h, f, field))
			continue;
		buf_reset(&raw);
		buf_reset(&dec);
		mime_field_value(h, f, &raw);
		mime_words_decode(raw.data ? raw.data : "", raw.len, &dec);
		if (field) {
			found = contains_ci(dec.data ? dec.data : "", dec.len, s);
		} else {
			/* TEXT: the field name counts too */
			found = contains_ci(h->base + f->off, f->name_len, s) ||
				contains_ci(dec.data ? dec.data : "", dec.len, s);
		}
	}
	buf_free(&raw);
	buf_free(&dec);
	return found;
}

/* The decoded text of the leaf parts (text types converted to UTF-8). */
static bool body_has(const struct mime_message *m, const struct mime_part *p, const char *s)
{
	if (p->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)) {
		for (const struct mime_part *c = p->children; c; c = c->next) {
			if ((p->flags & MIME_PART_MESSAGE)) {
				struct mime_header h = MIME_HEADER_INIT;
				mime_part_header(m, c, &h);
				bool f = header_has(&h, NULL, s);
				mime_header_free(&h);
				if (f)
					return true;
			}
			if (body_has(m, c, s))
				return true;
		}
		return false;
	}
	const char *b = m->data + p->body_off;
	struct buf dec = BUF_INIT(BUF_NOLIMIT), u = BUF_INIT(BUF_NOLIMIT);
	bool found;
	if (p->encoding && str_eq_ci(p->encoding, "base64")) {
		mime_b64_decode_all(b, p->body_size, &dec);
	} else if (p->encoding && str_eq_ci(p->encoding, "quoted-printable")) {
		mime_qp_decode_all(b, p->body_size, &dec);
	} else {
		buf_append(&dec, b, p->body_size);
	}
	if (str_eq_ci(mime_part_type(p), "text")) {
		char *cs = mime_ctype_param(&p->ct, "charset");
		mime_charset_to_utf8(cs ? cs : "us-ascii", dec.data ? dec.data : "", dec.len, &u);
		free(cs);
		found = contains_ci(u.data ? u.data : "", u.len, s);
	} else {
		found = contains_ci(dec.data ? dec.data : "", dec.len, s);
	}
	buf_free(&dec);
	buf_free(&u);
	return found;
}

static uint32_t ymd_of(time_t t, int tz_minutes)
{
	struct tm tm;
	time_t local = t + (time_t)tz_minutes * 60;	/* the date as the sender wrote it (RFC 3501: ignoring zone) */
	if (!gmtime_r(&local, &tm))
		return 0;
	return (uint32_t)((tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday);
}

static bool text_cb(void *ctx, const struct imap_search_key *k)
{
	struct text_ctx *c = ctx;
	struct mime_header h = MIME_HEADER_INIT;
	bool r = false;

	if (k->type == IMAP_SK_KEYWORD || k->type == IMAP_SK_UNKEYWORD) {
		/* no need to read the message: the letters are in the view */
		struct buf e = BUF_INIT(256);
		int l = imapd_keyword_letter(c->sess->sel->path, c->sess->sel->keywords, k->str, false, &e);
		buf_free(&e);
		return l > 0 && (c->sess->sel->v[c->i].flags & IMAPD_KW_BIT(l));
	}
	if (!load_header(c))
		return false;
	mime_header_parse(&h, c->hdr.data ? c->hdr.data : "", c->hdr.len);
	switch (k->type) {
	case IMAP_SK_HEADER:
		/* HEADER name "" matches every message with that field */
		r = k->str[0] ? header_has(&h, k->field, k->str) : mime_header_find(&h, k->field, 0) != NULL;
		break;
	case IMAP_SK_BODY:
		r = load(c) && body_has(&c->m, c->m.root, k->str);
		break;
	case IMAP_SK_TEXT:
		r = header_has(&h, NULL, k->str) || (load(c) && body_has(&c->m, c->m.root, k->str));
		break;
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE: {
		char *d = mime_header_get(&h, "Date");
		time_t t;
		int tz = 0;
		if (d && mime_date_parse(d, strlen(d), &t, &tz)) {
			uint32_t y = ymd_of(t, tz);
			r = k->type == IMAP_SK_SENTBEFORE ? y < k->num : k->type == IMAP_SK_SENTON ? y == k->num : y >= k->num;
		}
		free(d);
		break;
	}
	default:
		break;
	}
	mime_header_free(&h);
	return r;
}

void imapd_cmd_search(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct imapd_selected *sel = sess->sel;
	struct imap_search s;
	struct buf err = BUF_INIT(1024), line = BUF_INIT(BUF_NOLIMIT);
	bool badcharset = false, esearch = false;
	unsigned ret = 0;
	enum { R_MIN = 1, R_MAX = 2, R_COUNT = 4, R_ALL = 8 };

	memset(&s, 0, sizeof(s));
	/* ESEARCH: SEARCH RETURN (options) criteria */
	if (nargs >= 2 && args[0].type == IMAP_ARG_ATOM && str_eq_ci(args[0].str, "RETURN") &&
	    args[1].type == IMAP_ARG_LIST) {
		esearch = true;
		for (size_t j = 0; j < args[1].count; j++) {
			const char *o;
			if (!imap_arg_atom(&args[1].list[j], &o) ||
			    !(ret |= str_eq_ci(o, "MIN") ? R_MIN : str_eq_ci(o, "MAX") ? R_MAX :
				     str_eq_ci(o, "COUNT") ? R_COUNT : str_eq_ci(o, "ALL") ? R_ALL : 0)) {
				imapd_bad(sess, "unknown RETURN option");
				goto out;
			}
		}
		if (!ret)
			ret = R_ALL;
		args += 2;
		nargs -= 2;
	}
	if (!imap_search_parse(args, nargs, &s, &err, &badcharset)) {
		if (badcharset)
			imapd_no(sess, "[BADCHARSET (UTF-8 US-ASCII)] unsupported charset");
		else
			imapd_bad(sess, "%s", buf_cstr(&err));
		goto out;
	}
	imap_search_resolve(&s, (uint32_t)sel->n, sel->n ? sel->v[sel->n - 1].uid : 0);

	uint32_t *hits = xcalloc(sel->n + 1, sizeof(*hits));
	size_t nh = 0;
	imapd_fcache_begin(sel->fc);
	uint64_t maxmod = 0;
	if (s.modseq)
		sess->condstore = true;
	for (size_t i = 0; i < sel->n; i++) {
		size_t k = imapd_sel_mbox_index(sess, i);
		if (k == (size_t)-1)
			continue;
		const struct mbox_msg *mm = mbox_get(sel->mb, k);
		struct text_ctx c = { .sess = sess, .i = i, .data = BUF_INIT(BUF_NOLIMIT), .hdr = BUF_INIT(BUF_NOLIMIT) };
		struct imap_search_msg m = {
			.seq = (uint32_t)i + 1, .uid = sel->v[i].uid, .flags = sel->v[i].flags & IMAPD_SYS_FLAGS,
			.recent = sel->v[i].recent, .size = mm->wsize, .internal_ymd = ymd_of((time_t)mm->idate, 0),
			.modseq = mm->modseq,
			.text = text_cb, .ctx = &c,
		};
		if (imap_search_match(&s, &m)) {
			hits[nh++] = uid ? sel->v[i].uid : (uint32_t)i + 1;
			if (mm->modseq > maxmod)
				maxmod = mm->modseq;
		}
		if (c.loaded)
			mime_message_free(&c.m);
		buf_free(&c.data);
		buf_free(&c.hdr);
	}
	imapd_fcache_end(sel->fc);
	if (esearch) {
		buf_printf(&line, "ESEARCH (TAG \"%s\")%s", sess->tag, uid ? " UID" : "");
		if (nh && (ret & R_MIN))
			buf_printf(&line, " MIN %u", hits[0]);
		if (nh && (ret & R_MAX))
			buf_printf(&line, " MAX %u", hits[nh - 1]);
		if (ret & R_COUNT)
			buf_printf(&line, " COUNT %zu", nh);
		if (nh && (ret & R_ALL)) {
			struct imap_seqset set = { 0 };
			for (size_t j = 0; j < nh; j++)
				imapd_seqset_add(&set, hits[j]);
			buf_puts(&line, " ALL ");
			imap_seqset_format(&set, &line);
			imap_seqset_free(&set);
		}
		if (nh && s.modseq)
			buf_printf(&line, " MODSEQ %llu", (unsigned long long)maxmod);
	} else {
		buf_puts(&line, "SEARCH");
		for (size_t j = 0; j < nh; j++)
			buf_printf(&line, " %u", hits[j]);
		/* RFC 7162 3.1.5: the highest modseq of the messages found */
		if (nh && s.modseq)
			buf_printf(&line, " (MODSEQ %llu)", (unsigned long long)maxmod);
	}
	free(hits);
	imapd_untagged(sess, "%s", buf_cstr(&line));
	sel->no_expunge = true;
	imapd_ok(sess, "SEARCH completed");
out:
	imap_search_free(&s);
	buf_free(&err);
	buf_free(&line);
}
