/* One handler per SMTP command except DATA/BDAT (data.c) and AUTH (auth.c). Each checks the session state,
 * then its argument, then acts; every reply carries an enhanced status code (RFC 2034). */
#include <string.h>

#include "addr.h"
#include "alloc.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"

static void access_refuse(struct smtpd_session *ss, const char *what, const struct buf *reply, bool defer,
                          const char *to);

/* A HELO/EHLO argument: one printable ASCII token. Postfix-like leniency: we do not insist on a resolvable name,
 * since the name is only recorded in Received. */
static bool helo_valid(const char *p, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return false;
	return true;
}

static void cmd_helo(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	bool ehlo = cmd->id == SMTPD_CMD_EHLO;

	if (!helo_valid(cmd->arg, cmd->arglen)) {
		smtpd_reply_error(ss, "501 5.5.4 Syntax: %s hostname", cmd->name);
		return;
	}
	/* RFC 5321 4.1.4: a new EHLO is like RSET. */
	smtpd_transaction_reset(ss);
	free(ss->helo);
	ss->helo = xstrndup(cmd->arg, cmd->arglen);
	if (ss->set->access && !ss->set->delay_reject) {
		struct buf reply = BUF_INIT(1024);
		bool defer;
		if (!smtpd_access_early(ss, false, true, false, &reply, &defer)) {
			xfree(&ss->helo);
			ss->state = SMTPD_S_CONNECTED;
			access_refuse(ss, cmd->name, &reply, defer, NULL);
			buf_free(&reply);
			return;
		}
		buf_free(&reply);
	}
	ss->esmtp = ehlo;
	ss->state = SMTPD_S_READY;
	if (!ehlo) {
		smtpd_reply(ss, "250 %s", ss->set->hostname);
		return;
	}
	const char *lines[16];
	size_t n = 0;
	char size[40];
	struct buf auth = BUF_INIT(256);

	lines[n++] = "PIPELINING";
	if (ss->set->size_limit)
		snprintf(size, sizeof(size), "SIZE %llu", (unsigned long long)ss->set->size_limit);
	else
		snprintf(size, sizeof(size), "SIZE");
	lines[n++] = size;
	lines[n++] = "8BITMIME";
	lines[n++] = "SMTPUTF8";
	lines[n++] = "ENHANCEDSTATUSCODES";
	if (ss->set->dsn)
		lines[n++] = "DSN";
	lines[n++] = "CHUNKING";
	if (ss->set->tls_ctx && !stream_is_tls(ss->s))
		lines[n++] = "STARTTLS";
	if (smtpd_auth_offered(ss)) {
		buf_puts(&auth, "AUTH ");
		smtpd_auth_mechs(ss, &auth);
		lines[n++] = buf_cstr(&auth);
	}
	smtpd_reply_cont(ss, "250 %s", ss->set->hostname);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n)
			smtpd_reply_cont(ss, "250 %s", lines[i]);
		else
			smtpd_reply(ss, "250 %s", lines[i]);
	}
	buf_free(&auth);
}

static void log_reject(struct smtpd_session *ss, const char *what, const struct buf *reply, const char *to)
{
	log_info("NOQUEUE: reject: %s from %s[%s]: %s; from=<%s>%s%s%s helo=<%s>", what, ss->client_name,
	         ss->client_addr, buf_cstr(reply), ss->sender ? log_safe(ss->sender, strlen(ss->sender), 300) : "",
	         to ? " to=<" : "", to ? log_safe(to, strlen(to), 300) : "", to ? ">" : "",
	         ss->helo ? log_safe(ss->helo, strlen(ss->helo), 100) : "");
}

bool smtpd_access_early(struct smtpd_session *ss, bool client, bool helo, bool sender, struct buf *reply,
                        bool *defer)
{
	struct smtpd_access *a = ss->set->access;
	enum smtpd_access_result r = SMTPD_ACCESS_DUNNO;

	/* a local submission is identified by the kernel, not by an address the maps could speak about */
	if (!a || ss->peer_uid >= 0)
		return true;
	if (client)
		r = smtpd_access_check(a, SMTPD_ACCESS_CLIENT, ss->client_addr, ss->client_name, reply);
	if (r < SMTPD_ACCESS_REJECT && helo && ss->helo)
		r = smtpd_access_check(a, SMTPD_ACCESS_HELO, ss->helo, NULL, reply);
	if (r < SMTPD_ACCESS_REJECT && sender && ss->sender)
		r = smtpd_access_check(a, SMTPD_ACCESS_SENDER, ss->sender, NULL, reply);
	*defer = r == SMTPD_ACCESS_DEFER;
	return r < SMTPD_ACCESS_REJECT;
}

/* Send an access-map refusal: 4xx replies do not count as client errors (the client did nothing wrong). */
static void access_refuse(struct smtpd_session *ss, const char *what, const struct buf *reply, bool defer,
                          const char *to)
{
	log_reject(ss, what, reply, to);
	if (defer)
		smtpd_reply(ss, "%s", buf_cstr(reply));
	else
		smtpd_reply_error(ss, "%s", buf_cstr(reply));
}

static void cmd_mail(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	struct addr a;
	size_t poff = 0;
	enum addr_err ae;
	struct esmtp_params params;
	struct esmtp_mail mail;
	enum esmtp_err ee;

	if (ss->state == SMTPD_S_CONNECTED) {
		smtpd_reply_error(ss, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (ss->state != SMTPD_S_READY) {
		smtpd_reply_error(ss, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (ss->set->auth_required && !ss->auth_user) {
		smtpd_reply_error(ss, "530 5.7.0 Authentication required");
		return;
	}
	/* Parse the path allowing UTF-8, then insist on SMTPUTF8 if it used any (RFC 6531 3.4). */
	ae = addr_parse_cmd(cmd->arg, cmd->arglen, "FROM", ADDR_F_SMTPUTF8 | ADDR_F_UNBRACKETED, &a, &poff);
	if (ae != ADDR_OK) {
		smtpd_reply_error(ss, "%s", addr_reply(ae, ADDR_ROLE_SENDER));
		addr_free(&a);
		return;
	}
	memset(&mail, 0, sizeof(mail));
	if (poff < cmd->arglen && !ss->esmtp) {
		addr_free(&a);
		smtpd_reply_error(ss, "555 5.5.4 Error: parameters need EHLO");
		return;
	}
	ee = esmtp_parse(cmd->arg + poff, cmd->arglen - poff, ESMTP_F_UTF8, &params, NULL);
	if (ee == ESMTP_OK) {
		ee = esmtp_mail_params(&params, &mail, NULL);
		esmtp_params_free(&params);
	}
	if (ee != ESMTP_OK) {
		addr_free(&a);
		esmtp_mail_free(&mail);
		if (ee == ESMTP_ERR_SIZE_OVERFLOW)
			smtpd_reply_error(ss, "552 5.3.4 Message size exceeds fixed limit");
		else
			smtpd_reply_error(ss, "%s", esmtp_reply(ee));
		return;
	}
	const char *unsupported = NULL;
	if (mail.body == ESMTP_BODY_BINARYMIME)
		unsupported = "BODY=BINARYMIME";
	else if (!ss->set->dsn && (mail.ret != ESMTP_RET_UNSET || mail.envid))
		unsupported = "RET/ENVID";
	else if (mail.requiretls)
		unsupported = "REQUIRETLS";
	if (unsupported) {
		addr_free(&a);
		esmtp_mail_free(&mail);
		smtpd_reply_error(ss, "555 5.5.4 Unsupported option: %s", unsupported);
		return;
	}
	if (a.utf8 && !mail.smtputf8) {
		addr_free(&a);
		esmtp_mail_free(&mail);
		smtpd_reply_error(ss, "553 5.6.7 Error: non-ASCII sender address needs SMTPUTF8");
		return;
	}
	if (mail.has_size && ss->set->size_limit && mail.size > ss->set->size_limit) {
		addr_free(&a);
		esmtp_mail_free(&mail);
		smtpd_reply_error(ss, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	uint64_t avail = 0;
	if (!smtpd_space_ok(ss->set, mail.has_size ? mail.size : 0, &avail)) {
		log_warn("NOQUEUE: reject: MAIL from %s[%s]: 452 4.3.1 Insufficient system storage (%llu bytes free)",
		         ss->client_name, ss->client_addr, (unsigned long long)avail);
		addr_free(&a);
		esmtp_mail_free(&mail);
		smtpd_reply(ss, "452 4.3.1 Insufficient system storage");
		return;
	}
	if (ss->set->auth_required && ss->set->policy) {
		struct buf reply = BUF_INIT(1024);
		enum smtpd_verdict v = smtpd_policy_sender(ss->set->policy, ss, a.canon, &reply);
		if (v != SMTPD_OK) {
			log_reject(ss, "MAIL", &reply, NULL);
			smtpd_reply_error(ss, "%s", buf_cstr(&reply));
			buf_free(&reply);
			addr_free(&a);
			esmtp_mail_free(&mail);
			return;
		}
		buf_free(&reply);
	}
	ss->sender = xstrdup(a.canon);
	if (ss->set->access && !ss->set->delay_reject) {
		struct buf reply = BUF_INIT(1024);
		bool defer;
		if (!smtpd_access_early(ss, false, false, true, &reply, &defer)) {
			access_refuse(ss, "MAIL", &reply, defer, NULL);
			xfree(&ss->sender);
			buf_free(&reply);
			addr_free(&a);
			esmtp_mail_free(&mail);
			return;
		}
		buf_free(&reply);
	}
	ss->mail = mail;
	addr_free(&a);
	ss->state = SMTPD_S_MAIL;
	smtpd_authcheck_start(ss);
	smtpd_reply(ss, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	struct addr a;
	size_t poff = 0;
	enum addr_err ae;
	struct esmtp_params params;
	struct esmtp_rcpt rcpt;
	enum esmtp_err ee;
	unsigned flags = ADDR_F_POSTMASTER | ADDR_F_UNBRACKETED;

	if (ss->state != SMTPD_S_MAIL && ss->state != SMTPD_S_RCPT) {
		smtpd_reply_error(ss, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (ss->mail.smtputf8)
		flags |= ADDR_F_SMTPUTF8;
	ae = addr_parse_cmd(cmd->arg, cmd->arglen, "TO", flags, &a, &poff);
	if (ae == ADDR_OK && a.null) {
		addr_free(&a);
		smtpd_reply_error(ss, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (ae != ADDR_OK) {
		addr_free(&a);
		smtpd_reply_error(ss, "%s", addr_reply(ae, ADDR_ROLE_RECIPIENT));
		return;
	}
	memset(&rcpt, 0, sizeof(rcpt));
	if (poff < cmd->arglen && !ss->esmtp) {
		addr_free(&a);
		smtpd_reply_error(ss, "555 5.5.4 Error: parameters need EHLO");
		return;
	}
	ee = esmtp_parse(cmd->arg + poff, cmd->arglen - poff, ESMTP_F_UTF8, &params, NULL);
	if (ee == ESMTP_OK) {
		ee = esmtp_rcpt_params(&params, &rcpt, NULL);
		esmtp_params_free(&params);
	}
	if (ee == ESMTP_OK && !ss->set->dsn && (rcpt.notify || rcpt.orcpt_type))
		ee = ESMTP_ERR_UNKNOWN;
	if (ee != ESMTP_OK) {
		addr_free(&a);
		esmtp_rcpt_free(&rcpt);
		smtpd_reply_error(ss, "%s", esmtp_reply(ee));
		return;
	}
	if (ss->nrcpts >= ss->set->rcpt_limit) {
		addr_free(&a);
		esmtp_rcpt_free(&rcpt);
		smtpd_reply(ss, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (ss->set->access && ss->peer_uid < 0) {
		/* smtpd_delay_reject: the client, HELO and sender verdicts are given here, so the client learns
		 * which recipient they concerned and broken clients that do not expect a refused HELO keep working */
		struct buf reply = BUF_INIT(1024);
		bool defer = false;
		bool pass = !ss->set->delay_reject || smtpd_access_early(ss, true, true, true, &reply, &defer);
		if (pass) {
			enum smtpd_access_result ar =
				smtpd_access_check(ss->set->access, SMTPD_ACCESS_RECIPIENT, a.canon, NULL, &reply);
			pass = ar < SMTPD_ACCESS_REJECT;
			defer = ar == SMTPD_ACCESS_DEFER;
		}
		if (!pass) {
			access_refuse(ss, "RCPT", &reply, defer, a.canon);
			buf_free(&reply);
			addr_free(&a);
			esmtp_rcpt_free(&rcpt);
			return;
		}
		buf_free(&reply);
	}
	if (ss->set->policy) {
		struct buf reply = BUF_INIT(1024);
		enum smtpd_verdict v = smtpd_policy_rcpt(ss->set->policy, ss, a.canon, &reply);
		if (v != SMTPD_OK) {
			log_reject(ss, "RCPT", &reply, a.canon);
			if (v == SMTPD_TEMPFAIL)
				smtpd_reply(ss, "%s", buf_cstr(&reply));
			else
				smtpd_reply_error(ss, "%s", buf_cstr(&reply));
			buf_free(&reply);
			addr_free(&a);
			esmtp_rcpt_free(&rcpt);
			return;
		}
		buf_free(&reply);
	}
	if (ss->nrcpts == ss->rcpts_cap) {
		ss->rcpts_cap = ss->rcpts_cap ? ss->rcpts_cap * 2 : 8;
		ss->rcpts = xreallocarray(ss->rcpts, ss->rcpts_cap, sizeof(*ss->rcpts));
	}
	struct smtpd_rcpt *r = &ss->rcpts[ss->nrcpts++];
	r->addr = xstrdup(a.canon);
	r->notify = rcpt.notify;
	r->orcpt = NULL;
	if (rcpt.orcpt_type) {
		struct buf o = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&o, "%s;%s", rcpt.orcpt_type, rcpt.orcpt_addr ? rcpt.orcpt_addr : "");
		r->orcpt = buf_steal(&o, NULL);
	}
	addr_free(&a);
	esmtp_rcpt_free(&rcpt);
	ss->state = SMTPD_S_RCPT;
	smtpd_reply(ss, "250 2.1.5 Ok");
}

static void cmd_rset(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	(void)cmd;
	smtpd_transaction_reset(ss);
	smtpd_reply(ss, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	(void)cmd;
	smtpd_reply(ss, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	(void)cmd;
	smtpd_reply(ss, "221 2.0.0 Bye");
	ss->state = SMTPD_S_CLOSING;
}

static void cmd_vrfy(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	(void)cmd;
	/* RFC 5321 3.5.3: 252 when we will not say whether a user exists (address harvesting). */
	smtpd_reply(ss, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

/* EXPN is refused on purpose: expanding lists and aliases to strangers hands out addresses (RFC 5321 7.3). */
static void cmd_expn(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	(void)cmd;
	smtpd_reply_error(ss, "502 5.5.1 Error: command not implemented");
}

static void cmd_help(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	(void)cmd;
	smtpd_reply(ss, "214 2.0.0 See RFC 5321");
}

static void cmd_starttls(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	(void)cmd;
	if (stream_is_tls(ss->s)) {
		smtpd_reply_error(ss, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (!ss->set->tls_ctx) {
		smtpd_reply_error(ss, "502 5.5.1 Error: command not implemented");
		return;
	}
	smtpd_reply(ss, "220 2.0.0 Ready to start TLS");
	smtpd_flush(ss);
	/* Anything the client sent after STARTTLS in the clear must not be read as coming through TLS (CVE-2011-0411
	 * and kin): drop it, then handshake. */
	size_t dropped = stream_discard_input(ss->s);
	if (dropped)
		log_warn("%s[%s]: discarded %zu bytes pipelined after STARTTLS", ss->client_name, ss->client_addr,
		         dropped);
	enum stream_result r = stream_starttls_server(ss->s, ss->set->tls_ctx);
	if (r != STREAM_OK) {
		log_info("TLS handshake failed for %s[%s]: %s", ss->client_name, ss->client_addr,
		         stream_error_text(ss->s));
		ss->state = SMTPD_S_CLOSING;
		return;
	}
	const char *proto = "", *cipher = "";
	int bits = 0;
	stream_tls_info(ss->s, &proto, &cipher, &bits);
	log_info("TLS connection established from %s[%s]: %s with cipher %s (%d bits)", ss->client_name,
	         ss->client_addr, proto, cipher, bits);
	/* RFC 3207 4.2: forget everything learned from the client before TLS. */
	smtpd_session_reset_all(ss);
	ss->state = SMTPD_S_CONNECTED;
}

typedef void smtpd_handler_fn(struct smtpd_session *ss, const struct smtpd_cmd *cmd);

static smtpd_handler_fn *const handlers[] = {
	[SMTPD_CMD_EHLO] = cmd_helo,
	[SMTPD_CMD_HELO] = cmd_helo,
	[SMTPD_CMD_MAIL] = cmd_mail,
	[SMTPD_CMD_RCPT] = cmd_rcpt,
	[SMTPD_CMD_DATA] = smtpd_cmd_data,
	[SMTPD_CMD_BDAT] = smtpd_cmd_bdat,
	[SMTPD_CMD_RSET] = cmd_rset,
	[SMTPD_CMD_NOOP] = cmd_noop,
	[SMTPD_CMD_QUIT] = cmd_quit,
	[SMTPD_CMD_VRFY] = cmd_vrfy,
	[SMTPD_CMD_EXPN] = cmd_expn,
	[SMTPD_CMD_HELP] = cmd_help,
	[SMTPD_CMD_STARTTLS] = cmd_starttls,
	[SMTPD_CMD_AUTH] = smtpd_cmd_auth,
};

void smtpd_command(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	if ((size_t)cmd->id >= sizeof(handlers) / sizeof(handlers[0]) || handlers[cmd->id] == NULL)
		panic("smtpd: no handler for command %d", (int)cmd->id);
	/* Inside a BDAT sequence only BDAT itself, RSET, QUIT, NOOP and EHLO/HELO (which reset) make sense. */
	if (ss->state == SMTPD_S_BDAT && (cmd->id == SMTPD_CMD_MAIL || cmd->id == SMTPD_CMD_RCPT ||
	                                  cmd->id == SMTPD_CMD_DATA || cmd->id == SMTPD_CMD_AUTH ||
	                                  cmd->id == SMTPD_CMD_STARTTLS)) {
		smtpd_reply_error(ss, "503 5.5.1 Error: %s not allowed during BDAT", cmd->name);
		return;
	}
	handlers[cmd->id](ss, cmd);
}
