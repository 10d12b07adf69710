/* DATA and BDAT: the message goes through one sink that collects the header section (to add Received and, on
 * submission, a missing Message-ID or Date), then streams into a queue file. The client hears 250 only after
 * qfile_commit() has made the file durable in queue/incoming; any failure is 451 4.3.0 and leaves no file. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "dotstream.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"

struct smtpd_msgsink {
	struct qfile_writer *w;
	struct buf hdr;		/* the header section while we look for its end */
	bool hdr_done;
	bool failed;		/* a queue write failed: the message will be refused with 451 */
	uint64_t size;		/* message bytes from the client */
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

/* Emit what goes before the client's headers, then the held header bytes. */
static void sink_flush_header(struct smtpd_session *ss)
{
	struct smtpd_msgsink *k = ss->sink;
	struct buf pre = BUF_INIT(BUF_NOLIMIT);
	const char *id = qfile_writer_id(k->w);

	smtpd_received(ss, id, k->now, &pre);
	if (ss->set->submission_fixups && (ss->auth_user || ss->peer_uid >= 0)) {
		if (!smtpd_header_has(k->hdr.data ? k->hdr.data : "", k->hdr.len, "Message-ID"))
			buf_printf(&pre, "Message-ID: <%s@%s>\r\n", id, ss->set->hostname);
		if (!smtpd_header_has(k->hdr.data ? k->hdr.data : "", k->hdr.len, "Date")) {
			buf_puts(&pre, "Date: ");
			smtpd_rfc5322_date(k->now, &pre);
			buf_puts(&pre, "\r\n");
		}
	}
	sink_raw(k, pre.data, pre.len);
	sink_raw(k, k->hdr.data, k->hdr.len);
	buf_free(&pre);
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

static void sink_write(struct smtpd_session *ss, const void *p, size_t n)
{
	struct smtpd_msgsink *k = ss->sink;
	const char *c = p;

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
			sink_flush_header(ss);
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

	if (!k->hdr_done)
		sink_flush_header(ss);
	str_copy(id, sizeof(id), qfile_writer_id(k->w));
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
