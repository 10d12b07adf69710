/* Free space on the queue filesystem, checked at MAIL before anything is written (Postfix's queue_minfree): a
 * full disk must turn into "452 try later" for new mail, never into a half-written queue file or a damaged one
 * already queued. Called by commands.c. */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "log.h"
#include "smtpd.h"

/* Bytes available to an unprivileged writer (f_bavail, not f_bfree: root's reserve is not ours to spend). */
static bool space_free(const char *dir, uint64_t *avail)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) != 0) {
		log_warn("statvfs %s: %s", dir, strerror(errno));
		return false;
	}
	uint64_t bs = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	/* one block stays aside, as Postfix does, for the directory entries and rounding */
	uint64_t blocks = sv.f_bavail > 0 ? (uint64_t)sv.f_bavail - 1 : 0;
	*avail = blocks > UINT64_MAX / bs ? UINT64_MAX : blocks * bs;
	return true;
}

bool smtpd_space_ok(const struct smtpd_settings *set, uint64_t declared, uint64_t *avail_out)
{
	uint64_t avail;

	if (!set->queue_dir || !space_free(set->queue_dir, &avail))
		return true;	/* cannot tell: let the queue write itself fail (451) rather than refuse all mail */
	if (avail_out)
		*avail_out = avail;
	uint64_t minfree = set->queue_minfree;
	if (avail < minfree)
		return false;
	/* 1.5 x SIZE, like Postfix: room for this message plus some for the ones arriving beside it */
	uint64_t need = declared > UINT64_MAX / 3 ? UINT64_MAX : declared / 2 * 3 + (declared & 1);
	return avail - minfree >= need;
}
