/* smtpd command table: verbs, arguments, flags, hostile lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../smtpd/cmdtab.h"

static enum smtpd_parse_result parse(const char *s, struct smtpd_cmd *c)
{
	return smtpd_cmd_parse(s, strlen(s), c);
}

static void test_verbs(void **state)
{
	(void)state;
	struct smtpd_cmd c;
	assert_int_equal(parse("ehlo client.example", &c), SMTPD_PARSE_OK);
	assert_int_equal(c.id, SMTPD_CMD_EHLO);
	assert_string_equal(c.arg, "client.example");
	assert_int_equal(parse("MAIL FROM:<a@b> SIZE=10", &c), SMTPD_PARSE_OK);
	assert_int_equal(c.id, SMTPD_CMD_MAIL);
	assert_string_equal(c.arg, "FROM:<a@b> SIZE=10");
	assert_int_equal(parse("Rcpt  TO:<x@y>  ", &c), SMTPD_PARSE_OK);
	assert_int_equal(c.arglen, strlen("TO:<x@y>"));
	assert_int_equal(parse("DATA", &c), SMTPD_PARSE_OK);
	assert_true(c.flags & SMTPD_CF_SYNC);
	assert_int_equal(parse("STARTTLS", &c), SMTPD_PARSE_OK);
	assert_true(c.flags & SMTPD_CF_PRE_TLS);
	assert_int_equal(parse("MAIL", &c), SMTPD_PARSE_SYNTAX);
}

static void test_errors(void **state)
{
	(void)state;
	struct smtpd_cmd c;
	assert_int_equal(parse("DATA now", &c), SMTPD_PARSE_SYNTAX);
	assert_int_equal(parse("QUIT x", &c), SMTPD_PARSE_SYNTAX);
	assert_int_equal(parse("EHLO", &c), SMTPD_PARSE_SYNTAX);
	assert_int_equal(parse("MAILFROM:<a@b>", &c), SMTPD_PARSE_UNKNOWN);
	assert_int_equal(parse("MAIL:", &c), SMTPD_PARSE_UNKNOWN);
	assert_int_equal(parse("", &c), SMTPD_PARSE_UNKNOWN);
	assert_int_equal(parse("   ", &c), SMTPD_PARSE_UNKNOWN);
	assert_int_equal(parse("XYZZY", &c), SMTPD_PARSE_UNKNOWN);
	assert_int_equal(smtpd_cmd_parse("NOOP\0x", 6, &c), SMTPD_PARSE_NUL);
	assert_int_equal(parse("GET / HTTP/1.0", &c), SMTPD_PARSE_OK);
	assert_int_equal(c.id, SMTPD_CMD_HTTP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verbs),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests_name("smtpd_cmdtab", tests, NULL, NULL);
}
