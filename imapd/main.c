/* imapd: the IMAP4rev1 server, one client per process on the daemon skeleton (master.cf services imap on 143
 * with STARTTLS and imaps on 993 with implicit TLS). The session logic is in session.c; this file wires the
 * skeleton, configuration, TLS keys and the password check (the auth daemon) together. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pwd.h>

#include "accounts_auth.h"
#include "alloc.h"
#include "config.h"
#include "daemon.h"
#include "imapd.h"
#include "log.h"
#include "prelogin.h"
#include "tls.h"

static struct imapd_settings settings;
static bool privsep;	/* root service: logins in an unprivileged child (prelogin.h) */

static bool peer_is_loopback(const struct daemon_peer *peer)
{
	const struct sockaddr *sa = (const struct sockaddr *)&peer->addr;

	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return sa->sa_family == AF_UNIX;
}

struct imapd_conn {
	struct config *cfg;
	char *socket;		/* the auth daemon's socket */
	int timeout_ms;
	const char *rip;
	bool plaintext_ok;	/* imapd_plaintext_login: auth is told the service allows it */
};
static struct imapd_conn conn;

/* The auth daemon decides; imapd never sees a password hash. uid 0 in its answer means the shared virtual-mail
 * user (mail_owner), which is what this process already runs as after the skeleton's privilege drop. */
static bool auth_daemon(void *ctx, const char *user, const char *pass, bool encrypted, bool loopback,
			struct imapd_login *out, bool *tempfail)
{
	struct imapd_conn *c = ctx;
	struct accounts_auth_request rq = {
		.mech = "PASSWORD", .user = user, .password = pass, .rip = c->rip, .encrypted = encrypted,
		.loopback = loopback, .plaintext_ok = c->plaintext_ok, .want_token = prelogin_active(), .service = "imapd",
	};
	struct accounts_user u = { 0 };
	struct buf err = BUF_INIT(1024);
	enum accounts_auth_status st = accounts_auth_verify(c->socket, &rq, c->timeout_ms, &u, &err);
	bool ok = false;

	if (st == ACCOUNTS_AUTH_TEMPFAIL) {
		log_warn("imapd: auth: %s", buf_cstr(&err));
		*tempfail = true;
	} else if (st == ACCOUNTS_AUTH_OK && u.address && u.maildir) {
		out->user = xstrdup(u.address);
		out->maildir = xstrdup(u.maildir);
		out->token = u.login_token ? xstrdup(u.login_token) : NULL;
		for (size_t n = strlen(out->maildir); n > 1 && out->maildir[n - 1] == '/'; n--)
			out->maildir[n - 1] = '\0';
		out->uid = u.uid;
		out->gid = u.gid;
		out->quota = u.quota;
		if (u.uid == 0 && u.gid == 0) {
			struct passwd *pw = geteuid() == 0 ? getpwnam(config_str(c->cfg, "mail_owner")) : NULL;
			out->uid = pw ? pw->pw_uid : geteuid();
			out->gid = pw ? pw->pw_gid : getegid();
		}
		ok = true;
	}
	accounts_user_free(&u);
	buf_free(&err);
	return ok;
}

static void imapd_pre_drop(struct daemon_ctx *ctx)
{
	struct buf err = BUF_INIT(1024);

	/* the key is readable only before the privilege drop */
	if (ctx->tls == SVC_TLS_IMPLICIT) {
		settings.tls_ctx = tls_server_ctx_new(config_str(ctx->cfg, "tls_cert_file"),
						      config_str(ctx->cfg, "tls_key_file"), &err);
		if (!settings.tls_ctx)
			fatalx("imapd: service %s: %s", ctx->service, buf_cstr(&err));
	} else if (ctx->tls != SVC_TLS_NONE) {
		/* most sessions on the STARTTLS port never use TLS (local clients): OpenSSL's set-up, a good part of
		 * an idle session's memory, waits for the first STARTTLS */
		settings.tls_pem = tls_pem_load(config_str(ctx->cfg, "tls_cert_file"),
						config_str(ctx->cfg, "tls_key_file"), &err);
		if (!settings.tls_pem)
			fatalx("imapd: service %s: %s", ctx->service, buf_cstr(&err));
	}
	buf_free(&err);
}

static void imapd_init(struct daemon_ctx *ctx)
{
	struct config *cfg = ctx->cfg;

	settings.implicit_tls = ctx->tls == SVC_TLS_IMPLICIT;
	settings.plaintext_login = config_bool(cfg, "imapd_plaintext_login");
	settings.max_line = (size_t)config_size(cfg, "imapd_max_line_length", 1024, 16u * 1024 * 1024);
	settings.max_literal = (size_t)config_size(cfg, "imapd_append_limit", 1024, (uint64_t)1 << 32);
	settings.max_literal_preauth = (size_t)config_size(cfg, "imapd_preauth_literal_limit", 256, 1024 * 1024);
	settings.timeout_ms = (int)config_time(cfg, "imapd_timeout", 1, 86400) * 1000;
	settings.preauth_timeout_ms = (int)config_time(cfg, "imapd_preauth_timeout", 1, 86400) * 1000;
	settings.max_bad = (int)config_int(cfg, "imapd_max_bad_commands", 1, 100000);
	conn.cfg = cfg;
	conn.plaintext_ok = settings.plaintext_login;
	struct buf sock = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&sock, "%s/%s", config_str(cfg, "private_directory"), ACCOUNTS_AUTH_SOCKET);
	conn.socket = buf_steal(&sock, NULL);
	/* the auth daemon delays answers to throttle guessing: wait longer than its longest delay */
	conn.timeout_ms = (int)(config_time(cfg, "auth_throttle_max_delay", 0, 3600) + 15) * 1000;
	settings.auth = auth_daemon;
	settings.auth_ctx = &conn;
	privsep = prelogin_possible(config_str(cfg, "mail_owner"));
}

/* The pre-login child's whole life: the session up to a login, which it hands to the root parent. */
static void prelogin_session(int fd, void *arg)
{
	const struct daemon_peer *peer = arg;
	struct imapd_session sess;

	imapd_session_init(&sess, &settings, fd, peer_is_loopback(peer));
	imapd_session_run(&sess);
	imapd_session_free(&sess);
}

/* The service runs as root (system users): nothing the client sends is parsed as root (prelogin.h). */
static void serve_privsep(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	struct prelogin_login l;
	struct imapd_login login;
	struct imapd_session sess;

	if (!prelogin_run(ctx, fd, config_str(ctx->cfg, "mail_owner"), prelogin_session, (void *)peer, &l))
		return;
	if (l.tag == NULL) {
		log_error("imapd: login handover without a command tag");
		prelogin_login_clear(&l);
		exit(0);
	}
	struct buf err = BUF_INIT(1024);
	if (!prelogin_confirm(&l, conn.socket, config_str(ctx->cfg, "mail_owner"), conn.timeout_ms, &err)) {
		log_error("imapd: login of %s refused: %s", log_safe(l.user, strlen(l.user), 100), buf_cstr(&err));
		prelogin_login_clear(&l);
		buf_free(&err);
		exit(0);	/* the client heard nothing after its login command: hang up */
	}
	buf_free(&err);
	/* TLS stays in the login process: the private key must not live on in a process run by a mail user */
	SSL_CTX_free(settings.tls_ctx);
	settings.tls_ctx = NULL;
	tls_pem_free(&settings.tls_pem);
	for (size_t n = strlen(l.maildir); n > 1 && l.maildir[n - 1] == '/'; n--)
		l.maildir[n - 1] = '\0';
	imapd_session_init(&sess, &settings, l.fd, peer_is_loopback(peer));
	l.fd = -1;
	stream_push_input(sess.s, l.input.data, l.input.len);
	login = (struct imapd_login){ .user = l.user, .maildir = l.maildir, .uid = l.uid, .gid = l.gid };
	l.user = l.maildir = NULL;
	imapd_session_resume(&sess, &login, l.tag);
	imapd_login_clear(&login);
	imapd_session_free(&sess);
	prelogin_login_clear(&l);
	exit(0);	/* this process ran as the mailbox owner */
}

static void imapd_serve(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	struct imapd_session sess;
	int sfd;

	log_info("imapd: connect from %s port %u", peer->addr_text, peer->port);
	conn.rip = peer->addr_text;
	if (privsep) {
		serve_privsep(fd, peer, ctx);
		return;
	}
	sfd = dup(fd);	/* the stream closes its own descriptor; the skeleton closes fd */
	if (sfd < 0) {
		log_error("imapd: dup: %m");
		return;
	}
	imapd_session_init(&sess, &settings, sfd, peer_is_loopback(peer));
	imapd_session_run(&sess);
	bool logged_in = sess.login.user != NULL;
	imapd_session_free(&sess);
	/* a process that ran as a mailbox owner is never reused for another client */
	if (logged_in)
		exit(0);
}

int main(int argc, char **argv)
{
	static const struct daemon_ops ops = {
		.name = "imapd",
		.mode = DAEMON_SINGLE,
		.pre_drop = imapd_pre_drop,
		.init = imapd_init,
		.serve = imapd_serve,
	};
	return daemon_main(argc, argv, &ops);
}
