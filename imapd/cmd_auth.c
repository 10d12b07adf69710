/* imapd commands of any state and of login: CAPABILITY, NOOP, LOGOUT, STARTTLS, AUTHENTICATE (PLAIN, LOGIN,
 * SASL-IR), LOGIN, ID, ENABLE. Passwords are refused over plaintext from non-loopback peers unless configured. */
#include <string.h>

#include "alloc.h"
#include "cmdtab.h"
#include "condstore.h"
#include "log.h"
#include "str.h"
#include "tls.h"

#define SASL_LINE_MAX 8192

void imapd_cmd_capability(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf caps = BUF_INIT(4096);

	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "CAPABILITY takes no arguments");
		buf_free(&caps);
		return;
	}
	imapd_capabilities(sess, &caps);
	imapd_untagged(sess, "CAPABILITY %s", buf_cstr(&caps));
	imapd_ok(sess, "CAPABILITY completed");
	buf_free(&caps);
}

void imapd_cmd_noop(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "NOOP takes no arguments");
		return;
	}
	imapd_ok(sess, "NOOP completed");
}

void imapd_cmd_logout(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "LOGOUT takes no arguments");
		return;
	}
	imapd_untagged(sess, "BYE logging out");
	imapd_ok(sess, "LOGOUT completed");
	sess->state = IMAPD_LOGOUT;
}

void imapd_cmd_starttls(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "STARTTLS takes no arguments");
		return;
	}
	if (!(sess->set->tls_ctx || sess->set->tls_pem) || stream_is_tls(sess->s)) {
		imapd_bad(sess, stream_is_tls(sess->s) ? "TLS is already active" : "STARTTLS is not available");
		return;
	}
	SSL_CTX *ctx = sess->set->tls_ctx;
	if (!ctx) {
		struct buf err = BUF_INIT(1024);
		if (!(ctx = tls_pem_ctx(sess->set->tls_pem, &err)))
			log_error("imapd: STARTTLS: %s", buf_cstr(&err));
		buf_free(&err);
		if (!ctx) {
			imapd_no(sess, "[UNAVAILABLE] TLS is not available now");
			return;
		}
	}
	imapd_ok(sess, "begin TLS negotiation now");
	/* commands pipelined after STARTTLS are refused by the stream (command injection); the session ends */
	if (stream_starttls_server(sess->s, ctx) != STREAM_OK) {
		log_info("imapd: STARTTLS failed: %s", stream_error_text(sess->s));
		sess->state = IMAPD_LOGOUT;
	}
}

static bool login_allowed(struct imapd_session *sess)
{
	if (stream_is_tls(sess->s) || sess->loopback || sess->set->plaintext_login)
		return true;
	imapd_no(sess, "[PRIVACYREQUIRED] use STARTTLS or port 993 first");
	return false;
}

/* Check a password and move to the authenticated state; answers the command. */
static void do_login(struct imapd_session *sess, const char *user, const char *pass)
{
	struct imapd_login login = { 0 };
	bool tempfail = false;

	if (!sess->set->auth || !sess->set->auth(sess->set->auth_ctx, user, pass, stream_is_tls(sess->s), sess->loopback,
						   &login, &tempfail)) {
		imapd_login_clear(&login);
		if (tempfail) {
			imapd_no(sess, "[UNAVAILABLE] authentication is temporarily unavailable");
			return;
		}
		log_info("imapd: login failed for %s", log_safe(user, strlen(user), 100));
		imapd_no(sess, "[AUTHENTICATIONFAILED] authentication failed");
		/* password guessing costs a new connection every few tries */
		if (++sess->auth_failures >= IMAPD_MAX_AUTH_FAILURES) {
			imapd_untagged(sess, "BYE too many failed logins");
			sess->state = IMAPD_LOGOUT;
		}
		return;
	}
	log_info("imapd: login %s", login.user);
	if (!imapd_session_login(sess, &login)) {
		imapd_login_clear(&login);
		imapd_no(sess, "[SERVERBUG] cannot open the mailbox");
		sess->state = IMAPD_LOGOUT;
		return;
	}
	struct buf caps = BUF_INIT(4096);
	imapd_capabilities(sess, &caps);
	imapd_ok(sess, "[CAPABILITY %s] logged in", buf_cstr(&caps));
	buf_free(&caps);
}

void imapd_cmd_login(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	const char *user, *pass;

	(void)uid;
	if (nargs != 2 || !imap_arg_astring(&args[0], &user) || !imap_arg_astring(&args[1], &pass)) {
		imapd_bad(sess, "LOGIN needs a user name and a password");
		return;
	}
	if (login_allowed(sess))
		do_login(sess, user, pass);
}

/* ---- SASL ---- */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict base64 (RFC 4648 with padding); "=" alone is the empty response of SASL-IR. */
static bool b64_decode(const char *s, size_t len, struct buf *out)
{
	if (len == 1 && s[0] == '=')
		return true;
	if (len % 4)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad)
				return false;
			v[k] = b64val((unsigned char)s[i + k]);
			if (v[k] < 0)
				return false;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		unsigned char t[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w };
		if (!buf_append(out, t, 3 - pad))
			return false;
	}
	return true;
}

/* Send a challenge and read the client's base64 line; false after answering (cancel, bad data, lost peer). */
static bool sasl_read(struct imapd_session *sess, const char *challenge, struct buf *out)
{
	struct buf line = BUF_INIT(SASL_LINE_MAX);
	bool ok = false;

	stream_printf(sess->s, "+ %s\r\n", challenge);
	if (stream_flush(sess->s) != STREAM_OK || stream_read_line(sess->s, &line, SASL_LINE_MAX) != STREAM_OK) {
		sess->state = IMAPD_LOGOUT;
	} else if (line.len == 1 && line.data[0] == '*') {
		imapd_bad(sess, "authentication cancelled");
	} else if (!b64_decode(buf_cstr(&line), line.len, out)) {
		imapd_bad(sess, "invalid base64");
	} else {
		ok = true;
	}
	buf_free_wipe(&line);
	return ok;
}

static void auth_plain(struct imapd_session *sess, struct buf *resp)
{
	/* authzid NUL authcid NUL passwd; an authzid other than the user is not supported */
	const char *d = buf_cstr(resp);
	const char *n1 = memchr(d, '\0', resp->len);
	const char *n2 = n1 ? memchr(n1 + 1, '\0', resp->len - (size_t)(n1 + 1 - d)) : NULL;

	if (!n1 || !n2 || memchr(n2 + 1, '\0', resp->len - (size_t)(n2 + 1 - d))) {
		imapd_bad(sess, "malformed PLAIN response");
		return;
	}
	if (n1 != d && strcmp(d, n1 + 1) != 0) {
		imapd_no(sess, "[AUTHORIZATIONFAILED] cannot act as another user");
		return;
	}
	do_login(sess, n1 + 1, n2 + 1);
}

void imapd_cmd_authenticate(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	const char *mech, *ir = NULL;
	struct buf resp = BUF_INIT(SASL_LINE_MAX), user = BUF_INIT(SASL_LINE_MAX);

	(void)uid;
	if (nargs < 1 || nargs > 2 || !imap_arg_atom(&args[0], &mech) || (nargs == 2 && !imap_arg_atom(&args[1], &ir))) {
		imapd_bad(sess, "AUTHENTICATE needs a mechanism name");
		goto out;
	}
	if (!login_allowed(sess))
		goto out;
	if (str_eq_ci(mech, "PLAIN")) {
		if (ir ? !b64_decode(ir, strlen(ir), &resp) : !sasl_read(sess, "", &resp)) {
			if (ir)
				imapd_bad(sess, "invalid base64");
			goto out;
		}
		auth_plain(sess, &resp);
	} else if (str_eq_ci(mech, "LOGIN")) {
		if (ir) {
			if (!b64_decode(ir, strlen(ir), &user)) {
				imapd_bad(sess, "invalid base64");
				goto out;
			}
		} else if (!sasl_read(sess, "VXNlcm5hbWU6", &user)) {
			goto out;
		}
		if (!sasl_read(sess, "UGFzc3dvcmQ6", &resp))
			goto out;
		if (memchr(buf_cstr(&user), '\0', user.len) || memchr(buf_cstr(&resp), '\0', resp.len)) {
			imapd_bad(sess, "malformed LOGIN response");
			goto out;
		}
		do_login(sess, buf_cstr(&user), buf_cstr(&resp));
	} else {
		imapd_no(sess, "unsupported authentication mechanism");
	}
out:
	buf_free_wipe(&resp);
	buf_free_wipe(&user);
}

/* ---- ID and ENABLE ---- */

void imapd_cmd_id(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	/* the client's ID is accepted and ignored: it is not worth logging untrusted text per connection */
	if (nargs != 1 || (args[0].type != IMAP_ARG_NIL && args[0].type != IMAP_ARG_LIST) ||
	    (args[0].type == IMAP_ARG_LIST && (args[0].count % 2 || args[0].count > 60))) {
		imapd_bad(sess, "ID needs NIL or a list of field and value pairs");
		return;
	}
	for (size_t i = 0; args[0].type == IMAP_ARG_LIST && i < args[0].count; i++) {
		const char *s;
		if (!imap_arg_string(&args[0].list[i], &s) && !(i % 2 && args[0].list[i].type == IMAP_ARG_NIL)) {
			imapd_bad(sess, "ID fields are strings");
			return;
		}
	}
	imapd_untagged(sess, "ID (\"name\" \"Postern\")");
	imapd_ok(sess, "ID completed");
}

void imapd_cmd_enable(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	const char *s;

	(void)uid;
	if (nargs == 0) {
		imapd_bad(sess, "ENABLE needs capability names");
		return;
	}
	for (size_t i = 0; i < nargs; i++)
		if (!imap_arg_atom(&args[i], &s)) {
			imapd_bad(sess, "ENABLE takes capability names");
			return;
		}
	/* unknown names are ignored (RFC 5161); CONDSTORE and QRESYNC are the ones offered */
	struct buf enabled = BUF_INIT(256);
	for (size_t i = 0; i < nargs; i++)
		(void)imapd_enable_ext(sess, args[i].str, &enabled);
	imapd_untagged(sess, "ENABLED%s", buf_cstr(&enabled));
	buf_free(&enabled);
	imapd_ok(sess, "ENABLE completed");
}
