/* Maildir delivery of one queued message to one mailbox: the Delivered-To loop check, the Return-Path and
 * Delivered-To headers, and the privilege switch to the mailbox owner (a forked child when running as root).
 * Called by the local daemon for each target lres_resolve() produced. */
#ifndef POSTERN_LOCAL_DELIVER_H
#define POSTERN_LOCAL_DELIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define LDELIVER_HEADER_SCAN_MAX (1u << 20)	/* Delivered-To lines are looked for in this much of the header */

struct ldeliver_msg {
	const char *queue_id;
	uint32_t rcpt_idx;	/* the recipient's number in qmgr's state */
	/* Where delivery receipts of this message live (queue/receipts/ID), NULL for none: a delivery already
	 * receipted is reported as done without writing the mailbox again, so a qmgr that died before recording a
	 * result does not make local deliver twice. qmgr removes the directory with the message. */
	const char *receipt_dir;
	const char *sender;	/* envelope sender, "" for the null sender */
	int fd;			/* the queue file (read with pread: the offset is not used) */
	uint64_t content_offset;
	uint64_t content_len;
};

enum ldeliver_status { LDELIVER_OK = 2, LDELIVER_TEMPFAIL = 4, LDELIVER_FAIL = 5 };

/* Deliver m to maildir for rcpt (the Delivered-To value). switch_user: write as uid/gid (only possible and
 * only done when running as root; otherwise the daemon's own uid writes). dsn and text describe the outcome
 * ("2.0.0", "delivered to maildir"). */
enum ldeliver_status ldeliver_maildir(const struct ldeliver_msg *m, const char *rcpt, const char *maildir,
                                      bool switch_user, uid_t uid, gid_t gid, struct buf *dsn, struct buf *text);

/* true when the message header already has "Delivered-To: rcpt" (any case): delivering again would loop. */
bool ldeliver_has_loop(const struct ldeliver_msg *m, const char *rcpt);

#endif
