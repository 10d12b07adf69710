/* imapd's session: one IMAP client per process. The daemon's main (or a test) builds a struct imapd_session
 * around an accepted connection and calls imapd_session_run(); commands are parsed by parser.c, looked up in
 * the command table (cmdtab.c) and run by the cmd_*.c handlers, which answer through the reply helpers here. */
#ifndef POSTERN_IMAPD_IMAPD_H
#define POSTERN_IMAPD_IMAPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "parser.h"
#include "stream.h"

enum imapd_state {
	IMAPD_NOTAUTH = 1,
	IMAPD_AUTH = 2,
	IMAPD_SELECTED = 4,
	IMAPD_LOGOUT = 8,
};

/* What a successful login gives the session: the mailbox owner and where the Maildir lives. */
struct imapd_login {
	char *user;		/* canonical account name */
	char *maildir;		/* root of the Maildir++ tree (INBOX) */
	uid_t uid;
	gid_t gid;
	uint64_t quota;		/* bytes for all folders together; 0: none (QUOTA, quota.c) */
	char *token;		/* auth's login token, asked for in a pre-login process (prelogin.h) */
};

/* Password check, supplied by the daemon (the auth daemon client) or by tests. Returns true and fills out on
 * success; false for a wrong user or password. tempfail set means "try later" (auth daemon unreachable).
 * encrypted and loopback describe the client connection (the auth daemon applies its own policy to them). */
typedef bool imapd_auth_fn(void *ctx, const char *user, const char *pass, bool encrypted, bool loopback,
			   struct imapd_login *out, bool *tempfail);

struct imapd_settings {
	SSL_CTX *tls_ctx;		/* implicit TLS (imaps) */
	struct tls_pem *tls_pem;	/* STARTTLS: the context is made when a client asks for it (tls.h) */
	bool implicit_tls;		/* port 993: the handshake runs before the greeting */
	bool plaintext_login;		/* allow LOGIN/AUTHENTICATE without TLS from non-loopback peers */
	size_t max_line;		/* imapd_max_line_length */
	size_t max_literal;		/* APPENDLIMIT after login */
	size_t max_literal_preauth;	/* before login */
	int timeout_ms;			/* idle timeout after login (RFC 3501 asks for at least 30 minutes) */
	int preauth_timeout_ms;		/* before login: short, so idle connections cannot hold processes; 0: same */
	int max_bad;			/* BAD replies before the client is dropped */
	imapd_auth_fn *auth;
	void *auth_ctx;
};

/* One message as this session last reported it: sequence number = position + 1. gone: expunged by someone else
 * but not yet announced (EXPUNGE may not be sent during FETCH, STORE or SEARCH). */
struct imapd_view_msg {
	uint32_t uid;
	uint32_t flags;		/* IMAP_FLAG_* and keyword bits (flags.h) */
	uint64_t modseq;	/* last reported (CONDSTORE) */
	bool gone;
	bool recent;
};

struct mbox;
struct imapd_fcache;

struct imapd_selected {
	char *name;		/* UTF-8 name as stored */
	char *path;		/* Maildir directory */
	bool readonly;		/* EXAMINE */
	uint32_t exists, recent;
	uint32_t uidvalidity, uidnext;
	struct mbox *mb;	/* the shared index (common/mbox.h) */
	struct imapd_fcache *fc;	/* ENVELOPE/BODYSTRUCTURE cache (fetchcache.h); NULL when unusable */
	struct imapd_view_msg *v;
	size_t n, cap;
	bool no_expunge;	/* the running command may not announce expunges (FETCH, STORE, SEARCH) */
	char *keywords[26];	/* keyword names of the Maildir letters a-z (postern-keywords) */
};

struct imapd_session {
	const struct imapd_settings *set;
	struct stream *s;
	struct imap_parser *parser;
	enum imapd_state state;
	bool loopback;			/* peer on 127.0.0.0/8 or ::1: plaintext login allowed */
	int bad_count;
	int auth_failures;		/* failed password checks; the client is dropped after a few */
	struct imapd_login login;
	struct imapd_selected *sel;
	char *tag;			/* of the command being run (a copy: login replaces the parser) */
	bool condstore;			/* RFC 7162: MODSEQ in FETCH responses (enabled by ENABLE or first use) */
	bool qresync;			/* RFC 7162: VANISHED instead of EXPUNGE, UID in unsolicited FETCH */
	struct buf line;		/* scratch for replies */
};

/* Set up a session over an accepted connection (takes ownership of fd). */
void imapd_session_init(struct imapd_session *sess, const struct imapd_settings *set, int fd, bool loopback);
/* Greeting, then commands until LOGOUT, an error, a timeout or the peer closing. */
void imapd_session_run(struct imapd_session *sess);
/* The root side of a privilege-separated login (prelogin.h), on a session made with imapd_session_init over the
 * connection the login process handed over (its pipelined input pushed back): become login's owner (login is
 * taken), answer the login command with tag, then serve commands as imapd_session_run does. */
void imapd_session_resume(struct imapd_session *sess, struct imapd_login *login, const char *tag);
void imapd_session_free(struct imapd_session *sess);

/* Replies. Text given to these is our own; anything from the peer must pass buf_append_printable first. */
void imapd_untagged(struct imapd_session *sess, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imapd_ok(struct imapd_session *sess, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imapd_no(struct imapd_session *sess, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imapd_bad(struct imapd_session *sess, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A string for a reply: an atom-safe quoted string when it can be one, else a literal. */
void imapd_put_string(struct buf *out, const char *s, size_t len);
/* A mailbox name for the wire (modified UTF-7), as a string. */
void imapd_put_mailbox(struct imapd_session *sess, struct buf *out, const char *utf8name);
/* A mailbox argument from the wire as the UTF-8 name we store, INBOX canonicalised; false after a NO/BAD. */
bool imapd_arg_mailbox(struct imapd_session *sess, const struct imap_arg *a, struct buf *out);
/* After a successful login: become the mailbox owner (setgid/setuid when root; a non-root process can only
 * serve its own uid), bigger literal limits, SPECIAL-USE folders. false (login refused) when that fails. */
bool imapd_session_login(struct imapd_session *sess, struct imapd_login *login);
void imapd_login_clear(struct imapd_login *l);
void imapd_unselect(struct imapd_session *sess);
/* The capability list for the current state (without the leading "CAPABILITY"). */
void imapd_capabilities(struct imapd_session *sess, struct buf *out);

/* IMAP date-time "17-Jul-1996 02:44:25 -0700" (day may be " 7") -> seconds since the epoch (cmd_append.c). */
bool imapd_parse_date_time(const char *s, time_t *out);

#define IMAPD_HIER_SEP '/'
#define IMAPD_MAX_AUTH_FAILURES 3

#endif
