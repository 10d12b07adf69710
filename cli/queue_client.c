/* The queue through qmgr's socket, private/qmgr (common/qproto.h): while Postern runs, qmgr is the only
 * process that may change the queue, and its listing includes what it holds in memory. See queue.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "ipc.h"
#include "qproto.h"
#include "queue.h"

#define QMGR_CONNECT_MS 2000
#define QMGR_TIMEOUT_MS 30000	/* a listing of a large queue takes a while */

int qclient_connect(struct config *cfg)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&path, "%s/qmgr", config_str(cfg, "private_directory"));
	int fd = ipc_connect(buf_cstr(&path), QMGR_CONNECT_MS);
	int saved = errno;
	buf_free(&path);
	errno = saved;
	return fd;
}

static bool call(int fd, struct ipc_msg *req, struct ipc_msg **reply, struct buf *err)
{
	bool ok = ipc_call(fd, &qproto_qmgr_reply, req, reply, QMGR_TIMEOUT_MS, err);
	ipc_msg_free(&req);
	return ok;
}

bool qclient_list(int fd, enum qlist_format f, FILE *out, size_t *count, unsigned long long *bytes,
                  struct buf *err)
{
	uint32_t more = 1;
	*count = 0;
	*bytes = 0;
	/* qmgr answers in pages that fit a frame; the offset says where the next one starts */
	while (more) {
		struct ipc_msg *req = ipc_msg_new(QP_LIST), *reply = NULL;
		uint32_t n = 0;
		uint64_t size = 0;
		const char *text = NULL;
		size_t len = 0;
		ipc_put_u32(req, QP_F_FORMAT, f);
		ipc_put_u32(req, QP_F_OFFSET, (uint32_t)*count);
		if (!call(fd, req, &reply, err))
			return false;
		more = 0;
		ipc_get_u32(reply, QP_F_COUNT, &n);
		ipc_get_u64(reply, QP_F_SIZE, &size);
		ipc_get_u32(reply, QP_F_MORE, &more);
		ipc_get_str(reply, QP_F_TEXT, &text, &len);
		if (n && *count == 0 && f == QLIST_MAILQ)
			fputs(QLIST_MAILQ_HEADER, out);
		fwrite(text, 1, len, out);
		*count += n;
		*bytes += size;
		ipc_msg_free(&reply);
		if (n == 0)
			break;
	}
	return true;
}

int qclient_op(int fd, enum queue_op op, const char *id, const char *select, struct buf *err)
{
	static const uint32_t types[] = { [QOP_FLUSH] = QP_FLUSH, [QOP_HOLD] = QP_HOLD, [QOP_RELEASE] = QP_RELEASE,
		                          [QOP_DELETE] = QP_DELETE, [QOP_REQUEUE] = QP_REQUEUE };
	struct ipc_msg *req = ipc_msg_new(types[op]), *reply = NULL;
	uint32_t n = 0;
	if (id)
		ipc_put_str(req, QP_F_ID, id);
	else if (select && op == QOP_DELETE)
		ipc_put_str(req, QP_F_SELECT, select);
	if (!call(fd, req, &reply, err))
		return strstr(buf_cstr(err), "no such message") ? -1 : -2;
	ipc_get_u32(reply, QP_F_COUNT, &n);
	ipc_msg_free(&reply);
	return (int)n;
}

int queue_print(struct config *cfg, enum qlist_format f, FILE *out, FILE *errf)
{
	const char *qdir = config_str(cfg, "queue_directory");
	struct buf err = BUF_INIT(4096), tail = BUF_INIT(BUF_NOLIMIT);
	size_t count = 0;
	unsigned long long bytes = 0;
	int rc = 0, fd = qclient_connect(cfg);

	if (fd >= 0) {
		if (!qclient_list(fd, f, out, &count, &bytes, &err)) {
			fprintf(errf, "postern: qmgr: %s\n", buf_cstr(&err));
			rc = EX_UNAVAILABLE;
		}
		close(fd);
	} else {
		rc = qdisk_list(qdir, f, out, errf, &count, &bytes);
	}
	if (rc == 0) {
		qlist_trailer(f, count, bytes, &tail);
		fwrite(tail.data ? tail.data : "", 1, tail.len, out);
		if (f == QLIST_TEXT)
			qdisk_list_corrupt(qdir, out);
	}
	buf_free(&err);
	buf_free(&tail);
	return rc;
}
