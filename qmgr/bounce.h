/* qmgr's side of delivery status notifications: whom they go to, what of the original they return, and how
 * they enter the queue (from the null sender, origin "bounce" or "double-bounce"). The RFC 3464 format itself
 * is common/mime_dsn.c. */
#ifndef POSTERN_QMGR_BOUNCE_H
#define POSTERN_QMGR_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mime_dsn.h"
#include "qfile.h"

/* Origins of notifications: a failed "double-bounce" is only logged, so two broken mailboxes cannot make
 * notifications bounce between each other. */
#define BOUNCE_ORIGIN "bounce"
#define BOUNCE_ORIGIN_DOUBLE "double-bounce"

struct bounce_info {
	const char *hostname;		/* reporting MTA (myhostname) */
	const char *queue_id;		/* of the original message */
	const struct qfile_envelope *env;	/* original envelope (sender, arrival, ENVID, RET) */
	const char *to;			/* who the report goes to (bounce_recipient()) */
	const struct mime_dsn_rcpt *rcpts;
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

/* The report (mime_dsn_build()) with qmgr's choices: the whole message returned with a failure unless RET=HDRS
 * or it is larger than max_content, the headers only otherwise. eightbit says the result needs 8BITMIME. */
bool bounce_build(const struct bounce_info *bi, struct buf *out, bool *eightbit);

/* Queue msg as a new message from the null sender to rcpt with the given origin. new_id (when not NULL) gets
 * the new queue ID (free it). false with err when the queue cannot take it. */
bool bounce_queue(const char *queue_dir, const char *rcpt, const char *origin, bool eightbit, const struct buf *msg,
                  char **new_id, struct buf *err);

#endif
