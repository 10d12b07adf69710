/* Delivery receipts in queue/receipts/ID/: a pending mark is made (and locked) before a delivery and becomes
 * the receipt after it, so a transport that is asked again for a recipient whose result qmgr never recorded
 * (a kill between the delivery and qmgr's commit) answers "delivered" instead of delivering twice. Used by
 * local/deliver.c around each mbox append (a retry that finds a pending mark has local/mbox.c check the file
 * at the offset the mark records) and by smtp/main.c around each relayed transaction; qmgr removes the
 * directory with the message. Maildir deliveries need none: their file name is the receipt (local/deliver.c).
 * The content search (dir and c below) is no longer used by a delivery path. */
#ifndef POSTERN_RECEIPT_H
#define POSTERN_RECEIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* What a delivery writes into the mailbox: hdr (the trace lines local adds), then len bytes of the queue file
 * fd from offset. */
struct qreceipt_content {
	const char *hdr;
	size_t hdrlen;
	int fd;
	uint64_t offset, len;
};

#define QRECEIPT_PENDING_SUFFIX ".pending"

/* One delivery's claim on its receipt: the pending mark, open and locked (flock) for as long as the delivery
 * runs, so a second local process that retries the same recipient meanwhile (after a qmgr restart) waits for
 * the first instead of writing a second copy. A forked writer inherits the lock and holds it until it exits. */
struct qreceipt {
	char *path;
	int fd;
	bool resumed;	/* the mark was left by an interrupted attempt (its content is that attempt's) */
};

/* Before a delivery into the Maildir folder dir whose receipt is path: true when it is already done — the
 * receipt exists, or a pending mark left by an interrupted delivery exists and dir (new/ or cur/) holds a file
 * with exactly this content written after the mark (the receipt is then completed). Otherwise the pending mark
 * is made and locked (its parent directory too) and false returned: deliver now, then call qreceipt_end().
 * dir and c NULL: nothing to look in (a relayed message, an mbox file); a cut-off attempt only sets r->resumed
 * (for an mbox, the caller
 * reads what the earlier attempt wrote into r->fd). */
bool qreceipt_begin(struct qreceipt *r, const char *path, const char *dir, const struct qreceipt_content *c);
/* After the attempt: delivered turns the pending mark into the receipt (one rename); otherwise the mark is
 * removed, since nothing reached the mailbox. Releases the lock. */
void qreceipt_end(struct qreceipt *r, bool delivered);
/* A file in dir/new or dir/cur whose name says the content's size, modified at or after since, with exactly
 * the content. */
bool qreceipt_find(const char *dir, const struct qreceipt_content *c, time_t since);

#endif
