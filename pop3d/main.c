/* pop3d: POP3 on 110 (STLS) and 995 (implicit TLS), one client at a time per process, run by master through the
 * daemon skeleton (master.cf services "pop3" and "pop3s"; -t starttls or implicit). The TLS key is loaded before
 * the privilege drop. Logins go to the auth daemon (or, in tests, to pop3d_test_passwd_file). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "pop3_session.h"
#include "prelogin.h"
#include "tls.h"

static struct pop3_opts opts;
static struct pop3_authfile authfile;
static struct pop3_authd authd;
static struct pop3_auth_ops auth_ops;
static bool privsep;	/* root service: logins in an unprivileged child (prelogin.h) */

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* Still root: the private key may be readable by root only. */
static void pop3d_pre_drop(struct daemon_ctx *ctx)
{
	struct buf err = BUF_INIT(4096);

	if (ctx->tls == SVC_TLS_NONE)
		return;
	opts.tls = tls_server_ctx_new(config_str(ctx->cfg, "tls_cert_file"), config_str(ctx->cfg, "tls_key_file"), &err);
	if (!opts.tls)
		fatalx("service %s: TLS: %s", ctx->service, buf_cstr(&err));
	buf_free(&err);
}

static void pop3d_init(struct daemon_ctx *ctx)
{
	opts.hostname = config_str(ctx->cfg, "myhostname");
	opts.apop = config_bool(ctx->cfg, "pop3d_apop");
	opts.plaintext_anywhere = config_bool(ctx->cfg, "pop3d_plaintext_login");
	opts.max_bad = (unsigned)config_int(ctx->cfg, "pop3d_max_bad_commands", 1, 1000);
	opts.timeout_ms = (int)config_time(ctx->cfg, "pop3d_timeout", 1, 86400) * 1000;
	opts.implicit_tls = ctx->tls == SVC_TLS_IMPLICIT;
	opts.drop_privs = true;
	const char *pwfile = config_str(ctx->cfg, "pop3d_test_passwd_file");
	if (pwfile[0]) {
		authfile.path = xstrdup(pwfile);
		authfile.maildir_base = xstrdup(config_str(ctx->cfg, "mail_directory"));
		pop3_authfile_ops(&authfile, &auth_ops);
		log_warn("logins are checked against %s (a backend for tests, not the auth daemon)", authfile.path);
	} else {
		/* throttled answers come late: wait longer than the longest delay */
		int64_t delay = config_time(ctx->cfg, "auth_throttle_max_delay", 0, 3600);
		pop3_authd_init(&authd, config_str(ctx->cfg, "private_directory"), config_str(ctx->cfg, "mail_owner"),
		                (int)(delay + 15) * 1000);
		pop3_authd_ops(&authd, &auth_ops);
	}
	opts.auth = &auth_ops;
	/* the password-file backend is for tests and may be unreadable to mail_owner: it keeps the old way */
	privsep = authfile.path == NULL && prelogin_possible(config_str(ctx->cfg, "mail_owner"));
}

/* The pre-login child's whole life: the session up to a login, which it hands to the root parent. */
static void prelogin_session(int fd, void *arg)
{
	const struct daemon_peer *peer = arg;

	pop3_session_run(stream_new(fd), &opts, is_loopback(&peer->addr), peer->addr_text);
}

/* The service runs as root (system users): nothing the client sends is parsed as root (prelogin.h). */
static void serve_privsep(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	struct prelogin_login l;
	struct buf err = BUF_INIT(1024);
	struct pop3_user u;
	struct stream *s;

	if (!prelogin_run(ctx, fd, config_str(ctx->cfg, "mail_owner"), prelogin_session, (void *)peer, &l))
		return;
	if (!prelogin_confirm(&l, authd.socket_path, config_str(ctx->cfg, "mail_owner"), authd.timeout_ms, &err)) {
		log_error("login of %s refused: %s", log_safe(l.user, strlen(l.user), 100), buf_cstr(&err));
		prelogin_login_clear(&l);
		buf_free(&err);
		exit(0);	/* the client heard nothing after its login command: hang up */
	}
	buf_free(&err);
	/* TLS stays in the login process: the private key must not live on in a process run by a mail user */
	SSL_CTX_free(opts.tls);
	opts.tls = NULL;
	u = (struct pop3_user){ .name = l.user, .maildir = l.maildir, .have_ids = true, .uid = l.uid, .gid = l.gid };
	l.user = l.maildir = NULL;
	s = stream_new(l.fd);
	l.fd = -1;
	stream_push_input(s, l.input.data, l.input.len);
	pop3_session_resume(s, &opts, is_loopback(&peer->addr), peer->addr_text, &u, l.tls);
	prelogin_login_clear(&l);
	exit(0);	/* this process ran as the mailbox owner */
}

static void pop3d_serve(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	uid_t before = geteuid();
	int own;

	if (privsep) {
		serve_privsep(fd, peer, ctx);
		return;
	}
	own = dup(fd);	/* the stream owns (and closes) its fd; the skeleton closes fd */
	if (own < 0) {
		log_error("dup: %m");
		return;
	}
	pop3_session_run(stream_new(own), &opts, is_loopback(&peer->addr), peer->addr_text);
	/* A process that switched to a mailbox owner must not serve the next client. */
	if (geteuid() != before)
		exit(0);
}

int main(int argc, char **argv)
{
	static const struct daemon_ops ops = {
		.name = "pop3d",
		.mode = DAEMON_SINGLE,
		.pre_drop = pop3d_pre_drop,
		.init = pop3d_init,
		.serve = pop3d_serve,
	};
	return daemon_main(argc, argv, &ops);
}
