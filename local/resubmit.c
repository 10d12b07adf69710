/* Remote members of a mailing list whose owner alias exists (owner-NAME) cannot stay recipients of the original
 * message: their bounces must go to the list owner, and a message has one envelope sender. So, as Postfix's
 * local does, they get a new message from owner-NAME@domain with a Delivered-To line for the list (which stops
 * a list that mails itself), queued like any submission; qmgr picks it up from incoming/. Runs as mail_owner
 * (deliver.c forks for it when root), so the queue file belongs to the queue's owner. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "deliver.h"
#include "qfile.h"

#define LRESUBMIT_CHUNK 65536

enum ldeliver_status lresubmit(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                               struct buf *text)
{
	struct buf err = BUF_INIT(1024), hdr = BUF_INIT(BUF_NOLIMIT);
	char *chunk = NULL;
	enum ldeliver_status st = LDELIVER_TEMPFAIL;
	struct qfile_writer *w = qfile_create(t->path, &err);

	if (!w) {
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "cannot queue the list's remote members: %s", buf_cstr(&err));
		goto out;
	}
	bool ok = qfile_put_str(w, QREC_SENDER, t->sender ? t->sender : m->sender) &&
	          qfile_put_str(w, QREC_PROTOCOL, "LOCAL") && qfile_put_str(w, QREC_ORIGIN, "local");
	for (size_t i = 0; ok && t->rcpts && t->rcpts[i]; i++)
		ok = qfile_put_rcpt(w, t->rcpts[i], 0, NULL);
	buf_puts(&hdr, "Delivered-To: ");
	for (const char *s = t->rcpt; *s; s++)
		buf_putc(&hdr, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	buf_putc(&hdr, '\n');
	ok = ok && qfile_write(w, hdr.data, hdr.len);
	chunk = xmalloc(LRESUBMIT_CHUNK);
	for (uint64_t off = 0; ok && off < m->content_len;) {
		size_t want = m->content_len - off < LRESUBMIT_CHUNK ? (size_t)(m->content_len - off) : LRESUBMIT_CHUNK;
		size_t got;
		if (!ldeliver_read_at(m->fd, chunk, want, m->content_offset + off, &got) || got != want) {
			qfile_abort(&w);
			buf_puts(dsn, "4.3.0");
			buf_puts(text, "cannot read queue file");
			goto out;
		}
		ok = qfile_write(w, chunk, got);
		off += got;
	}
	if (!ok) {
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "cannot queue the list's remote members: %s", qfile_writer_error(w));
		qfile_abort(&w);
		goto out;
	}
	char *id = xstrdup(qfile_writer_id(w));
	if (!qfile_commit(&w, &err)) {
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "cannot queue the list's remote members: %s", buf_cstr(&err));
		free(id);
		goto out;
	}
	buf_puts(dsn, "2.0.0");
	buf_printf(text, "resubmitted from %s as %s", t->sender ? t->sender : m->sender, id);
	free(id);
	st = LDELIVER_OK;
out:
	free(chunk);
	buf_free(&err);
	buf_free(&hdr);
	return st;
}
