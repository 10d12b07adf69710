/* Per-recipient delivery state of queued messages, kept in queue/state.lmdb and written only by qmgr (the CLI
 * may open it read-only). Queue files are never modified, so everything that changes during delivery lives here:
 * status, attempt count, next attempt time, last error, and recipients added by alias expansion. */
#ifndef POSTERN_QSTATE_H
#define POSTERN_QSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define QSTATE_VERSION 1
#define QSTATE_ADDR_MAX 2048	/* a recipient address in a record; longer ones are refused */
#define QSTATE_DSN_MAX 15	/* "5.1.1" and the like, with room for three-digit parts */
#define QSTATE_TEXT_MAX 1000	/* last error text, cut (by qstate_rcpt_set_error) beyond this */
#define QSTATE_IDX_MAX 999999	/* recipient indexes are written as six digits in keys */
#define QSTATE_NO_PARENT UINT32_MAX
#define QSTATE_F_NOTIFIED 0x01u	/* the sender has been sent the DSN this recipient's status calls for */
#define QSTATE_F_WARNED 0x02u	/* the sender has been sent a delay warning for this recipient */
#define QSTATE_F_KNOWN (QSTATE_F_NOTIFIED | QSTATE_F_WARNED)

enum qstate_status {
	QSTATE_PENDING = 'P',	/* not yet tried, or due again */
	QSTATE_DEFERRED = 'D',	/* a temporary failure; retried at next_try */
	QSTATE_SENT = 'S',	/* delivered (final) */
	QSTATE_BOUNCED = 'B',	/* failed permanently or expired (final) */
	QSTATE_EXPANDED = 'E',	/* replaced by the recipients alias expansion returned (final) */
};

struct qstate_rcpt {
	uint32_t idx;		/* envelope recipient number; added recipients follow the envelope's */
	uint8_t status;		/* enum qstate_status */
	uint32_t attempts;
	uint64_t next_try;	/* milliseconds since the epoch */
	uint64_t last_try;	/* milliseconds since the epoch, 0 = never */
	uint8_t flags;		/* QSTATE_F_* */
	uint32_t parent;	/* for an added recipient: the envelope recipient it came from, else QSTATE_NO_PARENT */
	char dsn[QSTATE_DSN_MAX + 1];	/* enhanced status of the last attempt, "" before any */
	char *text;		/* last error or result text (owned), never NULL after decode */
	char *addr;		/* recipient address (owned) */
};

static inline bool qstate_final(uint8_t status)
{
	return status == QSTATE_SENT || status == QSTATE_BOUNCED || status == QSTATE_EXPANDED;
}

/* Record codec (public for tests and the fuzzer). decode is strict: wrong version, unknown status, lengths
 * past the limits, NUL bytes in strings, truncated or trailing bytes are errors. */
void qstate_encode(const struct qstate_rcpt *r, struct buf *out);
bool qstate_decode(const void *data, size_t len, struct qstate_rcpt *out, struct buf *err);
/* Keys are "QUEUEID/NNNNNN" so one message's recipients are adjacent and in order. */
bool qstate_key(const char *id, uint32_t idx, struct buf *out);
bool qstate_key_parse(const void *key, size_t len, char id[], size_t idsize, uint32_t *idx);
void qstate_rcpt_free(struct qstate_rcpt *r);
void qstate_rcpt_set(struct qstate_rcpt *r, const char *addr, const char *dsn, const char *text);
const char *qstate_status_name(uint8_t status);

/* The database. */
struct qstate;
/* Open (creating when writable) the LMDB file at path (one file plus PATH-lock). NULL with err. */
struct qstate *qstate_open(const char *path, bool writable, struct buf *err);
void qstate_close(struct qstate **db);

/* All recipients of a message, in index order; *n = 0 when the message has no state. false with err on a
 * database error or a corrupt record (the message's state should then be rebuilt). */
bool qstate_get_msg(struct qstate *db, const char *id, struct qstate_rcpt **out, size_t *n, struct buf *err);
void qstate_free_list(struct qstate_rcpt **list, size_t n);
/* Write these records (replacing records with the same index) in one transaction. */
bool qstate_put(struct qstate *db, const char *id, const struct qstate_rcpt *recs, size_t n, struct buf *err);
/* Remove every record of the message. */
bool qstate_delete_msg(struct qstate *db, const char *id, struct buf *err);
/* Every queue ID that has state, in order; stops early when fn returns false. */
bool qstate_foreach_id(struct qstate *db, bool (*fn)(const char *id, void *arg), void *arg, struct buf *err);

#endif
