/* qmgr's notifications (through common/mime_dsn): structure of the multipart/report, recipient rule, RET=HDRS
 * and size limit, header injection through envelope fields, boundary clash, and queueing through qfile. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../qmgr/bounce.h"
#include "fsutil.h"

static const char MSG[] = "From: alice@example.com\nSubject: hi\n\nbody line\n";

static void setup_env(struct qfile_envelope *env)
{
	memset(env, 0, sizeof(*env));
	env->sender = "alice@example.com";
	env->arrival = 1800000000.5;
	env->uid = -1;
}

static void build(struct qfile_envelope *env, const struct mime_dsn_rcpt *r, size_t n, const char *content,
                  size_t max, struct buf *out)
{
	struct bounce_info bi = {
		.hostname = "mx.example.net", .queue_id = "0ABCDEFGHIJ1", .env = env, .to = "alice@example.com",
		.rcpts = r, .nrcpts = n, .content = content, .content_len = content ? strlen(content) : 0,
		.max_content = max, .now = 1800000100,
	};
	bool eight;
	assert_true(bounce_build(&bi, out, &eight));
}

static void test_structure(void **state)
{
	(void)state;
	struct qfile_envelope env;
	setup_env(&env);
	env.envid = "ENV123";
	struct mime_dsn_rcpt r[2] = {
		{ .final_rcpt = "nobody@example.net", .orcpt = "rfc822;Nobody@example.net", .action = MIME_DSN_FAILED,
		  .status = "5.1.1", .diagnostic = "unknown user", .last_attempt = 1800000050 },
		{ .final_rcpt = "full@example.net", .action = MIME_DSN_FAILED, .status = "5.2.2",
		  .diagnostic = "mailbox full" },
	};
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	build(&env, r, 2, MSG, 50000, &out);
	const char *m = out.data;
	assert_non_null(strstr(m, "\nContent-Type: multipart/report; report-type=delivery-status;\n\tboundary=\""));
	assert_non_null(strstr(m, "\nSubject: Undelivered Mail Returned to Sender\n"));
	assert_non_null(strstr(m, "\nAuto-Submitted: auto-replied\n"));
	assert_non_null(strstr(m, "\nTo: alice@example.com\n"));
	assert_non_null(strstr(m, "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"));
	assert_non_null(strstr(m, "\nMessage-ID: <0ABCDEFGHIJ1.1800000100@mx.example.net>\n"));
	assert_non_null(strstr(m, "\nReporting-MTA: dns; mx.example.net\n"));
	assert_non_null(strstr(m, "\nOriginal-Envelope-Id: ENV123\n"));
	assert_non_null(strstr(m, "\nArrival-Date: Fri, 15 Jan 2027 08:00:00 +0000\n"));
	assert_non_null(strstr(m, "\nOriginal-Recipient: rfc822;Nobody@example.net\n"
	                          "Final-Recipient: rfc822; nobody@example.net\nAction: failed\nStatus: 5.1.1\n"
	                          "Diagnostic-Code: X-Postern; unknown user\nLast-Attempt-Date: "));
	assert_non_null(strstr(m, "\nFinal-Recipient: rfc822; full@example.net\nAction: failed\nStatus: 5.2.2\n"));
	assert_non_null(strstr(m, "Content-Type: message/rfc822\n\n"
	                          "From: alice@example.com\nSubject: hi\n\nbody line\n"));
	/* header section ends before the first part; three parts and a closing delimiter */
	const char *b = strstr(m, "boundary=\"") + 10;
	size_t bl = strcspn(b, "\"");
	char delim[200];
	snprintf(delim, sizeof(delim), "\n--%.*s\n", (int)bl, b);
	int parts = 0;
	for (const char *p = m; (p = strstr(p, delim)); p++)
		parts++;
	assert_int_equal(parts, 3);
	snprintf(delim, sizeof(delim), "\n--%.*s--\n", (int)bl, b);
	assert_non_null(strstr(m, delim));
	assert_true(strstr(m, "\n\n") < strstr(m, "This is a MIME"));
	buf_free(&out);
}

static void test_headers_only(void **state)
{
	(void)state;
	struct qfile_envelope env;
	setup_env(&env);
	struct mime_dsn_rcpt r = { .final_rcpt = "x@example.net", .action = MIME_DSN_FAILED, .status = "5.1.1",
		                   .diagnostic = "no" };
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	/* over the size limit: headers only */
	build(&env, &r, 1, MSG, 10, &out);
	assert_non_null(strstr(out.data, "Content-Type: text/rfc822-headers\n"));
	assert_null(strstr(out.data, "body line"));
	buf_reset(&out);
	env.ret = "HDRS";
	build(&env, &r, 1, MSG, 50000, &out);
	assert_non_null(strstr(out.data, "Content-Type: text/rfc822-headers\n"));
	assert_non_null(strstr(out.data, "Subject: hi\n"));
	assert_null(strstr(out.data, "body line"));
	buf_reset(&out);
	/* no content at all: still a valid report with two parts */
	build(&env, &r, 1, NULL, 50000, &out);
	assert_null(strstr(out.data, "rfc822-headers"));
	assert_non_null(strstr(out.data, "message/delivery-status"));
	buf_free(&out);
}

static void test_injection(void **state)
{
	(void)state;
	struct qfile_envelope env;
	setup_env(&env);
	env.envid = "x\nBcc: evil@example.org";
	struct mime_dsn_rcpt r = { .final_rcpt = "a\r\nX-Evil: 1@example.net", .action = MIME_DSN_FAILED,
		                   .status = "5.1.1", .diagnostic = "bad\nline" };
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	build(&env, &r, 1, NULL, 50000, &out);
	assert_null(strstr(out.data, "\nBcc:"));
	assert_null(strstr(out.data, "\nX-Evil"));
	assert_null(strstr(out.data, "\nline"));
	assert_non_null(strstr(out.data, "Final-Recipient: rfc822; a  X-Evil: 1@example.net\n"));
	buf_free(&out);
}

static void test_boundary_clash(void **state)
{
	(void)state;
	struct qfile_envelope env;
	setup_env(&env);
	struct mime_dsn_rcpt r = { .final_rcpt = "x@example.net", .action = MIME_DSN_FAILED, .status = "5.1.1",
		                   .diagnostic = "no" };
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	const char *evil = "Subject: x\n\n--0ABCDEFGHIJ1.1800000100/0/mx.example.net--\n";
	build(&env, &r, 1, evil, 50000, &out);
	const char *b = strstr(out.data, "boundary=\"") + 10;
	size_t bl = strcspn(b, "\"");
	static const char first[] = "0ABCDEFGHIJ1.1800000100/0/mx.example.net";	/* the one that clashes */
	assert_false(bl == strlen(first) && strncmp(b, first, bl) == 0);
	char bound[200];
	snprintf(bound, sizeof(bound), "%.*s", (int)bl, b);
	assert_null(strstr(evil, bound));
	buf_free(&out);
}

static void test_recipient_rule(void **state)
{
	(void)state;
	struct qfile_envelope env;
	const char *origin;
	setup_env(&env);
	assert_string_equal(bounce_recipient(&env, "postmaster", &origin), "alice@example.com");
	assert_string_equal(origin, BOUNCE_ORIGIN);
	env.sender = "";
	env.origin = BOUNCE_ORIGIN;
	assert_string_equal(bounce_recipient(&env, "postmaster", &origin), "postmaster");
	assert_string_equal(origin, BOUNCE_ORIGIN_DOUBLE);
	env.origin = BOUNCE_ORIGIN_DOUBLE;
	assert_null(bounce_recipient(&env, "postmaster", &origin));
}

static void test_queue(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_bounce.XXXXXX", sub[300];
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/tmp", dir);
	assert_true(fsutil_mkdir_p(sub, 0700));
	snprintf(sub, sizeof(sub), "%s/incoming", dir);
	assert_true(fsutil_mkdir_p(sub, 0700));
	struct buf msg = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024), path = BUF_INIT(1024), data = BUF_INIT(1 << 20);
	buf_puts(&msg, "Subject: report\n\nbody\n");
	char *id = NULL;
	assert_true(bounce_queue(dir, "alice@example.com", BOUNCE_ORIGIN, false, &msg, &id, &err));
	buf_printf(&path, "%s/incoming/%s", dir, id);
	assert_true(fsutil_read_file(path.data, 1 << 20, &data));
	struct qfile_envelope env;
	assert_true(qfile_parse(data.data, data.len, &env, &err));
	assert_string_equal(env.sender, "");
	assert_int_equal(env.nrcpts, 1);
	assert_string_equal(env.rcpts[0].addr, "alice@example.com");
	assert_string_equal(env.origin, BOUNCE_ORIGIN);
	assert_int_equal(env.content_len, msg.len);
	qfile_envelope_free(&env);
	unlink(path.data);
	snprintf(sub, sizeof(sub), "%s/incoming", dir);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/tmp", dir);
	rmdir(sub);
	rmdir(dir);
	free(id);
	buf_free(&msg);
	buf_free(&err);
	buf_free(&path);
	buf_free(&data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_headers_only),
		cmocka_unit_test(test_injection),
		cmocka_unit_test(test_boundary_clash),
		cmocka_unit_test(test_recipient_rule),
		cmocka_unit_test(test_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
