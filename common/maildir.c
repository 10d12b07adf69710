/* Maildir writing and name parsing; see maildir.h. */
#include "maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "anonfile.h"
#include "fsutil.h"
#include "log.h"
#include "str.h"

struct maildir_writer {
	int fd;
	char *root;
	char *tmp_path;       /* the temp file's name, or for an unnamed one (anonfile) tmp/ (for messages) */
	bool anon;            /* unnamed: linked straight into new/ or cur/, nothing to unlink */
	char *unique;         /* the name's base, without sizes and flags */
	uint64_t size, wsize;
	char last;            /* last byte written, to count CRLF across writes */
	bool failed;
	bool once;            /* unique given by the caller: an existing file of that name is this message */
	int err_no;
};

bool maildir_make(const char *root, mode_t mode, struct buf *err)
{
	static const char *subs[] = { "tmp", "new", "cur" };
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	bool ok = true, made_root = false;

	/* Called before every delivery: the root's parents are made only when a subdirectory cannot be (ENOENT),
	 * so an existing Maildir costs three mkdir calls instead of one per path component. */
	for (size_t i = 0; ok && i < 3; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", root, subs[i]);
		bool made = mkdir(buf_cstr(&p), mode) == 0 || errno == EEXIST;
		if (!made && errno == ENOENT && !made_root) {
			made_root = true;
			made = fsutil_mkdir_p(root, mode) && (mkdir(buf_cstr(&p), mode) == 0 || errno == EEXIST);
		}
		ok = made;
	}
	if (!ok)
		buf_printf(err, "cannot create Maildir %s: %s", root, strerror(errno));
	buf_free(&p);
	return ok;
}

/* Host name as Maildir wants it: '/' and ':' would break the name, so they are escaped as \057 and \072. */
static void put_host(struct buf *b)
{
	static char host[256];	/* asked once per process: two uname() calls per delivery otherwise */
	if (!host[0] && (gethostname(host, sizeof(host) - 1) < 0 || !host[0]))
		snprintf(host, sizeof(host), "localhost");
	for (const char *h = host; *h; h++) {
		if (*h == '/')
			buf_puts(b, "\\057");
		else if (*h == ':')
			buf_puts(b, "\\072");
		else
			buf_putc(b, *h);
	}
}

struct maildir_writer *maildir_begin(const char *root, mode_t mode, struct buf *err)
{
	static unsigned seq;
	struct maildir_writer *w = xcalloc(1, sizeof(*w));
	struct buf u = BUF_INIT(MAILDIR_NAME_MAX), p = BUF_INIT(BUF_NOLIMIT);
	struct timeval tv;
	uint32_t rnd = 0;

	gettimeofday(&tv, NULL);
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)tv.tv_usec ^ (uint32_t)getpid();
	buf_printf(&u, "%ld.M%06ldP%ldQ%uR%08" PRIx32 ".", (long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), ++seq,
	           rnd);
	put_host(&u);
	buf_printf(&p, "%s/tmp", root);
	w->fd = anonfile_open(buf_cstr(&p), mode);
	w->anon = w->fd >= 0;
	if (!w->anon) {
		buf_printf(&p, "/%s", buf_cstr(&u));
		w->fd = open(buf_cstr(&p), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	}
	if (w->fd < 0) {
		buf_printf(err, "cannot create %s: %s", buf_cstr(&p), strerror(errno));
		buf_free(&u);
		buf_free(&p);
		free(w);
		return NULL;
	}
	w->root = xstrdup(root);
	w->tmp_path = buf_steal(&p, NULL);
	w->unique = buf_steal(&u, NULL);
	return w;
}

bool maildir_write(struct maildir_writer *w, const void *data, size_t len)
{
	const char *s = data;
	size_t off = 0;

	if (w->failed)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && (i > 0 ? s[i - 1] : w->last) != '\r')
			w->wsize++;
	}
	w->wsize += len;
	w->size += len;
	if (len)
		w->last = s[len - 1];
	while (off < len) {
		ssize_t n = write(w->fd, s + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->failed = true;
			w->err_no = errno;
			return false;
		}
		off += (size_t)n;
	}
	return true;
}

uint64_t maildir_size(const struct maildir_writer *w)
{
	return w->size;
}

uint64_t maildir_wsize(const struct maildir_writer *w)
{
	return w->wsize;
}

static void writer_free(struct maildir_writer **wp)
{
	struct maildir_writer *w = *wp;
	if (w->fd >= 0)
		close(w->fd);
	free(w->root);
	free(w->tmp_path);
	free(w->unique);
	free(w);
	*wp = NULL;
}

void maildir_abort(struct maildir_writer **wp)
{
	if (*wp == NULL)
		return;
	if (!(*wp)->anon)
		unlink((*wp)->tmp_path);
	writer_free(wp);
}

void maildir_set_unique(struct maildir_writer *w, const char *tag)
{
	struct buf u = BUF_INIT(MAILDIR_NAME_MAX);
	buf_printf(&u, "%s.", tag);
	put_host(&u);
	free(w->unique);
	w->unique = buf_steal(&u, NULL);
	w->once = true;
}

bool maildir_set_time(struct maildir_writer *w, int64_t when)
{
	const char *dot = strchr(w->unique, '.');
	struct buf u = BUF_INIT(MAILDIR_NAME_MAX);

	if (!dot || when <= 0 || !buf_printf(&u, "%lld%s", (long long)when, dot)) {
		buf_free(&u);
		return false;
	}
	free(w->unique);
	w->unique = buf_steal(&u, NULL);
	struct timespec ts[2] = { { (time_t)when, 0 }, { (time_t)when, 0 } };
	(void)futimens(w->fd, ts);	/* a fallback only: readers take the date from the name */
	return true;
}

static bool commit(struct maildir_writer **wp, const char *flags, const char *base_extra, char **name, bool *existed,
                   struct buf *err)
{
	struct maildir_writer *w = *wp;
	struct buf final = BUF_INIT(MAILDIR_NAME_MAX), path = BUF_INIT(BUF_NOLIMIT), dir = BUF_INIT(BUF_NOLIMIT);
	const char *what = "write";
	bool ok = false;

	if (w->failed) {
		errno = w->err_no;
		goto fail;
	}
	what = "fsync";
	if (fsync(w->fd) < 0)
		goto fail;
	what = "name too long for";
	errno = ENAMETOOLONG;
	if (!buf_printf(&final, "%s,S=%" PRIu64 ",W=%" PRIu64 "%s", w->unique, w->size, w->wsize,
	                base_extra ? base_extra : "") ||
	    (flags && !buf_printf(&final, ":2,%s", flags)))
		goto fail;
	buf_printf(&dir, "%s/%s", w->root, flags ? "cur" : "new");
	buf_printf(&path, "%s/%s", buf_cstr(&dir), buf_cstr(&final));
	/* Never replace an existing file, unlike rename(): a name collision fails instead of losing mail.
	 * An unnamed file is linked in (linkat never replaces); a named one moves by RENAME_NOREPLACE in one
	 * step, or link() (and the unlink below) where the file system lacks it. */
	what = w->anon ? "link" : "rename";
	if (existed)
		*existed = false;
	bool moved = w->anon ? anonfile_link(w->fd, buf_cstr(&path))
	                     : renameat2(AT_FDCWD, w->tmp_path, AT_FDCWD, buf_cstr(&path), RENAME_NOREPLACE) == 0;
	if (!moved && (errno == EEXIST || w->anon || (errno != EINVAL && errno != ENOSYS) ||
	               (what = "link", link(w->tmp_path, buf_cstr(&path)) < 0))) {
		if (errno != EEXIST || !w->once || !existed)
			goto fail;
		/* an earlier or concurrent attempt delivered the same message; it may not have synced the directory */
		*existed = true;
	}
	what = "fsync directory";
	if (!fsutil_fsync_dir(buf_cstr(&dir))) {
		int saved = errno;
		if (!existed || !*existed)
			unlink(buf_cstr(&path));
		errno = saved;
		goto fail;
	}
	if (!moved && !w->anon)
		unlink(w->tmp_path);
	if (name)
		*name = buf_steal(&final, NULL);
	ok = true;
	goto out;
fail:
	buf_printf(err, "%s %s: %s", what, w->tmp_path, strerror(errno));
	if (!w->anon)
		unlink(w->tmp_path);
out:
	buf_free(&final);
	buf_free(&path);
	buf_free(&dir);
	writer_free(wp);
	return ok;
}

bool maildir_commit(struct maildir_writer **wp, const char *flags, char **name, struct buf *err)
{
	return commit(wp, flags, NULL, name, NULL, err);
}

bool maildir_commit_extra(struct maildir_writer **wp, const char *flags, const char *base_extra, char **name,
                          struct buf *err)
{
	return commit(wp, flags, base_extra, name, NULL, err);
}

bool maildir_commit_once(struct maildir_writer **wp, char **name, bool *existed, struct buf *err)
{
	return commit(wp, NULL, NULL, name, existed, err);
}

static bool parse_u64_until(const char *p, const char *end, uint64_t *out)
{
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9')
		q++;
	return q > p && str_to_u64n(p, (size_t)(q - p), UINT64_MAX, out);
}

bool maildir_name_parse(const char *name, struct maildir_name *out)
{
	const char *colon, *end;

	memset(out, 0, sizeof(*out));
	out->flags = "";
	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/'))
		return false;
	colon = strchr(name, ':');
	end = colon ? colon : name + strlen(name);
	out->base = name;
	out->baselen = (size_t)(end - name);
	if (colon && strncmp(colon, ":2,", 3) == 0)
		out->flags = colon + 3;
	/* ",S=" and ",W=" fields may come in any order after the unique part. */
	for (const char *p = name; p < end; p++) {
		if (p[0] != ',' || p + 2 >= end || p[2] != '=')
			continue;
		uint64_t v;
		if (p[1] == 'S' && parse_u64_until(p + 3, end, &v)) {
			out->size = v;
			out->have_size = true;
		} else if (p[1] == 'W' && parse_u64_until(p + 3, end, &v)) {
			out->wsize = v;
			out->have_wsize = true;
		}
	}
	return true;
}

bool maildir_folder_path(const char *root, const char *folder, struct buf *out)
{
	size_t n = strlen(folder);

	buf_reset(out);
	if (str_eq_ci(folder, "INBOX"))
		return buf_puts(out, root);
	if (n == 0 || folder[0] == '/' || folder[n - 1] == '/' || strstr(folder, "//"))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)folder[i];
		/* '.' is Maildir++'s separator on disk; control characters have no business in a file name. */
		if (c == '.' || c < 0x20 || c == 0x7f)
			return false;
	}
	if (!buf_printf(out, "%s/.", root))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!buf_putc(out, folder[i] == '/' ? '.' : folder[i]))
			return false;
	return true;
}
