/* Delivery of one queued message to one target: a Maildir (with extension folder and quota), an mbox file or a
 * command. The Delivered-To loop check, the Return-Path and Delivered-To headers, and the privilege switch to
 * the target's owner (a forked child when running as root). Called by the local daemon for each target
 * lres_resolve() produced; mbox.c and pipe.c hold the file and command parts, common/maildirsize.c the quota. */
#ifndef POSTERN_LOCAL_DELIVER_H
#define POSTERN_LOCAL_DELIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

struct qreceipt;

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
	bool junk;		/* smtpd enforced a DMARC quarantine: Maildir deliveries go to the Junk folder */
	/* An earlier request for this message may have delivered some of it: a Maildir copy may already have been
	 * moved from new/ to cur/ by a reader, so look for it by name before writing. */
	bool retry;
	int64_t arrival;	/* when the message was queued (seconds; 0: unknown), the start of its Maildir names */
	uint64_t content_offset;
	uint64_t content_len;
};

enum ldeliver_status { LDELIVER_OK = 2, LDELIVER_TEMPFAIL = 4, LDELIVER_FAIL = 5 };

enum ldeliver_kind { LDELIVER_MAILDIR, LDELIVER_FILE, LDELIVER_PIPE, LDELIVER_RESUBMIT };

struct ldeliver_target {
	enum ldeliver_kind kind;
	const char *rcpt;	/* the Delivered-To value */
	const char *sender;	/* Return-Path (and the From_ line), NULL: the message's sender */
	const char *path;	/* the Maildir root (ending in '/'), the mbox file, the command, or (resubmit)
				 * the queue directory */
	const char *folder;	/* Maildir: Maildir++ folder used instead of INBOX when it exists, NULL none */
	uint64_t quota;		/* Maildir: bytes, 0 for none */
	bool quota_bounce;	/* over quota: 5.2.2 (else 4.2.2) */
	bool switch_user;	/* write or run as uid/gid (only done when running as root) */
	uid_t uid;
	gid_t gid;
	char *const *env;	/* command: its whole environment ("NAME=value", NULL-terminated) */
	const char *home;	/* command: working directory ("/" when it cannot be entered) */
	unsigned time_limit;	/* command: seconds before it is killed */
	char *const *rcpts;	/* resubmit: the recipients of the new message (NULL-terminated) */
	const struct qreceipt *mark;	/* file: set by ldeliver(), the pending receipt mark (NULL: none); the
					 * append records its start there, and a retry after an interrupted
					 * attempt finds or cuts off that attempt's message */
};

/* Deliver m to t; dsn and text describe the outcome ("2.0.0", "delivered to maildir"). */
enum ldeliver_status ldeliver(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                              struct buf *text);

/* The old entry point: ldeliver() of a Maildir with no folder and no quota. */
enum ldeliver_status ldeliver_maildir(const struct ldeliver_msg *m, const char *rcpt, const char *maildir,
                                      bool switch_user, uid_t uid, gid_t gid, struct buf *dsn, struct buf *text);

/* true when the message header already has "Delivered-To: rcpt" (any case): delivering again would loop. */
bool ldeliver_has_loop(const struct ldeliver_msg *m, const char *rcpt);

/* The Return-Path and Delivered-To lines put before the message (control characters made '?'). */
void ldeliver_trace_headers(const char *sender, const char *rcpt, struct buf *out);

/* Read len bytes at off (fewer only at the end of the file). */
bool ldeliver_read_at(int fd, void *p, size_t n, uint64_t off, size_t *got);

/* ---- mbox.c: appending to an mbox file ---- */

/* ">From " quoting of a message streamed in pieces of any size: a line starting with "From " gets a '>'. */
struct lmbox_quoter {
	size_t held;	/* bytes of "From " matched at the start of the current line, not yet output */
	bool mid_line;	/* inside a line (not at its start) */
};
void lmbox_quote(struct lmbox_quoter *q, const char *p, size_t n, struct buf *out);
/* End of the message: what is held, then the newline a message must end with and the empty separator line. */
void lmbox_quote_end(struct lmbox_quoter *q, struct buf *out);
/* "From SENDER DATE" line (MAILER-DAEMON for the null sender), with its newline. */
void lmbox_from_line(const char *sender, time_t when, struct buf *out);
/* Append m to the file t->path as the calling user: locked, fsynced, cut back on failure. */
enum ldeliver_status lmbox_append(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                                  struct buf *text);

/* ---- pipe.c: running a command ---- */

/* Map a command's wait status and its first output line to a result: exit 0 delivered, 75 (EX_TEMPFAIL)
 * 4.3.0, 67 (EX_NOUSER) 5.1.1, other exit codes 5.3.0, a signal 4.3.0; timed_out 4.3.0. */
enum ldeliver_status lpipe_status(int wstatus, bool timed_out, const char *first_line, unsigned limit,
                                  struct buf *dsn, struct buf *text);
/* Run t->path with /bin/sh -c as t->uid (when root) with the message on stdin. */
enum ldeliver_status lpipe_run(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                               struct buf *text);

/* ---- resubmit.c: remote list members under the list owner's sender ---- */

/* Queue a new message (as the calling user) from t->sender to t->rcpts: a Delivered-To: t->rcpt line, then
 * m's content. Its queue ID goes into text ("queued as ID"). */
enum ldeliver_status lresubmit(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                               struct buf *text);

#endif
