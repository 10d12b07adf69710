/* mime_7bit (8-bit to 7-bit conversion) and mime_dsn (RFC 3464 notifications), checked by parsing what they
 * produce with the MIME parser and decoding it back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_body.h"
#include "mime.h"
#include "mime_codec.h"
#include "mime_dsn.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	buf_putc(&b, '\0');
	b.len--;
	return buf_steal(&b, len);
}

/* Decoded body of a part per its Content-Transfer-Encoding. */
static void decoded(const struct mime_message *m, const struct mime_part *p, struct buf *out)
{
	const char *body = m->data + p->body_off;
	if (p->encoding && strcmp(p->encoding, "base64") == 0)
		assert_true(mime_b64_decode_all(body, p->body_size, out));
	else if (p->encoding && strcmp(p->encoding, "quoted-printable") == 0)
		assert_true(mime_qp_decode_all(body, p->body_size, out));
	else
		buf_append(out, body, p->body_size);
}

static struct buf convert(const char *msg, size_t len, bool *changed)
{
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_7bit_convert(msg, len, &out, changed));
	return out;
}

static void test_7bit_unchanged(void **state)
{
	(void)state;
	const char *msg = "Subject: ascii\n\nplain\n";
	bool changed = true;
	struct buf out = convert(msg, strlen(msg), &changed);
	assert_false(changed);
	assert_string_equal(buf_cstr(&out), msg);
	buf_free(&out);
	/* 8-bit only in the header: headers are left alone */
	msg = "Subject: caf\xc3\xa9\n\nplain\n";
	out = convert(msg, strlen(msg), &changed);
	assert_false(changed);
	assert_string_equal(buf_cstr(&out), msg);
	buf_free(&out);
}

static void test_7bit_non_mime(void **state)
{
	(void)state;
	const char *msg = "Subject: x\nFrom: a@b\n\nCaf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e, plain text.\n";
	bool changed = false;
	struct buf out = convert(msg, strlen(msg), &changed);
	assert_true(changed);
	assert_true(mime_is_7bit(out.data, out.len));
	assert_non_null(strstr(buf_cstr(&out), "Subject: x\nFrom: a@b\nMIME-Version: 1.0\n"
	                                       "Content-Type: text/plain; charset=utf-8\n"
	                                       "Content-Transfer-Encoding: quoted-printable\n\nCaf=C3=A9"));
	struct mime_message m;
	mime_message_parse(&m, out.data, out.len);
	struct buf d = BUF_INIT(BUF_NOLIMIT);
	decoded(&m, m.root, &d);
	assert_string_equal(buf_cstr(&d), strstr(msg, "\n\n") + 2);
	buf_free(&d);
	mime_message_free(&m);
	/* converting again changes nothing */
	struct buf again = convert(out.data, out.len, &changed);
	assert_false(changed);
	assert_int_equal(again.len, out.len);
	buf_free(&again);
	buf_free(&out);

	/* not UTF-8: the charset is unknown */
	msg = "Subject: x\n\nGr\xfc\xdf" "e\n";
	out = convert(msg, strlen(msg), &changed);
	assert_non_null(strstr(buf_cstr(&out), "charset=unknown-8bit"));
	buf_free(&out);
}

static void test_7bit_parts(void **state)
{
	(void)state;
	size_t len;
	char *msg = slurp("tests/data/mime/attachment.eml", &len);
	bool changed;
	struct buf out = convert(msg, len, &changed);
	assert_true(changed);
	assert_true(mime_is_7bit(out.data, out.len));
	/* the 8bit field is replaced, not duplicated */
	assert_null(strstr(buf_cstr(&out), "Content-Transfer-Encoding: 8bit"));
	struct mime_message a, b;
	mime_message_parse(&a, msg, len);
	mime_message_parse(&b, out.data, out.len);
	assert_int_equal(a.nparts, b.nparts);
	struct buf da = BUF_INIT(BUF_NOLIMIT), db = BUF_INIT(BUF_NOLIMIT);
	decoded(&b, b.root->children, &db);
	buf_append(&da, msg + a.root->children->body_off, a.root->children->body_size);
	assert_int_equal(da.len, db.len);
	assert_memory_equal(da.data, db.data, da.len);
	assert_string_equal(b.root->children->encoding, "quoted-printable");
	/* the base64 part is byte for byte the same */
	const struct mime_part *pa = a.root->children->next, *pb = b.root->children->next;
	assert_int_equal(pa->body_size, pb->body_size);
	assert_memory_equal(msg + pa->body_off, out.data + pb->body_off, pa->body_size);
	assert_int_equal(pa->hdr_size, pb->hdr_size);
	buf_free(&da);
	buf_free(&db);
	mime_message_free(&a);
	mime_message_free(&b);
	buf_free(&out);
	free(msg);
}

static void test_7bit_binary_and_nested(void **state)
{
	(void)state;
	struct buf msg = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&msg, "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=q\n\n--q\n"
	               "Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n");
	for (int i = 0; i < 1000; i++)
		buf_putc(&msg, i % 256 == '\n' ? 0 : i % 256);
	buf_puts(&msg, "\n--q\nContent-Type: text/plain; charset=utf-8\n\n"
	               "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80\n"
	               "--q\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/plain\n\n"
	               "inner caf\xc3\xa9 text with enough ascii around it\n--q--\n");
	bool changed;
	struct buf out = convert(msg.data, msg.len, &changed);
	assert_true(changed);
	assert_true(mime_is_7bit(out.data, out.len));
	struct mime_message a, b;
	mime_message_parse(&a, msg.data, msg.len);
	mime_message_parse(&b, out.data, out.len);
	const struct mime_part *p1 = b.root->children, *p2 = p1->next, *p3 = p2->next;
	assert_string_equal(p1->encoding, "base64");
	assert_string_equal(p2->encoding, "base64");           /* mostly non-ASCII text */
	assert_null(p3->encoding);                             /* message/rfc822 itself stays identity */
	assert_string_equal(p3->children->encoding, "quoted-printable");
	struct buf d = BUF_INIT(BUF_NOLIMIT);
	decoded(&b, p1, &d);
	assert_int_equal(d.len, a.root->children->body_size);
	assert_memory_equal(d.data, msg.data + a.root->children->body_off, d.len);
	buf_reset(&d);
	decoded(&b, p2, &d);   /* text in base64 is in canonical CRLF form */
	assert_string_equal(buf_cstr(&d), "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80");
	buf_reset(&d);
	decoded(&b, p3->children, &d);
	assert_string_equal(buf_cstr(&d), "inner caf\xc3\xa9 text with enough ascii around it");
	buf_free(&d);
	mime_message_free(&a);
	mime_message_free(&b);
	buf_free(&out);
	buf_free(&msg);

	/* a capped output buffer is reported */
	const char *m8 = "Subject: x\n\n\xff\xff\xff\n";
	struct buf small = BUF_INIT(20);
	assert_false(mime_7bit_convert(m8, strlen(m8), &small, NULL));
	buf_free(&small);
}

static const char original[] = "From: Alice <alice@example.com>\n"
                               "To: nobody@example.org\n"
                               "Subject: hello\n"
                               "\n"
                               "Hi there, caf\xc3\xa9.\n";

static void dsn_describe(struct mime_dsn *d, struct mime_dsn_rcpt *r)
{
	memset(r, 0, 2 * sizeof(*r));
	r[0].final_rcpt = "nobody@example.org";
	r[0].orcpt = "rfc822;Nobody@Example.org";
	r[0].action = MIME_DSN_FAILED;
	r[0].status = "5.1.1";
	r[0].remote_mta = "mx.example.org";
	r[0].diagnostic = "550 5.1.1 <nobody@example.org>: no such user\r\nX-Evil: injected";
	r[0].diag_type = "smtp";
	r[0].last_attempt = 1795444970;
	r[1].final_rcpt = "slow@example.net";
	r[1].action = MIME_DSN_DELAYED;
	r[1].retry_until = 1795444970 + 5 * 86400;
	memset(d, 0, sizeof(*d));
	d->reporting_mta = "mail.example.com";
	d->from = "MAILER-DAEMON@mail.example.com";
	d->to = "alice@example.com";
	d->envid = "QQ314159";
	d->queue_id = "0ABCDEF123";
	d->arrival = 1795444000;
	d->now = 1795444970;
	d->rcpts = r;
	d->nrcpts = 2;
	d->msg = original;
	d->msg_len = strlen(original);
}

static void test_dsn_headers_only(void **state)
{
	(void)state;
	struct mime_dsn d;
	struct mime_dsn_rcpt r[2];
	dsn_describe(&d, r);
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	bool eight = true;
	assert_true(mime_dsn_build(&d, &out, &eight));
	assert_false(eight);   /* only the header is returned, and it is ASCII */
	const char *s = buf_cstr(&out);
	assert_null(strstr(s, "\nX-Evil"));
	assert_non_null(strstr(s, "Subject: Undelivered Mail Returned to Sender\n"));
	assert_non_null(strstr(s, "Date: Mon, 23 Nov 2026 14:42:50 +0000\n"));

	struct mime_message m;
	mime_message_parse(&m, out.data, out.len);
	assert_true(mime_part_is(m.root, "multipart", "report"));
	assert_int_equal(m.root->nchildren, 3);
	assert_false(m.root->flags & MIME_PART_NO_END);
	const struct mime_part *p1 = m.root->children, *p2 = p1->next, *p3 = p2->next;
	assert_true(mime_part_is(p1, "text", "plain"));
	assert_true(mime_part_is(p2, "message", "delivery-status"));
	assert_true(mime_part_is(p3, "text", "rfc822-headers"));
	struct buf ds = BUF_INIT(BUF_NOLIMIT);
	buf_append(&ds, out.data + p2->body_off, p2->body_size);
	assert_string_equal(buf_cstr(&ds),
	                    "Reporting-MTA: dns; mail.example.com\n"
	                    "X-Postern-Queue-ID: 0ABCDEF123\n"
	                    "Original-Envelope-Id: QQ314159\n"
	                    "Arrival-Date: Mon, 23 Nov 2026 14:26:40 +0000\n"
	                    "\n"
	                    "Original-Recipient: rfc822;Nobody@Example.org\n"
	                    "Final-Recipient: rfc822; nobody@example.org\n"
	                    "Action: failed\n"
	                    "Status: 5.1.1\n"
	                    "Remote-MTA: dns; mx.example.org\n"
	                    "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: no such user  X-Evil: injected\n"
	                    "Last-Attempt-Date: Mon, 23 Nov 2026 14:42:50 +0000\n"
	                    "\n"
	                    "Final-Recipient: rfc822; slow@example.net\n"
	                    "Action: delayed\n"
	                    "Status: 4.0.0\n"
	                    "Will-Retry-Until: Sat, 28 Nov 2026 14:42:50 +0000\n");
	buf_reset(&ds);
	buf_append(&ds, out.data + p3->body_off, p3->body_size);
	assert_string_equal(buf_cstr(&ds), "From: Alice <alice@example.com>\nTo: nobody@example.org\nSubject: hello\n");
	/* the notification's own envelope for IMAP clients */
	struct mime_header h = MIME_HEADER_INIT;
	mime_part_header(&m, m.root, &h);
	buf_reset(&ds);
	assert_true(imap_envelope(&h, &ds));
	assert_non_null(strstr(buf_cstr(&ds), "((NIL NIL \"alice\" \"example.com\"))"));
	mime_header_free(&h);
	buf_free(&ds);
	mime_message_free(&m);
	buf_free(&out);
}

static void test_dsn_full(void **state)
{
	(void)state;
	struct mime_dsn d;
	struct mime_dsn_rcpt r[2];
	dsn_describe(&d, r);
	d.ret_full = true;
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	bool eight = false;
	assert_true(mime_dsn_build(&d, &out, &eight));
	assert_true(eight);
	struct mime_message m;
	mime_message_parse(&m, out.data, out.len);
	const struct mime_part *p3 = m.root->children->next->next;
	assert_true(p3->flags & MIME_PART_MESSAGE);
	assert_string_equal(p3->encoding, "8bit");
	assert_int_equal(p3->body_size, strlen(original));
	assert_memory_equal(out.data + p3->body_off, original, strlen(original));
	mime_message_free(&m);
	buf_reset(&out);

	/* too big for RET=FULL: headers only */
	d.full_max = 10;
	assert_true(mime_dsn_build(&d, &out, &eight));
	assert_non_null(strstr(buf_cstr(&out), "Content-Type: text/rfc822-headers"));
	buf_reset(&out);

	/* a returned message that contains the would-be boundary gets another one */
	d.full_max = 0;
	struct buf trap = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&trap, "Subject: trap\n\n--0ABCDEF123.1795444970/0/mail.example.com\n");
	d.msg = trap.data;
	d.msg_len = trap.len;
	assert_true(mime_dsn_build(&d, &out, &eight));
	mime_message_parse(&m, out.data, out.len);
	assert_int_equal(m.root->nchildren, 3);
	assert_string_equal(m.root->boundary, "0ABCDEF123.1795444970/1/mail.example.com");
	p3 = m.root->children->next->next;
	assert_int_equal(p3->body_size, trap.len);
	mime_message_free(&m);
	buf_free(&trap);
	buf_reset(&out);

	/* all delivered: a success report */
	r[0].action = MIME_DSN_DELIVERED;
	r[0].status = "2.0.0";
	r[1].action = MIME_DSN_RELAYED;
	d.msg = original;
	d.msg_len = strlen(original);
	assert_true(mime_dsn_build(&d, &out, NULL));
	assert_non_null(strstr(buf_cstr(&out), "Subject: Successful Mail Delivery Report\n"));
	assert_non_null(strstr(buf_cstr(&out), "Action: relayed\nStatus: 2.0.0\n"));
	buf_free(&out);
}

/* smtp's result text splits into Remote-MTA and an smtp Diagnostic-Code; anything else stays ours */
static void test_dsn_split_said(void **state)
{
	(void)state;
	char *mta = NULL, *reply = NULL;
	assert_true(mime_dsn_split_said("host mx.b.test[127.0.0.4] said: 550 5.1.1 <x@y>: user unknown (in reply to "
	                                "RCPT TO command)", &mta, &reply));
	assert_string_equal(mta, "mx.b.test");
	assert_string_equal(reply, "550 5.1.1 <x@y>: user unknown");
	free(mta);
	free(reply);
	/* the reply itself may say "(in reply to": only the last one is ours */
	assert_true(mime_dsn_split_said("host [10.0.0.1] said: 554 no (in reply to you) (in reply to end of DATA "
	                                "command)", &mta, &reply));
	assert_string_equal(mta, "[10.0.0.1]");
	assert_string_equal(reply, "554 no (in reply to you)");
	free(mta);
	free(reply);
	assert_false(mime_dsn_split_said("connect to mx.b.test[127.0.0.4]:25: Connection refused", &mta, &reply));
	assert_false(mime_dsn_split_said("host x said: ", &mta, &reply));
	assert_false(mime_dsn_split_said("mailbox full", &mta, &reply));
	assert_false(mime_dsn_split_said(NULL, &mta, &reply));
}

/* our own reason is type X-Postern; a command an alias expanded to is named beside the alias address */
static void test_dsn_local_reason_and_target(void **state)
{
	(void)state;
	struct mime_dsn d;
	struct mime_dsn_rcpt r[2];
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	dsn_describe(&d, r);
	d.nrcpts = 1;
	r[0].remote_mta = NULL;
	r[0].diag_type = NULL;
	r[0].final_rcpt = "list@example.com";
	r[0].target = "|/usr/bin/list-handler";
	r[0].diagnostic = "command failed: exit 1";
	assert_true(mime_dsn_build(&d, &out, NULL));
	const char *m = buf_cstr(&out);
	assert_non_null(strstr(m, "\n<list@example.com> (delivery to |/usr/bin/list-handler): failed: command failed: "
	                          "exit 1\n"));
	assert_non_null(strstr(m, "\nFinal-Recipient: rfc822; list@example.com\nAction: failed\nStatus: 5.1.1\n"
	                          "Diagnostic-Code: X-Postern; command failed: exit 1\n"
	                          "X-Postern-Target: |/usr/bin/list-handler\n"));
	assert_null(strstr(m, "Remote-MTA"));
	/* smtp's result: the reply for programs, the whole story for people */
	buf_reset(&out);
	r[0].target = NULL;
	r[0].remote_mta = "mx.example.org";
	r[0].diag_type = "smtp";
	r[0].diagnostic = "550 5.1.1 no such user";
	r[0].text = "host mx.example.org[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)";
	assert_true(mime_dsn_build(&d, &out, NULL));
	m = buf_cstr(&out);
	assert_non_null(strstr(m, ": failed: host mx.example.org[192.0.2.1] said: 550 5.1.1 no such user (in reply "
	                          "to RCPT TO command)\n"));
	assert_non_null(strstr(m, "\nRemote-MTA: dns; mx.example.org\nDiagnostic-Code: smtp; 550 5.1.1 no such "
	                          "user\n"));
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_7bit_unchanged),
		cmocka_unit_test(test_7bit_non_mime),
		cmocka_unit_test(test_7bit_parts),
		cmocka_unit_test(test_7bit_binary_and_nested),
		cmocka_unit_test(test_dsn_headers_only),
		cmocka_unit_test(test_dsn_full),
		cmocka_unit_test(test_dsn_split_said),
		cmocka_unit_test(test_dsn_local_reason_and_target),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
