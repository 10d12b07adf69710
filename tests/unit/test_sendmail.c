/* sendmail personality: option parsing, the stdin filter (lone dot, CRLF), SMTP encoding (dot-stuffing),
 * header section bounds, -t recipient extraction with Bcc removal, added headers, and the mailq listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "qfile.h"
#include "qstate.h"
#include "../../cli/sendmail.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) sendmail_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o), (err))

static void test_opts_flags(void **state)
{
	(void)state;
	struct sendmail_opts o;
	struct buf err = BUF_INIT(1024);

	assert_true(PARSE(&o, &err, "sendmail", "-ti", "-fbob@example.org", "-F", "Bob B", "-oem", "-B", "8BITMIME",
	                  "-h", "5", "--", "-x@y"));
	assert_int_equal(o.mode, SENDMAIL_DELIVER);
	assert_true(o.extract);
	assert_true(o.ignore_dots);
	assert_string_equal(o.sender, "bob@example.org");
	assert_string_equal(o.fullname, "Bob B");
	assert_int_equal(o.nrcpts, 1);
	assert_string_equal(o.rcpts[0], "-x@y");	/* after "--" a leading dash is an address */
	sendmail_opts_free(&o);

	assert_true(PARSE(&o, &err, "/usr/sbin/sendmail", "-oi", "-f", "", "-N", "never", "-V", "id1", "-C", "/x",
	                  "a@b", "c"));
	assert_true(o.ignore_dots);
	assert_false(o.extract);
	assert_string_equal(o.sender, "");
	assert_string_equal(o.notify, "never");
	assert_string_equal(o.envid, "id1");
	assert_string_equal(o.dir, "/x");
	assert_int_equal(o.nrcpts, 2);
	assert_string_equal(o.rcpts[1], "c");
	sendmail_opts_free(&o);

	assert_true(PARSE(&o, &err, "sendmail", "-f<>", "-o", "i", "-r", "r@x", "a@b"));
	assert_string_equal(o.sender, "r@x");	/* the last of -f/-r wins */
	assert_true(o.ignore_dots);
	sendmail_opts_free(&o);
	buf_free(&err);
}

static void test_opts_modes(void **state)
{
	(void)state;
	struct sendmail_opts o;
	struct buf err = BUF_INIT(1024);

	assert_true(PARSE(&o, &err, "sendmail", "-bs"));
	assert_int_equal(o.mode, SENDMAIL_SMTP);
	sendmail_opts_free(&o);
	assert_true(PARSE(&o, &err, "sendmail", "-bp"));
	assert_int_equal(o.mode, SENDMAIL_MAILQ);
	sendmail_opts_free(&o);
	assert_true(PARSE(&o, &err, "sendmail", "-b", "i"));
	assert_int_equal(o.mode, SENDMAIL_NEWALIASES);
	sendmail_opts_free(&o);
	assert_true(PARSE(&o, &err, "sendmail", "-q"));
	assert_int_equal(o.mode, SENDMAIL_FLUSH);
	sendmail_opts_free(&o);
	assert_true(PARSE(&o, &err, "sendmail", "-q30m"));
	assert_int_equal(o.mode, SENDMAIL_FLUSH);
	sendmail_opts_free(&o);
	assert_true(PARSE(&o, &err, "mailq"));
	assert_int_equal(o.mode, SENDMAIL_MAILQ);
	sendmail_opts_free(&o);
	assert_true(PARSE(&o, &err, "/usr/bin/newaliases"));
	assert_int_equal(o.mode, SENDMAIL_NEWALIASES);
	sendmail_opts_free(&o);
	assert_true(PARSE(&o, &err, "sendmail", "-bm", "a@b"));
	assert_int_equal(o.mode, SENDMAIL_DELIVER);
	sendmail_opts_free(&o);
	buf_free(&err);
}

static void test_opts_errors(void **state)
{
	(void)state;
	struct sendmail_opts o;
	struct buf err = BUF_INIT(1024);

	assert_false(PARSE(&o, &err, "sendmail"));	/* nothing to send to */
	assert_non_null(strstr(buf_cstr(&err), "no recipients"));
	buf_reset(&err);
	assert_false(PARSE(&o, &err, "sendmail", "-k", "a@b"));
	assert_non_null(strstr(buf_cstr(&err), "-k"));
	buf_reset(&err);
	assert_true(PARSE(&o, &err, "sendmail", "a@b", "-f"));	/* options end at the first address */
	assert_int_equal(o.nrcpts, 2);
	assert_string_equal(o.rcpts[1], "-f");
	sendmail_opts_free(&o);
	assert_false(PARSE(&o, &err, "sendmail", "-f"));
	assert_non_null(strstr(buf_cstr(&err), "needs a value"));
	buf_reset(&err);
	assert_false(PARSE(&o, &err, "sendmail", "-bs", "-bp"));
	buf_reset(&err);
	assert_false(PARSE(&o, &err, "sendmail", "-bd"));	/* no daemon mode here */
	buf_reset(&err);
	assert_false(PARSE(&o, &err, "sendmail", "-N", "sometimes", "a@b"));
	buf_reset(&err);
	assert_false(PARSE(&o, &err, "sendmail", "-V", "", "a@b"));
	buf_free(&err);
}

static void test_notify(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(256);
	assert_true(sendmail_notify_value("Never", &b));
	assert_string_equal(buf_cstr(&b), "NEVER");
	buf_reset(&b);
	assert_true(sendmail_notify_value("delay, success", &b));
	assert_string_equal(buf_cstr(&b), "DELAY,SUCCESS");
	buf_reset(&b);
	assert_false(sendmail_notify_value("success,success", &b));
	assert_false(sendmail_notify_value("never,success", &b));
	assert_false(sendmail_notify_value("", &b));
	assert_false(sendmail_notify_value(",", &b));
	buf_free(&b);
}

/* Run the filter over in, whole and one byte at a time; both must give want. */
static void filter_case(const char *in, bool ignore_dots, const char *want, bool want_done)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct sendmail_filter f;
		struct buf out = BUF_INIT(4096);
		size_t n = strlen(in);
		sendmail_filter_init(&f, ignore_dots);
		if (bytewise)
			for (size_t i = 0; i < n; i++)
				assert_true(sendmail_filter(&f, in + i, 1, &out));
		else
			assert_true(sendmail_filter(&f, in, n, &out));
		assert_int_equal(f.done, want_done);
		assert_true(sendmail_filter_end(&f, &out));
		assert_string_equal(buf_cstr(&out), want);
		buf_free(&out);
	}
}

static void test_filter(void **state)
{
	(void)state;
	filter_case("a\r\nb\r\n", false, "a\nb\n", false);
	filter_case("a\n.\nlost\n", false, "a\n", true);
	filter_case("a\r\n.\r\nlost\r\n", false, "a\n", true);
	filter_case(".\n", false, "", true);
	filter_case("a\n.\nkept\n", true, "a\n.\nkept\n", false);	/* -i */
	filter_case("..x\n.y\n. \n", false, "..x\n.y\n. \n", false);	/* only a lone dot is special */
	filter_case("a\n.", false, "a\n.", false);	/* a dot without a line end is text */
	filter_case("bare\rcr\r", false, "bare\rcr\r", false);
	filter_case("x.\ny", false, "x.\ny", false);
	filter_case("", false, "", false);
}

static void test_filter_cap(void **state)
{
	(void)state;
	struct sendmail_filter f;
	struct buf out = BUF_INIT(3);
	sendmail_filter_init(&f, true);
	assert_false(sendmail_filter(&f, "abcdef", 6, &out));
	assert_int_equal(out.len, 3);
	buf_free(&out);
}

static void test_encode(void **state)
{
	(void)state;
	struct buf out = BUF_INIT(4096);
	bool bol = true;
	assert_true(sendmail_smtp_encode(&bol, ".a\nb.\n..\n", 9, &out));
	assert_true(sendmail_smtp_encode(&bol, ".", 1, &out));	/* a dot split from its line start */
	assert_true(sendmail_smtp_encode(&bol, "\n", 1, &out));
	assert_true(sendmail_smtp_encode(&bol, "last", 4, &out));
	assert_true(sendmail_smtp_encode_end(&bol, &out));
	assert_string_equal(buf_cstr(&out), "..a\r\nb.\r\n...\r\n..\r\nlast\r\n.\r\n");
	buf_reset(&out);
	bol = true;
	assert_true(sendmail_smtp_encode_end(&bol, &out));
	assert_string_equal(buf_cstr(&out), ".\r\n");
	buf_free(&out);
}

static void test_header_end(void **state)
{
	(void)state;
	bool blank;
	const char *m = "To: a\nSubject: x\n  folded\n\nbody\n";
	assert_int_equal(sendmail_header_end(m, strlen(m), false, &blank), 26);
	assert_true(blank);
	/* undecided until the line after the headers is complete */
	assert_int_equal(sendmail_header_end("To: a\nSubj", 10, false, &blank), (size_t)-1);
	assert_int_equal(sendmail_header_end("To: a\nSubj", 10, true, &blank), 6);	/* "Subj" has no colon */
	assert_false(blank);
	assert_int_equal(sendmail_header_end("To: a\nSubject: x", 16, true, &blank), 16);
	assert_int_equal(sendmail_header_end("hello world\n", 12, false, &blank), 0);
	assert_false(blank);
	assert_int_equal(sendmail_header_end(" x: y\n", 6, false, &blank), 0);	/* no field to continue */
	assert_int_equal(sendmail_header_end("From x@y Mon\n", 13, false, &blank), 0);	/* mbox From_ line */
	assert_int_equal(sendmail_header_end("X-A : obs\n\n", 11, false, &blank), 10);
	assert_true(blank);
	assert_int_equal(sendmail_header_end("", 0, true, &blank), 0);
	assert_int_equal(sendmail_header_end("", 0, false, &blank), (size_t)-1);
}

static void test_headers_extract(void **state)
{
	(void)state;
	struct sendmail_headers h;
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	const char *m = "From: me@x.example\n"
	                "To: \"Doe, John\" <john@Example.ORG>, root\n"
	                "CC: team: a@b.example, c@d.example;, undisclosed:;\n"
	                "Bcc: secret@hidden.example,\n"
	                "\tsecret2@hidden.example\n"
	                "bcc:\n"
	                "Subject: to: not@this.example\n"
	                "Message-Id: <1@x>\n"
	                "To: bad@@x, ok@y.example\n";

	sendmail_headers_scan(m, strlen(m), true, &h, &out);
	assert_int_equal(h.nrcpts, 7);
	assert_string_equal(h.rcpts[0], "john@example.org");
	assert_string_equal(h.rcpts[1], "root@");	/* qualified later with myorigin */
	assert_string_equal(h.rcpts[2], "a@b.example");
	assert_string_equal(h.rcpts[3], "c@d.example");
	assert_string_equal(h.rcpts[4], "secret@hidden.example");
	assert_string_equal(h.rcpts[5], "secret2@hidden.example");
	assert_string_equal(h.rcpts[6], "ok@y.example");
	assert_int_equal(h.bad, 1);
	assert_true(h.has_from);
	assert_true(h.has_msgid);
	assert_false(h.has_date);
	/* both Bcc fields are gone, continuation line included; everything else is kept byte for byte */
	assert_null(strstr(buf_cstr(&out), "secret"));
	assert_null(strstr(buf_cstr(&out), "cc:\n"));
	assert_non_null(strstr(buf_cstr(&out), "CC: team:"));
	assert_non_null(strstr(buf_cstr(&out), "Subject: to: not@this.example\nMessage-Id: <1@x>\n"));
	sendmail_headers_free(&h);

	/* without -t no address is collected, but Bcc is still removed */
	buf_reset(&out);
	sendmail_headers_scan(m, strlen(m), false, &h, &out);
	assert_int_equal(h.nrcpts, 0);
	assert_null(strstr(buf_cstr(&out), "secret"));
	sendmail_headers_free(&h);

	/* a resent message goes to its Resent- recipients only; Resent-Bcc is removed like Bcc */
	const char *r = "From: me@x.example\n"
	                "To: first@x.example\n"
	                "Resent-From: fwd@x.example\n"
	                "Resent-To: again@y.example\n"
	                "RESENT-CC: also@y.example\n"
	                "Resent-Bcc: hidden@y.example\n"
	                "Cc: old@x.example\n";
	buf_reset(&out);
	sendmail_headers_scan(r, strlen(r), true, &h, &out);
	assert_int_equal(h.nrcpts, 3);
	assert_string_equal(h.rcpts[0], "again@y.example");
	assert_string_equal(h.rcpts[1], "also@y.example");
	assert_string_equal(h.rcpts[2], "hidden@y.example");
	assert_null(strstr(buf_cstr(&out), "hidden"));
	assert_non_null(strstr(buf_cstr(&out), "To: first@x.example\nResent-From: fwd@x.example\n"));
	sendmail_headers_free(&h);
	buf_free(&out);
}

static void test_collect_arg(void **state)
{
	(void)state;
	struct sendmail_headers h = { 0 };
	const char *a = "Alice <alice@Example.org>, bob";
	sendmail_collect(&h, a, strlen(a));
	sendmail_collect(&h, "<carol@x.example>", 17);
	sendmail_collect(&h, "bad@@x", 6);
	assert_int_equal(h.nrcpts, 3);
	assert_string_equal(h.rcpts[0], "alice@example.org");
	assert_string_equal(h.rcpts[1], "bob@");
	assert_string_equal(h.rcpts[2], "carol@x.example");
	assert_int_equal(h.bad, 1);
	assert_null(h.rcpts[3]);
	sendmail_headers_free(&h);
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static void test_missing_headers(void **state)
{
	(void)state;
	struct sendmail_headers h = { 0 };
	struct buf out = BUF_INIT(BUF_NOLIMIT);

	sendmail_missing_headers(&h, "joe", "Doe, \"Joe\"\n", "example.org", "mx.example.org", 0, &out);
	assert_true(has_prefix(buf_cstr(&out), "From: \"Doe, \\\"Joe\\\"\" <joe@example.org>\nDate: "));
	assert_non_null(strstr(buf_cstr(&out), "1970"));
	assert_non_null(strstr(buf_cstr(&out), "\nMessage-ID: <19700101000000."));
	assert_non_null(strstr(buf_cstr(&out), "@mx.example.org>\n"));
	buf_reset(&out);
	sendmail_missing_headers(&h, "joe", "Joe User", "example.org", "h", 0, &out);
	assert_true(has_prefix(buf_cstr(&out), "From: Joe User <joe@example.org>\n"));
	buf_reset(&out);
	sendmail_missing_headers(&h, "joe", NULL, "example.org", "h", 0, &out);
	assert_true(has_prefix(buf_cstr(&out), "From: joe@example.org\nDate: "));
	buf_reset(&out);
	h.has_from = h.has_date = h.has_msgid = true;
	sendmail_missing_headers(&h, "joe", NULL, "example.org", "h", 0, &out);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static char qdir[64];

static void test_mailq(void **state)
{
	(void)state;
	char path[128], *text = NULL;
	size_t len = 0;
	struct buf err = BUF_INIT(4096);
	FILE *out, *errf = tmpfile();

	snprintf(qdir, sizeof(qdir), "%s", "/tmp/test_sendmail.XXXXXX");
	assert_non_null(mkdtemp(qdir));
	/* no queue directories at all: an empty queue */
	out = open_memstream(&text, &len);
	assert_int_equal(mailq_list(qdir, out, errf), 0);
	fclose(out);
	assert_string_equal(text, "Mail queue is empty\n");
	free(text);

	snprintf(path, sizeof(path), "%s/tmp", qdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/incoming", qdir);
	mkdir(path, 0700);
	struct qfile_writer *w = qfile_create(qdir, &err);
	assert_non_null(w);
	char *id = strdup(qfile_writer_id(w));
	assert_true(qfile_put_str(w, QREC_SENDER, ""));
	assert_true(qfile_put_rcpt(w, "bob@example.net", 0, NULL));
	assert_true(qfile_put_rcpt(w, "carol@example.net", 0, NULL));
	assert_true(qfile_write(w, "Subject: x\n\nhello\n", 18));
	assert_true(qfile_commit(&w, &err));
	/* a corrupt file is reported and skipped, not fatal */
	snprintf(path, sizeof(path), "%s/incoming/0000000000000AB", qdir);
	FILE *c = fopen(path, "w");
	fputs("junk", c);
	fclose(c);

	out = open_memstream(&text, &len);
	assert_int_equal(mailq_list(qdir, out, errf), 0);
	fclose(out);
	if (!strstr(text, "-Queue ID-"))
		fprintf(stderr, "%s", text);
	assert_non_null(strstr(text, "-Queue ID-"));
	assert_non_null(strstr(text, id));
	assert_non_null(strstr(text, "MAILER-DAEMON"));
	assert_non_null(strstr(text, "bob@example.net\n"));
	assert_non_null(strstr(text, "carol@example.net\n"));
	assert_non_null(strstr(text, "-- 1 Kbytes in 1 Request.\n"));
	free(text);
	/* with delivery state: delivered recipients are left out, a deferred one shows its last error */
	char spath[128];
	snprintf(spath, sizeof(spath), "%s/state.lmdb", qdir);
	struct qstate *db = qstate_open(spath, true, &err);
	assert_non_null(db);
	struct qstate_rcpt recs[2];
	memset(recs, 0, sizeof(recs));
	recs[0].status = QSTATE_SENT;
	recs[0].parent = QSTATE_NO_PARENT;
	qstate_rcpt_set(&recs[0], "bob@example.net", "2.0.0", "delivered");
	recs[1].idx = 1;
	recs[1].status = QSTATE_DEFERRED;
	recs[1].parent = QSTATE_NO_PARENT;
	qstate_rcpt_set(&recs[1], "carol@example.net", "4.4.1", "connection refused");
	assert_true(qstate_put(db, id, recs, 2, &err));
	qstate_rcpt_free(&recs[0]);
	qstate_rcpt_free(&recs[1]);
	qstate_close(&db);
	out = open_memstream(&text, &len);
	assert_int_equal(mailq_list(qdir, out, errf), 0);
	fclose(out);
	assert_null(strstr(text, "bob@example.net"));
	assert_non_null(strstr(text, "\n(connection refused)\n"));
	assert_non_null(strstr(text, "carol@example.net\n"));
	free(text);
	unlink(spath);
	snprintf(spath, sizeof(spath), "%s/state.lmdb-lock", qdir);
	unlink(spath);

	char line[512] = "";
	rewind(errf);
	assert_non_null(fgets(line, sizeof(line), errf));
	assert_non_null(strstr(line, "0000000000000AB: corrupt"));
	fclose(errf);

	unlink(path);
	snprintf(path, sizeof(path), "%s/incoming/%s", qdir, id);
	unlink(path);
	snprintf(path, sizeof(path), "%s/incoming", qdir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/tmp", qdir);
	rmdir(path);
	rmdir(qdir);
	free(id);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts_flags),
		cmocka_unit_test(test_opts_modes),
		cmocka_unit_test(test_opts_errors),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_filter_cap),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_header_end),
		cmocka_unit_test(test_headers_extract),
		cmocka_unit_test(test_collect_arg),
		cmocka_unit_test(test_missing_headers),
		cmocka_unit_test(test_mailq),
	};
	return cmocka_run_group_tests_name("sendmail", tests, NULL, NULL);
}
