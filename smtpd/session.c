/* The SMTP session: the read-dispatch loop with named states, replies, error and junk limits, and the reset rules
 * (RSET/EHLO drop the transaction, STARTTLS drops everything). Runs over any connected socket, so the unit tests
 * and the fuzzer drive it through a socketpair exactly as a network client would. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "daemon.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"

const char *smtpd_state_name(enum smtpd_state st)
{
	switch (st) {
	case SMTPD_S_CONNECTED: return "CONNECTED";
	case SMTPD_S_READY: return "READY";
	case SMTPD_S_MAIL: return "MAIL";
	case SMTPD_S_RCPT: return "RCPT";
	case SMTPD_S_BDAT: return "BDAT";
	case SMTPD_S_CLOSING: return "CLOSING";
	}
	return "?";
}

static void reply_line(struct smtpd_session *ss, bool last, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT(4096);

	if (!buf_vprintf(&b, fmt, ap) || b.len < 4)
		panic("smtpd: bad reply");
	if (!last)
		b.data[3] = '-';
	/* A reply must never carry a line end of its own: peer text is always escaped before it gets here. */
	if (memchr(b.data, '\r', b.len) || memchr(b.data, '\n', b.len))
		panic("smtpd: line end inside a reply");
	buf_puts(&b, "\r\n");
	(void)stream_write(ss->s, b.data, b.len);
	buf_free(&b);
}

void smtpd_flush(struct smtpd_session *ss)
{
	(void)stream_flush(ss->s);
}

void smtpd_reply_cont(struct smtpd_session *ss, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_line(ss, false, fmt, ap);
	va_end(ap);
}

void smtpd_reply(struct smtpd_session *ss, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_line(ss, true, fmt, ap);
	va_end(ap);
	/* RFC 2920: replies to a pipelined group may wait until we would block for input. */
	if (stream_pending(ss->s) == 0)
		smtpd_flush(ss);
}

static void error_pause(struct smtpd_session *ss)
{
	if (ss->set->no_sleep || ss->set->error_sleep_ms <= 0 || ss->errors <= ss->set->soft_error_limit)
		return;
	smtpd_flush(ss);
	struct timespec ts = { ss->set->error_sleep_ms / 1000, (long)(ss->set->error_sleep_ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

void smtpd_reply_error(struct smtpd_session *ss, const char *fmt, ...)
{
	va_list ap;

	ss->errors++;
	va_start(ap, fmt);
	reply_line(ss, true, fmt, ap);
	va_end(ap);
	if (ss->set->hard_error_limit && ss->errors >= ss->set->hard_error_limit) {
		log_info("too many errors after %s from %s[%s]", ss->last_cmd, ss->client_name, ss->client_addr);
		smtpd_reply(ss, "421 4.7.0 %s Error: too many errors", ss->set->hostname);
		smtpd_flush(ss);
		ss->state = SMTPD_S_CLOSING;
		return;
	}
	error_pause(ss);
	if (stream_pending(ss->s) == 0)
		smtpd_flush(ss);
}

void smtpd_transaction_reset(struct smtpd_session *ss)
{
	smtpd_data_abort(ss);
	smtpd_authcheck_free(ss);
	xfree(&ss->sender);
	esmtp_mail_free(&ss->mail);
	memset(&ss->mail, 0, sizeof(ss->mail));
	for (size_t i = 0; i < ss->nrcpts; i++) {
		free(ss->rcpts[i].addr);
		free(ss->rcpts[i].orcpt);
	}
	ss->nrcpts = 0;
	ss->bdat_size = 0;
	ss->bdat_failed = false;
	ss->bdat_fail_reply[0] = '\0';
	if (ss->state != SMTPD_S_CLOSING)
		ss->state = ss->helo ? SMTPD_S_READY : SMTPD_S_CONNECTED;
}

void smtpd_session_reset_all(struct smtpd_session *ss)
{
	xfree(&ss->helo);
	ss->esmtp = false;
	xfree(&ss->auth_user);
	smtpd_transaction_reset(ss);
}

void smtpd_read_failed(struct smtpd_session *ss, enum stream_result r)
{
	switch (r) {
	case STREAM_TIMEOUT:
		log_info("timeout after %s from %s[%s]", ss->last_cmd, ss->client_name, ss->client_addr);
		smtpd_reply(ss, "421 4.4.2 %s Error: timeout exceeded", ss->set->hostname);
		smtpd_flush(ss);
		break;
	case STREAM_EOF:
		log_info("lost connection after %s from %s[%s]", ss->last_cmd, ss->client_name, ss->client_addr);
		break;
	case STREAM_INTERRUPTED:
		log_info("shutdown: disconnecting %s[%s] after %s", ss->client_name, ss->client_addr, ss->last_cmd);
		smtpd_reply(ss, "421 4.3.2 %s Service shutting down, closing transmission channel", ss->set->hostname);
		smtpd_flush(ss);
		break;
	default:
		log_info("%s after %s from %s[%s]", stream_error_text(ss->s), ss->last_cmd, ss->client_name,
		         ss->client_addr);
		break;
	}
	ss->state = SMTPD_S_CLOSING;
}

static void client_init(struct smtpd_session *ss, const struct sockaddr *sa, socklen_t salen)
{
	str_copy(ss->client_name, sizeof(ss->client_name), "unknown");
	str_copy(ss->client_addr, sizeof(ss->client_addr), "unknown");
	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	if (getnameinfo(sa, salen, ss->client_addr, sizeof(ss->client_addr), NULL, 0, NI_NUMERICHOST) != 0)
		str_copy(ss->client_addr, sizeof(ss->client_addr), "unknown");
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		ss->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		ss->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
		/* Show a v4-mapped client as the IPv4 address it is. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && strncmp(ss->client_addr, "::ffff:", 7) == 0)
			memmove(ss->client_addr, ss->client_addr + 7, strlen(ss->client_addr + 7) + 1);
	}
	if (ss->set->policy)
		ss->trusted = smtpd_policy_mynetworks(ss->set->policy, sa);
	if (ss->set->peername_lookup && ss->set->dns && strcmp(ss->client_addr, "unknown") != 0)
		smtpd_peername(ss->set->dns, ss->client_addr, ss->client_name, sizeof(ss->client_name));
}

/* Replies wait in the output buffer while pipelined commands are processed (RFC 2920), but never while we wait
 * for input: a client that sent part of its next command may be waiting for them. */
static void flush_before_wait(struct smtpd_session *ss)
{
	if (!stream_line_pending(ss->s))
		smtpd_flush(ss);
}

static void one_command(struct smtpd_session *ss)
{
	struct smtpd_cmd cmd;
	enum stream_result r;

	flush_before_wait(ss);
	/* a stop or reload must not wait for a client between commands: nothing it sent is accepted yet (a
	 * message in DATA is read elsewhere and finishes first) */
	stream_set_interrupt(ss->s, daemon_stopping);
	r = stream_read_line(ss->s, &ss->line, ss->set->line_limit);
	stream_set_interrupt(ss->s, NULL);

	if (r == STREAM_TOOLONG) {
		ss->last_cmd = "long line";
		smtpd_reply_error(ss, "500 5.5.2 Error: line too long (limit %zu)", ss->set->line_limit);
		return;
	}
	if (r != STREAM_OK) {
		smtpd_read_failed(ss, r);
		return;
	}
	switch (smtpd_cmd_parse(ss->line.data ? ss->line.data : "", ss->line.len, &cmd)) {
	case SMTPD_PARSE_OK:
		break;
	case SMTPD_PARSE_SYNTAX:
		ss->last_cmd = cmd.name;
		smtpd_reply_error(ss, "501 5.5.4 Syntax error in parameters or arguments to %s", cmd.name);
		return;
	case SMTPD_PARSE_UNKNOWN:
	case SMTPD_PARSE_NUL:
		ss->last_cmd = "UNKNOWN";
		log_info("unknown command from %s[%s]: %s", ss->client_name, ss->client_addr,
		         log_safe(ss->line.data, ss->line.len, 100));
		smtpd_reply_error(ss, "500 5.5.2 Error: command not recognized");
		return;
	}
	ss->last_cmd = cmd.name;
	if (cmd.id == SMTPD_CMD_HTTP) {
		log_warn("non-SMTP command from %s[%s]: %s", ss->client_name, ss->client_addr,
		         log_safe(ss->line.data, ss->line.len, 100));
		smtpd_reply(ss, "221 2.7.0 Error: I can break rules, too. Goodbye.");
		ss->state = SMTPD_S_CLOSING;
		return;
	}
	if (cmd.flags & SMTPD_CF_JUNK) {
		if (ss->set->junk_limit && ++ss->junk > ss->set->junk_limit) {
			log_info("too many junk commands from %s[%s]", ss->client_name, ss->client_addr);
			smtpd_reply(ss, "421 4.7.0 %s Error: too many errors", ss->set->hostname);
			ss->state = SMTPD_S_CLOSING;
			return;
		}
	}
	if (ss->access_denied && cmd.id != SMTPD_CMD_QUIT) {
		smtpd_reply_error(ss, "503 5.7.0 Error: access denied for %s[%s]", ss->client_name, ss->client_addr);
		return;
	}
	if (ss->set->tls_mode == SMTPD_TLS_REQUIRE && !stream_is_tls(ss->s) && !(cmd.flags & SMTPD_CF_PRE_TLS)) {
		smtpd_reply_error(ss, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	smtpd_command(ss, &cmd);
}

/* Local submission: the kernel says who is on the other end of the socket; nothing the client sends can change
 * that. false when it cannot be told (then the client is refused, never treated as anonymous). */
static bool local_client_init(struct smtpd_session *ss, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
		log_warn("local submission: cannot identify the client: %s", strerror(errno));
		return false;
	}
	ss->peer_uid = (long)cred.uid;
	str_copy(ss->client_name, sizeof(ss->client_name), "localhost");
	str_copy(ss->client_addr, sizeof(ss->client_addr), "127.0.0.1");
	ss->loopback = true;
	ss->trusted = true;
	return true;
}

void smtpd_session_run(int fd, const struct sockaddr *peer, socklen_t peerlen, const struct smtpd_settings *set)
{
	struct smtpd_session sess;
	struct smtpd_session *ss = &sess;

	memset(ss, 0, sizeof(*ss));
	ss->set = set;
	ss->s = stream_new(fd);
	ss->state = SMTPD_S_CONNECTED;
	ss->last_cmd = "CONNECT";
	/* room for an AUTH response line too, which may be longer than a command */
	buf_init(&ss->line, set->line_limit + 8192);
	stream_set_timeouts(ss->s, set->timeout_ms, set->timeout_ms);
	/* A client that trickles a byte at a time must not hold a process past the timeout per command. */
	stream_set_deadline_mode(ss->s, true);
	ss->peer_uid = -1;
	if (set->local_submission) {
		if (!local_client_init(ss, fd)) {
			smtpd_reply(ss, "421 4.7.0 %s cannot identify the local client", set->hostname);
			ss->state = SMTPD_S_CLOSING;
		} else {
			log_info("connect from local uid=%ld", ss->peer_uid);
		}
	} else {
		client_init(ss, peer, peerlen);
		log_info("connect from %s[%s]", ss->client_name, ss->client_addr);
	}

	if (set->tls_mode == SMTPD_TLS_IMPLICIT) {
		enum stream_result r = set->tls_ctx ? stream_starttls_server(ss->s, set->tls_ctx) : STREAM_ERROR;
		if (r != STREAM_OK) {
			log_info("TLS handshake failed for %s[%s]: %s", ss->client_name, ss->client_addr,
			         set->tls_ctx ? stream_error_text(ss->s) : "no certificate configured");
			ss->state = SMTPD_S_CLOSING;
		}
	}
	ss->connslot = -1;
	if (ss->state != SMTPD_S_CLOSING && set->connlimit && set->connlimit_fd >= 0 && !ss->trusted &&
	    strcmp(ss->client_addr, "unknown") != 0) {
		ss->connslot = smtpd_connlimit_acquire(set->connlimit_fd, ss->client_addr, set->connlimit);
		if (ss->connslot == -1) {
			log_warn("too many connections from %s[%s] (limit %u)", ss->client_name, ss->client_addr,
			         set->connlimit);
			smtpd_reply(ss, "421 4.7.0 %s Error: too many connections from %s", set->hostname,
			            ss->client_addr);
			ss->state = SMTPD_S_CLOSING;
		}
	}
	if (ss->state != SMTPD_S_CLOSING) {
		struct buf reply = BUF_INIT(1024);
		bool defer;
		/* smtpd_delay_reject = no: the client map is applied now and a refusal replaces the greeting; the
		 * client may then only QUIT (RFC 5321 3.1) */
		if (set->access && !set->delay_reject && !smtpd_access_early(ss, true, false, false, &reply, &defer)) {
			log_info("NOQUEUE: reject: CONNECT from %s[%s]: %s", ss->client_name, ss->client_addr,
			         buf_cstr(&reply));
			ss->access_denied = true;
			smtpd_reply(ss, "%s", buf_cstr(&reply));
		} else {
			smtpd_reply(ss, "220 %s", set->banner);
		}
		buf_free(&reply);
		smtpd_flush(ss);
	}
	while (ss->state != SMTPD_S_CLOSING)
		one_command(ss);
	smtpd_flush(ss);
	if (ss->connslot >= 0)
		smtpd_connlimit_release(set->connlimit_fd, ss->connslot);
	smtpd_session_reset_all(ss);
	log_info("disconnect from %s[%s] errors=%u messages=%u", ss->client_name, ss->client_addr, ss->errors,
	         ss->messages);
	free(ss->rcpts);
	buf_free(&ss->line);
	stream_free(&ss->s);
}
