/* The POP3 session: state machine, replies, and the mailbox snapshot a session works on. */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "daemon.h"
#include "dotstream.h"
#include "log.h"
#include "maildir.h"
#include "mbox.h"
#include "pop3_cmd.h"
#include "pop3_session.h"
#include "prelogin.h"
#include "sasl.h"
#include "str.h"

#define SASL_LINE_MAX 8192

enum pop3_state { ST_AUTH, ST_TRANS };

struct msg {
	uint32_t uid;
	uint64_t wsize;
	bool deleted;
};

struct sess {
	struct stream *s;
	const struct pop3_opts *o;
	bool loopback;
	const char *peer;
	enum pop3_state state;
	char *user;		/* after USER */
	struct buf timestamp;	/* "<...>" of the greeting */
	struct pop3_user login;
	struct mbox *mb;
	int lockfd;
	struct msg *msgs;
	size_t n;
	unsigned bad;
	bool done;
	bool tls_proxied;	/* after a privilege-separated login: TLS is in the login process (prelogin.h) */
};

static void reply(struct sess *ss, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct sess *ss, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stream_vprintf(ss->s, fmt, ap);
	va_end(ap);
	stream_puts(ss->s, "\r\n");
}

static bool plaintext_ok(const struct sess *ss)
{
	return stream_is_tls(ss->s) || ss->loopback || ss->o->plaintext_anywhere;
}

static void capa(struct sess *ss)
{
	reply(ss, "+OK Capability list follows");
	reply(ss, "TOP");
	reply(ss, "UIDL");
	reply(ss, "RESP-CODES");
	reply(ss, "AUTH-RESP-CODE");
	reply(ss, "PIPELINING");
	if (ss->state == ST_AUTH && plaintext_ok(ss)) {
		reply(ss, "USER");
		reply(ss, "SASL PLAIN LOGIN");
	}
	if (ss->state == ST_AUTH && ss->o->tls && !stream_is_tls(ss->s))
		reply(ss, "STLS");
	reply(ss, "IMPLEMENTATION Postern");
	reply(ss, ".");
}

/* A switch to the mailbox owner, every step fatal: a half-dropped process must not serve mail. */
static void become_owner(const struct pop3_user *u)
{
	if (geteuid() != 0)
		return;
	if (!u->have_ids) {
		/* only the temporary password-file backend can say nothing about the owner */
		log_warn("no owner known for the mailbox of %s: serving it without a privilege switch", u->name);
		return;
	}
	if (u->uid == 0)
		fatalx("refusing to serve %s as root", u->name);
	prelogin_become(u->uid, u->gid);
}

/* In a pre-login process (pop3d's service runs as root): the root parent opens the mailbox as its owner. */
static void hand_over(struct sess *ss)
{
	struct prelogin_login l = { .user = ss->login.name, .maildir = ss->login.maildir, .uid = ss->login.uid,
		                    .gid = ss->login.gid, .token = ss->login.token, .fd = -1 };

	if (!ss->login.have_ids || ss->login.uid == 0) {
		log_error("%s: no mailbox owner other than root known: login refused", ss->login.name);
		reply(ss, "-ERR [SYS/PERM] this account cannot read mail here");
		pop3_user_clear(&ss->login);
		return;
	}
	prelogin_handoff(ss->s, &l);
}

static uint64_t total(const struct sess *ss, size_t *count)
{
	uint64_t sum = 0;

	*count = 0;
	for (size_t i = 0; i < ss->n; i++)
		if (!ss->msgs[i].deleted) {
			sum += ss->msgs[i].wsize;
			(*count)++;
		}
	return sum;
}

/* After a successful credential check: lock and open the mailbox, fix the snapshot, enter TRANSACTION. */
static void enter_transaction(struct sess *ss)
{
	struct buf err = BUF_INIT(4096);
	const char *md = ss->login.maildir;
	size_t count;
	bool was_root = geteuid() == 0;

	if (prelogin_active()) {
		hand_over(ss);
		buf_free(&err);
		return;
	}
	if (ss->o->drop_privs)
		become_owner(&ss->login);
	if (!maildir_make(md, 0700, &err)) {
		log_error("%s: %s", ss->login.name, buf_cstr(&err));
		reply(ss, "-ERR [SYS/TEMP] mailbox unavailable, try again later");
		goto fail;
	}
	if ((ss->lockfd = mbox_lock(md, POP3_LOCK_FILE)) < 0) {
		if (errno == EWOULDBLOCK) {
			reply(ss, "-ERR [IN-USE] mailbox in use by another session");
		} else {
			log_error("%s: lock %s: %s", ss->login.name, md, strerror(errno));
			reply(ss, "-ERR [SYS/TEMP] mailbox unavailable, try again later");
		}
		goto fail;
	}
	if (!(ss->mb = mbox_open(md, &err))) {
		log_error("%s: %s", ss->login.name, buf_cstr(&err));
		reply(ss, "-ERR [SYS/TEMP] mailbox unavailable, try again later");
		goto fail;
	}
	ss->n = mbox_count(ss->mb);
	ss->msgs = xcalloc(ss->n ? ss->n : 1, sizeof(*ss->msgs));
	for (size_t i = 0; i < ss->n; i++) {
		const struct mbox_msg *m = mbox_get(ss->mb, i);
		ss->msgs[i] = (struct msg){ m->uid, m->wsize, false };
	}
	ss->state = ST_TRANS;
	uint64_t sz = total(ss, &count);
	log_info("login: user=%s, client=%s, messages=%zu, tls=%s", log_safe(ss->login.name, strlen(ss->login.name), 100),
	         ss->peer, count, stream_is_tls(ss->s) || ss->tls_proxied ? "yes" : "no");
	reply(ss, "+OK maildrop has %zu messages (%" PRIu64 " octets)", count, sz);
	buf_free(&err);
	return;
fail:
	buf_free(&err);
	if (ss->lockfd >= 0)
		close(ss->lockfd);
	ss->lockfd = -1;
	pop3_user_clear(&ss->login);
	/* After a switch to this owner the process must not serve anyone else's login: hang up. */
	if (was_root && geteuid() != 0) {
		reply(ss, "-ERR [SYS/TEMP] closing");
		ss->done = true;
	}
}

static void login_result(struct sess *ss, enum pop3_auth_result r, const char *user)
{
	if (r == POP3_AUTH_OK) {
		enter_transaction(ss);
		return;
	}
	log_info("login failed: user=%s, client=%s%s", log_safe(user, strlen(user), 100), ss->peer,
	         r == POP3_AUTH_TEMPFAIL ? " (temporary)" : "");
	if (r == POP3_AUTH_TEMPFAIL)
		reply(ss, "-ERR [SYS/TEMP] authentication service unavailable, try again later");
	else
		reply(ss, "-ERR [AUTH] authentication failed");
}

static struct pop3_auth_client client_of(const struct sess *ss)
{
	return (struct pop3_auth_client){ ss->peer, stream_is_tls(ss->s), ss->loopback, ss->o->plaintext_anywhere };
}

static const char no_plain[] = "-ERR [AUTH] plaintext authentication needs TLS (use STLS)";

static void cmd_pass(struct sess *ss, const char *pass)
{
	if (!ss->user) {
		reply(ss, "-ERR give USER first");
		return;
	}
	char *user = ss->user;
	ss->user = NULL;
	struct pop3_auth_client cl = client_of(ss);
	login_result(ss, ss->o->auth->plain(ss->o->auth->ctx, &cl, user, pass, &ss->login), user);
	free(user);
}

/* Read one SASL client response; false when the session must end or the exchange was cancelled. */
static bool sasl_read(struct sess *ss, struct buf *line, struct buf *dec)
{
	enum stream_result r;

	stream_flush(ss->s);
	r = stream_read_line(ss->s, line, SASL_LINE_MAX);
	if (r == STREAM_TOOLONG) {
		reply(ss, "-ERR [AUTH] response too long");
		return false;
	}
	if (r != STREAM_OK) {
		ss->done = true;
		return false;
	}
	if (line->len == 1 && line->data[0] == '*') {
		reply(ss, "-ERR [AUTH] authentication cancelled");
		return false;
	}
	buf_reset(dec);
	if (!sasl_base64_decode(line->data ? line->data : "", line->len, dec)) {
		reply(ss, "-ERR [AUTH] malformed base64");
		return false;
	}
	return true;
}

static void cmd_auth(struct sess *ss, const struct pop3_cmd *c)
{
	struct buf line = BUF_INIT(SASL_LINE_MAX), dec = BUF_INIT(4096), user = BUF_INIT(255),
	           pass = BUF_INIT(1024), ch = BUF_INIT(BUF_NOLIMIT);
	const char *ir = c->nargs == 2 ? c->arg[1] : NULL;

	if (c->nargs == 0) {
		reply(ss, "+OK");
		if (plaintext_ok(ss)) {
			reply(ss, "PLAIN");
			reply(ss, "LOGIN");
		}
		reply(ss, ".");
		return;
	}
	bool plain = str_eq_ci(c->arg[0], "PLAIN"), login = str_eq_ci(c->arg[0], "LOGIN");
	if (!plain && !login) {
		reply(ss, "-ERR [AUTH] unsupported mechanism");
		return;
	}
	if (!plaintext_ok(ss)) {
		reply(ss, "%s", no_plain);
		return;
	}
	if (plain) {
		if (ir && strcmp(ir, "=") == 0) {
			ir = NULL;
			reply(ss, "+ ");
			if (!sasl_read(ss, &line, &dec))
				goto out;
		} else if (ir) {
			if (!sasl_base64_decode(ir, strlen(ir), &dec)) {
				reply(ss, "-ERR [AUTH] malformed base64");
				goto out;
			}
		} else {
			reply(ss, "+ ");
			if (!sasl_read(ss, &line, &dec))
				goto out;
		}
		struct sasl_creds creds;
		struct buf perr = BUF_INIT(256);
		bool ok = sasl_plain_parse(dec.data ? dec.data : "", dec.len, &creds, &perr) &&
		          buf_puts(&user, creds.authcid) && buf_puts(&pass, creds.passwd);
		OPENSSL_cleanse(&creds, sizeof(creds));
		buf_free(&perr);
		if (!ok) {
			reply(ss, "-ERR [AUTH] malformed PLAIN response");
			goto out;
		}
	} else {
		if (ir) {
			if (!sasl_base64_decode(ir, strlen(ir), &dec)) {
				reply(ss, "-ERR [AUTH] malformed base64");
				goto out;
			}
		} else {
			(void)sasl_base64_encode("Username:", 9, &ch);
			reply(ss, "+ %s", buf_cstr(&ch));
			if (!sasl_read(ss, &line, &dec))
				goto out;
		}
		if (!buf_append(&user, dec.data ? dec.data : "", dec.len) || dec.len == 0 || memchr(dec.data, 0, dec.len)) {
			reply(ss, "-ERR [AUTH] malformed LOGIN response");
			goto out;
		}
		buf_reset(&ch);
		(void)sasl_base64_encode("Password:", 9, &ch);
		reply(ss, "+ %s", buf_cstr(&ch));
		if (!sasl_read(ss, &line, &dec))
			goto out;
		if (!buf_append(&pass, dec.data ? dec.data : "", dec.len) || dec.len == 0 || memchr(dec.data, 0, dec.len)) {
			reply(ss, "-ERR [AUTH] malformed LOGIN response");
			goto out;
		}
	}
	struct pop3_auth_client cl = client_of(ss);
	login_result(ss, ss->o->auth->plain(ss->o->auth->ctx, &cl, buf_cstr(&user), buf_cstr(&pass), &ss->login),
	             buf_cstr(&user));
out:
	if (line.data)
		OPENSSL_cleanse(line.data, line.cap);
	if (dec.data)
		OPENSSL_cleanse(dec.data, dec.cap);
	if (pass.data)
		OPENSSL_cleanse(pass.data, pass.cap);
	buf_free(&line);
	buf_free(&dec);
	buf_free(&user);
	buf_free(&pass);
	buf_free(&ch);
}

/* The message for a 1-based number, or NULL after an -ERR reply. */
static struct msg *msg_arg(struct sess *ss, uint32_t n)
{
	if (n == 0 || n > ss->n) {
		reply(ss, "-ERR no such message");
		return NULL;
	}
	if (ss->msgs[n - 1].deleted) {
		reply(ss, "-ERR message %" PRIu32 " already deleted", n);
		return NULL;
	}
	return &ss->msgs[n - 1];
}

/* RETR (lines < 0) or TOP: stream the file dot-stuffed; for TOP the header, the blank line and `lines` body lines. */
static void send_msg(struct sess *ss, uint32_t n, int64_t lines)
{
	struct buf err = BUF_INIT(4096);
	struct msg *m = msg_arg(ss, n);
	struct dot_encoder e;
	char blk[65536];
	size_t idx;
	ssize_t r;
	int fd;
	bool in_header = true, bol = true;

	if (!m)
		return;
	/* m is our own snapshot, not a pointer into the index, which mbox_msg_open may re-sync and move */
	if ((idx = mbox_find(ss->mb, m->uid)) == (size_t)-1 || (fd = mbox_msg_open(ss->mb, idx, &err)) < 0) {
		if (err.len)
			log_warn("%s", buf_cstr(&err));
		reply(ss, "-ERR message %" PRIu32 " has been removed by another session", n);
		buf_free(&err);
		return;
	}
	buf_free(&err);
	if (lines < 0)
		reply(ss, "+OK %" PRIu64 " octets", m->wsize);
	else
		reply(ss, "+OK top of message follows");
	dot_encoder_init(&e);
	while ((r = read(fd, blk, sizeof(blk))) > 0) {
		size_t len = (size_t)r;
		if (lines >= 0) {
			/* cut after the header's blank line plus `lines` body lines */
			for (size_t i = 0; i < len; i++) {
				if (blk[i] != '\n') {
					if (blk[i] != '\r')
						bol = false;
					continue;
				}
				if (in_header && bol)
					in_header = false;
				else if (!in_header && lines-- == 0) {
					len = i;	/* the line end before is already out */
					break;
				}
				bol = true;
				if (!in_header && lines == 0) {
					len = i + 1;
					lines = -2;	/* stop after this chunk */
					break;
				}
			}
		}
		if (dot_write(ss->s, &e, blk, len) != STREAM_OK)
			break;
		if (lines == -2)
			break;
	}
	close(fd);
	dot_write_end(ss->s, &e);
}

static void cmd_list(struct sess *ss, const struct pop3_cmd *c, bool uidl)
{
	uint32_t uv = mbox_uidvalidity(ss->mb);

	if (c->nargs == 1) {
		struct msg *m = msg_arg(ss, c->num[0]);
		if (!m)
			return;
		if (uidl)
			reply(ss, "+OK %" PRIu32 " %" PRIu32 "-%" PRIu32, c->num[0], uv, m->uid);
		else
			reply(ss, "+OK %" PRIu32 " %" PRIu64, c->num[0], m->wsize);
		return;
	}
	reply(ss, uidl ? "+OK unique-id listing follows" : "+OK scan listing follows");
	for (size_t i = 0; i < ss->n; i++) {
		if (ss->msgs[i].deleted)
			continue;
		if (uidl)
			reply(ss, "%zu %" PRIu32 "-%" PRIu32, i + 1, uv, ss->msgs[i].uid);
		else
			reply(ss, "%zu %" PRIu64, i + 1, ss->msgs[i].wsize);
	}
	reply(ss, ".");
}

static void cmd_quit(struct sess *ss)
{
	struct buf err = BUF_INIT(4096);
	uint32_t *uids;
	size_t nd = 0, count;

	ss->done = true;
	if (ss->state == ST_AUTH) {
		reply(ss, "+OK Postern POP3 server signing off");
		return;
	}
	/* UPDATE state */
	uids = xcalloc(ss->n ? ss->n : 1, sizeof(*uids));
	for (size_t i = 0; i < ss->n; i++)
		if (ss->msgs[i].deleted)
			uids[nd++] = ss->msgs[i].uid;
	if (nd && !mbox_expunge(ss->mb, uids, nd, &err)) {
		log_error("%s: %s", ss->login.name, buf_cstr(&err));
		reply(ss, "-ERR [SYS/TEMP] some deleted messages not removed");
	} else {
		(void)total(ss, &count);
		log_info("logout: user=%s, deleted=%zu, left=%zu", log_safe(ss->login.name, strlen(ss->login.name), 100),
		         nd, count);
		reply(ss, "+OK Postern POP3 server signing off (%zu messages left)", count);
	}
	free(uids);
	buf_free(&err);
	/* Unlock before the client hears +OK, so it can log in again at once. */
	mbox_close(&ss->mb);
	close(ss->lockfd);
	ss->lockfd = -1;
}

static void dispatch(struct sess *ss, struct pop3_cmd *c)
{
	size_t count;
	struct msg *m;

	switch (c->def->id) {
	case POP3_CMD_CAPA:
		capa(ss);
		break;
	case POP3_CMD_QUIT:
		cmd_quit(ss);
		break;
	case POP3_CMD_STLS:
		if (!ss->o->tls || stream_is_tls(ss->s)) {
			reply(ss, "-ERR STLS not available");
			break;
		}
		reply(ss, "+OK begin TLS negotiation");
		if (stream_starttls_server(ss->s, ss->o->tls) != STREAM_OK) {
			log_info("STLS failed: client=%s: %s", ss->peer, stream_error_text(ss->s));
			ss->done = true;
			break;
		}
		xfree(&ss->user);	/* RFC 2595: forget what was said before TLS */
		break;
	case POP3_CMD_USER:
		if (!plaintext_ok(ss)) {
			reply(ss, "%s", no_plain);
			break;
		}
		free(ss->user);
		ss->user = xstrdup(c->arg[0]);
		reply(ss, "+OK");
		break;
	case POP3_CMD_PASS:
		if (!plaintext_ok(ss)) {
			reply(ss, "%s", no_plain);
			break;
		}
		cmd_pass(ss, c->arg[0]);
		break;
	case POP3_CMD_APOP:
		if (!ss->o->apop) {
			reply(ss, "-ERR APOP not enabled");
			break;
		}
		struct pop3_auth_client cl = client_of(ss);
		login_result(ss, ss->o->auth->apop(ss->o->auth->ctx, &cl, c->arg[0], buf_cstr(&ss->timestamp), c->arg[1],
		                                   &ss->login),
		             c->arg[0]);
		break;
	case POP3_CMD_AUTH:
		cmd_auth(ss, c);
		break;
	case POP3_CMD_STAT: {
		uint64_t sz = total(ss, &count);
		reply(ss, "+OK %zu %" PRIu64, count, sz);
		break;
	}
	case POP3_CMD_LIST:
		cmd_list(ss, c, false);
		break;
	case POP3_CMD_UIDL:
		cmd_list(ss, c, true);
		break;
	case POP3_CMD_RETR:
		send_msg(ss, c->num[0], -1);
		break;
	case POP3_CMD_TOP:
		send_msg(ss, c->num[0], c->num[1]);
		break;
	case POP3_CMD_DELE:
		if ((m = msg_arg(ss, c->num[0])) != NULL) {
			m->deleted = true;
			reply(ss, "+OK message %" PRIu32 " deleted", c->num[0]);
		}
		break;
	case POP3_CMD_NOOP:
		reply(ss, "+OK");
		break;
	case POP3_CMD_RSET: {
		for (size_t i = 0; i < ss->n; i++)
			ss->msgs[i].deleted = false;
		uint64_t sz = total(ss, &count);
		reply(ss, "+OK maildrop has %zu messages (%" PRIu64 " octets)", count, sz);
		break;
	}
	}
}

static void greeting(struct sess *ss)
{
	uint32_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)time(NULL);
	buf_printf(&ss->timestamp, "<%ld.%08x.%lld@%s>", (long)getpid(), (unsigned)rnd, (long long)time(NULL),
	           ss->o->hostname);
	if (ss->o->apop)
		reply(ss, "+OK Postern POP3 server ready %s", buf_cstr(&ss->timestamp));
	else
		reply(ss, "+OK Postern POP3 server ready");
}

static bool bad(struct sess *ss, const char *text)
{
	reply(ss, "-ERR %s", text);
	if (++ss->bad >= ss->o->max_bad) {
		reply(ss, "-ERR too many bad commands, closing");
		return false;
	}
	return true;
}

static void session_loop(struct sess *ss)
{
	struct stream *s = ss->s;
	const char *peer = ss->peer;
	struct buf line = BUF_INIT(POP3_LINE_MAX + 1);
	struct pop3_cmd c;

	while (!ss->done) {
		/* Pipelining: replies wait while the next command is already here, never while we wait for input. */
		if (!stream_line_pending(s) && stream_flush(s) != STREAM_OK)
			break;
		/* a stop or reload does not wait for an idle client; like a lost connection, no UPDATE */
		stream_set_interrupt(s, daemon_stopping);
		enum stream_result r = stream_read_line(s, &line, POP3_LINE_MAX);
		stream_set_interrupt(s, NULL);
		if (r == STREAM_TOOLONG) {
			if (!bad(ss, "line too long"))
				break;
			continue;
		}
		if (r != STREAM_OK) {
			if (r == STREAM_TIMEOUT || r == STREAM_INTERRUPTED) {
				reply(ss, r == STREAM_TIMEOUT ? "-ERR autologout: idle too long" : "-ERR Server shutting down");
				stream_flush(s);
			}
			break;	/* no UPDATE: a lost connection deletes nothing */
		}
		switch (pop3_cmd_parse(line.data ? line.data : (char[1]){ 0 }, line.len, &c)) {
		case POP3_PARSE_UNKNOWN:
			if (!bad(ss, "unknown command"))
				goto out;
			continue;
		case POP3_PARSE_SYNTAX:
			if (!bad(ss, "syntax error"))
				goto out;
			continue;
		case POP3_PARSE_OK:
			break;
		}
		if (!(c.def->states & (ss->state == ST_AUTH ? POP3_IN_AUTH : POP3_IN_TRANS))) {
			if (!bad(ss, "command not valid in this state"))
				break;
			continue;
		}
		if (c.def->id != POP3_CMD_PASS && c.def->id != POP3_CMD_AUTH)
			log_debug("client=%s: %s", peer, log_safe(line.data, line.len, 100));
		dispatch(ss, &c);
		if (line.data)
			OPENSSL_cleanse(line.data, line.len);
	}
out:
	stream_flush(s);
	buf_free(&line);
}

static void session_end(struct sess *ss)
{
	if (ss->lockfd >= 0)
		close(ss->lockfd);
	mbox_close(&ss->mb);
	free(ss->msgs);
	free(ss->user);
	pop3_user_clear(&ss->login);
	buf_free(&ss->timestamp);
	stream_free(&ss->s);
}

void pop3_session_run(struct stream *s, const struct pop3_opts *o, bool loopback, const char *peer)
{
	struct sess ss = { .s = s, .o = o, .loopback = loopback, .peer = peer, .lockfd = -1 };

	buf_init(&ss.timestamp, 1024);
	stream_set_timeouts(s, o->timeout_ms, o->timeout_ms);
	if (o->implicit_tls && stream_starttls_server(s, o->tls) != STREAM_OK) {
		log_info("TLS handshake failed: client=%s: %s", peer, stream_error_text(s));
	} else {
		greeting(&ss);
		session_loop(&ss);
	}
	session_end(&ss);
}

void pop3_session_resume(struct stream *s, const struct pop3_opts *o, bool loopback, const char *peer,
                         struct pop3_user *login, bool tls)
{
	struct sess ss = { .s = s, .o = o, .loopback = loopback, .peer = peer, .lockfd = -1, .tls_proxied = tls };

	buf_init(&ss.timestamp, 1024);
	stream_set_timeouts(s, o->timeout_ms, o->timeout_ms);
	ss.login = *login;
	memset(login, 0, sizeof(*login));
	enter_transaction(&ss);
	if (ss.state == ST_TRANS)
		session_loop(&ss);
	stream_flush(s);
	session_end(&ss);
}
