/* imapd session: the read-parse-dispatch loop and the reply helpers. Bytes go from the stream into the
 * incremental parser as they arrive, so literals and pipelined commands need no special reading code. */
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "daemon.h"
#include "cmdtab.h"
#include "fsutil.h"
#include "imapd.h"
#include "listmatch.h"
#include "log.h"
#include "mailboxes.h"
#include "prelogin.h"
#include "selected.h"
#include "str.h"
#include "utf7imap.h"

#define PREAUTH_LITERAL_DEFAULT	(8u * 1024)
#define REPLY_LINE_MAX		(1024u * 1024)

void imapd_session_init(struct imapd_session *sess, const struct imapd_settings *set, int fd, bool loopback)
{
	memset(sess, 0, sizeof(*sess));
	sess->set = set;
	sess->s = stream_new(fd);	/* TCP_NODELAY, and every read acknowledged at once (an APPEND literal's CRLF) */
	int t = set->preauth_timeout_ms ? set->preauth_timeout_ms : set->timeout_ms;
	stream_set_timeouts(sess->s, t, t);
	sess->loopback = loopback;
	sess->state = IMAPD_NOTAUTH;
	struct imap_parser_limits lim = {
		.max_line = set->max_line,
		.max_literal = set->max_literal_preauth ? set->max_literal_preauth : PREAUTH_LITERAL_DEFAULT,
	};
	sess->parser = imap_parser_new(&lim);
	buf_init(&sess->line, REPLY_LINE_MAX);
}

void imapd_login_clear(struct imapd_login *l)
{
	xfree(&l->user);
	xfree(&l->maildir);
	if (l->token)
		explicit_bzero(l->token, strlen(l->token));
	xfree(&l->token);
}

void imapd_unselect(struct imapd_session *sess)
{
	if (!sess->sel)
		return;
	imapd_sel_free(sess->sel);
	xfree(&sess->sel->name);
	xfree(&sess->sel->path);
	xfree(&sess->sel);
	if (sess->state == IMAPD_SELECTED)
		sess->state = IMAPD_AUTH;
}

void imapd_session_free(struct imapd_session *sess)
{
	imapd_unselect(sess);
	imapd_login_clear(&sess->login);
	xfree(&sess->tag);
	imap_parser_free(&sess->parser);
	buf_free(&sess->line);
	stream_free(&sess->s);
}

/* ---- replies ---- */

static void reply(struct imapd_session *sess, const char *tag, const char *word, const char *fmt, va_list ap)
{
	buf_reset(&sess->line);
	buf_printf(&sess->line, "%s ", tag ? tag : "*");
	if (word)
		buf_printf(&sess->line, "%s ", word);
	if (!buf_vprintf(&sess->line, fmt, ap))
		panic("imapd reply line over %u bytes", REPLY_LINE_MAX);
	buf_puts(&sess->line, "\r\n");
	stream_write(sess->s, sess->line.data, sess->line.len);
	/* COMPRESS: the deflate history ends with each command (compress.c) */
	if (tag)
		stream_codec_boundary(sess->s);
}

void imapd_untagged(struct imapd_session *sess, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(sess, NULL, NULL, fmt, ap);
	va_end(ap);
}

void imapd_ok(struct imapd_session *sess, const char *fmt, ...)
{
	va_list ap;

	/* every successful command in selected state tells what other sessions changed (RFC 3501 7) */
	if (sess->sel && sess->sel->mb) {
		imapd_sel_update(sess, !sess->sel->no_expunge);
		sess->sel->no_expunge = false;
	}
	va_start(ap, fmt);
	reply(sess, sess->tag, "OK", fmt, ap);
	va_end(ap);
}

void imapd_no(struct imapd_session *sess, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(sess, sess->tag, "NO", fmt, ap);
	va_end(ap);
}

void imapd_bad(struct imapd_session *sess, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(sess, sess->tag, "BAD", fmt, ap);
	va_end(ap);
	sess->bad_count++;
}

void imapd_put_string(struct buf *out, const char *s, size_t len)
{
	bool quotable = len < 1024;

	for (size_t i = 0; i < len && quotable; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			quotable = false;
	if (!quotable) {
		buf_printf(out, "{%zu}\r\n", len);
		buf_append(out, s, len);
		return;
	}
	buf_putc(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_putc(out, '\\');
		buf_putc(out, s[i]);
	}
	buf_putc(out, '"');
}

void imapd_put_mailbox(struct imapd_session *sess, struct buf *out, const char *utf8name)
{
	struct buf enc = BUF_INIT(BUF_NOLIMIT);

	(void)sess;
	if (!utf7imap_encode(utf8name, strlen(utf8name), &enc)) {
		/* names on disk are checked when made; a bad one made by hand is shown escaped, never raw */
		buf_reset(&enc);
		buf_append_printable(&enc, utf8name, strlen(utf8name), 1000);
	}
	imapd_put_string(out, buf_cstr(&enc), enc.len);
	buf_free(&enc);
}

bool imapd_arg_mailbox(struct imapd_session *sess, const struct imap_arg *a, struct buf *out)
{
	const char *s;
	struct buf dec = BUF_INIT(4096);

	if (!imap_arg_astring(a, &s)) {
		imapd_bad(sess, "mailbox name expected");
		return false;
	}
	if (!utf7imap_decode(s, strlen(s), &dec)) {
		buf_free(&dec);
		imapd_no(sess, "[CANNOT] mailbox name is not valid modified UTF-7");
		return false;
	}
	bool ok = imap_mailbox_canon(buf_cstr(&dec), IMAPD_HIER_SEP, out);
	buf_free(&dec);
	if (!ok)
		imapd_no(sess, "[CANNOT] mailbox name too long");
	return ok;
}

void imapd_capabilities(struct imapd_session *sess, struct buf *out)
{
	buf_puts(out, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE NAMESPACE UNSELECT SPECIAL-USE UIDPLUS MOVE ESEARCH");
	buf_puts(out, " IDLE");
	buf_puts(out, " CONDSTORE QRESYNC");
	buf_puts(out, " COMPRESS=DEFLATE");
	buf_puts(out, " QUOTA QUOTA=RES-STORAGE");
	buf_puts(out, " CHILDREN LIST-EXTENDED LIST-STATUS");
	if (sess->state != IMAPD_NOTAUTH && sess->set->max_literal)
		buf_printf(out, " APPENDLIMIT=%zu", sess->set->max_literal);
	if (sess->state != IMAPD_NOTAUTH)
		return;
	bool tls = stream_is_tls(sess->s);
	if ((sess->set->tls_ctx || sess->set->tls_pem) && !tls)
		buf_puts(out, " STARTTLS");
	if (tls || sess->loopback || sess->set->plaintext_login)
		buf_puts(out, " AUTH=PLAIN AUTH=LOGIN");
	else
		buf_puts(out, " LOGINDISABLED");
}

/* ---- login ---- */

/* In a pre-login process (the service runs as root): the root parent opens the mailbox as its owner and answers
 * the login command (imapd_session_resume). Returns only when the login cannot be handed over. */
static void hand_over(struct imapd_session *sess, struct imapd_login *login)
{
	struct prelogin_login l = { .user = login->user, .maildir = login->maildir, .uid = login->uid,
				    .gid = login->gid, .tag = sess->tag, .token = login->token, .fd = -1 };

	if (login->uid == 0) {
		log_error("imapd: user %s: no mailbox owner other than root", login->user);
		return;
	}
	prelogin_handoff(sess->s, &l);
}

bool imapd_session_login(struct imapd_session *sess, struct imapd_login *login)
{
	if (prelogin_active()) {
		hand_over(sess, login);
		return false;
	}
	if (getegid() != login->gid || geteuid() != login->uid) {
		/* only root can become the owner; a process already dropped to mail_owner serves only that uid */
		if (geteuid() != 0) {
			log_error("imapd: user %s: mailbox owner uid %ld, but running as uid %ld", login->user,
				  (long)login->uid, (long)geteuid());
			return false;
		}
		prelogin_become(login->uid, login->gid);
	}
	sess->login = *login;
	memset(login, 0, sizeof(*login));
	sess->state = IMAPD_AUTH;
	stream_set_timeouts(sess->s, sess->set->timeout_ms, sess->set->timeout_ms);

	imap_parser_free(&sess->parser);
	struct imap_parser_limits lim = { .max_line = sess->set->max_line, .max_literal = sess->set->max_literal };
	sess->parser = imap_parser_new(&lim);

	struct buf err = BUF_INIT(1024);
	bool ok = imapd_mailboxes_prepare(sess->login.maildir, &err);
	if (!ok)
		log_error("imapd: user %s: %s", sess->login.user, buf_cstr(&err));
	buf_free(&err);
	return ok;
}

/* ---- dispatch ---- */

static void dispatch(struct imapd_session *sess)
{
	const char *name = imap_parser_command(sess->parser);
	size_t nargs;
	const struct imap_arg *args = imap_parser_args(sess->parser, &nargs);
	bool uid = false;

	if (str_eq_ci(name, "UID")) {
		if (nargs < 1 || args[0].type != IMAP_ARG_ATOM) {
			imapd_bad(sess, "UID needs a command");
			return;
		}
		uid = true;
		name = args[0].str;
		args++;
		nargs--;
	}
	const struct imapd_cmd *c = imapd_cmd_find(name);
	if (!c || (uid && !(c->flags & (IMAPD_CMD_UID | IMAPD_CMD_UIDONLY))) || (!uid && (c->flags & IMAPD_CMD_UIDONLY))) {
		imapd_bad(sess, "unknown command");
		return;
	}
	if (!(c->flags & sess->state)) {
		if (sess->state == IMAPD_NOTAUTH)
			imapd_bad(sess, "log in first");
		else if (!(c->flags & IMAPD_CMD_NOTAUTH))
			imapd_bad(sess, "no mailbox selected");
		else
			imapd_bad(sess, "already logged in");
		return;
	}
	if (sess->sel)
		sess->sel->no_expunge = false;
	c->fn(sess, args, nargs, uid);
}

static void session_loop(struct imapd_session *sess);

void imapd_session_run(struct imapd_session *sess)
{
	struct buf caps = BUF_INIT(4096);

	if (sess->set->implicit_tls && stream_starttls_server(sess->s, sess->set->tls_ctx) != STREAM_OK) {
		log_info("imapd: TLS handshake failed: %s", stream_error_text(sess->s));
		buf_free(&caps);
		return;
	}
	imapd_capabilities(sess, &caps);
	imapd_untagged(sess, "OK [CAPABILITY %s] Postern IMAP ready", buf_cstr(&caps));
	buf_free(&caps);
	session_loop(sess);
}

void imapd_session_resume(struct imapd_session *sess, struct imapd_login *login, const char *tag)
{
	struct buf caps = BUF_INIT(4096);

	sess->tag = xstrdup(tag);
	if (!imapd_session_login(sess, login)) {
		imapd_no(sess, "[SERVERBUG] cannot open the mailbox");
		stream_flush(sess->s);
		xfree(&sess->tag);
		buf_free(&caps);
		return;
	}
	imapd_capabilities(sess, &caps);
	imapd_ok(sess, "[CAPABILITY %s] logged in", buf_cstr(&caps));
	xfree(&sess->tag);
	buf_free(&caps);
	session_loop(sess);
}

static void session_loop(struct imapd_session *sess)
{
	while (sess->state != IMAPD_LOGOUT) {
		if (stream_flush(sess->s) != STREAM_OK)
			break;
		const void *p;
		size_t n, used;
		/* a stop or reload does not wait for a client between commands (or in an unfinished one: nothing of
		 * it is done yet) */
		stream_set_interrupt(sess->s, daemon_stopping);
		enum stream_result sr = stream_peek(sess->s, &p, &n);
		stream_set_interrupt(sess->s, NULL);
		if (sr == STREAM_TIMEOUT || sr == STREAM_INTERRUPTED) {
			imapd_untagged(sess, sr == STREAM_TIMEOUT ? "BYE idle for too long" : "BYE Server shutting down");
			break;
		}
		if (sr != STREAM_OK)
			break;
		enum imap_parse_result r = imap_parser_feed(sess->parser, p, n, &used);
		stream_consume(sess->s, used);
		switch (r) {
		case IMAP_PARSE_MORE:
			continue;
		case IMAP_PARSE_CONT:
			stream_puts(sess->s, "+ OK\r\n");
			continue;
		case IMAP_PARSE_DONE:
			sess->tag = xstrdup(imap_parser_tag(sess->parser));
			dispatch(sess);
			break;
		case IMAP_PARSE_ERROR:
			if (imap_parser_tag(sess->parser))
				sess->tag = xstrdup(imap_parser_tag(sess->parser));
			imapd_bad(sess, "%s", imap_parser_error(sess->parser));
			break;
		case IMAP_PARSE_FATAL:
			imapd_untagged(sess, "BYE %s", imap_parser_error(sess->parser));
			sess->state = IMAPD_LOGOUT;
			break;
		}
		xfree(&sess->tag);
		imap_parser_reset(sess->parser);
		if (sess->set->max_bad > 0 && sess->bad_count >= sess->set->max_bad) {
			imapd_untagged(sess, "BYE too many errors");
			break;
		}
	}
	stream_flush(sess->s);
}
