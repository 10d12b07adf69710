/* One SMTP client conversation with one server address: connect, greeting, EHLO (HELO fallback), STARTTLS by
 * policy, MAIL and RCPT (pipelined when offered), DATA, QUIT, each stage under its own timeout. It fills in an
 * exact result per recipient, or says "try the next address" for failures before any recipient was answered
 * (connection refused, 4xx/5xx greeting, TLS required but missing). Called by the smtp daemon (main.c). */
#ifndef POSTERN_SMTP_SESSION_H
#define POSTERN_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "nexthop.h"

struct smtp_rcpt {
	const char *addr;
	unsigned notify;	/* QFILE_NOTIFY_* bits, 0 = not given */
	const char *orcpt;	/* "rfc822;addr" as received, or NULL */
	int code;		/* 0 while open; 2, 4 or 5 once answered */
	char dsn[12];
	struct buf text;	/* "host[ip] said: 550 ... (in reply to RCPT TO command)" or our own reason */
	bool accepted;		/* RCPT got 2xx in the current attempt */
};

struct smtp_message {
	const char *queue_id;
	const char *sender;
	const char *envid;	/* DSN ENVID or NULL */
	const char *ret;	/* "FULL", "HDRS" or NULL */
	bool eightbit;		/* BODY=8BITMIME was given */
	bool smtputf8;		/* SMTPUTF8 was requested */
	int fd;			/* the queue file, content at offset */
	uint64_t offset, len;
	struct smtp_rcpt *rcpts;
	size_t nrcpts;
};

enum smtp_tls_level { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT, SMTP_TLS_VERIFY };

struct smtp_session_opts {
	const char *helo_name;
	const char *myhostname;		/* a server greeting us with this name is ourselves: mail loop */
	int connect_ms, helo_ms, starttls_ms, mail_ms, rcpt_ms, data_ms, data_done_ms, quit_ms;
	enum smtp_tls_level tls;
	SSL_CTX *tls_ctx;		/* needed unless tls is NONE */
	const char *auth_user;		/* client SMTP AUTH (PLAIN, else LOGIN) when not NULL */
	const char *auth_pass;
	bool auth_tls_required;		/* never send credentials over a connection without TLS */
};

/* Why an attempt did not reach the recipients, kept for when every address fails. */
struct smtp_attempt {
	int code;		/* 4 or 5 */
	char dsn[12];
	struct buf why;
};

/* A connection kept open after a delivery (RSET instead of QUIT), for the next message to the same address. */
struct smtp_conn;
/* true when c is a connection to t made under TLS level tls, authenticated as auth_user (NULL: not at all). */
bool smtp_conn_for(const struct smtp_conn *c, const struct smtp_target *t, enum smtp_tls_level tls,
                   const char *auth_user);
/* QUIT and free; *c becomes NULL (no-op when already NULL). */
void smtp_conn_close(struct smtp_conn **c, const struct smtp_session_opts *o);

/* Parse a TLS level word ("none", "may", "encrypt", "verify"); false when unknown. */
bool smtp_tls_level_parse(const char *s, enum smtp_tls_level *out);
/* Set code/dsn/text of every open recipient. */
void smtp_rcpts_fail(struct smtp_message *m, int code, const char *dsn, const char *text);
/* Talk to t. true: every recipient has its answer (code != 0). false: try the next address; a holds why.
 * cache NULL: one connection per call, ended with QUIT. Otherwise a cached connection to t (same TLS level) is
 * used first (a fresh one replaces it when the server has closed it), a cached connection to anywhere else is
 * closed, and after a clean transaction the connection is left in *cache. */
bool smtp_session_try(const struct smtp_session_opts *o, const struct smtp_target *t, struct smtp_message *m,
                      struct smtp_attempt *a, struct smtp_conn **cache);

#endif
