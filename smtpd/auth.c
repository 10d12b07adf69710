/* SMTP AUTH (RFC 4954): runs the SASL exchange from common/sasl.c on the session's stream and checks the
 * credentials it yields. PLAIN and LOGIN send the password recoverably, so they are offered only over TLS, to
 * loopback clients, or where smtpd_auth_plaintext says so. The credentials go to the auth daemon, the only reader
 * of password hashes (common/accounts_auth.h); the check is a function pointer so tests can put a fake there. */
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "accounts_auth.h"
#include "alloc.h"
#include "log.h"
#include "sasl.h"
#include "smtpd.h"
#include "str.h"

enum smtpd_verdict (*smtpd_auth_check)(const struct smtpd_auth_req *rq, struct buf *user) = smtpd_auth_check_daemon;

static char *auth_socket;
static int auth_timeout_ms = 60000;

void smtpd_auth_set_daemon(const char *socket_path, int timeout_ms)
{
	free(auth_socket);
	auth_socket = socket_path ? xstrdup(socket_path) : NULL;
	auth_timeout_ms = timeout_ms;
}

enum smtpd_verdict smtpd_auth_check_daemon(const struct smtpd_auth_req *rq, struct buf *user)
{
	struct accounts_auth_request ar;
	struct accounts_user u;
	struct buf err = BUF_INIT(1024);
	enum smtpd_verdict v = SMTPD_TEMPFAIL;

	if (!auth_socket) {
		log_error("no auth daemon configured");
		return SMTPD_TEMPFAIL;
	}
	memset(&ar, 0, sizeof(ar));
	ar.mech = rq->mech;
	ar.user = rq->authcid;
	ar.password = rq->passwd;
	ar.rip = rq->rip;
	ar.encrypted = rq->encrypted;
	ar.loopback = rq->loopback;
	ar.plaintext_ok = rq->plaintext_ok;
	ar.service = "smtpd";
	memset(&u, 0, sizeof(u));
	switch (accounts_auth_verify(auth_socket, &ar, auth_timeout_ms, &u, &err)) {
	case ACCOUNTS_AUTH_OK:
		buf_puts(user, u.address ? u.address : rq->authcid);
		v = SMTPD_OK;
		break;
	case ACCOUNTS_AUTH_FAIL:
	case ACCOUNTS_AUTH_NOTFOUND:
		v = SMTPD_REJECT;
		break;
	default:
		log_error("auth daemon %s: %s", auth_socket, buf_cstr(&err));
		break;
	}
	accounts_user_free(&u);
	buf_free(&err);
	return v;
}

static bool encrypted_or_local(const struct smtpd_session *ss, bool *encrypted, bool *local)
{
	*encrypted = stream_is_tls(ss->s);
	*local = ss->loopback || ss->set->auth_plaintext;
	return *encrypted || *local;
}

bool smtpd_auth_offered(const struct smtpd_session *ss)
{
	bool enc, local;

	if (ss->auth_user)
		return false;
	if (!encrypted_or_local(ss, &enc, &local))
		return false;
	struct buf b = BUF_INIT(256);
	sasl_mech_list(&b, enc, local);
	bool any = b.len > 0;
	buf_free(&b);
	return any;
}

void smtpd_auth_mechs(const struct smtpd_session *ss, struct buf *out)
{
	bool enc, local;

	struct buf b = BUF_INIT(256);

	encrypted_or_local(ss, &enc, &local);
	sasl_mech_list(&b, enc, local);	/* it resets its buffer: build apart, then append */
	buf_append(out, b.data, b.len);
	buf_free(&b);
}

void smtpd_cmd_auth(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	struct sasl_session sasl;
	struct buf challenge = BUF_INIT(4096), err = BUF_INIT(1024), user = BUF_INIT(SASL_AUTHID_MAX + 1);
	const struct sasl_mech *mech;
	bool enc, local;
	char mname[32];
	size_t ml = 0;
	const char *resp = NULL;
	size_t resplen = 0;

	if (ss->auth_user) {
		smtpd_reply_error(ss, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (ss->state == SMTPD_S_CONNECTED) {
		smtpd_reply_error(ss, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (ss->state != SMTPD_S_READY) {
		smtpd_reply_error(ss, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!smtpd_auth_offered(ss)) {
		smtpd_reply_error(ss, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	while (ml < cmd->arglen && cmd->arg[ml] != ' ')
		ml++;
	if (ml >= sizeof(mname) || ml == 0) {
		smtpd_reply_error(ss, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	memcpy(mname, cmd->arg, ml);
	mname[ml] = '\0';
	mech = sasl_mech_find(mname);
	encrypted_or_local(ss, &enc, &local);
	if (!mech || !sasl_mech_allowed(mech, enc, local)) {
		smtpd_reply_error(ss, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	if (ml < cmd->arglen) {
		resp = cmd->arg + ml + 1;
		resplen = cmd->arglen - ml - 1;
	}
	sasl_start(&sasl, mech);
	/* The initial response lives in ss->line, which the next read reuses: copy it out. */
	char *initial = resp ? xstrndup(resp, resplen) : NULL;
	enum sasl_status st = sasl_step(&sasl, initial, resplen, &challenge, &err);
	free(initial);
	while (st == SASL_CONTINUE) {
		smtpd_reply(ss, "334 %s", buf_cstr(&challenge));
		smtpd_flush(ss);
		enum stream_result r = stream_read_line(ss->s, &ss->line, SASL_RESPONSE_MAX * 4 / 3 + 8);
		if (r == STREAM_TOOLONG) {
			sasl_clear(&sasl);
			smtpd_reply_error(ss, "500 5.5.6 Authentication Exchange line is too long");
			goto done;
		}
		if (r != STREAM_OK) {
			sasl_clear(&sasl);
			smtpd_read_failed(ss, r);
			goto done;
		}
		st = sasl_step(&sasl, buf_cstr(&ss->line), ss->line.len, &challenge, &err);
	}
	if (st == SASL_CANCEL) {
		smtpd_reply_error(ss, "501 5.0.0 Authentication aborted");
	} else if (st == SASL_FAIL) {
		log_info("AUTH %s from %s[%s]: %s", mech->name, ss->client_name, ss->client_addr, buf_cstr(&err));
		smtpd_reply_error(ss, "501 5.5.2 Error: malformed authentication exchange");
	} else {
		struct smtpd_auth_req rq = { mech->name, sasl.creds.authcid, sasl.creds.passwd, ss->client_addr, enc,
		                             ss->loopback, ss->set->auth_plaintext };
		switch (smtpd_auth_check(&rq, &user)) {
		case SMTPD_OK:
			ss->auth_user = xstrdup(buf_cstr(&user));
			log_info("%s[%s]: sasl_method=%s, sasl_username=%s", ss->client_name, ss->client_addr,
			         mech->name, log_safe(ss->auth_user, strlen(ss->auth_user), 255));
			smtpd_reply(ss, "235 2.7.0 Authentication successful");
			break;
		case SMTPD_TEMPFAIL:
			smtpd_reply(ss, "454 4.7.0 Temporary authentication failure");
			break;
		case SMTPD_REJECT:
			log_warn("%s[%s]: SASL %s authentication failed for %s", ss->client_name, ss->client_addr,
			         mech->name, log_safe(sasl.creds.authcid, strlen(sasl.creds.authcid), 255));
			smtpd_reply_error(ss, "535 5.7.8 Error: authentication failed");
			break;
		}
	}
	sasl_clear(&sasl);
done:
	buf_free(&challenge);
	buf_free(&err);
	buf_free(&user);
}
