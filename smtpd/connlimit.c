/* Connections per client address, counted with record locks on one shared file (see smtpd.h). Each smtpd
 * process serves one client at a time, so per-open-file-description (OFD) locks give one count per session. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "smtpd.h"

/* Slots of different addresses must not overlap: 2^40 regions of at most 2^16 slots stay inside off_t. */
#define REGIONS (1ULL << 40)
#define MAX_LIMIT 65535u

int smtpd_connlimit_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		log_warn("connection limit disabled: open %s: %s", path, strerror(errno));
	return fd;
}

static uint64_t region_of(const char *addr)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h % REGIONS;
}

static int lock_byte(int fd, short type, long long off)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)off;
	fl.l_len = 1;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

long long smtpd_connlimit_acquire(int fd, const char *addr, unsigned limit)
{
	if (limit > MAX_LIMIT)
		limit = MAX_LIMIT;
	long long base = (long long)(region_of(addr) * (MAX_LIMIT + 1ULL));
	for (unsigned i = 0; i < limit; i++) {
		if (lock_byte(fd, F_WRLCK, base + i) == 0)
			return base + i;
		if (errno != EAGAIN && errno != EACCES) {
			log_warn("connection limit: lock: %s", strerror(errno));
			return -2;
		}
	}
	return -1;
}

void smtpd_connlimit_release(int fd, long long slot)
{
	if (fd >= 0 && slot >= 0)
		lock_byte(fd, F_UNLCK, slot);
}
