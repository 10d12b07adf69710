/* imapd APPEND: a literal becomes a Maildir message in the folder's cur/ with its flags, written crash-safely by
 * common/maildir.c (tmp, fsync, rename). The internal date, when given, goes into the
 * leading seconds of the file name and the mtime, which is where the shared index and other readers take it from. The folder's index then gives it
 * its UID for APPENDUID (UIDPLUS). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "cmdtab.h"
#include "fetchcache.h"
#include "flags.h"
#include "keywords.h"
#include "log.h"
#include "maildir.h"
#include "maildirsize.h"
#include "mbox.h"
#include "selected.h"
#include "mailboxes.h"
#include "str.h"

static int two(const char *s)
{
	return (s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9') ? (s[0] - '0') * 10 + (s[1] - '0') : -1;
}

bool imapd_parse_date_time(const char *s, time_t *out)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
		"Nov", "Dec" };
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	struct tm tm = { 0 };
	int m, y1, y2, zh, zm;

	if (strlen(s) != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' || s[17] != ':' ||
	    s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
		return false;
	tm.tm_mday = s[0] == ' ' ? ((s[1] >= '1' && s[1] <= '9') ? s[1] - '0' : -1) : two(s);
	for (m = 0; m < 12 && !str_eqn_ci(s + 3, mon[m], 3); m++)
		;
	y1 = two(s + 7);
	y2 = two(s + 9);
	tm.tm_hour = two(s + 12);
	tm.tm_min = two(s + 15);
	tm.tm_sec = two(s + 18);
	zh = two(s + 22);
	zm = two(s + 24);
	if (m == 12 || y1 < 0 || y2 < 0 || tm.tm_mday < 1 || tm.tm_mday > mdays[m] || tm.tm_hour < 0 ||
	    tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60 || zh < 0 ||
	    zh > 23 || zm < 0 || zm > 59)
		return false;
	tm.tm_mon = m;
	tm.tm_year = y1 * 100 + y2 - 1900;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	long off = (long)zh * 3600 + (long)zm * 60;
	*out = s[21] == '+' ? t - off : t + off;
	return true;
}

/* Message text with CRLF turned into LF (Maildir stores LF; bare CR stays): the text as the file will hold it,
 * written in one call, and kept for the FETCH cache. */
static void to_lf(const char *p, size_t n, struct buf *out)
{
	size_t i = 0;
	while (i < n) {
		const char *cr = memchr(p + i, '\r', n - i);
		size_t run = cr ? (size_t)(cr - (p + i)) : n - i;
		buf_append(out, p + i, run);
		i += run;
		if (i < n) {	/* at a CR */
			if (!(i + 1 < n && p[i + 1] == '\n'))
				buf_putc(out, '\r');
			i++;
		}
	}
}

void imapd_cmd_append(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf name = BUF_INIT(1024), path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct buf letters = BUF_INIT(64), text = BUF_INIT(BUF_NOLIMIT);
	unsigned flags = 0;
	bool keywords = false;
	time_t when = 0;
	bool have_date = false;
	size_t i = 1;
	char *final = NULL;

	(void)uid;
	if (nargs < 2 || nargs > 4) {
		imapd_bad(sess, "APPEND needs a mailbox, optional flags and date, and a message");
		goto out;
	}
	if (args[i].type == IMAP_ARG_LIST) {
		if (!imap_flags_parse_list(&args[i], &flags, &keywords, &err)) {
			imapd_bad(sess, "%s", buf_cstr(&err));
			goto out;
		}
		i++;
	}
	if (i < nargs - 1) {
		const char *d;
		if (args[i].type != IMAP_ARG_QUOTED || !imap_arg_string(&args[i], &d) ||
		    !imapd_parse_date_time(d, &when)) {
			imapd_bad(sess, "invalid date-time");
			goto out;
		}
		have_date = true;
		i++;
	}
	if (i != nargs - 1 || args[i].type != IMAP_ARG_LITERAL) {
		imapd_bad(sess, "APPEND needs the message as a literal");
		goto out;
	}
	const struct imap_arg *msg = &args[i];
	if (msg->len == 0 || memchr(msg->str, '\0', msg->len)) {
		imapd_no(sess, "[CANNOT] the message is empty or contains NUL bytes");
		goto out;
	}
	if (!imapd_arg_mailbox(sess, &args[0], &name))
		goto out;
	if (!imapd_mailbox_exists(sess->login.maildir, buf_cstr(&name)) ||
	    !imapd_mailbox_path(sess->login.maildir, buf_cstr(&name), &path)) {
		imapd_no(sess, "[TRYCREATE] no such mailbox");
		goto out;
	}

	/* (the selected folder has its mark already, and must not have its index opened a second time) */
	if (!sess->sel || strcmp(sess->sel->path, buf_cstr(&path)) != 0)
		imapd_recent_init(buf_cstr(&path));
	struct maildir_writer *w = maildir_begin(buf_cstr(&path), 0600, &err);
	if (!w)
		goto fail;
	to_lf(msg->str, msg->len, &text);
	if (text.len == 0 || !maildir_write(w, text.data, text.len)) {
		maildir_abort(&w);
		buf_puts(&err, "write failed");
		goto fail;
	}
	imap_flags_to_maildir(flags, &letters);
	if (keywords) {
		/* the target folder's letters; a keyword that finds no room is dropped (and logged), the message and
		 * its other keywords are kept, as COPY does */
		char *kw[IMAPD_KEYWORDS_MAX] = { 0 };
		struct buf kerr = BUF_INIT(1024);
		imapd_keywords_load(buf_cstr(&path), kw);
		for (size_t f = 0; f < args[1].count; f++) {
			const char *s = args[1].list[f].str;
			if (s[0] == '\\')
				continue;
			buf_reset(&kerr);
			int c = imapd_keyword_letter(buf_cstr(&path), kw, s, true, &kerr);
			if (c > 0 && !(letters.len && memchr(letters.data, c, letters.len)))
				buf_putc(&letters, (char)c);
			else if (c <= 0)
				log_warn("imapd: user %s: APPEND keyword not kept: %s", sess->login.user,
					 buf_cstr(&kerr));
		}
		for (int c = 0; c < IMAPD_KEYWORDS_MAX; c++)
			free(kw[c]);
		buf_free(&kerr);
		/* Maildir wants the letters in ASCII order */
		for (size_t a = 1; a < letters.len; a++)
			for (size_t b = a; b > 0 && letters.data[b - 1] > letters.data[b]; b--) {
				char t = letters.data[b];
				letters.data[b] = letters.data[b - 1];
				letters.data[b - 1] = t;
			}
	}
	uint64_t size = maildir_size(w);
	/* a date that cannot be set is logged, not an error for the client: the message is stored */
	if (have_date && !maildir_set_time(w, (int64_t)when))
		log_warn("imapd: %s: cannot set the internal date of an APPEND", buf_cstr(&path));
	uint32_t newuid = 0;
	/* The folder's index takes the message under its UID in one step, without listing the folder (a run of
	 * APPENDs to a big folder would otherwise scan it each time); the selected folder's session sees it at its
	 * next sync, like a delivery. One LMDB environment per file and process: the selected folder's is reused. */
	{
		bool selected = sess->sel && sess->sel->mb && strcmp(sess->sel->path, buf_cstr(&path)) == 0;
		struct mbox *nb = selected ? sess->sel->mb : mbox_open_nosync(buf_cstr(&path), &err);
		int r = nb ? mbox_add(nb, &w, buf_cstr(&letters), &newuid, &final, &err) : 0;
		if (r == 1) {
			uint32_t uv = mbox_uidvalidity(nb);
			struct imapd_fcache *fc = selected ? sess->sel->fc : imapd_fcache_open(buf_cstr(&path));
			imapd_fcache_begin(fc);
			imapd_fcache_fill(fc, uv, newuid, text.data, text.len, NULL);
			imapd_fcache_end(fc);
			if (!selected) {
				imapd_fcache_close(&fc);
				mbox_close(&nb);
			}
			maildirsize_update(buf_cstr(&path), (int64_t)size, 1);
			imapd_ok(sess, "[APPENDUID %u %u] APPEND completed", uv, newuid);
			goto out;
		}
		if (!selected)
			mbox_close(&nb);
		if (r < 0)
			goto fail;
		buf_reset(&err);
	}
	if (!maildir_commit(&w, buf_cstr(&letters), &final, &err))
		goto fail;
	maildirsize_update(buf_cstr(&path), (int64_t)size, 1);	/* the Maildir++ quota count */
	bool own;
	struct mbox *mb = imapd_sel_borrow(sess, buf_cstr(&path), &own, &err);
	if (mb) {
		/* the index names the file ",U=n" on its sync: find ours by its base */
		size_t bl = strcspn(final, ":");
		for (size_t k = mbox_count(mb); k-- > 0 && !newuid;) {
			const struct mbox_msg *m = mbox_get(mb, k);
			if (strncmp(m->name, final, bl) == 0 && (m->name[bl] == ',' || m->name[bl] == ':'))
				newuid = m->uid;
		}
		if (newuid) {
			struct imapd_fcache *fc = own ? imapd_fcache_open(buf_cstr(&path)) : sess->sel->fc;
			imapd_fcache_begin(fc);
			imapd_fcache_fill(fc, mbox_uidvalidity(mb), newuid, text.data, text.len, NULL);
			imapd_fcache_end(fc);
			if (own)
				imapd_fcache_close(&fc);
			imapd_ok(sess, "[APPENDUID %u %u] APPEND completed", mbox_uidvalidity(mb), newuid);
			if (own)
				mbox_close(&mb);
			goto out;
		}
		if (own)
			mbox_close(&mb);
	} else {
		log_warn("imapd: %s", buf_cstr(&err));
	}
	imapd_ok(sess, "APPEND completed");
	goto out;
fail:
	log_error("imapd: user %s: APPEND to %s: %s", sess->login.user, buf_cstr(&path), buf_cstr(&err));
	imapd_no(sess, "[SERVERBUG] APPEND failed");
out:
	free(final);
	buf_free(&name);
	buf_free(&path);
	buf_free(&err);
	buf_free(&letters);
	buf_free(&text);
}
