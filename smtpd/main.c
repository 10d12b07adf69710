/* smtpd: the SMTP receiver on ports 25, 587 and 465. A DAEMON_SINGLE program: the skeleton accepts, this file
 * turns the configuration into session settings once per process, and smtpd_session_run() serves each client. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "accounts_auth.h"
#include "alloc.h"
#include "daemon.h"
#include "dkim_signer.h"
#include "dns.h"
#include "log.h"
#include "psl.h"
#include "smtpd.h"
#include "tls.h"

static struct smtpd_settings settings;
static SSL_CTX *tls_ctx;
static struct dns_options dns_opts;
static struct dkim_signer *dkim_signer;

/* master.cf's tls column: none (STARTTLS still offered when smtpd_tls is on and a certificate loads, like
 * Postfix's "may"), starttls (offered; the certificate must load), implicit (TLS from the first byte).
 * smtpd_tls_required makes STARTTLS mandatory before mail. */
static enum smtpd_tls_mode tls_mode(struct daemon_ctx *ctx)
{
	if (ctx->tls == SVC_TLS_IMPLICIT)
		return SMTPD_TLS_IMPLICIT;
	return config_bool(ctx->cfg, "smtpd_tls_required") ? SMTPD_TLS_REQUIRE : SMTPD_TLS_OFFER;
}

/* DKIM keys are readable by root only (postern dkim keygen): every key the table names is loaded now, so the
 * process that signs holds them and no other daemon of mail_owner can read them. A key added later needs a
 * reload (new processes). A key that does not load leaves its domain unsigned, with a warning. */
static void dkim_pre_drop(struct daemon_ctx *ctx)
{
	struct buf err = BUF_INIT(4096);
	const char *keys = config_str(ctx->cfg, "dkim_keys");

	dkim_signer_free(&dkim_signer);
	if (!*keys)
		return;
	dkim_signer = dkim_signer_open(keys, &err);
	if (!dkim_signer)
		fatalx("dkim_keys: %s", buf_cstr(&err));
	if (dkim_signer_preload(dkim_signer, &err) < 0)
		log_warn("%s; mail from that domain goes unsigned", buf_cstr(&err));
	buf_free(&err);
}

/* The key may be readable only by root: load it before the privilege drop. */
static void smtpd_pre_drop(struct daemon_ctx *ctx)
{
	struct buf err = BUF_INIT(4096);
	bool needed = ctx->tls != SVC_TLS_NONE || tls_mode(ctx) != SMTPD_TLS_OFFER;

	dkim_pre_drop(ctx);
	if (!needed && !config_bool(ctx->cfg, "smtpd_tls"))
		return;
	tls_ctx = tls_server_ctx_new(config_str(ctx->cfg, "tls_cert_file"), config_str(ctx->cfg, "tls_key_file"), &err);
	if (!tls_ctx) {
		if (needed)
			fatalx("service %s needs TLS: %s", ctx->service ? ctx->service : "smtpd", buf_cstr(&err));
		log_warn("STARTTLS not offered: %s", buf_cstr(&err));
	}
	buf_free(&err);
}

static void smtpd_init(struct daemon_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	struct buf err = BUF_INIT(4096);
	struct smtpd_policy_conf pc;
	static char *qmgr_socket;

	memset(&settings, 0, sizeof(settings));
	settings.hostname = config_str(cfg, "myhostname");
	settings.banner = config_str(cfg, "smtpd_banner");
	settings.size_limit = config_size(cfg, "message_size_limit", 0, (uint64_t)1 << 40);
	settings.rcpt_limit = (size_t)config_int(cfg, "smtpd_recipient_limit", 1, QFILE_MAX_RCPTS);
	settings.timeout_ms = (int)config_time(cfg, "smtpd_timeout", 1, 3600) * 1000;
	settings.hard_error_limit = (unsigned)config_int(cfg, "smtpd_hard_error_limit", 1, 1000);
	settings.soft_error_limit = (unsigned)config_int(cfg, "smtpd_soft_error_limit", 0, 1000);
	settings.error_sleep_ms = (int)config_time(cfg, "smtpd_error_sleep_time", 0, 60) * 1000;
	settings.junk_limit = (unsigned)config_int(cfg, "smtpd_junk_command_limit", 1, 100000);
	settings.line_limit = (size_t)config_int(cfg, "smtpd_line_length_limit", 512, 1 << 20);
	settings.data_line_limit = (size_t)config_int(cfg, "smtpd_data_line_limit", 0, 1 << 30);
	settings.header_limit = (size_t)config_size(cfg, "smtpd_header_size_limit", 1024, 64 << 20);
	settings.tls_mode = tls_mode(ctx);
	settings.tls_ctx = tls_ctx;
	settings.auth_required = config_bool(cfg, "smtpd_auth_required");
	settings.auth_plaintext = config_bool(cfg, "smtpd_auth_plaintext");
	settings.submission_fixups = config_bool(cfg, "smtpd_submission_fixups");
	settings.bare_newline_reject = config_bool(cfg, "smtpd_forbid_bare_newline");
	settings.dsn = config_bool(cfg, "smtpd_dsn");
	settings.local_submission = config_bool(cfg, "smtpd_local_submission");
	if (settings.local_submission) {
		/* a local socket: the kernel already names the client, so TLS and AUTH add nothing and a global
		 * smtpd_tls_required or smtpd_auth_required must not lock sendmail out */
		settings.tls_mode = SMTPD_TLS_OFFER;
		settings.tls_ctx = NULL;
		settings.auth_required = false;
	}
	settings.queue_dir = config_str(cfg, "queue_directory");
	dns_options_from_config(cfg, &dns_opts);
	settings.dns = &dns_opts;
	settings.peername_lookup = config_bool(cfg, "smtpd_peername_lookup");
	settings.sender_auth = config_bool(cfg, "smtpd_sender_authentication");
	settings.dmarc_enforce = config_bool(cfg, "smtpd_dmarc_enforce");
	settings.spf_reject = config_bool(cfg, "smtpd_spf_reject");
	settings.authcheck_timeout_ms = (int)config_time(cfg, "smtpd_sender_auth_timeout", 1, 600) * 1000;
	static struct psl *psl;
	psl_free(&psl);
	if (settings.sender_auth) {
		const char *pslfile = config_str(cfg, "public_suffix_list");
		psl = psl_load(pslfile);
		if (!psl) {
			/* DMARC still works for domains directly under a top-level name */
			log_warn("public_suffix_list %s: %s; organisational domains will be guessed poorly", pslfile,
			         strerror(errno));
			psl = psl_parse("", 0);
		}
	}
	settings.psl = psl;
	settings.dkim = dkim_signer;
	settings.queue_minfree = config_size(cfg, "queue_minfree", 0, (uint64_t)1 << 50);
	/* Postfix's rule: without an explicit floor, keep room for 1.5 messages of the largest size */
	if (settings.queue_minfree == 0)
		settings.queue_minfree = settings.size_limit / 2 * 3;
	free(qmgr_socket);
	qmgr_socket = NULL;
	struct buf q = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&q, "%s/qmgr", config_str(cfg, "private_directory"));
	qmgr_socket = buf_steal(&q, NULL);
	settings.qmgr_socket = qmgr_socket;
	/* one slot file for every smtpd of the instance, opened once per process (connlimit.c) */
	settings.connlimit = (unsigned)config_int(cfg, "smtpd_client_connection_limit", 0, 65535);
	settings.connlimit_fd = -1;
	if (settings.connlimit) {
		struct buf c = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&c, "%s/smtpd-clients", config_str(cfg, "private_directory"));
		settings.connlimit_fd = smtpd_connlimit_open(buf_cstr(&c));
		buf_free(&c);
	}

	memset(&pc, 0, sizeof(pc));
	pc.mydestination = config_str(cfg, "mydestination");
	pc.virtual_domains = config_str(cfg, "virtual_mailbox_domains");
	pc.mynetworks = config_str(cfg, "mynetworks");
	pc.accounts_db = config_str(cfg, "accounts_database");
	pc.aliases = config_str(cfg, "alias_maps");
	pc.delimiters = config_str(cfg, "recipient_delimiter");
	pc.system_users = config_bool(cfg, "local_system_users");
	const char *maps[SMTPD_ACCESS_NSTAGES] = {
		[SMTPD_ACCESS_CLIENT] = config_str(cfg, "smtpd_client_access"),
		[SMTPD_ACCESS_HELO] = config_str(cfg, "smtpd_helo_access"),
		[SMTPD_ACCESS_SENDER] = config_str(cfg, "smtpd_sender_access"),
		[SMTPD_ACCESS_RECIPIENT] = config_str(cfg, "smtpd_recipient_access"),
	};
	bool any_map = false;
	for (int i = 0; i < SMTPD_ACCESS_NSTAGES; i++)
		any_map = any_map || *maps[i];
	smtpd_access_free(&settings.access);
	if (any_map)
		settings.access = smtpd_access_new(maps, pc.delimiters);
	settings.delay_reject = config_bool(cfg, "smtpd_delay_reject");
	settings.policy = smtpd_policy_new(&pc, &err);
	if (!settings.policy)
		fatalx("%s", buf_cstr(&err));
	buf_printf(&q, "%s/%s", config_str(cfg, "private_directory"), ACCOUNTS_AUTH_SOCKET);
	char *auth_socket = buf_steal(&q, NULL);
	/* auth holds back answers to failed logins (throttling): wait longer than it may */
	int64_t auth_delay = config_time(cfg, "auth_throttle_max_delay", 0, 3600);
	smtpd_auth_set_daemon(auth_socket, (int)(auth_delay + 15) * 1000);
	free(auth_socket);
	buf_free(&err);
}

static void smtpd_serve(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	(void)ctx;
	/* The session owns and closes its descriptor; the skeleton closes fd itself afterwards. */
	int own = dup(fd);
	if (own < 0) {
		log_error("dup: %s", strerror(errno));
		return;
	}
	smtpd_session_run(own, (const struct sockaddr *)&peer->addr, peer->addrlen, &settings);
}

int main(int argc, char **argv)
{
	static const struct daemon_ops ops = {
		.name = "smtpd",
		.mode = DAEMON_SINGLE,
		.pre_drop = smtpd_pre_drop,
		.init = smtpd_init,
		.serve = smtpd_serve,
	};
	return daemon_main(argc, argv, &ops);
}
