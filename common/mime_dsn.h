/* Delivery status notifications (RFC 3464 in an RFC 6522 multipart/report): qmgr describes what happened to
 * some recipients of a queued message, this builds the complete notification message to queue back to the
 * sender (with the original headers, or the whole message for RET=FULL). */
#ifndef POSTERN_MIME_DSN_H
#define POSTERN_MIME_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

enum mime_dsn_action {
	MIME_DSN_FAILED,
	MIME_DSN_DELAYED,
	MIME_DSN_DELIVERED,
	MIME_DSN_RELAYED,
	MIME_DSN_EXPANDED,
};

struct mime_dsn_rcpt {
	const char *final_rcpt;       /* the address delivery was tried for (type rfc822 is added) */
	const char *orcpt;            /* ORCPT as given, "rfc822;user@example.com" (xtext already decoded); or NULL */
	enum mime_dsn_action action;
	const char *status;           /* RFC 3463 code, "5.1.1" */
	const char *remote_mta;       /* host that gave the diagnostic, or NULL */
	const char *diagnostic;       /* its SMTP reply, "550 5.1.1 <x@y>: no such user", or our reason; or NULL */
	const char *diag_type;        /* "smtp" for a remote reply; NULL: our own reason (type X-Postern) */
	const char *text;             /* for people, the whole story ("host ... said: ..."); NULL: diagnostic */
	const char *target;           /* what an alias expanded to and delivery failed for ("|cmd"), or NULL */
	time_t last_attempt;          /* 0: not given */
	time_t retry_until;           /* delayed: when we give up; 0: not given */
};

struct mime_dsn {
	const char *reporting_mta;    /* our host name */
	const char *from;             /* the notification's From, "MAILER-DAEMON@host" */
	const char *to;               /* the original envelope sender */
	const char *envid;            /* ENVID of the original, or NULL */
	const char *queue_id;         /* original queue ID, or NULL */
	const char *received_from;    /* host the message came from, or NULL */
	time_t arrival;               /* 0: not given */
	time_t now;                   /* Date of the notification */
	const struct mime_dsn_rcpt *rcpts;
	size_t nrcpts;
	bool ret_full;                /* RET=FULL: return the whole message, else its header only */
	size_t full_max;              /* a larger message is returned as headers only (0: no limit) */
	const char *msg;              /* the original message, LF line ends */
	size_t msg_len;
};

/* Append the notification (header and body, LF line ends) to out. Values that came from peers (addresses,
 * diagnostics, ENVID) have control characters replaced so they cannot break the header structure. *eightbit
 * (may be NULL) is set when the result holds 8-bit bytes (a returned 8-bit message or UTF-8 addresses): it
 * must then be sent with BODY=8BITMIME or converted with mime_7bit_convert(). False when out's cap was hit. */
bool mime_dsn_build(const struct mime_dsn *d, struct buf *out, bool *eightbit);

/* A delivery agent's result "host NAME[ADDR] said: REPLY (in reply to CMD command)" (smtp's form, what Postfix
 * writes): *mta gets NAME and *reply REPLY (both allocated; free them) for Remote-MTA and a Diagnostic-Code of
 * type smtp, as RFC 3464 2.3.5 and 2.3.6 want. false (nothing allocated) for any other text. */
bool mime_dsn_split_said(const char *text, char **mta, char **reply);

#endif
