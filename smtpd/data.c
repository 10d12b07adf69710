/* DATA and BDAT: the message goes through one sink that collects the header section (to add Received and, on
 * submission, a missing Message-ID or Date and a DKIM signature), then streams into a queue file. The client
 * hears 250 only after qfile_commit() has made the file durable in queue/incoming; any failure is 451 4.3.0
 * and leaves no file. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "authres.h"
#include "dkim_signer.h"
#include "dotstream.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"

/* A message is held in memory for DKIM at most this large when message_size_limit is 0 (no limit). */
#define SMTPD_HOLD_MAX ((size_t)64 << 20)

struct smtpd_msgsink {
	struct qfile_writer *w;
	struct buf hdr;		/* the header section while we look for its end */
	bool hdr_done;
	bool failed;		/* a queue write failed: the message will be refused with 451 */
	uint64_t size;		/* message bytes from the client */
	bool hold;		/* sender authentication or signing: keep the whole message until its headers are known */
	bool sign;		/* our user's mail: DKIM-sign it when the From domain has a key */
	struct buf msg;		/* the held message */
	int64_t now;
};

static void sink_free(struct smtpd_session *ss)
{
	struct smtpd_msgsink *k = ss->sink;

	if (!k)
		return;
	if (k->w)
		qfile_abort(&k->w);
	buf_free(&k->hdr);
	buf_free(&k->msg);
	xfree(&ss->sink);
}

void smtpd_data_abort(struct smtpd_session *ss)
{
	sink_free(ss);
}

static bool put_envelope(struct smtpd_session *ss, struct qfile_writer *w)
{
	/* qfile_create() has written the arrival time */
	bool ok = qfile_put_str(w, QREC_SENDER, ss->sender ? ss->sender : "");
	for (size_t i = 0; ok && i < ss->nrcpts; i++)
		ok = qfile_put_rcpt(w, ss->rcpts[i].addr, ss->rcpts[i].notify, ss->rcpts[i].orcpt);
	if (ok && ss->mail.envid)
		ok = qfile_put_str(w, QREC_ENVID, ss->mail.envid);
	if (ok && ss->mail.ret != ESMTP_RET_UNSET)
		ok = qfile_put_str(w, QREC_RET, ss->mail.ret == ESMTP_RET_FULL ? "FULL" : "HDRS");
	if (ok && ss->mail.body != ESMTP_BODY_UNSET)
		ok = qfile_put_str(w, QREC_BODY, ss->mail.body == ESMTP_BODY_8BITMIME ? "8BITMIME" : "7BIT");
	if (ok && ss->mail.smtputf8)
		ok = qfile_put(w, QREC_SMTPUTF8, "", 0);
	ok = ok && qfile_put_str(w, QREC_CLIENT_ADDR, ss->client_addr);
	ok = ok && qfile_put_str(w, QREC_CLIENT_NAME, ss->client_name);
	if (ok && ss->helo)
		ok = qfile_put_str(w, QREC_HELO, ss->helo);
	if (ok && ss->auth_user)
		ok = qfile_put_str(w, QREC_AUTH_USER, ss->auth_user);
	if (ok && stream_is_tls(ss->s)) {
		const char *proto = "", *cipher = "";
		int bits = 0;
		struct buf b = BUF_INIT(512);
		stream_tls_info(ss->s, &proto, &cipher, &bits);
		buf_printf(&b, "%s %s %d", proto, cipher, bits);
		ok = qfile_put_str(w, QREC_TLS, buf_cstr(&b));
		buf_free(&b);
	}
	if (ss->peer_uid >= 0) {
		char uid[32];
		snprintf(uid, sizeof(uid), "%ld", ss->peer_uid);
		ok = ok && qfile_put_str(w, QREC_UID, uid);
	}
	ok = ok && qfile_put_str(w, QREC_PROTOCOL, ss->peer_uid >= 0 ? "LOCAL" : smtpd_protocol_name(ss));
	ok = ok && qfile_put_str(w, QREC_ORIGIN, ss->peer_uid >= 0 ? "sendmail" : "smtpd");
	return ok;
}

/* Start a message: the queue file and its envelope. false (nothing left behind) when the queue is unusable. */
static bool sink_open(struct smtpd_session *ss)
{
	struct buf err = BUF_INIT(1024);
	struct qfile_writer *w = qfile_create(ss->set->queue_dir, &err);

	if (!w) {
		log_error("cannot create queue file: %s", buf_cstr(&err));
		buf_free(&err);
		return false;
	}
	if (!put_envelope(ss, w)) {
		log_error("%s: queue file write error: %s", qfile_writer_id(w), qfile_writer_error(w));
		qfile_abort(&w);
		buf_free(&err);
		return false;
	}
	buf_free(&err);
	ss->sink = xcalloc(1, sizeof(*ss->sink));
	ss->sink->w = w;
	ss->sink->now = (int64_t)time(NULL);
	buf_init(&ss->sink->hdr, ss->set->header_limit ? ss->set->header_limit : 65536);
	/* authcheck (MX port, strangers) and signing (our users) never meet in one session */
	ss->sink->sign = ss->set->dkim && (ss->auth_user || ss->trusted);
	if (ss->authcheck || ss->sink->sign) {
		/* DKIM needs the body before the headers that report it (or the signature) can be written; held up to
		 * the size limit */
		ss->sink->hold = true;
		buf_init(&ss->sink->msg, ss->set->size_limit ? (size_t)ss->set->size_limit + 1 : SMTPD_HOLD_MAX);
	}
	if (ss->peer_uid >= 0)
		/* the sender is the client's word (-f), the uid the kernel's: both logged, so a forgery is traceable */
		log_info("%s: client=local, uid=%ld, sender=<%s>", qfile_writer_id(w), ss->peer_uid,
		         log_safe(ss->sender ? ss->sender : "", ss->sender ? strlen(ss->sender) : 0, 300));
	else
		log_info("%s: client=%s[%s]%s%s", qfile_writer_id(w), ss->client_name, ss->client_addr,
		         ss->auth_user ? ", sasl_username=" : "",
		         ss->auth_user ? log_safe(ss->auth_user, strlen(ss->auth_user), 300) : "");
	return true;
}

static void sink_raw(struct smtpd_msgsink *k, const void *p, size_t n)
{
	if (!k->failed && n && !qfile_write(k->w, p, n))
		k->failed = true;
}

/* What goes before the client's headers: top (Authentication-Results, Received-SPF), Received, and on
 * submission a missing Message-ID and Date. */
static void sink_prefix(struct smtpd_session *ss, const struct buf *top, struct buf *pre)
{
	struct smtpd_msgsink *k = ss->sink;
	const char *id = qfile_writer_id(k->w);

	if (top)
		buf_append(pre, top->data, top->len);
	smtpd_received(ss, id, k->now, pre);
	if (ss->set->submission_fixups && (ss->auth_user || ss->peer_uid >= 0)) {
		if (!smtpd_header_has(k->hdr.data ? k->hdr.data : "", k->hdr.len, "Message-ID"))
			buf_printf(pre, "Message-ID: <%s@%s>\r\n", id, ss->set->hostname);
		if (!smtpd_header_has(k->hdr.data ? k->hdr.data : "", k->hdr.len, "Date")) {
			buf_puts(pre, "Date: ");
			smtpd_rfc5322_date(k->now, pre);
			buf_puts(pre, "\r\n");
		}
	}
}

/* Emit the prefix, then the held header bytes. */
static void sink_flush_header(struct smtpd_session *ss, const struct buf *top)
{
	struct smtpd_msgsink *k = ss->sink;
	struct buf pre = BUF_INIT(BUF_NOLIMIT);

	sink_prefix(ss, top, &pre);
	sink_raw(k, pre.data, pre.len);
	sink_raw(k, k->hdr.data, k->hdr.len);
	buf_free(&pre);
	buf_free(&k->hdr);
	k->hdr_done = true;
}

/* Our user's message, complete: sign it as it will be stored (the prefix with the added Message-ID and Date
 * included) when its From domain has a key, and write it out. A signing problem is logged and the message goes
 * on unsigned: the key is ours to fix, the sender did nothing wrong. */
static void sink_flush_signed(struct smtpd_session *ss, const char *body, size_t blen)
{
	struct smtpd_msgsink *k = ss->sink;
	const char *id = qfile_writer_id(k->w);
	struct buf head = BUF_INIT(BUF_NOLIMIT), sig = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(512);

	sink_prefix(ss, NULL, &head);
	buf_append(&head, k->hdr.data, k->hdr.len);
	int rc = dkim_signer_sign(ss->set->dkim, buf_cstr(&head), head.len, body, blen, &sig, &err);
	if (rc < 0)
		log_warn("%s: DKIM signing failed, queued unsigned: %s", id, buf_cstr(&err));
	else if (rc > 0)
		log_info("%s: DKIM-signed: %s", id, log_safe(sig.data, strcspn(sig.data, "\r\n"), 200));
	sink_raw(k, sig.data, sig.len);
	sink_raw(k, head.data, head.len);
	sink_raw(k, body, blen);
	buf_free(&head);
	buf_free(&sig);
	buf_free(&err);
	buf_free(&k->hdr);
	k->hdr_done = true;
}

/* End of the header section: an empty line (CRLF or bare LF, BDAT content is not normalized). */
static bool header_ended(const struct buf *h, size_t from)
{
	const char *d = h->data;

	if (h->len == 0)
		return false;
	if (d[0] == '\n' || (h->len >= 2 && d[0] == '\r' && d[1] == '\n'))
		return true;
	for (size_t i = from ? from - 1 : 0; i + 1 < h->len; i++) {
		if (d[i] != '\n')
			continue;
		if (d[i + 1] == '\n' || (i + 2 < h->len && d[i + 1] == '\r' && d[i + 2] == '\n'))
			return true;
	}
	return false;
}

/* Where the body starts: after the first empty line, or the end when there is none. */
static size_t body_offset(const char *d, size_t len)
{
	if (len && d[0] == '\n')
		return 1;
	if (len >= 2 && d[0] == '\r' && d[1] == '\n')
		return 2;
	for (size_t i = 0; i + 1 < len; i++) {
		if (d[i] != '\n')
			continue;
		if (d[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

static void sink_write(struct smtpd_session *ss, const void *p, size_t n);

/* The held message is complete (or too large to hold): add the sender authentication headers, drop arriving
 * Authentication-Results that claim our authserv-id (RFC 8601 section 5), and write it all out. False with the
 * reply when the message is to be refused (DMARC). */
static bool sink_release(struct smtpd_session *ss, bool complete, struct buf *reply)
{
	struct smtpd_msgsink *k = ss->sink;
	struct buf top = BUF_INIT(BUF_NOLIMIT);
	struct buf msg = k->msg;
	const char *d = msg.data ? msg.data : "";

	k->hold = false;
	buf_init(&k->msg, 0);
	if (!smtpd_authcheck_finish(ss, qfile_writer_id(k->w), d, msg.len, complete, &top, reply)) {
		buf_free(&top);
		buf_free(&msg);
		return false;
	}
	size_t boff = body_offset(d, msg.len);
	struct authres_range r[16];
	size_t nr = authres_find_ours(d, boff, ss->set->hostname, r, 16);
	buf_free(&k->hdr);
	buf_init(&k->hdr, BUF_NOLIMIT);
	size_t at = 0;
	for (size_t i = 0; i < nr && i < 16; i++) {
		buf_append(&k->hdr, d + at, r[i].off - at);
		at = r[i].off + r[i].len;
	}
	if (nr > 16) {
		/* more forgeries than one pass removes: none of the rest may survive either */
		log_warn("%s: more than 16 forged Authentication-Results headers; message refused",
		         qfile_writer_id(k->w));
		buf_reset(reply);
		buf_puts(reply, "550 5.7.1 Too many Authentication-Results headers");
		buf_free(&top);
		buf_free(&msg);
		return false;
	}
	if (nr)
		log_info("%s: removed %zu Authentication-Results header%s claiming to be ours", qfile_writer_id(k->w), nr,
		         nr == 1 ? "" : "s");
	buf_append(&k->hdr, d + at, boff - at);
	if (k->sign && complete) {
		sink_flush_signed(ss, d + boff, msg.len - boff);
	} else {
		if (k->sign)
			log_warn("%s: message too large to hold for DKIM signing; queued unsigned", qfile_writer_id(k->w));
		sink_flush_header(ss, &top);
		sink_raw(k, d + boff, msg.len - boff);
	}
	buf_free(&top);
	buf_free(&msg);
	return true;
}

static void sink_write(struct smtpd_session *ss, const void *p, size_t n)
{
	struct smtpd_msgsink *k = ss->sink;
	const char *c = p;

	if (k->hold) {
		if (buf_append(&k->msg, p, n)) {
			k->size += n;
			return;
		}
		/* no size limit and a giant message: report SPF only and stream the rest */
		struct buf reply = BUF_INIT(256);
		(void)sink_release(ss, false, &reply);
		buf_free(&reply);
	}
	k->size += n;
	if (k->hdr_done) {
		sink_raw(k, p, n);
		return;
	}
	while (n > 0) {
		size_t room = k->hdr.max - k->hdr.len, take = n < room ? n : room;
		size_t from = k->hdr.len >= 2 ? k->hdr.len - 2 : 0;
		buf_append(&k->hdr, c, take);
		c += take;
		n -= take;
		if (header_ended(&k->hdr, from) || k->hdr.len >= k->hdr.max) {
			sink_flush_header(ss, NULL);
			sink_raw(k, c, n);
			return;
		}
	}
}

/* Commit the message; the reply goes to the client. Leaves no sink behind. */
static void sink_finish(struct smtpd_session *ss)
{
	struct smtpd_msgsink *k = ss->sink;
	struct buf err = BUF_INIT(1024);
	char id[QFILE_ID_MAX + 1];

	str_copy(id, sizeof(id), qfile_writer_id(k->w));
	if (k->hold) {
		struct buf reply = BUF_INIT(512);
		if (!sink_release(ss, true, &reply)) {
			log_info("%s: reject: DATA from %s[%s]: %s; from=<%s>", id, ss->client_name, ss->client_addr,
			         buf_cstr(&reply), log_safe(ss->sender, strlen(ss->sender), 300));
			sink_free(ss);
			smtpd_reply_error(ss, "%s", buf_cstr(&reply));
			buf_free(&reply);
			return;
		}
		buf_free(&reply);
	}
	if (!k->hdr_done)
		sink_flush_header(ss, NULL);
	if (k->failed) {
		log_error("%s: queue file write error: %s", id, qfile_writer_error(k->w));
		sink_free(ss);
		smtpd_reply(ss, "451 4.3.0 Error: queue file write error");
		return;
	}
	if (!qfile_commit(&k->w, &err)) {
		log_error("%s: queue file commit failed: %s", id, buf_cstr(&err));
		buf_free(&err);
		sink_free(ss);
		smtpd_reply(ss, "451 4.3.0 Error: queue file write error");
		return;
	}
	buf_free(&err);
	log_info("%s: from=<%s> size=%llu nrcpt=%zu proto=%s", id,
	         log_safe(ss->sender ? ss->sender : "", ss->sender ? strlen(ss->sender) : 0, 300),
	         (unsigned long long)k->size, ss->nrcpts, smtpd_protocol_name(ss));
	sink_free(ss);
	ss->messages++;
	smtpd_reply(ss, "250 2.0.0 Ok: queued as %s", id);
	smtpd_flush(ss);
	smtpd_notify_qmgr(ss->set, id);
}

static const char *dot_failure_reply(const struct dot_decoder *d)
{
	if (d->flags & DOT_F_TOO_BIG)
		return "552 5.3.4 Error: message size exceeds fixed limit";
	if (d->flags & DOT_F_LINE_TOO_LONG)
		return "554 5.6.0 Error: message line longer than 1000 bytes (RFC 5321 4.5.3.1.6)";
	return "550 5.5.2 Error: bare <CR> or <LF> in message; use CRLF line endings";
}

void smtpd_cmd_data(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	struct dot_decoder d;
	struct buf out = BUF_INIT(0);
	enum dot_status st = DOT_MORE;

	(void)cmd;
	if (ss->state == SMTPD_S_MAIL) {
		smtpd_reply_error(ss, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (ss->state != SMTPD_S_RCPT) {
		smtpd_reply_error(ss, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (!sink_open(ss)) {
		smtpd_reply(ss, "451 4.3.0 Error: queue file write error");
		return;
	}
	smtpd_reply(ss, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_flush(ss);
	ss->last_cmd = "DATA content";
	dot_decoder_init(&d, ss->set->bare_newline_reject ? DOT_BARE_REJECT : DOT_BARE_NORMALIZE,
	                 ss->set->data_line_limit, ss->set->size_limit);
	while (st == DOT_MORE) {
		const void *p;
		size_t n, used = 0;
		enum stream_result r = stream_peek(ss->s, &p, &n);
		if (r != STREAM_OK) {
			buf_free(&out);
			smtpd_transaction_reset(ss);
			smtpd_read_failed(ss, r);
			return;
		}
		/* Decoding at most doubles the input (bare LF -> CR LF): a cap that can never refuse good bytes. */
		buf_reset(&out);
		out.max = 2 * n + 16;
		st = dot_decode(&d, p, n, &out, &used);
		stream_consume(ss->s, used);
		if (!(d.flags & DOT_F_TOO_BIG))
			sink_write(ss, out.data, out.len);
	}
	buf_free(&out);
	ss->last_cmd = "DATA";
	if (dot_decoder_failed(&d)) {
		const char *reply = dot_failure_reply(&d);
		log_info("%s: reject: DATA from %s[%s]: %s; from=<%s>", qfile_writer_id(ss->sink->w), ss->client_name,
		         ss->client_addr, reply, log_safe(ss->sender, strlen(ss->sender), 300));
		smtpd_transaction_reset(ss);
		smtpd_reply_error(ss, "%s", reply);
		return;
	}
	sink_finish(ss);
	smtpd_transaction_reset(ss);
}

/* "BDAT n [LAST]" (RFC 3030). */
static bool bdat_args(const char *a, size_t n, uint64_t *size, bool *last)
{
	size_t i = 0;

	while (i < n && a[i] >= '0' && a[i] <= '9')
		i++;
	if (i == 0 || i > 19 || !str_to_u64n(a, i, UINT64_MAX, size))
		return false;
	while (i < n && a[i] == ' ')
		i++;
	if (i == n) {
		*last = false;
		return true;
	}
	*last = n - i == 4 && str_eqn_ci(a + i, "LAST", 4);
	return *last;
}

/* Read (and store or drop) exactly size bytes of chunk. false when the client went away. */
static bool bdat_read(struct smtpd_session *ss, uint64_t size, bool store)
{
	while (size > 0) {
		const void *p;
		size_t n;
		enum stream_result r = stream_peek(ss->s, &p, &n);
		if (r != STREAM_OK) {
			smtpd_transaction_reset(ss);
			smtpd_read_failed(ss, r);
			return false;
		}
		if (n > size)
			n = (size_t)size;
		if (store && ss->sink)
			sink_write(ss, p, n);
		stream_consume(ss->s, n);
		size -= n;
	}
	return true;
}

void smtpd_cmd_bdat(struct smtpd_session *ss, const struct smtpd_cmd *cmd)
{
	uint64_t size;
	bool last;

	if (!bdat_args(cmd->arg, cmd->arglen, &size, &last)) {
		/* Without a valid size we cannot find the next command: the session cannot go on (RFC 3030 2). */
		smtpd_reply(ss, "501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
		ss->state = SMTPD_S_CLOSING;
		return;
	}
	ss->last_cmd = "BDAT content";
	if (ss->state != SMTPD_S_RCPT && ss->state != SMTPD_S_BDAT) {
		if (!bdat_read(ss, size, false))
			return;
		ss->last_cmd = "BDAT";
		smtpd_reply_error(ss, ss->state == SMTPD_S_MAIL ? "554 5.5.1 Error: no valid recipients"
		                                                : "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (ss->state == SMTPD_S_RCPT) {
		ss->state = SMTPD_S_BDAT;
		if (!sink_open(ss)) {
			ss->bdat_failed = true;
			str_copy(ss->bdat_fail_reply, sizeof(ss->bdat_fail_reply), "451 4.3.0 Error: queue file write error");
		}
	}
	if (!ss->bdat_failed && ss->set->size_limit &&
	    (size > ss->set->size_limit || ss->bdat_size + size > ss->set->size_limit)) {
		ss->bdat_failed = true;
		str_copy(ss->bdat_fail_reply, sizeof(ss->bdat_fail_reply),
		         "552 5.3.4 Error: message size exceeds fixed limit");
		sink_free(ss);
	}
	if (!bdat_read(ss, size, !ss->bdat_failed))
		return;
	ss->last_cmd = "BDAT";
	ss->bdat_size += size;
	if (ss->bdat_failed) {
		char reply[sizeof(ss->bdat_fail_reply)];
		str_copy(reply, sizeof(reply), ss->bdat_fail_reply);
		if (last)
			smtpd_transaction_reset(ss);
		smtpd_reply_error(ss, "%s", reply);
		return;
	}
	if (!last) {
		smtpd_reply(ss, "250 2.0.0 Ok: %llu bytes", (unsigned long long)size);
		return;
	}
	sink_finish(ss);
	smtpd_transaction_reset(ss);
}
