/* The qmgr and local protocols on the IPC wire format: the CLI and smtpd talk to qmgr on private/qmgr (wakeups,
 * queue administration), qmgr talks to local on private/local (one delivery request per recipient group).
 * Tables here are what the receivers decode against; bump a message type when its fields change meaning. */
#ifndef POSTERN_QPROTO_H
#define POSTERN_QPROTO_H

#include "buf.h"
#include "ipc.h"
#include "qfile.h"

/* private/qmgr */
enum {
	QP_WAKEUP = 0x51000001,		/* one-way: new mail in incoming/ */
	QP_LIST = 0x51000002,		/* [FORMAT (enum qlist_format)] [OFFSET] -> QP_TEXT with COUNT SIZE MORE */
	QP_FLUSH = 0x51000003,		/* [ID] -> QP_DONE */
	QP_HOLD = 0x51000004,		/* [ID] */
	QP_RELEASE = 0x51000005,	/* [ID] */
	QP_DELETE = 0x51000006,		/* ID, or SELECT "ALL" or "deferred" (one is required: no "delete
					 * everything" by accident) */
	QP_REQUEUE = 0x51000007,	/* [ID] */
	QP_DONE = 0x51000081,		/* reply: COUNT of messages affected */
	QP_TEXT = 0x51000082,		/* reply: TEXT */
};
enum {
	QP_F_ID = 1, QP_F_COUNT = 2, QP_F_TEXT = 3, QP_F_ALL = 4,
	QP_F_FORMAT = 5, QP_F_OFFSET = 6,	/* LIST: the form, and how many messages to skip (paging) */
	QP_F_SIZE = 7, QP_F_MORE = 8,		/* LIST reply: bytes of the messages listed, 1 when more follow */
	QP_F_SELECT = 9,			/* DELETE without ID: "ALL" or "deferred" */
};

/* private/local */
enum {
	LP_DELIVER = 0x4c000001,	/* QUEUE_ID, DIR, SENDER, (IDX, RCPT)+ -> LP_RESULT */
	LP_RESULT = 0x4c000081,		/* (R_IDX, R_CODE, R_DSN, R_TEXT)+, (A_IDX, A_ADDR)*,
				 * (F_IDX, F_ADDR, F_DSN, F_TEXT)* */
};
enum {
	LP_F_QUEUE_ID = 1, LP_F_DIR = 2, LP_F_SENDER = 3, LP_F_IDX = 4, LP_F_RCPT = 5,
	LP_F_R_IDX = 10, LP_F_R_CODE = 11, LP_F_R_DSN = 12, LP_F_R_TEXT = 13,
	LP_F_A_IDX = 20, LP_F_A_ADDR = 21,
	/* a target ("|command", "/file", a mailbox address) of recipient F_IDX that failed for good while its
	 * other targets were delivered: qmgr records it as a bounced recipient expanded from F_IDX */
	LP_F_F_IDX = 30, LP_F_F_ADDR = 31, LP_F_F_DSN = 32, LP_F_F_TEXT = 33,
};

extern const struct ipc_proto qproto_qmgr;	/* what qmgr receives */
extern const struct ipc_proto qproto_qmgr_reply;	/* what qmgr's clients receive */
extern const struct ipc_proto qproto_local;	/* what local receives */
extern const struct ipc_proto qproto_local_reply;	/* what qmgr receives from local */

/* Transports (local, smtp): open the queue file an LP_DELIVER request names (QUEUE_ID in DIR active or deferred,
 * under queue_dir) and read its envelope. Returns the fd, positioned at the content, or -1 with the reason in
 * err (bad name, missing or corrupt file); env needs qfile_envelope_free() only when an fd was returned. */
int qproto_open_job(const struct ipc_msg *req, const char *queue_dir, struct qfile_envelope *env, struct buf *err);

#endif
