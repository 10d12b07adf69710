/* The SMTP client conversation (see session.h). Postfix's smtp_proto.c is the model for the wording of the
 * results ("host X[ip] said: ... (in reply to RCPT TO command)"), so logs and bounces read the way admins know. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "alloc.h"
#include "content.h"
#include "dns.h"
#include "dotstream.h"
#include "esmtp.h"
#include "log.h"
#include "mime.h"
#include "qfile.h"
#include "reply.h"
#include "session.h"
#include "str.h"
#include "stream.h"
#include "tls.h"

#define SMTP_CONTENT_CHUNK 65536

struct sess {
	const struct smtp_session_opts *o;
	const struct smtp_target *t;
	struct smtp_message *m;
	struct smtp_attempt *a;
	struct stream *s;
	struct smtp_reply r;
	struct smtp_caps caps;
	struct buf line, name, err;
	bool want_keep;		/* the caller caches connections: end with RSET, not QUIT */
	bool keep;		/* RSET succeeded: the connection can take another message */
	bool reused;		/* this conversation continues a cached connection */
	bool stale;		/* ... which the server had closed: retry on a fresh connection */
};

struct smtp_conn {
	struct stream *s;
	struct smtp_caps caps;
	struct buf name;
	char *host;
	struct dns_addr addr;
	unsigned port;
	enum smtp_tls_level tls;
	char *auth_user;	/* who we authenticated as, NULL for nobody: a connection is only reused as the same */
};

bool smtp_tls_level_parse(const char *s, enum smtp_tls_level *out)
{
	static const char *const names[] = { "none", "may", "encrypt", "verify" };
	for (int i = 0; i < 4; i++)
		if (str_eq_ci(s, names[i])) {
			*out = (enum smtp_tls_level)i;
			return true;
		}
	return false;
}

void smtp_rcpts_fail(struct smtp_message *m, int code, const char *dsn, const char *text)
{
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct smtp_rcpt *r = &m->rcpts[i];
		if (r->code)
			continue;
		r->code = code;
		str_copy(r->dsn, sizeof(r->dsn), dsn);
		buf_reset(&r->text);
		buf_puts(&r->text, text);
	}
}

static void attempt_set(struct smtp_attempt *a, int code, const char *dsn, const char *text)
{
	a->code = code;
	str_copy(a->dsn, sizeof(a->dsn), dsn);
	buf_reset(&a->why);
	buf_puts(&a->why, text);
}

/* Non-blocking connect bounded by ms. */
static int connect_to(const struct smtp_target *t, int ms, struct buf *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (t->addr.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)t->port);
		sin->sin_addr = t->addr.u.v4;
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)t->port);
		sin6->sin6_addr = t->addr.u.v6;
		sl = sizeof(*sin6);
	}
	int fd = socket(t->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		buf_printf(err, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		buf_puts(err, strerror(errno));
		close(fd);
		return -1;
	}
	struct pollfd p = { fd, POLLOUT, 0 };
	int n;
	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		buf_puts(err, "Connection timed out");
		close(fd);
		return -1;
	}
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
		buf_puts(err, strerror(soerr ? soerr : errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Read one whole reply within ms. Returns the code, or -1 with s->err describing the failure during what. */
static int read_reply(struct sess *s, int ms, const char *what)
{
	stream_set_timeouts(s->s, ms, ms);
	smtp_reply_reset(&s->r);
	for (;;) {
		enum stream_result sr = stream_read_line(s->s, &s->line, SMTP_REPLY_LINE_MAX);
		buf_reset(&s->err);
		if (sr == STREAM_TIMEOUT) {
			buf_printf(&s->err, "conversation with %s timed out while %s", buf_cstr(&s->name), what);
			return -1;
		}
		if (sr == STREAM_EOF || sr == STREAM_ERROR) {
			buf_printf(&s->err, "lost connection with %s while %s", buf_cstr(&s->name), what);
			return -1;
		}
		if (sr == STREAM_TOOLONG) {
			buf_printf(&s->err, "reply line too long from %s while %s", buf_cstr(&s->name), what);
			return -1;
		}
		struct buf e = BUF_INIT(256);
		int r = smtp_reply_feed(&s->r, s->line.data ? s->line.data : "", s->line.len, &e);
		if (r < 0) {
			buf_printf(&s->err, "protocol error from %s while %s: %s", buf_cstr(&s->name), what, buf_cstr(&e));
			buf_free(&e);
			return -1;
		}
		buf_free(&e);
		if (r == 1)
			return s->r.code;
	}
}

/* "host X[ip] said: 550 5.1.1 text (in reply to CMD command)" into out. */
static void said(struct sess *s, const char *cmd, struct buf *out)
{
	struct buf first = BUF_INIT(600);
	buf_reset(out);
	buf_printf(out, "host %s said: %d %s (in reply to %s command)", buf_cstr(&s->name), s->r.code,
	           smtp_reply_first_line(&s->r, &first), cmd);
	buf_free(&first);
}

static const char *reply_dsn(const struct smtp_reply *r, const char *dflt4, const char *dflt5)
{
	if (r->dsn[0])
		return r->dsn;
	return r->code / 100 == 5 ? dflt5 : r->code / 100 == 4 ? dflt4 : "2.0.0";
}

static bool send_cmd(struct sess *s, int ms, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool send_cmd(struct sess *s, int ms, const char *fmt, ...)
{
	stream_set_timeouts(s->s, ms, ms);
	va_list ap;
	va_start(ap, fmt);
	stream_vprintf(s->s, fmt, ap);
	va_end(ap);
	stream_puts(s->s, "\r\n");
	return true;
}

static bool flush(struct sess *s, const char *what)
{
	enum stream_result r = stream_flush(s->s);
	if (r == STREAM_OK)
		return true;
	buf_reset(&s->err);
	buf_printf(&s->err, "%s with %s while %s", r == STREAM_TIMEOUT ? "conversation timed out" : "lost connection",
	           buf_cstr(&s->name), what);
	return false;
}

static bool has_8bit_n(const char *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

static bool has_8bit(const char *p)
{
	return p && has_8bit_n(p, strlen(p));
}

/* EHLO, or HELO when EHLO is refused. Returns 2 on success, -1 on I/O failure (s->err), else the reply class. */
static int hello(struct sess *s)
{
	send_cmd(s, s->o->helo_ms, "EHLO %s", s->o->helo_name);
	if (!flush(s, "sending EHLO"))
		return -1;
	int c = read_reply(s, s->o->helo_ms, "receiving the EHLO reply");
	if (c < 0)
		return -1;
	if (c / 100 == 2) {
		smtp_caps_parse(&s->caps, &s->r);
		return 2;
	}
	send_cmd(s, s->o->helo_ms, "HELO %s", s->o->helo_name);
	if (!flush(s, "sending HELO"))
		return -1;
	c = read_reply(s, s->o->helo_ms, "receiving the HELO reply");
	if (c < 0)
		return -1;
	struct buf keep = s->caps.name;
	memset(&s->caps, 0, sizeof(s->caps));
	s->caps.name = keep;
	buf_reset(&s->caps.name);
	return c / 100;
}

/* STARTTLS per policy. true to go on (maybe in plaintext under "may"); false: next address (a set). */
static bool starttls(struct sess *s)
{
	const struct smtp_session_opts *o = s->o;
	struct buf msg = BUF_INIT(1024);
	bool required = o->tls >= SMTP_TLS_ENCRYPT;
	if (o->tls == SMTP_TLS_NONE || (!s->caps.starttls && !required)) {
		buf_free(&msg);
		return true;
	}
	if (!s->caps.starttls) {
		buf_printf(&msg, "TLS is required, but was not offered by host %s", buf_cstr(&s->name));
		attempt_set(s->a, 4, "4.7.4", msg.data);
		buf_free(&msg);
		return false;
	}
	send_cmd(s, o->starttls_ms, "STARTTLS");
	int c = flush(s, "sending STARTTLS") ? read_reply(s, o->starttls_ms, "receiving the STARTTLS reply") : -1;
	if (c < 0 || c / 100 != 2) {
		if (c < 0)
			buf_puts(&msg, buf_cstr(&s->err));
		else
			said(s, "STARTTLS", &msg);
		attempt_set(s->a, 4, "4.7.5", msg.data);
		buf_free(&msg);
		return false;
	}
	stream_set_timeouts(s->s, o->starttls_ms, o->starttls_ms);
	if (stream_starttls_client(s->s, o->tls_ctx, s->t->host) != STREAM_OK) {
		buf_printf(&msg, "Cannot start TLS: handshake failure with %s: %s", buf_cstr(&s->name),
		           stream_error_text(s->s));
		attempt_set(s->a, 4, "4.7.5", msg.data);
		buf_free(&msg);
		return false;
	}
	struct buf verr = BUF_INIT(512);
	bool verified = tls_verify_result(stream_ssl(s->s), &verr);
	const char *proto = "?", *cipher = "?";
	int bits = 0;
	stream_tls_info(s->s, &proto, &cipher, &bits);
	struct buf full = BUF_INIT(512);
	smtp_target_name(s->t, &full);
	log_info("%s: %s TLS connection established to %s: %s with cipher %s (%d/%d bits)", s->m->queue_id,
	         verified ? "Verified" : "Untrusted", buf_cstr(&full), proto, cipher, bits, bits);
	buf_free(&full);
	if (o->tls == SMTP_TLS_VERIFY && !verified) {
		buf_printf(&msg, "Server certificate not verified for %s: %s", buf_cstr(&s->name), buf_cstr(&verr));
		attempt_set(s->a, 4, "4.7.5", msg.data);
		buf_free(&verr);
		buf_free(&msg);
		return false;
	}
	buf_free(&verr);
	buf_free(&msg);
	int h = hello(s);
	if (h != 2) {
		attempt_set(s->a, 4, "4.4.2", h < 0 ? buf_cstr(&s->err) : "EHLO refused after STARTTLS");
		return false;
	}
	return true;
}

static void put_base64(struct buf *b, const void *p, size_t n)
{
	if (n > 3 * 1024)
		return;	/* credentials are short; a longer one is a broken map entry, and the server will say no */
	unsigned char out[4 * 1024 + 4];
	int len = EVP_EncodeBlock(out, p, (int)n);
	buf_append(b, out, (size_t)len);
}

/* One AUTH step: send line, expect a reply in class want (3 or 2). */
static bool auth_step(struct sess *s, const struct buf *line, int want, struct buf *msg)
{
	stream_set_timeouts(s->s, s->o->helo_ms, s->o->helo_ms);
	stream_write(s->s, line->data, line->len);
	stream_puts(s->s, "\r\n");
	int c = flush(s, "sending AUTH") ? read_reply(s, s->o->helo_ms, "receiving the AUTH reply") : -1;
	if (c < 0) {
		buf_puts(msg, buf_cstr(&s->err));
		return false;
	}
	if (c / 100 != want) {
		said(s, "AUTH", msg);
		return false;
	}
	return true;
}

/* Client SMTP AUTH. true to go on (also when the server offers no mechanism we know: the server decides whether
 * it relays for us); false: next address (a set). */
static bool authenticate(struct sess *s)
{
	const struct smtp_session_opts *o = s->o;
	if (!o->auth_user)
		return true;
	if (!s->caps.auth_plain && !s->caps.auth_login) {
		log_warn("%s: host %s offers no AUTH mechanism we support; sending without authentication",
		         s->m->queue_id, buf_cstr(&s->name));
		return true;
	}
	struct buf msg = BUF_INIT(1024), line = BUF_INIT(8192);
	bool ok = false;
	if (o->auth_tls_required && !stream_is_tls(s->s)) {
		buf_printf(&msg, "refusing to send credentials to %s without TLS", buf_cstr(&s->name));
		goto out;
	}
	if (s->caps.auth_plain) {
		struct buf raw = BUF_INIT(4096);
		buf_putc(&raw, '\0');
		buf_puts(&raw, o->auth_user);
		buf_putc(&raw, '\0');
		buf_puts(&raw, o->auth_pass);
		buf_puts(&line, "AUTH PLAIN ");
		put_base64(&line, raw.data, raw.len);
		/* the secret must not stay in freed memory longer than needed */
		OPENSSL_cleanse(raw.data, raw.len);
		buf_free(&raw);
		ok = auth_step(s, &line, 2, &msg);
	} else {
		buf_puts(&line, "AUTH LOGIN");
		ok = auth_step(s, &line, 3, &msg);
		buf_reset(&line);
		put_base64(&line, o->auth_user, strlen(o->auth_user));
		ok = ok && auth_step(s, &line, 3, &msg);
		buf_reset(&line);
		put_base64(&line, o->auth_pass, strlen(o->auth_pass));
		ok = ok && auth_step(s, &line, 2, &msg);
	}
	if (line.data)
		OPENSSL_cleanse(line.data, line.len);
	if (!ok)
		buf_printf(&msg, "%sSASL authentication failed", msg.len ? "; " : "");
out:
	if (!ok)
		attempt_set(s->a, 4, "4.7.0", msg.data);
	buf_free(&line);
	buf_free(&msg);
	return ok;
}

static void put_xtext(struct buf *b, const char *s)
{
	esmtp_xtext_encode(s, strlen(s), b);
}

/* An address as it can go to a server without SMTPUTF8: unchanged when ASCII, an internationalized domain as
 * A-labels (RFC 6531 3.2 lets a client do that); false when the local part is not ASCII, which only SMTPUTF8
 * can carry. */
static bool addr_ascii(const char *addr, struct buf *out)
{
	buf_reset(out);
	if (!has_8bit(addr))
		return buf_puts(out, addr);
	const char *at = strrchr(addr, '@');
	if (!at || has_8bit_n(addr, (size_t)(at - addr)))
		return false;
	buf_append(out, addr, (size_t)(at - addr) + 1);
	return dns_name_ascii(at + 1, out, NULL);
}

static void mail_cmd(struct sess *s, const char *sender, bool eightbit_body, bool utf8, uint64_t wire_size)
{
	struct smtp_message *m = s->m;
	struct buf c = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&c, "MAIL FROM:<%s>", sender);
	if (s->caps.size_given)
		buf_printf(&c, " SIZE=%llu", (unsigned long long)wire_size);
	if (eightbit_body)
		buf_puts(&c, " BODY=8BITMIME");
	if (utf8)
		buf_puts(&c, " SMTPUTF8");
	if (s->caps.dsn) {
		if (m->ret && (str_eq_ci(m->ret, "FULL") || str_eq_ci(m->ret, "HDRS")))
			buf_printf(&c, " RET=%s", m->ret);
		if (m->envid) {
			buf_puts(&c, " ENVID=");
			put_xtext(&c, m->envid);
		}
	}
	send_cmd(s, s->o->mail_ms, "%s", c.data);
	buf_free(&c);
}

static void rcpt_cmd(struct sess *s, const struct smtp_rcpt *r, const char *addr)
{
	struct buf c = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&c, "RCPT TO:<%s>", addr);
	if (s->caps.dsn && r->notify) {
		buf_puts(&c, " NOTIFY=");
		if (r->notify & QFILE_NOTIFY_NEVER) {
			buf_puts(&c, "NEVER");
		} else {
			const char *sep = "";
			if (r->notify & QFILE_NOTIFY_SUCCESS)
				buf_printf(&c, "%sSUCCESS", sep), sep = ",";
			if (r->notify & QFILE_NOTIFY_FAILURE)
				buf_printf(&c, "%sFAILURE", sep), sep = ",";
			if (r->notify & QFILE_NOTIFY_DELAY)
				buf_printf(&c, "%sDELAY", sep);
		}
	}
	if (s->caps.dsn && r->orcpt && *r->orcpt) {
		/* the queue keeps ORCPT as "type;decoded address"; on the wire the address is xtext again */
		const char *semi = strchr(r->orcpt, ';');
		buf_puts(&c, " ORCPT=");
		if (semi) {
			buf_append(&c, r->orcpt, (size_t)(semi - r->orcpt) + 1);
			put_xtext(&c, semi + 1);
		} else {
			buf_puts(&c, "rfc822;");
			put_xtext(&c, r->orcpt);
		}
	}
	send_cmd(s, s->o->rcpt_ms, "%s", c.data);
	buf_free(&c);
}

/* DATA content: dot-stuffed, CR LF line ends, ended by CR LF "." CR LF. */
static bool send_data_content(struct sess *s, const struct smtp_content *ct)
{
	struct dot_encoder e;
	dot_encoder_init(&e);
	stream_set_timeouts(s->s, s->o->data_ms, s->o->data_ms);
	char *chunk = xmalloc(SMTP_CONTENT_CHUNK);
	uint64_t off = 0, len = smtp_content_len(ct);
	bool ok = true;
	while (ok && off < len) {
		buf_reset(&s->err);
		ssize_t n = smtp_content_read(ct, off, chunk, SMTP_CONTENT_CHUNK, &s->err);
		if (n <= 0) {
			ok = false;
		} else if (dot_write(s->s, &e, chunk, (size_t)n) != STREAM_OK) {
			(void)flush(s, "sending message body");	/* for its text in s->err */
			ok = false;
		}
		off += n > 0 ? (uint64_t)n : 0;
	}
	free(chunk);
	if (!ok)
		return false;
	dot_write_end(s->s, &e);
	return flush(s, "sending end of data -- message may be sent more than once");
}

/* CHUNKING (RFC 3030): the content in BDAT chunks of exact octet counts, no dot-stuffing, one reply per chunk.
 * Returns the reply code of the LAST chunk or of the first chunk refused (no more chunks follow a refusal), or
 * -1 with s->err when the connection or the queue file failed. */
static int send_bdat(struct sess *s, const struct smtp_content *ct, size_t *nchunks)
{
	const struct smtp_session_opts *o = s->o;
	struct smtp_crlf st;
	smtp_crlf_init(&st);
	char *chunk = xmalloc(SMTP_CONTENT_CHUNK);
	struct buf wire = BUF_INIT(BUF_NOLIMIT);
	uint64_t off = 0, len = smtp_content_len(ct);
	int c = -1;
	*nchunks = 0;
	for (;;) {
		buf_reset(&wire);
		buf_reset(&s->err);
		ssize_t n = smtp_content_read(ct, off, chunk, SMTP_CONTENT_CHUNK, &s->err);
		if (n < 0)
			break;
		off += (uint64_t)n;
		smtp_crlf_encode(&st, chunk, (size_t)n, &wire);
		bool last = off >= len;
		if (last)
			smtp_crlf_finish(&st, &wire);
		send_cmd(s, o->data_ms, "BDAT %zu%s", wire.len, last ? " LAST" : "");
		stream_write(s->s, wire.data, wire.len);
		(*nchunks)++;
		if (!flush(s, last ? "sending BDAT LAST -- message may be sent more than once" : "sending BDAT"))
			break;
		c = read_reply(s, last ? o->data_done_ms : o->data_ms,
		               last ? "receiving the BDAT LAST reply -- message may be sent more than once"
		                    : "receiving the BDAT reply");
		if (c < 0 || c / 100 != 2 || last)
			break;
		c = -1;
	}
	free(chunk);
	buf_free(&wire);
	return c;
}

/* The whole content in memory (for the 7-bit conversion and DKIM signing). */
static bool read_content(const struct smtp_content *ct, struct buf *out, struct buf *err)
{
	uint64_t len = smtp_content_len(ct);
	if (len > SIZE_MAX - 1 || !buf_reserve(out, (size_t)len)) {
		buf_puts(err, "message too large to convert");
		return false;
	}
	uint64_t off = 0;
	while (off < len) {
		ssize_t n = smtp_content_read(ct, off, out->data + off, (size_t)(len - off), err);
		if (n <= 0)
			return false;
		off += (uint64_t)n;
	}
	out->len = (size_t)len;
	out->data[out->len] = '\0';
	return true;
}

/* After the greeting and EHLO: the mail transaction. Always ends with every recipient answered. */
static void transaction(struct sess *s)
{
	struct smtp_message *m = s->m;
	const struct smtp_session_opts *o = s->o;
	struct buf text = BUF_INIT(2048);
	struct buf conv = BUF_INIT(BUF_NOLIMIT);
	bool use_conv = false;
	struct smtp_content ct = { .fd = m->fd, .offset = m->offset, .len = m->len };
	uint64_t wire_size = 0;

	/* checks that need no traffic: the answer would be the same from any server with these capabilities */
	bool utf8 = m->smtputf8 && s->caps.smtputf8;
	struct buf sender = BUF_INIT(BUF_NOLIMIT);
	struct buf *rcpt = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof(*rcpt));
	for (size_t i = 0; i < m->nrcpts; i++)
		buf_init(&rcpt[i], BUF_NOLIMIT);
	buf_printf(&text, "SMTPUTF8 is required, but was not offered by host %s", buf_cstr(&s->name));
	if (utf8 ? !buf_puts(&sender, m->sender) : !addr_ascii(m->sender, &sender)) {
		smtp_rcpts_fail(m, 5, "5.6.7", text.data);
		goto out;
	}
	size_t open = 0;
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct smtp_rcpt *r = &m->rcpts[i];
		if (r->code)
			continue;
		if (utf8 ? buf_puts(&rcpt[i], r->addr) : addr_ascii(r->addr, &rcpt[i])) {
			open++;
			continue;
		}
		r->code = 5;
		str_copy(r->dsn, sizeof(r->dsn), "5.6.7");
		buf_reset(&r->text);
		buf_puts(&r->text, text.data);
	}
	buf_reset(&text);
	if (!open)
		goto out;
	/* the stored size is a lower bound of the wire size (CR LF, conversion, signature only add): a message too
	 * big already is refused before any conversion work */
	if (s->caps.size_given && s->caps.size && m->len > s->caps.size) {
		buf_printf(&text, "message size %llu exceeds size limit %llu of server %s", (unsigned long long)m->len,
		           (unsigned long long)s->caps.size, buf_cstr(&s->name));
		smtp_rcpts_fail(m, 5, "5.3.4", text.data);
		goto out;
	}
	bool eightbit_body = m->eightbit && s->caps.eightbitmime;
	if (m->eightbit && !s->caps.eightbitmime) {
		/* RFC 6152 downgrade: re-encode 8-bit parts; a message that cannot be made 7-bit bounces */
		struct buf raw = BUF_INIT(BUF_NOLIMIT);
		if (!read_content(&ct, &raw, &text)) {
			smtp_rcpts_fail(m, 4, "4.3.0", text.data);
			buf_free(&raw);
			goto out;
		}
		bool changed = false;
		if (!mime_7bit_convert(raw.data, raw.len, &conv, &changed) || !mime_is_7bit(conv.data, conv.len)) {
			buf_free(&raw);
			buf_printf(&text, "host %s does not support 8BITMIME and the message cannot be converted to 7 bit",
			           buf_cstr(&s->name));
			smtp_rcpts_fail(m, 5, "5.6.3", text.data);
			goto out;
		}
		buf_free(&raw);
		use_conv = true;
	}
	if (use_conv) {
		ct.mem = conv.data;
		ct.memlen = conv.len;
	}
	if (s->caps.size_given) {
		/* SIZE= is what goes on the wire (CR LF line ends), which the server compares with its limit */
		if (!smtp_content_wire_size(&ct, &wire_size, &text)) {
			smtp_rcpts_fail(m, 4, "4.3.0", text.data);
			goto out;
		}
		if (s->caps.size && wire_size > s->caps.size) {
			buf_reset(&text);
			buf_printf(&text, "message size %llu exceeds size limit %llu of server %s",
			           (unsigned long long)wire_size, (unsigned long long)s->caps.size, buf_cstr(&s->name));
			smtp_rcpts_fail(m, 5, "5.3.4", text.data);
			goto out;
		}
	}

	/* MAIL and the RCPTs: one write with PIPELINING, otherwise one at a time */
	bool pipe = s->caps.pipelining;
	mail_cmd(s, buf_cstr(&sender), eightbit_body, utf8, wire_size);
	if (pipe)
		for (size_t i = 0; i < m->nrcpts; i++)
			if (!m->rcpts[i].code)
				rcpt_cmd(s, &m->rcpts[i], buf_cstr(&rcpt[i]));
	if (!flush(s, "sending MAIL FROM"))
		goto lost_mail;
	int c = read_reply(s, o->mail_ms, "receiving the MAIL FROM reply");
	if (c < 0)
		goto lost_mail;
	if (c / 100 != 2) {
		said(s, "MAIL FROM", &text);
		smtp_rcpts_fail(m, c / 100 == 5 ? 5 : 4, reply_dsn(&s->r, "4.0.0", "5.0.0"), text.data);
		/* pipelined RCPT replies are still coming, so the conversation is out of step: QUIT, never keep it */
		if (pipe)
			s->want_keep = false;
		goto quit;
	}
	size_t accepted = 0;
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct smtp_rcpt *r = &m->rcpts[i];
		if (r->code)
			continue;
		if (!pipe) {
			rcpt_cmd(s, r, buf_cstr(&rcpt[i]));
			if (!flush(s, "sending RCPT TO"))
				goto lost;
		}
		c = read_reply(s, o->rcpt_ms, "receiving the RCPT TO reply");
		if (c < 0)
			goto lost;
		if (c / 100 == 2) {
			r->accepted = true;
			accepted++;
		} else {
			r->code = c / 100 == 5 ? 5 : 4;
			str_copy(r->dsn, sizeof(r->dsn), reply_dsn(&s->r, "4.0.0", "5.0.0"));
			said(s, "RCPT TO", &r->text);
		}
	}
	if (!accepted)
		goto quit;
	const char *end_cmd = "end of DATA";
	if (s->caps.chunking) {
		size_t nchunks = 0;
		c = send_bdat(s, &ct, &nchunks);
		if (c < 0)
			goto lost;
		end_cmd = "BDAT";
		log_debug("%s: %s: content in %zu BDAT chunk%s", m->queue_id, buf_cstr(&s->name), nchunks,
		          nchunks == 1 ? "" : "s");
	} else {
		send_cmd(s, o->data_ms, "DATA");
		if (!flush(s, "sending DATA"))
			goto lost;
		c = read_reply(s, o->data_ms, "receiving the DATA reply");
		if (c < 0)
			goto lost;
		if (c != 354) {
			said(s, "DATA", &text);
			smtp_rcpts_fail(m, c / 100 == 5 ? 5 : 4, reply_dsn(&s->r, "4.0.0", "5.0.0"), text.data);
			goto quit;
		}
		if (!send_data_content(s, &ct))
			goto lost;
		c = read_reply(s, o->data_done_ms,
		               "receiving the end of data reply -- message may be sent more than once");
		if (c < 0)
			goto lost;
	}
	struct buf first = BUF_INIT(600);
	buf_reset(&text);
	if (c / 100 == 2)
		buf_printf(&text, "%d %s", c, smtp_reply_first_line(&s->r, &first));
	else
		said(s, end_cmd, &text);
	buf_free(&first);
	smtp_rcpts_fail(m, c / 100 == 2 ? 2 : c / 100 == 5 ? 5 : 4, reply_dsn(&s->r, "4.0.0", "5.0.0"), text.data);
quit:
	if (s->want_keep) {
		send_cmd(s, o->quit_ms, "RSET");
		if (flush(s, "sending RSET") && read_reply(s, o->quit_ms, "receiving the RSET reply") / 100 == 2)
			s->keep = true;
	}
	if (!s->keep) {
		send_cmd(s, o->quit_ms, "QUIT");
		if (flush(s, "sending QUIT"))
			(void)read_reply(s, o->quit_ms, "receiving the QUIT reply");
	}
	smtp_rcpts_fail(m, 4, "4.0.0", "no reply from the server");	/* cannot happen: every path answered */
	goto out;
lost_mail:
	if (s->reused) {
		/* a cached connection the server has meanwhile closed says nothing about this message */
		s->stale = true;
		goto out;
	}
lost:
	smtp_rcpts_fail(m, 4, "4.4.2", buf_cstr(&s->err));
out:
	buf_free(&text);
	buf_free(&conv);
	buf_free(&sender);
	for (size_t i = 0; i < m->nrcpts; i++)
		buf_free(&rcpt[i]);
	free(rcpt);
}

static bool conn_matches(const struct smtp_conn *c, const struct smtp_target *t, enum smtp_tls_level tls,
                         const char *auth_user)
{
	if ((c->auth_user == NULL) != (auth_user == NULL) || (auth_user && strcmp(c->auth_user, auth_user) != 0))
		return false;
	return c->tls == tls && c->port == t->port && c->addr.family == t->addr.family &&
	       memcmp(&c->addr.u, &t->addr.u, t->addr.family == AF_INET ? 4 : 16) == 0 && str_eq_ci(c->host, t->host);
}

bool smtp_conn_for(const struct smtp_conn *c, const struct smtp_target *t, enum smtp_tls_level tls,
                   const char *auth_user)
{
	return c && conn_matches(c, t, tls, auth_user);
}

void smtp_conn_close(struct smtp_conn **cp, const struct smtp_session_opts *o)
{
	struct smtp_conn *c = *cp;
	if (!c)
		return;
	*cp = NULL;
	stream_set_timeouts(c->s, o->quit_ms, o->quit_ms);
	stream_puts(c->s, "QUIT\r\n");
	if (stream_flush(c->s) == STREAM_OK) {
		struct buf line = BUF_INIT(SMTP_REPLY_LINE_MAX + 1);
		/* the reply does not matter, only that the server saw QUIT before the close */
		(void)stream_read_line(c->s, &line, SMTP_REPLY_LINE_MAX);
		buf_free(&line);
	}
	stream_free(&c->s);
	smtp_caps_free(&c->caps);
	buf_free(&c->name);
	free(c->host);
	free(c->auth_user);
	free(c);
}

bool smtp_session_try(const struct smtp_session_opts *o, const struct smtp_target *t, struct smtp_message *m,
                      struct smtp_attempt *a, struct smtp_conn **cache)
{
	struct sess s = { .o = o, .t = t, .m = m, .a = a, .want_keep = cache != NULL };
	smtp_reply_init(&s.r);
	smtp_caps_init(&s.caps);
	buf_init(&s.line, SMTP_REPLY_LINE_MAX + 1);
	buf_init(&s.name, 512);
	buf_init(&s.err, 2048);
	bool done = false;
	struct buf msg = BUF_INIT(2048);

	for (size_t i = 0; i < m->nrcpts; i++)
		m->rcpts[i].accepted = false;
	if (cache && *cache && !conn_matches(*cache, t, o->tls, o->auth_user))
		smtp_conn_close(cache, o);
	if (cache && *cache) {
		struct smtp_conn *c = *cache;
		*cache = NULL;
		smtp_caps_free(&s.caps);
		buf_free(&s.name);
		s.s = c->s;
		s.caps = c->caps;
		s.name = c->name;
		free(c->host);
		free(c->auth_user);
		free(c);
		s.reused = true;
		log_debug("%s: reusing the connection to %s", m->queue_id, buf_cstr(&s.name));
		transaction(&s);
		if (!s.stale) {
			done = true;
			goto out;
		}
		stream_free(&s.s);
		s.reused = s.stale = s.keep = false;
		buf_reset(&s.name);
	}
	buf_puts(&s.name, t->host);
	buf_putc(&s.name, '[');
	{
		struct buf full = BUF_INIT(512);
		smtp_target_name(t, &full);
		/* "host[ip]:port" -> keep "host[ip]" for the said-texts, port only in logs */
		const char *rb = strrchr(buf_cstr(&full), ']');
		buf_reset(&s.name);
		buf_append(&s.name, full.data, rb ? (size_t)(rb - full.data) + 1 : full.len);
		buf_free(&full);
	}
	buf_reset(&s.err);	/* a stale cached connection left its own text here */
	int fd = connect_to(t, o->connect_ms, &s.err);
	if (fd < 0) {
		struct buf full = BUF_INIT(512);
		smtp_target_name(t, &full);
		buf_printf(&msg, "connect to %s: %s", full.data, buf_cstr(&s.err));
		buf_free(&full);
		attempt_set(a, 4, "4.4.1", msg.data);
		goto out;
	}
	s.s = stream_new(fd);
	stream_set_deadline_mode(s.s, true);
	int c = read_reply(&s, o->helo_ms, "receiving the initial server greeting");
	if (c < 0) {
		attempt_set(a, 4, "4.4.2", buf_cstr(&s.err));
		goto out;
	}
	if (c / 100 != 2) {
		said(&s, "initial greeting", &msg);
		attempt_set(a, c / 100 == 5 ? 5 : 4, reply_dsn(&s.r, "4.3.0", "5.3.0"), msg.data);
		goto out;
	}
	int h = hello(&s);
	if (h != 2) {
		if (h < 0) {
			attempt_set(a, 4, "4.4.2", buf_cstr(&s.err));
		} else {
			said(&s, "HELO", &msg);
			attempt_set(a, h == 5 ? 5 : 4, reply_dsn(&s.r, "4.3.0", "5.3.0"), msg.data);
		}
		goto out;
	}
	if (o->myhostname && *o->myhostname && str_eq_ci(buf_cstr(&s.caps.name), o->myhostname)) {
		/* the server is us under another address: delivering would send the message round in circles */
		buf_printf(&msg, "mail for %s loops back to myself", t->host);
		smtp_rcpts_fail(m, 5, "5.4.6", msg.data);
		done = true;
		goto out;
	}
	if (!starttls(&s) || !authenticate(&s))
		goto out;
	transaction(&s);
	done = true;
out:
	if (s.keep && done && s.s) {
		struct smtp_conn *kc = xcalloc(1, sizeof(*kc));
		kc->s = s.s;
		kc->caps = s.caps;
		kc->name = s.name;
		kc->host = xstrdup(t->host);
		kc->addr = t->addr;
		kc->port = t->port;
		kc->tls = o->tls;
		kc->auth_user = o->auth_user ? xstrdup(o->auth_user) : NULL;
		*cache = kc;
		s.s = NULL;
		smtp_caps_init(&s.caps);
		buf_init(&s.name, 512);
	}
	if (s.s)
		stream_free(&s.s);
	smtp_reply_free(&s.r);
	smtp_caps_free(&s.caps);
	buf_free(&s.line);
	buf_free(&s.name);
	buf_free(&s.err);
	buf_free(&msg);
	return done;
}
