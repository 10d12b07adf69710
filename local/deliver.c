/* Maildir and mbox delivery. As root, the write happens in a child that has dropped to the target's owner, so
 * a path under a user's control can never be used to write as root; the child reports its outcome through a
 * pipe. Without root the daemon writes as itself. Every failure of the write itself is temporary; only a
 * full quota can bounce (quota_exceeded_action). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "deliver.h"
#include "log.h"
#include "maildir.h"
#include "maildirsize.h"
#include "receipt.h"
#include "str.h"

bool ldeliver_read_at(int fd, void *p, size_t n, uint64_t off, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t k = pread(fd, (char *)p + *got, n - *got, (off_t)(off + *got));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (k == 0)
			break;
		*got += (size_t)k;
	}
	return true;
}

bool ldeliver_has_loop(const struct ldeliver_msg *m, const char *rcpt)
{
	size_t n = m->content_len < LDELIVER_HEADER_SCAN_MAX ? (size_t)m->content_len : LDELIVER_HEADER_SCAN_MAX;
	char *h = xmalloc(n + 1);
	size_t got;
	bool loop = false;

	if (!ldeliver_read_at(m->fd, h, n, m->content_offset, &got)) {
		free(h);
		return false;
	}
	h[got] = '\0';
	size_t rl = strlen(rcpt);
	for (char *line = h; line && *line && *line != '\n';) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len > 13 && str_eqn_ci(line, "Delivered-To:", 13)) {
			const char *v = line + 13;
			size_t vl = len - 13;
			while (vl && (*v == ' ' || *v == '\t'))
				v++, vl--;
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\r'))
				vl--;
			if (vl == rl && str_eqn_ci(v, rcpt, rl)) {
				loop = true;
				break;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	free(h);
	return loop;
}

/* Header values from the envelope: no line breaks may get in. */
static void put_clean(struct buf *b, const char *s)
{
	for (; *s; s++)
		buf_putc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

void ldeliver_trace_headers(const char *sender, const char *rcpt, struct buf *out)
{
	buf_puts(out, "Return-Path: <");
	put_clean(out, sender);
	buf_puts(out, ">\nDelivered-To: ");
	put_clean(out, rcpt);
	buf_puts(out, "\n");
}

/* The extension folder when it exists as a directory, else the Maildir itself. */
static void pick_folder(const struct ldeliver_target *t, struct buf *dir)
{
	struct stat st;
	if (t->folder && maildir_folder_path(t->path, t->folder, dir) && stat(dir->data, &st) == 0 &&
	    S_ISDIR(st.st_mode)) {
		if (dir->len && dir->data[dir->len - 1] != '/')
			buf_putc(dir, '/');
		return;
	}
	buf_reset(dir);
	buf_puts(dir, t->path);
}

/* A target's part of its receipt name and of its Maildir file name (one recipient may have several targets). */
static uint64_t target_hash(const struct ldeliver_target *t)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)t->path; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	if (t->kind != LDELIVER_MAILDIR)	/* Maildir receipts keep their old names */
		h = (h ^ (unsigned)t->kind) * 1099511628211ull;
	if (t->kind == LDELIVER_RESUBMIT && t->sender)
		for (const unsigned char *p = (const unsigned char *)t->sender; *p; p++)
			h = (h ^ *p) * 1099511628211ull;
	return h;
}

/* A file in dir/new or dir/cur whose name begins with tag: this recipient's copy, made by an earlier attempt
 * (readers may rename it in cur/, but keep the unique part at the front). */
static bool find_tagged(const char *dir, const char *tag)
{
	static const char *const subs[] = { "new", "cur" };
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	size_t n = strlen(tag);
	bool found = false;

	for (size_t i = 0; i < 2 && !found; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", dir, subs[i]);
		DIR *d = opendir(buf_cstr(&p));
		struct dirent *e;
		while (d && !found && (e = readdir(d)))
			found = strncmp(e->d_name, tag, n) == 0 && e->d_name[n] == '.';
		if (d)
			closedir(d);
	}
	buf_free(&p);
	return found;
}

static enum ldeliver_status write_maildir(const struct ldeliver_msg *m, const struct ldeliver_target *t,
                                          struct buf *dsn, struct buf *text)
{
	struct buf err = BUF_INIT(1024), hdr = BUF_INIT(BUF_NOLIMIT), dirb = BUF_INIT(BUF_NOLIMIT);
	struct maildir_writer *w;
	char *chunk = NULL, *name = NULL;
	enum ldeliver_status st = LDELIVER_TEMPFAIL;
	const char *rcpt = t->rcpt, *t_folder = t->folder;
	bool reserved = false;	/* the size is counted in maildirsize */
	bool junk = false;

	ldeliver_trace_headers(t->sender ? t->sender : m->sender, rcpt, &hdr);
	uint64_t size = hdr.len + m->content_len, used = 0;
	if (!maildir_make(t->path, 0700, &err)) {
		buf_puts(dsn, errno == ENOSPC || errno == EDQUOT ? "4.3.1" : "4.2.0");
		buf_printf(text, "cannot write to maildir %s: %s", t->path, buf_cstr(&err));
		goto out;
	}
	if (t->quota) {
		switch (maildirsize_reserve(t->path, t->quota, size, &used, &err)) {
		case MAILDIRSIZE_OK:
			reserved = true;
			break;
		case MAILDIRSIZE_OVER:
			st = t->quota_bounce ? LDELIVER_FAIL : LDELIVER_TEMPFAIL;
			buf_puts(dsn, t->quota_bounce ? "5.2.2" : "4.2.2");
			buf_printf(text, "mailbox full: quota %llu bytes, %llu used, message %llu",
			           (unsigned long long)t->quota, (unsigned long long)used, (unsigned long long)size);
			goto out;
		case MAILDIRSIZE_ERROR:
			buf_puts(dsn, "4.2.0");
			buf_printf(text, "cannot compute the size of maildir %s: %s", t->path, buf_cstr(&err));
			goto out;
		}
	}
	pick_folder(t, &dirb);
	if (m->junk) {
		/* Junk is made when missing (imapd makes it at the first login, which may not have happened) */
		struct buf jdir = BUF_INIT(BUF_NOLIMIT);
		if (maildir_folder_path(t->path, "Junk", &jdir) && maildir_make(jdir.data, 0700, &err)) {
			if (jdir.data[jdir.len - 1] != '/')
				buf_putc(&jdir, '/');
			buf_free(&dirb);
			dirb = jdir;
			t_folder = "Junk";
			junk = true;
		} else {
			buf_free(&jdir);
		}
		buf_reset(&err);
	}
	const char *maildir = dirb.data;
	struct buf tag = BUF_INIT(MAILDIR_NAME_MAX);
	if (m->receipt_dir && m->arrival > 0)	/* seconds first, as in any Maildir name: readers take the date */
		buf_printf(&tag, "%lld.", (long long)m->arrival);
	if (m->receipt_dir)
		buf_printf(&tag, "Q%sR%uH%016llx", m->queue_id, (unsigned)m->rcpt_idx, (unsigned long long)target_hash(t));
	if (m->receipt_dir && m->retry && find_tagged(maildir, buf_cstr(&tag))) {
		buf_free(&tag);
		buf_puts(dsn, "2.0.0");
		buf_puts(text, "delivered to maildir (before a restart)");
		st = LDELIVER_OK;
		goto out;
	}
	if (!(w = maildir_begin(maildir, 0600, &err))) {
		buf_free(&tag);
		buf_puts(dsn, errno == ENOSPC || errno == EDQUOT ? "4.3.1" : "4.2.0");
		buf_printf(text, "cannot write to maildir %s: %s", maildir, buf_cstr(&err));
		goto out;
	}
	/* Exactly once without a receipt file: every attempt for this recipient and target picks the same name,
	 * so the file in new/ is the receipt (maildir_commit_once refuses a second copy). */
	if (m->receipt_dir)
		maildir_set_unique(w, buf_cstr(&tag));
	buf_free(&tag);
	bool ok = maildir_write(w, hdr.data, hdr.len);
	chunk = xmalloc(65536);
	for (uint64_t off = 0; ok && off < m->content_len;) {
		size_t want = m->content_len - off < 65536 ? (size_t)(m->content_len - off) : 65536, got;
		if (!ldeliver_read_at(m->fd, chunk, want, m->content_offset + off, &got) || got != want) {
			buf_puts(dsn, "4.3.0");
			buf_printf(text, "cannot read queue file: %s", got != want ? "short read" : strerror(errno));
			maildir_abort(&w);
			goto out;
		}
		ok = maildir_write(w, chunk, got);
		off += got;
	}
	if (!ok) {
		maildir_abort(&w);
		buf_puts(dsn, errno == ENOSPC || errno == EDQUOT ? "4.3.1" : "4.2.0");
		buf_printf(text, "cannot write to maildir %s: %s", maildir, strerror(errno));
		goto out;
	}
	bool existed = false;
	if (!(m->receipt_dir ? maildir_commit_once(&w, &name, &existed, &err) : maildir_commit(&w, NULL, &name, &err))) {
		buf_puts(dsn, "4.2.0");
		buf_printf(text, "cannot write to maildir %s: %s", maildir, buf_cstr(&err));
		goto out;
	}
	if (existed) {		/* an interrupted attempt delivered it; its size was counted then */
		buf_puts(dsn, "2.0.0");
		buf_puts(text, "delivered to maildir (before a restart)");
		st = LDELIVER_OK;
		goto out;
	}
	if (!t->quota)
		maildirsize_update(t->path, (int64_t)size, 1);	/* kept current should a quota come back */
	reserved = false;
	buf_puts(dsn, "2.0.0");
	if (strcmp(maildir, t->path) != 0)
		buf_printf(text, "delivered to maildir folder %s%s", t_folder, junk ? " (DMARC quarantine)" : "");
	else
		buf_puts(text, "delivered to maildir");
	st = LDELIVER_OK;
out:
	if (reserved)	/* the size was counted, the message did not arrive */
		maildirsize_update(t->path, -(int64_t)size, -1);
	free(chunk);
	free(name);
	buf_free(&err);
	buf_free(&hdr);
	buf_free(&dirb);
	return st;
}

typedef enum ldeliver_status (*write_fn)(const struct ldeliver_msg *m, const struct ldeliver_target *t,
                                         struct buf *dsn, struct buf *text);

/* Child side of a delivery as another user: drop, write, send "CODE dsn text" back, exit. */
static noreturn void child_deliver(int wfd, const struct ldeliver_msg *m, const struct ldeliver_target *t,
                                   write_fn fn)
{
	uid_t uid = t->uid;
	gid_t gid = t->gid;
	struct buf dsn = BUF_INIT(64), text = BUF_INIT(2048), out = BUF_INIT(4096);
	enum ldeliver_status st;

	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0 || (uid != 0 && setuid(0) == 0)) {
		st = LDELIVER_TEMPFAIL;
		buf_puts(&dsn, "4.3.0");
		buf_printf(&text, "cannot switch to uid %u gid %u: %s", (unsigned)uid, (unsigned)gid, strerror(errno));
	} else {
		st = fn(m, t, &dsn, &text);
	}
	buf_printf(&out, "%d %s %s", (int)st, buf_cstr(&dsn), buf_cstr(&text));
	ssize_t k = write(wfd, out.data, out.len);
	_exit(k == (ssize_t)out.len ? 0 : 1);
}

static enum ldeliver_status deliver_as(const struct ldeliver_msg *m, const struct ldeliver_target *t, write_fn fn,
                                       struct buf *dsn, struct buf *text)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "cannot start delivery process: %s", strerror(errno));
		return LDELIVER_TEMPFAIL;
	}
	if (pid == 0) {
		close(p[0]);
		child_deliver(p[1], m, t, fn);
	}
	close(p[1]);
	struct buf in = BUF_INIT(8192);
	char tmp[1024];
	ssize_t k;
	while ((k = read(p[0], tmp, sizeof(tmp))) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!buf_append(&in, tmp, (size_t)k))
			break;
	}
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* "D d.d.d text": anything else means the child died before it could answer */
	const char *s = buf_cstr(&in);
	const char *sp1 = strchr(s, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp2 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || sp1 != s + 1) {
		buf_puts(dsn, "4.3.0");
		buf_puts(text, "delivery process failed without a report");
		buf_free(&in);
		return LDELIVER_TEMPFAIL;
	}
	buf_append(dsn, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	buf_puts(text, sp2 + 1);
	enum ldeliver_status st = (enum ldeliver_status)(s[0] - '0');
	buf_free(&in);
	return st;
}

static void receipt_path(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *out)
{
	buf_printf(out, "%s/%u-%016llx", m->receipt_dir, (unsigned)m->rcpt_idx, (unsigned long long)target_hash(t));
}

/* Written after the Maildir commit and before the answer; not fsynced: it guards against crashed processes,
 * and after a power loss a duplicate is the lesser evil. */
static void write_receipt(const struct ldeliver_msg *m, const char *path)
{
	if (mkdir(m->receipt_dir, 0700) != 0 && errno != EEXIST) {
		log_warn("%s: receipt directory %s: %s", m->queue_id, m->receipt_dir, strerror(errno));
		return;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		log_warn("%s: receipt %s: %s", m->queue_id, path, strerror(errno));
	else
		close(fd);
}

enum ldeliver_status ldeliver(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                              struct buf *text)
{
	struct qreceipt lr = { NULL, -1, false };
	struct ldeliver_target ft;
	bool guarded = false;
	struct buf receipt = BUF_INIT(BUF_NOLIMIT);
	enum ldeliver_status st;
	static const char *const what[] = { "maildir", "file", "command", "the list owner's queue" };

	if (m->receipt_dir) {
		receipt_path(m, t, &receipt);
		if (access(receipt.data, F_OK) == 0) {
			buf_puts(dsn, "2.0.0");
			buf_printf(text, "delivered to %s (before a restart)", what[t->kind]);
			buf_free(&receipt);
			return LDELIVER_OK;
		}
	}
	if (t->kind == LDELIVER_FILE && m->receipt_dir) {
		/* the append records its start in the pending mark; the forked writer inherits the mark's fd */
		ft = *t;
		ft.mark = &lr;
		t = &ft;
	}
	write_fn fn = t->kind == LDELIVER_FILE ? lmbox_append : t->kind == LDELIVER_RESUBMIT ? lresubmit : write_maildir;
	if (ldeliver_has_loop(m, t->rcpt)) {
		buf_puts(dsn, "5.4.6");
		buf_printf(text, "mail forwarding loop for %s", t->rcpt);
		st = LDELIVER_FAIL;
	} else if (t->kind == LDELIVER_FILE && m->receipt_dir && (guarded = true) &&
	           qreceipt_begin(&lr, receipt.data, NULL, NULL)) {
		buf_puts(dsn, "2.0.0");
		buf_printf(text, "delivered to %s (before a restart)", what[t->kind]);
		st = LDELIVER_OK;
	} else if (t->kind == LDELIVER_PIPE) {
		st = lpipe_run(m, t, dsn, text);
	} else if (t->switch_user && geteuid() == 0 && !(t->uid == geteuid() && t->gid == getegid())) {
		st = deliver_as(m, t, fn, dsn, text);
	} else {
		st = fn(m, t, dsn, text);
	}
	if (guarded)
		qreceipt_end(&lr, st == LDELIVER_OK);	/* no-op when the receipt was already there */
	else if (st == LDELIVER_OK && m->receipt_dir && t->kind != LDELIVER_MAILDIR)	/* its file is its receipt */
		write_receipt(m, receipt.data);
	buf_free(&receipt);
	return st;
}

enum ldeliver_status ldeliver_maildir(const struct ldeliver_msg *m, const char *rcpt, const char *maildir,
                                      bool switch_user, uid_t uid, gid_t gid, struct buf *dsn, struct buf *text)
{
	struct ldeliver_target t = { .kind = LDELIVER_MAILDIR, .rcpt = rcpt, .path = maildir,
		                     .switch_user = switch_user, .uid = uid, .gid = gid };
	return ldeliver(m, &t, dsn, text);
}
