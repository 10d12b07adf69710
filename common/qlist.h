/* Queue listings in the three forms the CLI prints: postern queue list (text), --json (JSON Lines modelled on
 * Postfix's postqueue -j) and mailq's classic layout. qmgr formats them for a listing over its socket and the
 * CLI for one read from disk when qmgr is not running, so both give the same output. */
#ifndef POSTERN_QLIST_H
#define POSTERN_QLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "qfile.h"
#include "qstate.h"

enum qlist_format { QLIST_TEXT = 0, QLIST_JSON = 1, QLIST_MAILQ = 2 };

struct qlist_entry {
	const char *id;
	const char *queue;		/* incoming, active, deferred, hold */
	const struct qfile_envelope *env;
	const struct qstate_rcpt *st;	/* delivery state; nst 0: none yet (every envelope recipient pending) */
	size_t nst;
};

/* Append one message in format f (JSON: one line; text and mailq: a block). */
void qlist_format(const struct qlist_entry *e, enum qlist_format f, struct buf *out);
/* The last line: a count (text), "-- N Kbytes in M Requests." (mailq), nothing (JSON); empty queues get
 * "Mail queue is empty" in both human forms. */
void qlist_trailer(enum qlist_format f, size_t count, unsigned long long bytes, struct buf *out);
/* mailq's column heads (printed once before the first message). */
#define QLIST_MAILQ_HEADER "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"

#endif
