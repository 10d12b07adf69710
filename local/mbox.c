/* Delivery to an mbox file named by an alias, :include: list or .forward ("/path/file"): a From_ line, the
 * Return-Path and Delivered-To lines, the message with ">From " quoting and an empty line, appended under both
 * a flock and an fcntl lock (other mail programs use one or the other), then fsynced. A failed append is cut
 * off again, so the file never ends in half a message. Runs as the target's owner (deliver.c forks for it). */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "deliver.h"
#include "log.h"
#include "receipt.h"

#define LMBOX_LOCK_TRIES 300	/* 100 ms apart: a mailbox locked for 30 s is retried later */
#define LMBOX_CHUNK 65536

static const char FROM_[] = "From ";

void lmbox_quote(struct lmbox_quoter *q, const char *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (q->mid_line) {
			buf_putc(out, c);
			if (c == '\n')
				q->mid_line = false;
			continue;
		}
		if (c == FROM_[q->held]) {
			if (++q->held == 5) {
				buf_puts(out, ">From ");
				q->held = 0;
				q->mid_line = true;
			}
			continue;
		}
		/* not "From ": what was held goes out as it was */
		buf_append(out, FROM_, q->held);
		q->held = 0;
		buf_putc(out, c);
		q->mid_line = c != '\n';
	}
}

void lmbox_quote_end(struct lmbox_quoter *q, struct buf *out)
{
	buf_append(out, FROM_, q->held);
	if (q->mid_line || q->held)
		buf_putc(out, '\n');
	buf_putc(out, '\n');
	q->held = 0;
	q->mid_line = false;
}

void lmbox_from_line(const char *sender, time_t when, struct buf *out)
{
	struct tm tm;
	char date[64];

	buf_puts(out, "From ");
	if (!*sender)
		buf_puts(out, "MAILER-DAEMON");
	/* the From_ line is split at spaces by readers: none may be in the address */
	for (const char *s = sender; *s; s++)
		buf_putc(out, (unsigned char)*s <= 0x20 || *s == 0x7f ? '_' : *s);
	if (!localtime_r(&when, &tm) || strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		memcpy(date, "Thu Jan  1 00:00:00 1970", 25);
	buf_printf(out, " %s\n", date);
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* Both lock kinds, without blocking forever on a stuck holder. */
static bool lock_file(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int i;
	for (i = 0; i < LMBOX_LOCK_TRIES && flock(fd, LOCK_EX | LOCK_NB) != 0; i++) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return false;
		usleep(100000);
	}
	if (i == LMBOX_LOCK_TRIES) {
		errno = EAGAIN;
		return false;
	}
	for (i = 0; i < LMBOX_LOCK_TRIES && fcntl(fd, F_SETLK, &fl) != 0; i++) {
		if (errno != EACCES && errno != EAGAIN && errno != EINTR)
			return false;
		usleep(100000);
	}
	if (i == LMBOX_LOCK_TRIES) {
		errno = EAGAIN;
		return false;
	}
	return true;
}

/* Where the generated message goes: appended to the file, or compared with what the file holds at pos (a retry
 * checking what an interrupted attempt wrote). */
struct sink {
	int fd;
	bool compare;
	uint64_t pos;		/* compare: next file offset */
	bool differs;		/* compare: a byte differs */
	bool ended;		/* compare: the file ended before the message (all bytes up to there equal) */
};

static bool emit(struct sink *s, struct buf *out)
{
	bool ok = true;
	if (!s->compare) {
		ok = write_all(s->fd, out->data, out->len);
	} else if (!s->differs && !s->ended) {
		char tmp[LMBOX_CHUNK];
		for (size_t off = 0; off < out->len && !s->differs && !s->ended;) {
			size_t want = out->len - off < sizeof(tmp) ? out->len - off : sizeof(tmp), got;
			if (!ldeliver_read_at(s->fd, tmp, want, s->pos, &got))
				return false;
			if (memcmp(tmp, out->data + off, got) != 0)
				s->differs = true;
			else if (got < want)
				s->ended = true;
			s->pos += got;
			off += got;
		}
	}
	buf_reset(out);
	return ok;
}

/* The whole mbox entry of m for t with a From_ line dated when, into s. false with dsn and text on a failure. */
static bool produce(const struct ldeliver_msg *m, const struct ldeliver_target *t, time_t when, struct sink *s,
                    struct buf *dsn, struct buf *text)
{
	const char *sender = t->sender ? t->sender : m->sender;
	struct buf out = BUF_INIT(BUF_NOLIMIT), hdr = BUF_INIT(BUF_NOLIMIT);
	struct lmbox_quoter q = { 0, false };
	char *chunk = xmalloc(LMBOX_CHUNK);
	bool ok = true;

	lmbox_from_line(sender, when, &out);
	ldeliver_trace_headers(sender, t->rcpt, &hdr);
	lmbox_quote(&q, hdr.data, hdr.len, &out);
	for (uint64_t off = 0; ok && off < m->content_len;) {
		size_t want = m->content_len - off < LMBOX_CHUNK ? (size_t)(m->content_len - off) : LMBOX_CHUNK, got;
		if (!ldeliver_read_at(m->fd, chunk, want, m->content_offset + off, &got) || got != want) {
			buf_puts(dsn, "4.3.0");
			buf_puts(text, "cannot read queue file");
			ok = false;
			break;
		}
		lmbox_quote(&q, chunk, got, &out);
		off += got;
		if (out.len >= LMBOX_CHUNK && !emit(s, &out))
			ok = false;
	}
	if (ok) {
		lmbox_quote_end(&q, &out);
		ok = emit(s, &out);
	}
	if (!ok && !dsn->len) {
		buf_puts(dsn, errno == ENOSPC || errno == EDQUOT ? "4.3.1" : "4.2.0");
		buf_printf(text, "cannot %s file %s: %s", s->compare ? "read" : "append to", t->path, strerror(errno));
	}
	free(chunk);
	buf_free(&out);
	buf_free(&hdr);
	return ok;
}

/* A retry after an interrupted attempt, which wrote "OFFSET TIME" into the pending mark before it appended:
 * true when that attempt's message is complete in the file (nothing to do). When the file ends inside it (the
 * attempt was killed mid-write), the partial message is cut off, so the file never keeps half a message. */
static bool resume(const struct ldeliver_msg *m, const struct ldeliver_target *t, int fd)
{
	char rec[64];
	ssize_t k = pread(t->mark->fd, rec, sizeof(rec) - 1, 0);
	long long off, when;
	if (k <= 0)
		return false;	/* killed before it wrote anything */
	rec[k] = '\0';
	if (sscanf(rec, "%lld %lld", &off, &when) != 2 || off < 0)
		return false;
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size <= off)
		return false;
	struct sink s = { fd, true, (uint64_t)off, false, false };
	struct buf d = BUF_INIT(64), x = BUF_INIT(1024);
	bool ok = produce(m, t, (time_t)when, &s, &d, &x);
	buf_free(&d);
	buf_free(&x);
	if (!ok || s.differs)
		return false;
	if (!s.ended)
		return true;
	if (s.pos == (uint64_t)st.st_size && (ftruncate(fd, (off_t)off) != 0 || fsync(fd) != 0))
		log_warn("%s: cannot cut off an interrupted delivery to %s: %s", m->queue_id, t->path, strerror(errno));
	return false;
}

enum ldeliver_status lmbox_append(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                                  struct buf *text)
{
	enum ldeliver_status st = LDELIVER_TEMPFAIL;
	off_t start = -1;
	struct stat sb;

	if (strcmp(t->path, "/dev/null") == 0) {
		buf_puts(dsn, "2.0.0");
		buf_puts(text, "delivered to file: /dev/null");
		return LDELIVER_OK;
	}
	int oflags = O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
	int fd = open(t->path, O_RDWR | oflags, 0600);	/* read too: a retry compares what an earlier attempt wrote */
	if (fd < 0 && errno == EACCES)
		fd = open(t->path, O_WRONLY | oflags, 0600);	/* a write-only file: appended, never checked */
	if (fd < 0) {
		buf_puts(dsn, errno == ENOSPC || errno == EDQUOT ? "4.3.1" : "4.2.0");
		buf_printf(text, "cannot append to file %s: %s", t->path, strerror(errno));
		return st;
	}
	/* a regular file with one name: a hard link could point the append at a file the owner cannot see */
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
		buf_puts(dsn, "4.2.0");
		buf_printf(text, "cannot append to file %s: not a regular file with a single link", t->path);
		goto out;
	}
	if (fcntl(fd, F_SETFL, O_APPEND) != 0 || !lock_file(fd)) {
		buf_puts(dsn, "4.2.0");
		buf_printf(text, "cannot lock file %s: %s", t->path, strerror(errno));
		goto out;
	}
	if (t->mark && t->mark->resumed && resume(m, t, fd)) {
		buf_puts(dsn, "2.0.0");
		buf_printf(text, "delivered to file: %s (before a restart)", t->path);
		st = LDELIVER_OK;
		goto out;
	}
	if ((start = lseek(fd, 0, SEEK_END)) < 0) {
		buf_puts(dsn, "4.2.0");
		buf_printf(text, "cannot append to file %s: %s", t->path, strerror(errno));
		goto out;
	}
	time_t now = time(NULL);
	if (t->mark && t->mark->fd >= 0) {
		/* what a retry needs to find this attempt's message: where it starts and its From_ line's date */
		char rec[64];
		int n = snprintf(rec, sizeof(rec), "%lld %lld\n", (long long)start, (long long)now);
		if (ftruncate(t->mark->fd, 0) != 0 || pwrite(t->mark->fd, rec, (size_t)n, 0) != n)
			log_warn("%s: pending receipt for %s: %s", m->queue_id, t->path, strerror(errno));
	}
	struct sink s = { fd, false, 0, false, false };
	if (!produce(m, t, now, &s, dsn, text) || fsync(fd) != 0) {
		if (!dsn->len) {
			buf_puts(dsn, errno == ENOSPC || errno == EDQUOT ? "4.3.1" : "4.2.0");
			buf_printf(text, "cannot append to file %s: %s", t->path, strerror(errno));
		}
		if (ftruncate(fd, start) != 0 || fsync(fd) != 0)
			buf_printf(text, " (and the partial message could not be removed: %s)", strerror(errno));
		goto out;
	}
	buf_puts(dsn, "2.0.0");
	buf_printf(text, "delivered to file: %s", t->path);
	st = LDELIVER_OK;
out:
	close(fd);	/* releases both locks */
	return st;
}
