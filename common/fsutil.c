/* Crash-safe file helpers; see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

bool fsutil_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc == 0;
}

bool fsutil_mkdir_p(const char *path, mode_t mode)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	bool ok = true;

	buf_puts(&b, path);
	for (size_t i = 1; i <= b.len && ok; i++) {
		if (i < b.len && b.data[i] != '/')
			continue;
		char saved = b.data[i];
		b.data[i] = '\0';
		if (mkdir(b.data, mode) < 0 && errno != EEXIST)
			ok = false;
		b.data[i] = saved;
	}
	buf_free(&b);
	return ok;
}

bool fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct buf *err)
{
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	const char *what = "create";
	const char *p = data;
	char *dircopy = NULL;
	int fd;

	buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		goto fail;
	what = "write";
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	what = "fsync";
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0)
		goto fail;
	close(fd);
	fd = -1;
	what = "rename";
	if (rename(buf_cstr(&tmp), path) < 0)
		goto fail;
	what = "fsync directory of";
	dircopy = xstrdup(path);
	if (!fsutil_fsync_dir(dirname(dircopy)))
		goto fail;
	free(dircopy);
	buf_free(&tmp);
	return true;
fail:
	buf_printf(err, "%s %s: %s", what, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(buf_cstr(&tmp));
	free(dircopy);
	buf_free(&tmp);
	return false;
}

bool fsutil_read_file(const char *path, size_t max, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char chunk[8192];
	bool ok = true;

	if (fd < 0)
		return false;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ok = false;
			break;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > max || !buf_append(out, chunk, (size_t)n)) {
			errno = EFBIG;
			ok = false;
			break;
		}
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return ok;
}
