/* The auth daemon's protocol (on the private socket "auth", common IPC format) and its clients' side: smtpd,
 * pop3d and imapd ask it to verify credentials, local delivery and the mailbox servers ask it where an account's
 * Maildir is. Only the auth daemon reads password hashes; answers never carry one. */
#ifndef POSTERN_ACCOUNTS_AUTH_H
#define POSTERN_ACCOUNTS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "accounts.h"
#include "buf.h"
#include "ipc.h"

#define ACCOUNTS_AUTH_SOCKET "auth"	/* name under private_directory */

/* Message types */
#define ACCOUNTS_AUTH_VERIFY 0x0a01u	/* check credentials */
#define ACCOUNTS_AUTH_LOOKUP 0x0a02u	/* where and as whom to deliver / open the mailbox */
#define ACCOUNTS_AUTH_REDEEM 0x0a03u	/* root only: the account a VERIFY's login token stands for, once */
#define ACCOUNTS_AUTH_RESULT 0x0a81u	/* the reply to all three */

/* Fields of VERIFY (MECH and RIP required) and LOOKUP (USER required) */
#define ACCOUNTS_AUTH_TAG_MECH 1	/* str: PLAIN (DATA, or USER+PASSWORD), LOGIN or PASSWORD (USER+PASSWORD),
					 * APOP (USER+APOP_TS+APOP_DIGEST) */
#define ACCOUNTS_AUTH_TAG_USER 2	/* str */
#define ACCOUNTS_AUTH_TAG_PASSWORD 3	/* str */
#define ACCOUNTS_AUTH_TAG_DATA 4	/* bytes: decoded PLAIN message authzid NUL authcid NUL passwd */
#define ACCOUNTS_AUTH_TAG_RIP 5		/* str: client IP, for throttling and the log */
#define ACCOUNTS_AUTH_TAG_FLAGS 6	/* u32: ACCOUNTS_AUTH_F_* */
#define ACCOUNTS_AUTH_TAG_SERVICE 7	/* str: smtpd, pop3d, imapd (for the log) */
#define ACCOUNTS_AUTH_TAG_APOP_TS 8	/* str: the <...> timestamp of the POP3 banner */
#define ACCOUNTS_AUTH_TAG_APOP_DIGEST 9	/* str: 32 hex digits */
/* Fields of RESULT (STATUS required; the account fields come with STATUS OK, and for LOOKUP) */
#define ACCOUNTS_AUTH_TAG_STATUS 20	/* u32: enum accounts_auth_status */
#define ACCOUNTS_AUTH_TAG_ADDRESS 21	/* str: the canonical account name to use from now on */
#define ACCOUNTS_AUTH_TAG_MAILDIR 22	/* str */
#define ACCOUNTS_AUTH_TAG_UID 23	/* u32 (0: the virtual-mail user, mail_owner) */
#define ACCOUNTS_AUTH_TAG_GID 24	/* u32 */
#define ACCOUNTS_AUTH_TAG_QUOTA 25	/* u64 bytes, 0 = none */
#define ACCOUNTS_AUTH_TAG_ENABLED 26	/* u32 0/1 (LOOKUP: a disabled account may still exist) */
#define ACCOUNTS_AUTH_TAG_REASON 27	/* str: why it failed, for the asking daemon's log only, never the client */
/* str: in RESULT of a successful VERIFY, and the one field of REDEEM. The root side of a privilege-separated
 * login (prelogin.h) redeems the token the unprivileged login process got, so that process cannot name an account
 * it did not log in to. Valid ACCOUNTS_AUTH_TOKEN_TTL seconds, once. */
#define ACCOUNTS_AUTH_TAG_TOKEN 28
#define ACCOUNTS_AUTH_TOKEN_TTL 60

#define ACCOUNTS_AUTH_F_ENCRYPTED 0x01u	/* the client connection is TLS */
#define ACCOUNTS_AUTH_F_LOOPBACK 0x02u	/* the client connection comes from 127.0.0.0/8 or ::1 */
/* The asking service's own policy allows plaintext passwords on this unencrypted connection (smtpd_auth_plaintext,
 * pop3d_plaintext_login, imapd_plaintext_login): the policy is per protocol, so the service states it and auth
 * only refuses a plaintext password when none of these three flags is set. */
#define ACCOUNTS_AUTH_F_PLAINTEXT_OK 0x04u
/* A pre-login process asks: answer a success with a login token (ACCOUNTS_AUTH_TAG_TOKEN) */
#define ACCOUNTS_AUTH_F_WANT_TOKEN 0x08u

enum accounts_auth_status {
	ACCOUNTS_AUTH_OK = 0,
	ACCOUNTS_AUTH_FAIL = 1,		/* wrong credentials, unknown or disabled account, refused mechanism */
	ACCOUNTS_AUTH_TEMPFAIL = 2,	/* auth could not decide (database trouble, daemon unreachable): try later */
	ACCOUNTS_AUTH_NOTFOUND = 3,	/* LOOKUP: no such account */
};

/* The protocol table every party decodes with. */
extern const struct ipc_proto accounts_auth_proto;

struct accounts_auth_request {
	const char *mech;		/* "PLAIN", "LOGIN", "PASSWORD" (USER/PASS, IMAP LOGIN) or "APOP" */
	const char *user, *password;
	const void *data;		/* PLAIN: the decoded message instead of user/password */
	size_t datalen;
	const char *rip;
	bool encrypted, loopback;
	bool plaintext_ok;		/* ACCOUNTS_AUTH_F_PLAINTEXT_OK */
	bool want_token;		/* ACCOUNTS_AUTH_F_WANT_TOKEN */
	const char *service;
	const char *apop_ts, *apop_digest;
};

/* Message builders and the reply parser, for event-driven clients (ipc_client_request). */
struct ipc_msg *accounts_auth_verify_msg(const struct accounts_auth_request *rq);
struct ipc_msg *accounts_auth_lookup_msg(const char *address);
/* Reads a RESULT (or an IPC error, which is TEMPFAIL). On OK (and for LOOKUP's account fields) out gets
 * address, maildir, uid, gid, quota, enabled; password_hash stays NULL. reason (may be NULL) gets REASON. */
enum accounts_auth_status accounts_auth_parse_result(const struct ipc_msg *reply, struct accounts_user *out,
                                                     struct buf *reason);

/* Blocking calls for one-connection-per-client daemons: connect to socket_path, ask, wait up to timeout_ms.
 * Verification answers are delayed by throttling (up to auth_throttle_max_delay), so give a timeout above it.
 * Connection or protocol trouble is ACCOUNTS_AUTH_TEMPFAIL with the reason in err. */
enum accounts_auth_status accounts_auth_verify(const char *socket_path, const struct accounts_auth_request *rq,
                                               int timeout_ms, struct accounts_user *out, struct buf *err);
enum accounts_auth_status accounts_auth_lookup(const char *socket_path, const char *address, int timeout_ms,
                                               struct accounts_user *out, struct buf *err);
/* REDEEM (as root): the account of a login token; ACCOUNTS_AUTH_NOTFOUND when unknown, used or expired. */
enum accounts_auth_status accounts_auth_redeem(const char *socket_path, const char *token, int timeout_ms,
                                               struct accounts_user *out, struct buf *err);

#endif
