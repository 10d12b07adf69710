/* Maildir++ "maildirsize" (see maildirsize.h). The lock is a flock on the Maildir root directory itself: the
 * file is replaced by rename when it is rebuilt, so a lock on the file would not exclude a rebuild. Appends are
 * one write() each with O_APPEND, so even a writer that does not lock (another program) adds whole lines. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "maildir.h"
#include "maildirsize.h"

/* ---- scanning ---- */

/* new/ or cur/ of one folder; a missing directory counts as empty. */
static bool sum_dir(int parent, const char *name, uint64_t *bytes, uint64_t *count, struct buf *err,
                    const char *root)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return true;
		buf_printf(err, "%s: %s: %s", root, name, strerror(errno));
		return false;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		buf_printf(err, "%s: %s: %s", root, name, strerror(errno));
		close(fd);
		return false;
	}
	struct dirent *de;
	struct maildir_name mn;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		/* the name's S= counts, so no file is opened; a name without one is stat'ed */
		if (maildir_name_parse(de->d_name, &mn) && mn.have_size) {
			*bytes += mn.size;
			(*count)++;
			continue;
		}
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
			*bytes += (uint64_t)st.st_size;
			(*count)++;
		}
	}
	closedir(d);
	return true;
}

static bool sum_folder(int parent, const char *name, uint64_t *bytes, uint64_t *count, struct buf *err,
                       const char *root)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
			return true;
		buf_printf(err, "%s: %s: %s", root, name, strerror(errno));
		return false;
	}
	bool ok = sum_dir(fd, "new", bytes, count, err, root) && sum_dir(fd, "cur", bytes, count, err, root);
	close(fd);
	return ok;
}

bool maildirsize_scan(const char *root, uint64_t *bytes, uint64_t *count, struct buf *err)
{
	*bytes = 0;
	*count = 0;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return true;
		buf_printf(err, "%s: %s", root, strerror(errno));
		return false;
	}
	if (!sum_folder(fd, ".", bytes, count, err, root)) {
		close(fd);
		return false;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		buf_printf(err, "%s: %s", root, strerror(errno));
		close(fd);
		return false;
	}
	bool ok = true;
	struct dirent *de;
	/* Maildir++ folders are the directories ".NAME" beside new/ and cur/ */
	while (ok && (de = readdir(d)))
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			ok = sum_folder(dirfd(d), de->d_name, bytes, count, err, root);
	closedir(d);
	return ok;
}

/* ---- the file ---- */

#define MAILDIRSIZE_VALUE_MAX (1ll << 50)	/* a petabyte: larger numbers in a line mean a damaged file */

static void file_path(const char *root, const char *name, struct buf *out)
{
	size_t n = strlen(root);
	buf_printf(out, "%s%s%s", root, n && root[n - 1] == '/' ? "" : "/", name);
}

/* The quota definition "NNNS" (a count limit "NNNC" may follow; we set none, so it is ignored). */
static bool definition_matches(const char *line, size_t len, uint64_t quota)
{
	char want[32];
	int n = snprintf(want, sizeof(want), "%" PRIu64 "S", quota);
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && line[j] != ',')
			j++;
		if (j > i && line[j - 1] == 'S')
			return j - i == (size_t)n && memcmp(line + i, want, (size_t)n) == 0;
		i = j + 1;
	}
	return false;
}

/* "BYTES COUNT" lines after the definition; false when the text is not that (the file is then rebuilt). */
static bool sum_lines(const char *p, size_t len, int64_t *bytes, int64_t *count)
{
	*bytes = 0;
	*count = 0;
	while (len) {
		const char *nl = memchr(p, '\n', len);
		if (!nl)
			return false;	/* a cut-off line: a writer died in the middle */
		char line[64];
		size_t l = (size_t)(nl - p);
		if (l >= sizeof(line))
			return false;
		memcpy(line, p, l);
		line[l] = '\0';
		long long b, c;
		int used = 0;
		/* bounded, so that no sum of at most 5120 bytes of lines can overflow */
		if (sscanf(line, " %lld %lld %n", &b, &c, &used) != 2 || (size_t)used != l || b > MAILDIRSIZE_VALUE_MAX ||
		    b < -MAILDIRSIZE_VALUE_MAX || c > MAILDIRSIZE_VALUE_MAX || c < -MAILDIRSIZE_VALUE_MAX)
			return false;
		*bytes += b;
		*count += c;
		len -= l + 1;
		p = nl + 1;
	}
	return true;
}

bool maildirsize_parse(const char *data, size_t len, uint64_t quota, uint64_t *bytes, uint64_t *count)
{
	const char *nl = memchr(data, '\n', len);
	int64_t b, c;
	if (len > MAILDIRSIZE_RECALC_BYTES || !nl || nl == data || !definition_matches(data, (size_t)(nl - data), quota) ||
	    !sum_lines(nl + 1, len - (size_t)(nl + 1 - data), &b, &c) || b < 0 || c < 0)
		return false;
	*bytes = (uint64_t)b;
	*count = (uint64_t)c;
	return true;
}

/* Usage from the file when it is current for this quota: 1; 0 when it must be rebuilt; -1 on an error. */
static int read_usage(const char *path, uint64_t quota, uint64_t *bytes, struct buf *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	char data[MAILDIRSIZE_RECALC_BYTES + 1];
	int r = 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAILDIRSIZE_RECALC_BYTES ||
	    st.st_mtime < time(NULL) - MAILDIRSIZE_RECALC_AGE)
		goto out;
	size_t got = 0;
	ssize_t k;
	while (got < sizeof(data) && (k = read(fd, data + got, sizeof(data) - got)) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		got += (size_t)k;
	}
	uint64_t count;
	r = maildirsize_parse(data, got, quota, bytes, &count) ? 1 : 0;
out:
	close(fd);
	return r;
}

/* Scan the Maildir and replace the file (temp file in tmp/, rename: never half a file). */
static bool rebuild(const char *root, const char *path, uint64_t quota, uint64_t *bytes, struct buf *err)
{
	uint64_t count;
	if (!maildirsize_scan(root, bytes, &count, err))
		return false;
	struct buf tmp = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(256);
	bool ok = false;
	buf_printf(&data, "%" PRIu64 "S\n%" PRIu64 " %" PRIu64 "\n", quota, *bytes, count);
	file_path(root, "tmp/", &tmp);
	buf_printf(&tmp, "%lld.P%ld.maildirsize", (long long)time(NULL), (long)getpid());
	int fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		buf_printf(err, "%s: %s", buf_cstr(&tmp), strerror(errno));
		goto out;
	}
	ssize_t k = write(fd, data.data, data.len);
	bool written = k == (ssize_t)data.len;
	if (close(fd) != 0 || !written || rename(buf_cstr(&tmp), path) != 0) {
		buf_printf(err, "%s: %s", path, written ? strerror(errno) : "short write");
		(void)unlink(buf_cstr(&tmp));
		goto out;
	}
	ok = true;
out:
	buf_free(&tmp);
	buf_free(&data);
	return ok;
}

static bool append_line(const char *path, int64_t bytes, int64_t count)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%" PRId64 " %" PRId64 "\n", bytes, count);
	int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return false;
	bool ok = write(fd, line, (size_t)n) == n;
	close(fd);
	return ok;
}

static int lock_root(const char *root)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

enum maildirsize_result maildirsize_reserve(const char *root, uint64_t quota, uint64_t size, uint64_t *used,
                                            struct buf *err)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	enum maildirsize_result r = MAILDIRSIZE_ERROR;
	int lock = lock_root(root);
	if (lock < 0) {
		buf_printf(err, "cannot lock %s: %s", root, strerror(errno));
		goto out;
	}
	file_path(root, MAILDIRSIZE_NAME, &path);
	*used = 0;
	int cur = read_usage(buf_cstr(&path), quota, used, err);
	if (cur < 0 || (cur == 0 && !rebuild(root, buf_cstr(&path), quota, used, err)))
		goto out;
	if (*used > quota || size > quota - *used) {
		r = MAILDIRSIZE_OVER;
		goto out;
	}
	if (!append_line(buf_cstr(&path), (int64_t)size, 1)) {
		buf_printf(err, "%s: %s", buf_cstr(&path), strerror(errno));
		goto out;
	}
	r = MAILDIRSIZE_OK;
out:
	if (lock >= 0)
		close(lock);
	buf_free(&path);
	return r;
}

void maildirsize_update(const char *dir, int64_t bytes, int64_t count)
{
	struct buf root = BUF_INIT(BUF_NOLIMIT), path = BUF_INIT(BUF_NOLIMIT);
	maildirsize_root(dir, &root);
	file_path(buf_cstr(&root), MAILDIRSIZE_NAME, &path);
	if (access(buf_cstr(&path), F_OK) == 0) {
		int lock = lock_root(buf_cstr(&root));
		(void)append_line(buf_cstr(&path), bytes, count);
		if (lock >= 0)
			close(lock);
	}
	buf_free(&root);
	buf_free(&path);
}

void maildirsize_root(const char *dir, struct buf *out)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	const char *slash = memrchr(dir, '/', n);
	const char *base = slash ? slash + 1 : dir;
	if (base[0] == '.' && n - (size_t)(base - dir) > 1 && !(base[1] == '.' && n - (size_t)(base - dir) == 2))
		buf_append(out, dir, slash ? (size_t)(slash - dir) : 0);
	else
		buf_append(out, dir, n);
	if (out->len == 0)
		buf_puts(out, slash ? "/" : ".");
}
