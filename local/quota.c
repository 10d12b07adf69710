/* Maildir usage for quotas, computed fresh for each delivery: the sum of the S= sizes in the file names of new/
 * and cur/ of INBOX and every Maildir++ folder, so no file is opened (a name without S= is stat'ed). A cache
 * file (Maildir++ "maildirsize") would be faster for huge mailboxes but goes stale when imapd or a user
 * removes mail; a readdir of the mailbox is cheap next to writing the message and is always right. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver.h"
#include "maildir.h"

/* new/ or cur/ of one folder; a missing directory counts as empty. */
static bool sum_dir(int parent, const char *name, uint64_t *bytes, struct buf *err, const char *root)
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
		if (maildir_name_parse(de->d_name, &mn) && mn.have_size) {
			*bytes += mn.size;
			continue;
		}
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			*bytes += (uint64_t)st.st_size;
	}
	closedir(d);
	return true;
}

static bool sum_folder(int parent, const char *name, uint64_t *bytes, struct buf *err, const char *root)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
			return true;
		buf_printf(err, "%s: %s: %s", root, name, strerror(errno));
		return false;
	}
	bool ok = sum_dir(fd, "new", bytes, err, root) && sum_dir(fd, "cur", bytes, err, root);
	close(fd);
	return ok;
}

bool lquota_usage(const char *root, uint64_t *bytes, struct buf *err)
{
	*bytes = 0;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return true;
		buf_printf(err, "%s: %s", root, strerror(errno));
		return false;
	}
	if (!sum_folder(fd, ".", bytes, err, root)) {
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
			ok = sum_folder(dirfd(d), de->d_name, bytes, err, root);
	closedir(d);
	return ok;
}
