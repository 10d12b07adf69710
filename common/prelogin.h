/* Privilege-separated login for the mailbox servers (pop3d, imapd) when their service runs as root, so that system
 * users can read their own mail: the root process that accepted a connection forks a pre-login child that drops to
 * the unprivileged login user (mail_owner) and does everything with untrusted input before a login (TLS, commands,
 * SASL, the password check through auth). When a login succeeds the child hands it to the root parent: account,
 * input the client already pipelined, and the session state (IMAP: the tag to answer). The parent switches to the
 * account's uid and serves the mailbox. A plaintext connection is served by the parent directly once the child has
 * exited; for TLS the child stays, still unprivileged, as a proxy between the TLS connection and a socketpair the
 * parent serves (the keys and TLS state never reach a process running as a mail user). Services that run as a
 * non-root user do none of this: they log in in-process (virtual accounts, one uid). */
#ifndef POSTERN_PRELOGIN_H
#define POSTERN_PRELOGIN_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "daemon.h"
#include "stream.h"

/* What a login child hands over. */
struct prelogin_login {
	char *user;		/* canonical account name */
	char *maildir;
	uid_t uid;		/* the mailbox owner to switch to (never 0) */
	gid_t gid;
	char *tag;		/* IMAP: tag of the LOGIN/AUTHENTICATE command to answer; NULL for POP3 */
	char *token;		/* auth's login token for this login, redeemed by the root side */
	struct buf input;	/* bytes the client sent after the login command */
	bool tls;		/* the client connection is TLS, and fd is the login process's proxy socket */
	int fd;			/* what the post-login process serves: the client connection or the proxy socket */
};

/* Called in the login child (already unprivileged) with the client connection (a dup it owns). It ends by calling
 * prelogin_handoff() after a successful login, or by returning when the client went away without one. */
typedef void prelogin_fn(int fd, void *arg);

/* In the root process that accepted client_fd. Runs fn in a login child dropped to login_user, then waits.
 * true with *out filled (out->fd owned by the caller) when a login was handed over; false when the client left
 * without one (the child has exited; this process is still root and may serve the next client). */
bool prelogin_run(struct daemon_ctx *ctx, int client_fd, const char *login_user, prelogin_fn *fn, void *arg,
                  struct prelogin_login *out);

/* Whether this process can log clients in with privilege separation: it runs as root, and login_user exists and
 * is not root (an instance whose mail_owner is root has nobody to parse input as: it logs in in-process). */
bool prelogin_possible(const char *login_user);

/* True in a login child: a session then hands a login over instead of switching users itself. */
bool prelogin_active(void);

/* In the login child: send l (user, maildir, ids, tag) and s's unread input to the parent, and end this process:
 * at once without TLS, or after proxying the TLS connection until either side closes. Never returns; a failure
 * to hand over is fatal to the child (the parent then sees no login and the client a closed connection). */
void prelogin_handoff(struct stream *s, const struct prelogin_login *l) __attribute__((__noreturn__));

/* In the root parent, before switching: redeem the child's login token with auth (REDEEM on auth_socket) and take
 * the account, its Maildir and owner from that answer rather than from the child (uid 0 there is mail_owner). A
 * pre-login process that was taken over can then only hand over a login auth really granted it, never another
 * account, uid or path. false with the reason in err. */
bool prelogin_confirm(struct prelogin_login *l, const char *auth_socket, const char *mail_owner, int timeout_ms,
                      struct buf *err);

/* In the post-login process: become the mailbox owner (supplementary groups: its gid only). Fatal on any failure,
 * including a uid of 0 or a root that could be regained. */
void prelogin_become(uid_t uid, gid_t gid);

void prelogin_login_init(struct prelogin_login *l);
void prelogin_login_clear(struct prelogin_login *l);

/* The handover frame on its own, for tests and the fuzzer: decode one frame as the root parent does (with_fd:
 * whether a descriptor came with it) with every check applied; encode l's fields (not fd) as a child would. */
bool prelogin_decode(const void *frame, size_t len, bool with_fd, struct prelogin_login *out, struct buf *err);
bool prelogin_encode(const struct prelogin_login *l, bool tls, struct buf *out);

#endif
