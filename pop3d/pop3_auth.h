/* How pop3d checks credentials: a small interface the session calls for USER/PASS, AUTH and APOP, so the
 * session does not care who answers. The real backend is the auth daemon (pop3_authd.c); a password file
 * (pop3d_test_passwd_file) is a backend for tests. */
#ifndef POSTERN_POP3_AUTH_H
#define POSTERN_POP3_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

enum pop3_auth_result { POP3_AUTH_OK, POP3_AUTH_FAIL, POP3_AUTH_TEMPFAIL };

/* What a successful login yields: the mailbox and, when known, its owner to switch to. */
struct pop3_user {
	char *name;
	char *maildir;
	char *token;	/* auth's login token, asked for in a pre-login process (prelogin.h) */
	bool have_ids;
	uid_t uid;
	gid_t gid;
};
void pop3_user_clear(struct pop3_user *u);

/* The connection a login comes from: the auth daemon throttles by address and logs it. */
struct pop3_auth_client {
	const char *rip;
	bool encrypted, loopback;
	bool plaintext_ok;	/* pop3d_plaintext_login */
};

struct pop3_auth_ops {
	enum pop3_auth_result (*plain)(void *ctx, const struct pop3_auth_client *cl, const char *user, const char *pass,
	                               struct pop3_user *out);
	/* timestamp is the greeting's <...> with brackets; digest the client's hex MD5. */
	enum pop3_auth_result (*apop)(void *ctx, const struct pop3_auth_client *cl, const char *user,
	                              const char *timestamp, const char *digest, struct pop3_user *out);
	void *ctx;
};

/* File backend (for tests): lines "user:password:maildir[:uid:gid]",
 * '#' comments; a relative maildir is taken under maildir_base. The file is read at each login. */
struct pop3_authfile {
	char *path;
	char *maildir_base;
};
void pop3_authfile_ops(struct pop3_authfile *af, struct pop3_auth_ops *ops);

/* Auth daemon backend: VERIFY requests on private_dir/auth. Accounts with uid 0 are read as mail_owner. */
struct pop3_authd {
	char *socket_path;
	int timeout_ms;
	bool have_mail_owner;
	uid_t mail_uid;
	gid_t mail_gid;
};
void pop3_authd_init(struct pop3_authd *ad, const char *private_dir, const char *mail_owner, int timeout_ms);
void pop3_authd_ops(struct pop3_authd *ad, struct pop3_auth_ops *ops);

#endif
