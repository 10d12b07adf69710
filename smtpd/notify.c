/* New-mail notification to qmgr: one one-way IPC frame per committed message, so delivery starts at once.
 * Best effort by design: qmgr also scans queue/incoming periodically, so a missing or busy qmgr costs only
 * latency and must never turn an accepted message into an error for the client. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "qproto.h"
#include "log.h"
#include "smtpd.h"

#define SMTPD_QMGR_TIMEOUT_MS 200

void smtpd_notify_qmgr(const struct smtpd_settings *set, const char *id)
{
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *m;
	int fd;

	if (!set->qmgr_socket || access(set->qmgr_socket, F_OK) != 0)
		return;
	fd = ipc_connect(set->qmgr_socket, SMTPD_QMGR_TIMEOUT_MS);
	if (fd < 0) {
		log_debug("%s: qmgr not notified: %s: %s", id, set->qmgr_socket, strerror(errno));
		return;
	}
	m = ipc_msg_new(QP_WAKEUP);	/* one-way and without fields: qmgr takes everything in incoming/ */
	if (!ipc_send(fd, m, SMTPD_QMGR_TIMEOUT_MS, &err))
		log_debug("%s: qmgr not notified: %s", id, buf_cstr(&err));
	ipc_msg_free(&m);
	close(fd);
	buf_free(&err);
}
