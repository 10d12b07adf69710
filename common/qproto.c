/* Decoding tables of the qmgr and local protocols (see qproto.h). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "qproto.h"

static const struct ipc_field_def id_opt[] = {
	{ QP_F_ID, IPC_T_STR, 0, "id" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_field_def list_f[] = {
	{ QP_F_FORMAT, IPC_T_U32, 0, "format" },
	{ QP_F_OFFSET, IPC_T_U32, 0, "offset" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_field_def delete_f[] = {
	{ QP_F_ID, IPC_T_STR, 0, "id" },
	{ QP_F_SELECT, IPC_T_STR, 0, "select" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_field_def done_f[] = {
	{ QP_F_COUNT, IPC_T_U32, IPC_REQUIRED, "count" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_field_def text_f[] = {
	{ QP_F_TEXT, IPC_T_STR, IPC_REQUIRED, "text" },
	{ QP_F_COUNT, IPC_T_U32, 0, "count" },
	{ QP_F_SIZE, IPC_T_U64, 0, "size" },
	{ QP_F_MORE, IPC_T_U32, 0, "more" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_msg_def qmgr_msgs[] = {
	{ QP_WAKEUP, "wakeup", NULL, 0 },
	{ QP_LIST, "list", list_f, 0 },
	{ QP_FLUSH, "flush", id_opt, 0 },
	{ QP_HOLD, "hold", id_opt, 0 },
	{ QP_RELEASE, "release", id_opt, 0 },
	{ QP_DELETE, "delete", delete_f, 0 },
	{ QP_REQUEUE, "requeue", id_opt, 0 },
	{ 0, NULL, NULL, 0 },
};
static const struct ipc_msg_def qmgr_reply_msgs[] = {
	{ QP_DONE, "done", done_f, 0 },
	{ QP_TEXT, "text", text_f, 0 },
	{ 0, NULL, NULL, 0 },
};
const struct ipc_proto qproto_qmgr = { "qmgr", qmgr_msgs };
const struct ipc_proto qproto_qmgr_reply = { "qmgr-reply", qmgr_reply_msgs };

static const struct ipc_field_def deliver_f[] = {
	{ LP_F_QUEUE_ID, IPC_T_STR, IPC_REQUIRED, "queue_id" },
	{ LP_F_DIR, IPC_T_STR, IPC_REQUIRED, "dir" },
	{ LP_F_SENDER, IPC_T_STR, IPC_REQUIRED, "sender" },
	{ LP_F_IDX, IPC_T_U32, IPC_REQUIRED | IPC_REPEATED, "idx" },
	{ LP_F_RCPT, IPC_T_STR, IPC_REQUIRED | IPC_REPEATED, "rcpt" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_field_def result_f[] = {
	{ LP_F_R_IDX, IPC_T_U32, IPC_REPEATED, "r_idx" },
	{ LP_F_R_CODE, IPC_T_U32, IPC_REPEATED, "r_code" },
	{ LP_F_R_DSN, IPC_T_STR, IPC_REPEATED, "r_dsn" },
	{ LP_F_R_TEXT, IPC_T_STR, IPC_REPEATED, "r_text" },
	{ LP_F_A_IDX, IPC_T_U32, IPC_REPEATED, "a_idx" },
	{ LP_F_A_ADDR, IPC_T_STR, IPC_REPEATED, "a_addr" },
	{ LP_F_F_IDX, IPC_T_U32, IPC_REPEATED, "f_idx" },
	{ LP_F_F_ADDR, IPC_T_STR, IPC_REPEATED, "f_addr" },
	{ LP_F_F_DSN, IPC_T_STR, IPC_REPEATED, "f_dsn" },
	{ LP_F_F_TEXT, IPC_T_STR, IPC_REPEATED, "f_text" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_msg_def local_msgs[] = {
	{ LP_DELIVER, "deliver", deliver_f, 0 },
	{ 0, NULL, NULL, 0 },
};
static const struct ipc_msg_def local_reply_msgs[] = {
	{ LP_RESULT, "result", result_f, 0 },
	{ 0, NULL, NULL, 0 },
};
const struct ipc_proto qproto_local = { "local", local_msgs };
const struct ipc_proto qproto_local_reply = { "local-reply", local_reply_msgs };

int qproto_open_job(const struct ipc_msg *req, const char *queue_dir, struct qfile_envelope *env, struct buf *err)
{
	const char *id = "", *dir = "";
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	int fd;

	ipc_get_str(req, LP_F_QUEUE_ID, &id, NULL);
	ipc_get_str(req, LP_F_DIR, &dir, NULL);
	/* the name comes from a peer: only a queue ID in one of the two directories qmgr delivers from */
	if (!qfile_id_valid(id) || (strcmp(dir, "active") != 0 && strcmp(dir, "deferred") != 0)) {
		buf_puts(err, "bad queue file name in request");
		return -1;
	}
	buf_printf(&path, "%s/%s/%s", queue_dir, dir, id);
	fd = open(buf_cstr(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		buf_printf(err, "open queue file %s: %s", buf_cstr(&path), strerror(errno));
	else if (!qfile_read_envelope(fd, env, err)) {
		close(fd);
		fd = -1;
	}
	buf_free(&path);
	return fd;
}
