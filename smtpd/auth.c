/* SMTP AUTH (RFC 4954): runs the SASL exchange from common/sasl.c on the session's stream and checks the
 * credentials it yields. PLAIN and LOGIN send the password recoverably, so they are offered only over TLS, to
 * loopback clients, or where smtpd_auth_plaintext says so. The check is a function pointer so tests can put a
 * fake in place. The default reads the account database directly: the auth daemon (the intended only reader of
 * password hashes) has no IPC protocol yet; when it has, a second checker that asks it replaces this one. */
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "alloc.h"
#include "log.h"
#include "sasl.h"
#include "smtpd.h"
#include "str.h"

enum smtpd_verdict (*smtpd_auth_check)(const char *authcid, const char *passwd, struct buf *user) =
	smtpd_auth_check_accounts;

static char *auth_db_path;
static bool auth_system_users;
static struct accounts *auth_db;

void smtpd_auth_set_accounts(const char *accounts_db, bool system_users)
{
	free(auth_db_path);
	auth_db_path = accounts_db ? xstrdup(accounts_db) : NULL;
	auth_system_users = system_users;
}

enum smtpd_verdict smtpd_auth_check_accounts(const char *authcid, const char *passwd, struct buf *user)
{
	struct buf err = BUF_INIT(1024), norm = BUF_INIT(1024);
	struct accounts_user u;
	enum smtpd_verdict v = SMTPD_REJECT;

	memset(&u, 0, sizeof(u));
	if (!strchr(authcid, '@')) {
		/* A bare login name is a system user, when those are allowed. */
		if (auth_system_users && accounts_system_get(authcid, &u, &err) == ACCOUNTS_OK &&
		    accounts_check_hash(passwd, u.password_hash)) {
			buf_puts(user, authcid);
			v = SMTPD_OK;
		} else {
			accounts_dummy_verify(passwd);
		}
		accounts_user_free(&u);
		buf_free(&err);
		return v;
	}
	if (!auth_db && auth_db_path && access(auth_db_path, F_OK) == 0) {
		/* a missing database means no accounts yet: every login fails, nothing is "temporarily" wrong */
		auth_db = accounts_open(auth_db_path, false, &err);
		if (!auth_db) {
			log_error("cannot open %s: %s", auth_db_path, buf_cstr(&err));
			buf_free(&err);
			return SMTPD_TEMPFAIL;
		}
	}
	if (!auth_db || !accounts_normalize(authcid, &norm, &err)) {
		accounts_dummy_verify(passwd);
		buf_free(&err);
		buf_free(&norm);
		return SMTPD_REJECT;
	}
	switch (accounts_verify(auth_db, buf_cstr(&norm), passwd, &u, &err)) {
	case ACCOUNTS_OK:
		buf_puts(user, buf_cstr(&norm));
		v = SMTPD_OK;
		break;
	case ACCOUNTS_ERROR:
		log_error("account database: %s", buf_cstr(&err));
		v = SMTPD_TEMPFAIL;
		break;
	default:
		break;
	}
	accounts_user_free(&u);
	buf_free(&err);
	buf_free(&norm);
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
		switch (smtpd_auth_check(sasl.creds.authcid, sasl.creds.passwd, &user)) {
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
