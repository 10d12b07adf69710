/* The auth daemon backend of pop3d: USER/PASS, AUTH PLAIN/LOGIN and APOP become VERIFY requests on the private
 * "auth" socket (accounts_auth.h); pop3d never reads the account database. An account with uid/gid 0 belongs to
 * the shared virtual-mail user, mail_owner. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_auth.h"
#include "alloc.h"
#include "log.h"
#include "pop3_auth.h"
#include "prelogin.h"

static enum pop3_auth_result ask(struct pop3_authd *ad, const struct accounts_auth_request *rq, struct pop3_user *out)
{
	struct accounts_user u;
	struct buf err = BUF_INIT(4096);
	enum accounts_auth_status st;
	enum pop3_auth_result r = POP3_AUTH_FAIL;

	memset(&u, 0, sizeof(u));
	st = accounts_auth_verify(ad->socket_path, rq, ad->timeout_ms, &u, &err);
	switch (st) {
	case ACCOUNTS_AUTH_OK:
		if (!u.address || !u.maildir || !u.maildir[0]) {
			log_error("auth: answer without address or Maildir for %s", log_safe(rq->user, strlen(rq->user), 100));
			r = POP3_AUTH_TEMPFAIL;
			break;
		}
		out->name = xstrdup(u.address);
		out->maildir = xstrdup(u.maildir);
		out->token = u.login_token ? xstrdup(u.login_token) : NULL;
		out->have_ids = u.uid != 0 || ad->have_mail_owner;
		out->uid = u.uid ? (uid_t)u.uid : ad->mail_uid;
		out->gid = u.uid ? (gid_t)u.gid : ad->mail_gid;
		r = POP3_AUTH_OK;
		break;
	case ACCOUNTS_AUTH_TEMPFAIL:
		log_error("auth: %s", buf_cstr(&err));
		r = POP3_AUTH_TEMPFAIL;
		break;
	case ACCOUNTS_AUTH_FAIL:
	case ACCOUNTS_AUTH_NOTFOUND:
		if (err.len)
			log_debug("auth: %s", buf_cstr(&err));
		break;
	}
	accounts_user_free(&u);
	buf_free(&err);
	return r;
}

static enum pop3_auth_result authd_plain(void *ctx, const struct pop3_auth_client *cl, const char *user,
                                         const char *pass, struct pop3_user *out)
{
	struct accounts_auth_request rq = { .mech = "PASSWORD", .user = user, .password = pass, .rip = cl->rip,
		                            .encrypted = cl->encrypted, .loopback = cl->loopback,
		                            .plaintext_ok = cl->plaintext_ok, .want_token = prelogin_active(),
		                            .service = "pop3d" };
	return ask(ctx, &rq, out);
}

static enum pop3_auth_result authd_apop(void *ctx, const struct pop3_auth_client *cl, const char *user,
                                        const char *timestamp, const char *digest, struct pop3_user *out)
{
	struct accounts_auth_request rq = { .mech = "APOP", .user = user, .rip = cl->rip, .encrypted = cl->encrypted,
		                            .loopback = cl->loopback, .want_token = prelogin_active(),
		                            .service = "pop3d", .apop_ts = timestamp,
		                            .apop_digest = digest };
	return ask(ctx, &rq, out);
}

void pop3_authd_init(struct pop3_authd *ad, const char *private_dir, const char *mail_owner, int timeout_ms)
{
	struct passwd *pw = getpwnam(mail_owner);

	memset(ad, 0, sizeof(*ad));
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&p, "%s/%s", private_dir, ACCOUNTS_AUTH_SOCKET);
	ad->socket_path = buf_steal(&p, NULL);
	ad->timeout_ms = timeout_ms;
	if (pw) {
		ad->have_mail_owner = true;
		ad->mail_uid = pw->pw_uid;
		ad->mail_gid = pw->pw_gid;
	}
}

void pop3_authd_ops(struct pop3_authd *ad, struct pop3_auth_ops *ops)
{
	ops->plain = authd_plain;
	ops->apop = authd_apop;
	ops->ctx = ad;
}
