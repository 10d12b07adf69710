/* main.cf as a file: parsing name = value lines into a config, finding an instance's main.cf, and rewriting one
 * assignment atomically for `postern config set`. The store and expansion live in config.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "str.h"

#define SHOW_CAP 100

static bool is_white(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* One physical line, classified the same way by the loader and by the rewriter. */
enum line_kind { LINE_BLANK, LINE_COMMENT, LINE_CONT, LINE_ASSIGN };

struct line {
	const char *p;		/* start of the line */
	size_t len;		/* without the newline */
	size_t next;		/* offset of the following line */
	enum line_kind kind;
	const char *text;	/* content with leading and trailing white space dropped */
	size_t tlen;
};

/* Read the line at offset off of data; false at the end. */
static bool next_line(const char *data, size_t len, size_t off, struct line *l)
{
	const char *nl;

	if (off >= len)
		return false;
	l->p = data + off;
	nl = memchr(l->p, '\n', len - off);
	l->len = nl ? (size_t)(nl - l->p) : len - off;
	l->next = off + l->len + (nl ? 1 : 0);
	l->text = l->p;
	l->tlen = l->len;
	while (l->tlen > 0 && is_white(*l->text)) {
		l->text++;
		l->tlen--;
	}
	while (l->tlen > 0 && is_white(l->text[l->tlen - 1]))
		l->tlen--;
	if (l->tlen == 0)
		l->kind = LINE_BLANK;
	else if (*l->text == '#')
		l->kind = LINE_COMMENT;
	else if (is_white(*l->p))
		l->kind = LINE_CONT;
	else
		l->kind = LINE_ASSIGN;
	return true;
}

/* Split an assignment line's text at '=' into a trimmed name and value; false when there is no '='. */
static bool split_assign(const struct line *l, const char **name, size_t *nlen, const char **value, size_t *vlen)
{
	const char *eq = memchr(l->text, '=', l->tlen);
	if (eq == NULL)
		return false;
	*name = l->text;
	*nlen = (size_t)(eq - l->text);
	while (*nlen > 0 && is_white((*name)[*nlen - 1]))
		(*nlen)--;
	*value = eq + 1;
	*vlen = l->tlen - (size_t)(*value - l->text);
	while (*vlen > 0 && is_white(**value)) {
		(*value)++;
		(*vlen)--;
	}
	return true;
}

struct pending {
	char *name;
	struct buf value;
	size_t line;
};

static void fail(struct buf *err, const char *file, size_t lineno, const char *what)
{
	buf_printf(err, "%s:%zu: %s", file, lineno, what);
}

bool config_load_mem(struct config *cfg, const char *file, const char *data, size_t len, struct buf *err,
                     struct buf *warn)
{
	struct pending *items = NULL;
	size_t nitems = 0, capitems = 0, lineno = 0, off = 0;
	struct line l;
	bool ok = false;

	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		off = 3;	/* a UTF-8 byte order mark from a Windows editor */
	for (; next_line(data, len, off, &l); off = l.next) {
		const char *name, *value;
		size_t nlen, vlen;

		lineno++;
		if (l.len > CONFIG_LINE_MAX) {
			buf_printf(err, "%s:%zu: line longer than %d bytes", file, lineno, CONFIG_LINE_MAX);
			goto out;
		}
		if (memchr(l.p, '\0', l.len)) {
			fail(err, file, lineno, "NUL byte in line");
			goto out;
		}
		switch (l.kind) {
		case LINE_BLANK:
		case LINE_COMMENT:
			continue;
		case LINE_CONT: {
			if (nitems == 0) {
				fail(err, file, lineno, "line starts with white space but there is no "
				                        "parameter before it to continue");
				goto out;
			}
			struct buf *v = &items[nitems - 1].value;
			if ((v->len > 0 && !buf_putc(v, ' ')) || !buf_append(v, l.text, l.tlen)) {
				buf_printf(err, "%s:%zu: logical line (with its continuation lines) longer than %d bytes",
				           file, lineno, CONFIG_LINE_MAX);
				goto out;
			}
			continue;
		}
		case LINE_ASSIGN:
			break;
		}
		if (!split_assign(&l, &name, &nlen, &value, &vlen)) {
			buf_printf(err, "%s:%zu: missing \"=\" in \"", file, lineno);
			buf_append_printable(err, l.text, l.tlen, SHOW_CAP);
			buf_puts(err, "\" (expected name = value)");
			goto out;
		}
		if (nlen == 0) {
			fail(err, file, lineno, "missing parameter name before \"=\"");
			goto out;
		}
		if (!config_name_valid(name, nlen)) {
			buf_printf(err, "%s:%zu: bad parameter name \"", file, lineno);
			buf_append_printable(err, name, nlen, SHOW_CAP);
			buf_puts(err, "\" (use letters, digits and _)");
			goto out;
		}
		if (nitems == capitems) {
			capitems = capitems ? capitems * 2 : 32;
			items = xreallocarray(items, capitems, sizeof(*items));
		}
		struct pending *it = &items[nitems++];
		it->name = xstrndup(name, nlen);
		it->line = lineno;
		/* the name counts toward the logical line too: CONFIG_LINE_MAX bounds name + value */
		buf_init(&it->value, CONFIG_LINE_MAX - nlen);
		buf_append(&it->value, value, vlen);	/* fits: the physical line did */
		if (config_param_find(it->name) == NULL && warn) {
			buf_printf(warn, "%s:%zu: unknown parameter ", file, lineno);
			buf_append_printable(warn, name, nlen, SHOW_CAP);
			buf_putc(warn, '\n');
		}
	}
	/* all or nothing: a file with an error changes nothing */
	for (size_t i = 0; i < nitems; i++) {
		struct buf origin = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&origin, "%s:%zu", file, items[i].line);
		config_set(cfg, items[i].name, buf_cstr(&items[i].value), buf_cstr(&origin));
		buf_free(&origin);
	}
	ok = true;
out:
	for (size_t i = 0; i < nitems; i++) {
		free(items[i].name);
		buf_free(&items[i].value);
	}
	free(items);
	return ok;
}

/* Read a whole file of at most max bytes into b; false with "PATH: reason" in err. ENOENT is left in errno. */
static bool read_file(const char *path, struct buf *b, size_t max, struct buf *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		int e = errno;
		buf_printf(err, "%s: %s", path, strerror(e));
		errno = e;
		return false;
	}
	for (;;) {
		if (!buf_reserve(b, 65536) && !buf_reserve(b, 1)) {
			buf_printf(err, "%s: file larger than %zu bytes", path, max);
			close(fd);
			errno = EFBIG;
			return false;
		}
		size_t room = b->cap - b->len;
		n = read(fd, b->data + b->len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			buf_printf(err, "%s: %s", path, strerror(e));
			close(fd);
			errno = e;
			return false;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
		b->data[b->len] = '\0';
	}
	close(fd);
	return true;
}

bool config_load_file(struct config *cfg, const char *path, struct buf *err, struct buf *warn)
{
	struct buf data = BUF_INIT(CONFIG_FILE_MAX);
	bool ok;

	if (!read_file(path, &data, CONFIG_FILE_MAX, err)) {
		buf_free(&data);
		return false;
	}
	ok = config_load_mem(cfg, path, data.data ? data.data : "", data.len, err, warn);
	buf_free(&data);
	return ok;
}

static char *join(const char *dir, const char *file)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	size_t n = strlen(dir);
	buf_puts(&b, dir);
	if (n == 0 || dir[n - 1] != '/')
		buf_putc(&b, '/');
	buf_puts(&b, file);
	return buf_steal(&b, NULL);
}

bool config_load_dir(struct config *cfg, const char *dir, char **pathp, struct buf *err, struct buf *warn)
{
	char *path = join(dir, "etc/main.cf");
	/* daemons chdir and chroot: paths derived from the directory must not depend on the caller's cwd */
	char *abs = realpath(dir, NULL);
	const char *top = abs ? abs : dir;
	struct stat st;
	bool ok;

	if (stat(path, &st) == 0) {
		config_set(cfg, "instance_directory", top, "instance directory");
	} else {
		char *alt = join(dir, "main.cf");
		if (stat(alt, &st) == 0) {
			free(path);
			path = alt;
			config_set(cfg, "config_directory", top, "configuration directory");
		} else {
			free(abs);
			buf_printf(err, "%s: no main.cf found (looked for %s and %s)", dir, path, alt);
			free(alt);
			free(path);
			return false;
		}
	}
	free(abs);
	ok = config_load_file(cfg, path, err, warn);
	if (pathp)
		*pathp = path;
	else
		free(path);
	return ok;
}

/* ---- rewriting one assignment ---- */

static bool assigns(const struct line *l, const char *name)
{
	const char *n, *v;
	size_t nlen, vlen;

	return l->kind == LINE_ASSIGN && split_assign(l, &n, &nlen, &v, &vlen) && nlen == strlen(name) &&
	       memcmp(n, name, nlen) == 0;
}

void config_text_set(const char *data, size_t len, const char *name, const char *value, struct buf *out)
{
	size_t off, target = (size_t)-1;
	struct line l;

	/* the last assignment is the one in effect */
	for (off = 0; next_line(data, len, off, &l); off = l.next)
		if (assigns(&l, name))
			target = off;
	if (target == (size_t)-1) {
		buf_append(out, data, len);
		if (len > 0 && data[len - 1] != '\n')
			buf_putc(out, '\n');
		buf_printf(out, "%s = %s\n", name, value);
		return;
	}
	buf_append(out, data, target);
	buf_printf(out, "%s = %s\n", name, value);
	next_line(data, len, target, &l);
	/* drop the old value's continuation lines; comments and blank lines among them stay */
	for (off = l.next; next_line(data, len, off, &l); off = l.next) {
		if (l.kind == LINE_ASSIGN)
			break;
		if (l.kind != LINE_CONT)
			buf_append(out, l.p, l.next - off);
	}
	buf_append(out, data + off, len - (off < len ? off : len));
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* The directory part of path ("." or "/" when it has none). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash == NULL ? xstrdup(".") : slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
}

/* Write text to a new file beside path and rename it over path: temp file, fsync, rename, fsync directory. */
static bool replace_file(const char *path, int dirfd, const struct stat *old, const struct buf *text,
                         struct buf *err)
{
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	mode_t mode = old ? (old->st_mode & 07777) : 0644;
	bool ok = false;
	int fd;

	buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST) {
		unlink(buf_cstr(&tmp));	/* left by a crashed run of a process with our pid */
		fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	}
	if (fd < 0) {
		buf_printf(err, "%s: %s", buf_cstr(&tmp), strerror(errno));
		buf_free(&tmp);
		return false;
	}
	if (old) {
		/* keep the old file's mode and, when we may (root), its owner. A plain user cannot chown, but
		 * then the file could only be someone else's if they let us write the directory. */
		if (fchmod(fd, mode) != 0) {
			buf_printf(err, "%s: chmod: %s", buf_cstr(&tmp), strerror(errno));
			goto out;
		}
		if (fchown(fd, old->st_uid, old->st_gid) != 0 && geteuid() == 0) {
			buf_printf(err, "%s: chown: %s", buf_cstr(&tmp), strerror(errno));
			goto out;
		}
	}
	if (!write_all(fd, buf_cstr(text), text->len) || fsync(fd) != 0) {
		buf_printf(err, "%s: %s", buf_cstr(&tmp), strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		buf_printf(err, "%s: %s", buf_cstr(&tmp), strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(buf_cstr(&tmp), path) != 0) {
		buf_printf(err, "rename %s to %s: %s", buf_cstr(&tmp), path, strerror(errno));
		goto out;
	}
	buf_reset(&tmp);	/* renamed: nothing left to remove */
	if (fsync(dirfd) != 0) {
		buf_printf(err, "%s: fsync of its directory: %s", path, strerror(errno));
		goto out;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	if (!ok && tmp.len > 0)
		unlink(buf_cstr(&tmp));
	buf_free(&tmp);
	return ok;
}

bool config_file_set(const char *path, const char *name, const char *value, struct buf *err)
{
	struct buf old = BUF_INIT(CONFIG_FILE_MAX), new = BUF_INIT(BUF_NOLIMIT);
	struct stat st;
	char *real = NULL, *dir = NULL;
	bool exists, ok = false;
	int dirfd = -1;

	if (!config_name_valid(name, strlen(name))) {
		buf_puts(err, "bad parameter name \"");
		buf_append_printable(err, name, strlen(name), SHOW_CAP);
		buf_puts(err, "\" (use letters, digits and _)");
		return false;
	}
	if (strpbrk(value, "\r\n")) {
		buf_printf(err, "%s: the value must be one line", name);
		return false;
	}
	if (strlen(name) + strlen(value) + 3 > CONFIG_LINE_MAX) {
		buf_printf(err, "%s: value longer than %d bytes", name, CONFIG_LINE_MAX);
		return false;
	}
	/* a main.cf that is a symbolic link (to a shared or managed copy) is changed where it points */
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && (real = realpath(path, NULL)) != NULL)
		path = real;
	dir = dir_of(path);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		buf_printf(err, "%s: %s", dir, strerror(errno));
		goto out;
	}
	/* two `config set` at once must not lose one change: hold the directory's lock from read to rename */
	if (flock(dirfd, LOCK_EX) != 0) {
		buf_printf(err, "%s: lock: %s", dir, strerror(errno));
		goto out;
	}
	exists = stat(path, &st) == 0;
	if (exists && !read_file(path, &old, CONFIG_FILE_MAX, err))
		goto out;
	config_text_set(buf_cstr(&old), old.len, name, value, &new);
	ok = replace_file(path, dirfd, exists ? &st : NULL, &new, err);
out:
	if (dirfd >= 0)
		close(dirfd);	/* releases the lock */
	free(dir);
	free(real);
	buf_free(&old);
	buf_free(&new);
	return ok;
}
