/* Delivery receipts. The window this closes: a transport killed after the delivery but before it could answer
 * qmgr, so qmgr retries a recipient that already has the message. For local, with the pending mark written
 * first, that retry knows an earlier attempt may have delivered and checks the mailbox by content; smtp cannot
 * look into the next hop, so there a mark without a receipt (the kill fell between the next hop's 250 and the
 * receipt) still means a second transaction. The lock on the mark makes a retry that starts while the first
 * attempt still runs (after a qmgr restart) wait for its outcome. Marks are not fsynced: see "Queue" in
 * docs/ARCHITECTURE.md for the measured cost and why. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "maildir.h"
#include "receipt.h"

#define CHUNK 65536

static void pending_path(const char *path, struct buf *out)
{
	buf_printf(out, "%s%s", path, QRECEIPT_PENDING_SUFFIX);
}

static bool read_full(int fd, char *p, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(fd, p + got, n - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		got += (size_t)k;
	}
	return true;
}

/* The open file holds hdr followed by the queue file's content, nothing more. */
static bool same_content(int fd, const struct qreceipt_content *c)
{
	char *a = xmalloc(CHUNK), *b = xmalloc(CHUNK);
	bool same = true;
	uint64_t total = c->hdrlen + c->len;

	for (uint64_t off = 0; same && off < total;) {
		size_t n = total - off < CHUNK ? (size_t)(total - off) : CHUNK;
		if (!read_full(fd, a, n, off)) {
			same = false;
			break;
		}
		/* the expected bytes: the part of the header, then the part of the queue file content */
		size_t h = 0;
		if (off < c->hdrlen) {
			h = c->hdrlen - off < n ? (size_t)(c->hdrlen - off) : n;
			memcpy(b, c->hdr + off, h);
		}
		if (h < n && !read_full(c->fd, b + h, n - h, c->offset + (off + h - c->hdrlen))) {
			same = false;
			break;
		}
		same = memcmp(a, b, n) == 0;
		off += n;
	}
	free(a);
	free(b);
	return same;
}

static bool find_in(const char *sub, const struct qreceipt_content *c, time_t since)
{
	DIR *d = opendir(sub);
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		struct maildir_name mn;
		struct stat st;
		if (!maildir_name_parse(e->d_name, &mn) || !mn.have_size || mn.size != c->hdrlen + c->len)
			continue;
		int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == mn.size &&
		    st.st_mtime >= since)
			found = same_content(fd, c);
		close(fd);
	}
	closedir(d);
	return found;
}

bool qreceipt_find(const char *dir, const struct qreceipt_content *c, time_t since)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	bool found = false;
	static const char *subs[] = { "new", "cur" };

	for (size_t i = 0; i < 2 && !found; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", dir, subs[i]);
		found = find_in(buf_cstr(&p), c, since);
	}
	buf_free(&p);
	return found;
}

/* The queue ID a receipt path names (queue/receipts/ID/NAME), for log lines that must carry it: its start and
 * length in *len ("?" if the path has no such component). */
static const char *receipt_qid(const char *path, int *len)
{
	const char *end = strrchr(path, '/'), *start = end;
	while (start && start > path && start[-1] != '/')
		start--;
	if (!end || start == end) {
		*len = 1;
		return "?";
	}
	*len = (int)(end - start);
	return start;
}

static void make_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return;
	char *parent = xstrndup(path, (size_t)(slash - path));
	if (mkdir(parent, 0700) != 0 && errno != EEXIST)
		log_warn("receipt directory %s: %s", parent, strerror(errno));
	free(parent);
}

static void write_empty(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		log_warn("receipt %s: %s", path, strerror(errno));
	else
		close(fd);
}

bool qreceipt_begin(struct qreceipt *r, const char *path, const char *dir, const struct qreceipt_content *c)
{
	struct buf pend = BUF_INIT(BUF_NOLIMIT);
	bool done = false;

	r->path = NULL;
	r->fd = -1;
	r->resumed = false;
	if (access(path, F_OK) == 0)
		return true;
	make_parent(path);
	pending_path(path, &pend);
	/* a few rounds: a mark may vanish under us when the delivery holding it fails and removes it */
	for (int round = 0; round < 5; round++) {
		bool existed = false;
		int fd = open(buf_cstr(&pend), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == EEXIST) {
			existed = true;
			fd = open(buf_cstr(&pend), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		}
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			log_warn("pending receipt %s: %s", buf_cstr(&pend), strerror(errno));
			break;		/* deliver without a mark: at worst a duplicate, never a loss */
		}
		while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
			;
		struct stat st;
		if (access(path, F_OK) == 0) {		/* the holder finished while we waited */
			close(fd);
			done = true;
			break;
		}
		if (fstat(fd, &st) != 0 || st.st_nlink == 0) {
			close(fd);
			continue;
		}
		/* An earlier attempt was cut off: the kernel stamped the mark before the mailbox file's last write, so
		 * a copy it made is no older than the mark (one second of slack for coarse clocks). */
		if (existed && dir && c && qreceipt_find(dir, c, st.st_mtime - 1)) {
			int qlen;
			const char *qid = receipt_qid(path, &qlen);
			log_info("%.*s: already in %s (an interrupted delivery; receipt %s)", qlen, qid, dir, path);
			if (rename(buf_cstr(&pend), path) != 0)
				write_empty(path);
			close(fd);
			done = true;
			break;
		}
		r->fd = fd;
		r->resumed = existed;
		break;
	}
	if (!done)
		r->path = xstrdup(path);	/* even without a mark: the receipt is still written at the end */
	buf_free(&pend);
	return done;
}

void qreceipt_end(struct qreceipt *r, bool delivered)
{
	if (!r->path)
		return;
	struct buf pend = BUF_INIT(BUF_NOLIMIT);
	pending_path(r->path, &pend);
	if (delivered) {
		if (rename(buf_cstr(&pend), r->path) != 0) {
			log_warn("receipt %s: %s", r->path, strerror(errno));
			write_empty(r->path);
		}
	} else if (unlink(buf_cstr(&pend)) != 0 && errno != ENOENT) {
		log_warn("pending receipt %s: %s", buf_cstr(&pend), strerror(errno));
	}
	buf_free(&pend);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	xfree(&r->path);
}
