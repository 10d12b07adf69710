/* One POP3 session (RFC 1939 with CAPA, STLS, AUTH, RESP-CODES): pop3d's main() hands it each accepted
 * connection as a stream. Deletions happen only in the UPDATE state after QUIT; a lost connection deletes
 * nothing. Multi-line replies are dot-stuffed with CRLF line ends whatever the storage, and sizes are wire octets. */
#ifndef POSTERN_POP3_SESSION_H
#define POSTERN_POP3_SESSION_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "pop3_auth.h"
#include "stream.h"

#define POP3_LOCK_FILE "postern-pop3.lock"

struct pop3_opts {
	const char *hostname;		/* for the APOP timestamp */
	bool apop;			/* offer APOP (timestamp in the greeting) */
	bool plaintext_anywhere;	/* allow USER/PASS and plaintext SASL without TLS from any client */
	unsigned max_bad;		/* bad commands before we hang up */
	int timeout_ms;
	SSL_CTX *tls;			/* NULL: no STLS */
	bool implicit_tls;		/* port 995: TLS before the greeting */
	bool drop_privs;		/* switch to the mailbox owner after login (when root) */
	const struct pop3_auth_ops *auth;
};

/* Runs the session to its end; takes ownership of s (freed). loopback: the client is on 127.0.0.0/8 or ::1,
 * where plaintext logins are fine without TLS. peer is for logs. */
void pop3_session_run(struct stream *s, const struct pop3_opts *o, bool loopback, const char *peer);
/* The root side of a privilege-separated login (prelogin.h): take over login (cleared), become its owner, open the
 * mailbox and answer the login command, then serve the rest of the session. tls: the client is on TLS through the
 * login process. */
void pop3_session_resume(struct stream *s, const struct pop3_opts *o, bool loopback, const char *peer,
                         struct pop3_user *login, bool tls);

#endif
