/* smtp client reply parser: multi-line replies, enhanced codes, malformed lines, caps, byte-by-byte EHLO caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtp/reply.h"

static int feed(struct smtp_reply *r, const char *line)
{
	struct buf err = BUF_INIT(512);
	int rc = smtp_reply_feed(r, line, strlen(line), &err);
	if (rc < 0)
		assert_true(err.len > 0);
	buf_free(&err);
	return rc;
}

static void test_single_line(void **state)
{
	(void)state;
	struct smtp_reply r;
	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "250 2.1.5 Ok"), 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.dsn, "2.1.5");
	assert_string_equal(buf_cstr(&r.text), "2.1.5 Ok");
	/* a bare code is a whole reply */
	assert_int_equal(feed(&r, "354"), 1);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.dsn, "");
	smtp_reply_free(&r);
}

static void test_multi_line(void **state)
{
	(void)state;
	struct smtp_reply r;
	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "550-5.1.1 first"), 0);
	assert_int_equal(feed(&r, "550-second"), 0);
	assert_int_equal(feed(&r, "550 third"), 1);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.dsn, "5.1.1");
	assert_string_equal(buf_cstr(&r.text), "5.1.1 first\nsecond\nthird");
	struct buf fl = BUF_INIT(600);
	assert_string_equal(smtp_reply_first_line(&r, &fl), "5.1.1 first");
	buf_free(&fl);
	smtp_reply_free(&r);
}

static void test_enhanced_code_rules(void **state)
{
	(void)state;
	struct smtp_reply r;
	smtp_reply_init(&r);
	/* the class must match the reply code */
	assert_int_equal(feed(&r, "550 4.1.1 mismatch"), 1);
	assert_string_equal(r.dsn, "");
	assert_int_equal(feed(&r, "451 4.7.1234 too many digits"), 1);
	assert_string_equal(r.dsn, "");
	assert_int_equal(feed(&r, "451 4.7.12x"), 1);
	assert_string_equal(r.dsn, "");
	assert_int_equal(feed(&r, "451 4.7.123"), 1);
	assert_string_equal(r.dsn, "4.7.123");
	smtp_reply_free(&r);
}

static void test_malformed(void **state)
{
	(void)state;
	struct smtp_reply r;
	smtp_reply_init(&r);
	assert_int_equal(feed(&r, "hello"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "25"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "250x"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "150 one-digit class out of range"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "650 too"), -1);
	smtp_reply_reset(&r);
	assert_int_equal(feed(&r, "250-a"), 0);
	assert_int_equal(feed(&r, "251 changed code"), -1);
	smtp_reply_reset(&r);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(feed(&r, "250-x"), 0);
	assert_int_equal(feed(&r, "250-x"), -1);
	smtp_reply_free(&r);
}

static void test_text_cap(void **state)
{
	(void)state;
	struct smtp_reply r;
	smtp_reply_init(&r);
	char line[SMTP_REPLY_LINE_MAX];
	memset(line, 'a', sizeof(line));
	memcpy(line, "250-", 4);
	for (int i = 0; i < 10; i++) {
		struct buf err = BUF_INIT(64);
		assert_int_equal(smtp_reply_feed(&r, line, sizeof(line), &err), 0);
		buf_free(&err);
	}
	assert_int_equal(feed(&r, "250 end"), 1);
	assert_true(r.text.len <= SMTP_REPLY_TEXT_MAX);
	smtp_reply_free(&r);
}

static void parse_caps(struct smtp_caps *c, const char *const *lines)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	int rc = 0;
	for (size_t i = 0; lines[i]; i++)
		rc = feed(&r, lines[i]);
	assert_int_equal(rc, 1);
	smtp_caps_parse(c, &r);
	smtp_reply_free(&r);
}

static void test_caps(void **state)
{
	(void)state;
	static const char *const ehlo[] = { "250-mx.example.org Hello", "250-pipelining", "250-SIZE 10240000",
		                            "250-8BITMIME", "250-DSN", "250-STARTTLS", "250-SMTPUTF8",
		                            "250 CHUNKING", NULL };
	struct smtp_caps c;
	smtp_caps_init(&c);
	parse_caps(&c, ehlo);
	assert_string_equal(buf_cstr(&c.name), "mx.example.org");
	assert_true(c.pipelining && c.eightbitmime && c.dsn && c.starttls && c.smtputf8 && c.chunking);
	assert_true(c.size_given);
	assert_int_equal(c.size, 10240000);
	/* a second parse starts from nothing: a server without extensions has none */
	static const char *const bare[] = { "250 other.example", NULL };
	parse_caps(&c, bare);
	assert_string_equal(buf_cstr(&c.name), "other.example");
	assert_false(c.pipelining || c.eightbitmime || c.dsn || c.starttls || c.smtputf8 || c.size_given);
	/* SIZE without a number: advertised, no fixed limit; an unparsable number is no limit either */
	static const char *const sz[] = { "250-x", "250-SIZE", "250 8BITMIMEX", NULL };
	parse_caps(&c, sz);
	assert_true(c.size_given);
	assert_int_equal(c.size, 0);
	assert_false(c.eightbitmime);
	static const char *const sz2[] = { "250-x", "250 SIZE 12abc", NULL };
	parse_caps(&c, sz2);
	assert_int_equal(c.size, 0);
	static const char *const auth1[] = { "250-x", "250 AUTH CRAM-MD5 login", NULL };
	parse_caps(&c, auth1);
	assert_true(c.auth_login);
	assert_false(c.auth_plain);
	static const char *const auth2[] = { "250-x", "250 AUTH=PLAIN", NULL };
	parse_caps(&c, auth2);
	assert_true(c.auth_plain);
	assert_false(c.auth_login);
	static const char *const auth3[] = { "250-x", "250 AUTH PLAINX XLOGIN", NULL };
	parse_caps(&c, auth3);
	assert_false(c.auth_plain || c.auth_login);
	smtp_caps_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_line), cmocka_unit_test(test_multi_line),
		cmocka_unit_test(test_enhanced_code_rules), cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_text_cap), cmocka_unit_test(test_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
