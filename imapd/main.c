/* imapd: the IMAP4rev1 server, one client per process on the daemon skeleton (master.cf services imap on 143
 * with STARTTLS and imaps on 993 with implicit TLS). The session logic is in session.c; this file wires the
 * skeleton, configuration, TLS keys and the password check together. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "daemon.h"
#include "imapd.h"
#include "log.h"
#include "tls.h"

static struct imapd_settings settings;

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

/* Until the auth daemon's client is wired in, no password is accepted: LOGIN answers [UNAVAILABLE]. */
static bool no_auth(void *ctx, const char *user, const char *pass, struct imapd_login *out, bool *tempfail)
{
	(void)ctx;
	(void)user;
	(void)pass;
	(void)out;
	*tempfail = true;
	return false;
}

static void imapd_pre_drop(struct daemon_ctx *ctx)
{
	struct buf err = BUF_INIT(1024);

	/* the key is readable only before the privilege drop */
	if (ctx->tls != SVC_TLS_NONE) {
		settings.tls_ctx = tls_server_ctx_new(config_str(ctx->cfg, "tls_cert_file"),
						      config_str(ctx->cfg, "tls_key_file"), &err);
		if (!settings.tls_ctx)
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
	settings.max_bad = (int)config_int(cfg, "imapd_max_bad_commands", 1, 100000);
	settings.auth = no_auth;
	settings.auth_ctx = NULL;
}

static void imapd_serve(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	struct imapd_session sess;
	int sfd = dup(fd);	/* the stream closes its own descriptor; the skeleton closes fd */

	(void)ctx;
	if (sfd < 0) {
		log_error("imapd: dup: %m");
		return;
	}
	log_info("imapd: connect from %s port %u", peer->addr_text, peer->port);
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
