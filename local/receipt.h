/* Exactly-once delivery across crashes of local: a pending mark is written before the Maildir write (or mbox
 * append) and becomes the delivery receipt after it; a retry that finds a pending mark looks in the Maildir for
 * the very message before writing it again (for an mbox, local/mbox.c checks the file at the offset the mark
 * records). Called by local/deliver.c around each write; qmgr removes the receipts directory
 * (queue/receipts/ID/) with the message. */
#ifndef POSTERN_LOCAL_RECEIPT_H
#define POSTERN_LOCAL_RECEIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* What a delivery writes into the mailbox: hdr (the trace lines local adds), then len bytes of the queue file
 * fd from offset. */
struct lreceipt_content {
	const char *hdr;
	size_t hdrlen;
	int fd;
	uint64_t offset, len;
};

#define LRECEIPT_PENDING_SUFFIX ".pending"

/* One delivery's claim on its receipt: the pending mark, open and locked (flock) for as long as the delivery
 * runs, so a second local process that retries the same recipient meanwhile (after a qmgr restart) waits for
 * the first instead of writing a second copy. A forked writer inherits the lock and holds it until it exits. */
struct lreceipt {
	char *path;
	int fd;
	bool resumed;	/* the mark was left by an interrupted attempt (its content is that attempt's) */
};

/* Before a delivery into the Maildir folder dir whose receipt is path: true when it is already done — the
 * receipt exists, or a pending mark left by an interrupted delivery exists and dir (new/ or cur/) holds a file
 * with exactly this content written after the mark (the receipt is then completed). Otherwise the pending mark
 * is made and locked (its parent directory too) and false returned: deliver now, then call lreceipt_end(). */
bool lreceipt_begin(struct lreceipt *r, const char *path, const char *dir, const struct lreceipt_content *c);
/* The same claim for targets that cannot be searched by content (mbox files): dir and c are NULL, and a mark
 * left behind only sets resumed; the caller reads what the earlier attempt wrote into r->fd. */
/* After the attempt: delivered turns the pending mark into the receipt (one rename); otherwise the mark is
 * removed, since nothing reached the mailbox. Releases the lock. */
void lreceipt_end(struct lreceipt *r, bool delivered);
/* A file in dir/new or dir/cur whose name says the content's size, modified at or after since, with exactly
 * the content. */
bool lreceipt_find(const char *dir, const struct lreceipt_content *c, time_t since);

#endif
