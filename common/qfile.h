/* Queue files: one file per message holding its envelope and content, written once and never modified.
 * Writers (smtpd, local submission, qmgr for bounces) create it in queue/tmp, fsync it, rename it into
 * queue/incoming and fsync that directory before the message counts as accepted. Readers (qmgr, local, smtp,
 * the CLI) parse it strictly: a truncated or malformed file is reported as corrupt, never half-read.
 *
 * Format (version 1), all integers big-endian:
 *   "PQF1"                                  magic
 *   record*: type (1 byte) | length (4 bytes) | data (length bytes)
 *   record 'X' (end of envelope): data = decimal content length
 *   content: exactly that many bytes, message text with LF line endings, to end of file. */
#ifndef POSTERN_QFILE_H
#define POSTERN_QFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define QFILE_ID_MAX 32              /* queue IDs are shorter, [0-9A-Z] only */
#define QFILE_RECORD_MAX (1u << 20)  /* no envelope record is longer: a longer one means a corrupt file */
#define QFILE_MAX_RCPTS 100000

/* Envelope record types. */
enum qfile_rec {
	QREC_TIME = 'T',       /* arrival time, decimal seconds.microseconds */
	QREC_SENDER = 'S',     /* envelope sender, "" for the null sender */
	QREC_RCPT = 'R',       /* recipient: address, NUL, NOTIFY flags (decimal), NUL, ORCPT (xtext-decoded) */
	QREC_ENVID = 'E',      /* DSN envelope ID */
	QREC_RET = 'r',        /* DSN RET: "FULL" or "HDRS" */
	QREC_BODY = 'B',       /* "7BIT", "8BITMIME" or "BINARYMIME" */
	QREC_SMTPUTF8 = 'U',   /* present: SMTPUTF8 requested */
	QREC_CLIENT_ADDR = 'C',
	QREC_CLIENT_NAME = 'N',
	QREC_HELO = 'H',
	QREC_AUTH_USER = 'A',
	QREC_TLS = 'L',        /* "TLSv1.3 TLS_AES_256_GCM_SHA384 256" */
	QREC_PROTOCOL = 'P',   /* SMTP, ESMTP, ESMTPS, ESMTPSA, LOCAL… */
	QREC_UID = 'u',        /* submitting uid for local submission */
	QREC_ORIGIN = 'O',     /* what created it: smtpd, sendmail, bounce */
	QREC_END = 'X',
};

/* DSN NOTIFY bits (RFC 3461). 0 = not given (default: FAILURE). */
#define QFILE_NOTIFY_NEVER   1u
#define QFILE_NOTIFY_SUCCESS 2u
#define QFILE_NOTIFY_FAILURE 4u
#define QFILE_NOTIFY_DELAY   8u

struct qfile_rcpt {
	char *addr;
	unsigned notify;
	char *orcpt;     /* NULL when not given */
};

struct qfile_envelope {
	char *id;
	double arrival;
	char *sender;
	struct qfile_rcpt *rcpts;
	size_t nrcpts;
	char *envid, *ret, *body, *client_addr, *client_name, *helo, *auth_user, *tls, *protocol, *origin;
	bool smtputf8;
	long uid;            /* -1 when not a local submission */
	uint64_t content_offset;
	uint64_t content_len;
};

/* Writing ---------------------------------------------------------------------------------------- */

struct qfile_writer;

/* Start a new message in QUEUE_DIR/tmp. Returns NULL with err set (e.g. no space, permissions). */
struct qfile_writer *qfile_create(const char *queue_dir, struct buf *err);
const char *qfile_writer_id(const struct qfile_writer *w);	/* the queue ID, known from creation */
/* Envelope records, before any content. false (with err) on a write error. */
bool qfile_put(struct qfile_writer *w, enum qfile_rec type, const void *data, size_t len);
bool qfile_put_str(struct qfile_writer *w, enum qfile_rec type, const char *s);
bool qfile_put_rcpt(struct qfile_writer *w, const char *addr, unsigned notify, const char *orcpt);
/* Content: CRLF line endings are stored as LF (a CR split from its LF across calls is handled). */
bool qfile_write(struct qfile_writer *w, const void *data, size_t len);
size_t qfile_content_size(const struct qfile_writer *w);
/* Finish: write the end record, fsync, rename into QUEUE_DIR/incoming/ID, fsync that directory. Only after
 * this returns true may the sender be told the message is accepted. The writer is freed either way. */
bool qfile_commit(struct qfile_writer **w, struct buf *err);
/* Throw the message away (client gone, policy refusal): removes the temp file. */
void qfile_abort(struct qfile_writer **w);
const char *qfile_writer_error(const struct qfile_writer *w);

/* Reading ---------------------------------------------------------------------------------------- */

/* Parse the envelope of an open queue file. false with a reason in err when the file is corrupt or
 * truncated (the caller moves it to corrupt/). The fd is left positioned at the content. */
bool qfile_read_envelope(int fd, struct qfile_envelope *env, struct buf *err);
/* Same, on a memory image of a whole file (used by the fuzzer and by tools that map the file). */
bool qfile_parse(const void *data, size_t len, struct qfile_envelope *env, struct buf *err);
void qfile_envelope_free(struct qfile_envelope *env);

/* Queue IDs: derived from the arrival time in microseconds and the temp file's inode, so two live files
 * never share one and IDs sort by arrival; [0-9A-Z] only, safe as file names. */
bool qfile_id_valid(const char *id);

#endif
