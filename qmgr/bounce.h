/* Delivery status notifications (RFC 3464 multipart/report) for recipients that failed, and the rule for whom
 * they go to. qmgr builds one per message whose recipients reached a final failure and queues it through qfile
 * with origin "bounce"; a fuller MIME module may replace the builder later, the interface is kept small. */
#ifndef POSTERN_QMGR_BOUNCE_H
#define POSTERN_QMGR_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "qfile.h"

/* Origins of notifications: a failed "double-bounce" is only logged, so two broken mailboxes cannot make
 * notifications bounce between each other. */
#define BOUNCE_ORIGIN "bounce"
#define BOUNCE_ORIGIN_DOUBLE "double-bounce"

struct bounce_rcpt {
	const char *addr;	/* final recipient */
	const char *orcpt;	/* DSN ORCPT "type;address", NULL when not given */
	const char *action;	/* "failed", "delayed" or "delivered" */
	const char *dsn;	/* enhanced status code, e.g. "5.1.1" */
	const char *text;	/* diagnostic text */
	uint64_t last_try;	/* seconds since the epoch, 0 = never tried */
};

struct bounce_info {
	const char *hostname;		/* reporting MTA (myhostname) */
	const char *queue_id;		/* of the original message */
	const struct qfile_envelope *env;	/* original envelope (sender, arrival, ENVID, RET) */
	const char *to;			/* who the report goes to (bounce_recipient()) */
	const struct bounce_rcpt *rcpts;
	size_t nrcpts;
	const char *content;		/* original message, LF line ends; may be NULL */
	size_t content_len;
	size_t max_content;		/* above this only the headers are returned (bounce_size_limit) */
	uint64_t now;			/* seconds since the epoch (Date:, Message-ID) */
};

/* Who gets the report for a failed message: its sender; for the null sender (a notification that failed) the
 * postmaster, unless the failed message was itself for the postmaster's attention (origin double-bounce),
 * then nobody (NULL: log and drop). Never the null sender. */
const char *bounce_recipient(const struct qfile_envelope *env, const char *postmaster, const char **origin);

/* Append the whole report message (headers and body, LF line ends) to out. */
void bounce_build(const struct bounce_info *bi, struct buf *out);

/* Queue msg as a new message from the null sender to rcpt with the given origin. new_id (when not NULL) gets
 * the new queue ID (free it). false with err when the queue cannot take it. */
bool bounce_queue(const char *queue_dir, const char *rcpt, const char *origin, bool eightbit, const struct buf *msg,
                  char **new_id, struct buf *err);

#endif
