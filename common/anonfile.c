/* See anonfile.h. */
#include "anonfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int anonfile_open(const char *dir, mode_t mode)
{
	/* The link goes through /proc (linkat with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH); a chroot without
	 * /proc would leave a file that cannot be named, so look before making one. Asked once per process. */
	static int proc_ok = -1;
	int fd;

	if (proc_ok < 0)
		proc_ok = access("/proc/self/fd", X_OK) == 0;
	if (!proc_ok) {
		errno = EOPNOTSUPP;
		return -1;
	}
	/* EOPNOTSUPP from a file system without it, EISDIR from a kernel without it */
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	return fd;
}

bool anonfile_link(int fd, const char *path)
{
	char self[64];

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0;
}
