/* esmtp: parameter list syntax, value checkers, xtext, MAIL/RCPT aggregates, replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "esmtp.h"

static enum esmtp_err parse(const char *s, struct esmtp_params *p)
{
	return esmtp_parse(s, strlen(s), 0, p, NULL);
}

static void test_parse_list(void **state)
{
	(void)state;
	struct esmtp_params p;
	size_t off;

	assert_int_equal(parse("SIZE=123 BODY=8BITMIME", &p), ESMTP_OK);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.v[0].keyword, "SIZE");
	assert_string_equal(p.v[0].value, "123");
	assert_string_equal(p.v[1].value, "8BITMIME");
	assert_non_null(esmtp_find(&p, "size"));
	assert_non_null(esmtp_find(&p, "Body"));
	assert_null(esmtp_find(&p, "RET"));
	esmtp_params_free(&p);

	assert_int_equal(parse("", &p), ESMTP_OK);
	assert_int_equal(p.n, 0);
	assert_int_equal(parse("   ", &p), ESMTP_OK);
	assert_int_equal(p.n, 0);
	assert_int_equal(parse("  SMTPUTF8   X-FOO-1=a+2Bb  ", &p), ESMTP_OK);
	assert_int_equal(p.n, 2);
	assert_null(p.v[0].value);
	assert_string_equal(p.v[1].keyword, "X-FOO-1");
	esmtp_params_free(&p);

	assert_int_equal(parse("size=1 SIZE=2", &p), ESMTP_ERR_DUPLICATE);
	assert_int_equal(p.n, 0);
	assert_int_equal(parse("SMTPUTF8 smtputf8", &p), ESMTP_ERR_DUPLICATE);
	assert_int_equal(parse("-SIZE=1", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(parse("SI_ZE=1", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(parse("SIZE=", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(parse("SIZE==1", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(parse("SIZE=1=2", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(parse("=1", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(parse("SIZE=1\tBODY=7BIT", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(parse("ENVID=a\x7f", &p), ESMTP_ERR_SYNTAX);
	assert_int_equal(esmtp_parse("A=1 B=\0", 7, 0, &p, &off), ESMTP_ERR_SYNTAX);
	assert_int_equal(off, 4);
	assert_int_equal(esmtp_parse("A=1 B\0", 6, 0, &p, &off), ESMTP_ERR_SYNTAX);

	/* UTF-8 values only when the server offers SMTPUTF8, and only well-formed */
	const char *u = "ORCPT=utf-8;j\xc3\xb6rg@x";
	assert_int_equal(esmtp_parse(u, strlen(u), 0, &p, NULL), ESMTP_ERR_SYNTAX);
	assert_int_equal(esmtp_parse(u, strlen(u), ESMTP_F_UTF8, &p, NULL), ESMTP_OK);
	esmtp_params_free(&p);
	u = "ENVID=\xc0\xaf";
	assert_int_equal(esmtp_parse(u, strlen(u), ESMTP_F_UTF8, &p, NULL), ESMTP_ERR_SYNTAX);

	/* the cap */
	char many[400];
	size_t n = 0;
	for (int i = 0; i < ESMTP_MAX_PARAMS; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "K%d=%d ", i, i);
	assert_int_equal(esmtp_parse(many, n, 0, &p, NULL), ESMTP_OK);
	assert_int_equal(p.n, ESMTP_MAX_PARAMS);
	esmtp_params_free(&p);
	n += (size_t)snprintf(many + n, sizeof(many) - n, "LAST");
	assert_int_equal(esmtp_parse(many, n, 0, &p, &off), ESMTP_ERR_TOO_MANY);
	assert_int_equal(off, n - 4);
	assert_int_equal(p.n, 0);
}

static void test_size(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(esmtp_size("0", &v), ESMTP_OK);
	assert_int_equal(v, 0);
	assert_int_equal(esmtp_size("10485760", &v), ESMTP_OK);
	assert_int_equal(v, 10485760);
	assert_int_equal(esmtp_size("18446744073709551615", &v), ESMTP_OK);
	assert_true(v == UINT64_MAX);
	assert_int_equal(esmtp_size("18446744073709551616", &v), ESMTP_ERR_SIZE_OVERFLOW);
	assert_int_equal(esmtp_size("99999999999999999999999999", &v), ESMTP_ERR_SIZE_OVERFLOW);
	assert_int_equal(esmtp_size("", &v), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_size("+1", &v), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_size("-1", &v), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_size("1k", &v), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_size("0x10", &v), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_size(NULL, &v), ESMTP_ERR_NEED_VALUE);
}

static void test_keywords(void **state)
{
	(void)state;
	enum esmtp_body b;
	enum esmtp_ret r;
	unsigned n;

	assert_int_equal(esmtp_body("7bit", &b), ESMTP_OK);
	assert_int_equal(b, ESMTP_BODY_7BIT);
	assert_int_equal(esmtp_body("8BITMIME", &b), ESMTP_OK);
	assert_int_equal(b, ESMTP_BODY_8BITMIME);
	assert_int_equal(esmtp_body("BinaryMIME", &b), ESMTP_OK);
	assert_int_equal(b, ESMTP_BODY_BINARYMIME);
	assert_int_equal(esmtp_body("8BIT", &b), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_body(NULL, &b), ESMTP_ERR_NEED_VALUE);

	assert_int_equal(esmtp_ret("FULL", &r), ESMTP_OK);
	assert_int_equal(r, ESMTP_RET_FULL);
	assert_int_equal(esmtp_ret("hdrs", &r), ESMTP_OK);
	assert_int_equal(r, ESMTP_RET_HDRS);
	assert_int_equal(esmtp_ret("HEADERS", &r), ESMTP_ERR_VALUE);

	assert_int_equal(esmtp_notify("NEVER", &n), ESMTP_OK);
	assert_int_equal(n, ESMTP_NOTIFY_NEVER);
	assert_int_equal(esmtp_notify("SUCCESS,FAILURE,DELAY", &n), ESMTP_OK);
	assert_int_equal(n, ESMTP_NOTIFY_SUCCESS | ESMTP_NOTIFY_FAILURE | ESMTP_NOTIFY_DELAY);
	assert_int_equal(esmtp_notify("delay,failure", &n), ESMTP_OK);
	assert_int_equal(n, ESMTP_NOTIFY_FAILURE | ESMTP_NOTIFY_DELAY);
	assert_int_equal(esmtp_notify("NEVER,SUCCESS", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify("FAILURE,NEVER", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify("FAILURE,FAILURE", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify("FAILURE,", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify(",FAILURE", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify("", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify("SUCCES", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify("SUCCESSX", &n), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_notify(NULL, &n), ESMTP_ERR_NEED_VALUE);
}

static void test_xtext(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);

	assert_true(esmtp_xtext_decode("a+2Bb+3Dc", 9, &b));
	assert_string_equal(buf_cstr(&b), "a+b=c");
	buf_reset(&b);
	assert_true(esmtp_xtext_decode("x+2bz", 5, &b));	/* lowercase hex tolerated */
	assert_string_equal(buf_cstr(&b), "x+z");
	buf_reset(&b);
	assert_true(esmtp_xtext_decode("", 0, &b));
	assert_non_null(b.data);
	assert_string_equal(buf_cstr(&b), "");
	assert_false(esmtp_xtext_decode("a+2", 3, &b));
	assert_false(esmtp_xtext_decode("a+", 2, &b));
	assert_false(esmtp_xtext_decode("a+G0", 4, &b));
	assert_false(esmtp_xtext_decode("a+00", 4, &b));	/* decoded NUL */
	assert_false(esmtp_xtext_decode("a=b", 3, &b));
	assert_false(esmtp_xtext_decode("a b", 3, &b));
	assert_false(esmtp_xtext_decode("a\x7f", 2, &b));
	assert_false(esmtp_xtext_decode("a\xc3\xa9", 3, &b));
	assert_int_equal(b.len, 0);	/* failures leave out unchanged */
	assert_true(esmtp_xtext_valid("user+2Btag@x", 12));
	assert_false(esmtp_xtext_valid("user+tag@x", 10));

	/* encode: every byte except NUL round-trips */
	unsigned char all[255];
	for (int i = 0; i < 255; i++)
		all[i] = (unsigned char)(i + 1);
	struct buf enc = BUF_INIT(BUF_NOLIMIT);
	assert_true(esmtp_xtext_encode(all, sizeof(all), &enc));
	assert_true(esmtp_xtext_valid(enc.data, enc.len));
	buf_reset(&b);
	assert_true(esmtp_xtext_decode(enc.data, enc.len, &b));
	assert_int_equal(b.len, 255);
	assert_memory_equal(b.data, all, 255);
	buf_reset(&enc);
	assert_true(esmtp_xtext_encode("a+b=c d\xe9", 8, &enc));
	assert_string_equal(buf_cstr(&enc), "a+2Bb+3Dc+20d+E9");
	/* capped output: false and nothing appended */
	struct buf small = BUF_INIT(4);
	assert_true(buf_puts(&small, "x"));
	assert_false(esmtp_xtext_encode("+++", 3, &small));
	assert_string_equal(buf_cstr(&small), "x");
	buf_free(&small);
	buf_free(&enc);
	buf_free(&b);
}

static void test_dsn_values(void **state)
{
	(void)state;
	char *s, *t;

	assert_int_equal(esmtp_envid("QQ314159+2B1", &s), ESMTP_OK);
	assert_string_equal(s, "QQ314159+1");
	free(s);
	assert_int_equal(esmtp_envid("a+20b", &s), ESMTP_ERR_XTEXT);	/* decoded space: not graphic */
	assert_int_equal(esmtp_envid("a+0Ab", &s), ESMTP_ERR_XTEXT);
	char longv[ESMTP_ENVID_MAX + 2];
	memset(longv, 'e', sizeof(longv) - 1);
	longv[ESMTP_ENVID_MAX] = '\0';
	assert_int_equal(esmtp_envid(longv, &s), ESMTP_OK);
	free(s);
	longv[ESMTP_ENVID_MAX] = 'e';
	longv[ESMTP_ENVID_MAX + 1] = '\0';
	assert_int_equal(esmtp_envid(longv, &s), ESMTP_ERR_TOO_LONG);
	assert_int_equal(esmtp_envid(NULL, &s), ESMTP_ERR_NEED_VALUE);

	assert_int_equal(esmtp_orcpt("rfc822;user+2Btag@example.org", &t, &s), ESMTP_OK);
	assert_string_equal(t, "rfc822");
	assert_string_equal(s, "user+tag@example.org");
	free(t); free(s);
	assert_int_equal(esmtp_orcpt("RFC822;+22a+20b+22@x", &t, &s), ESMTP_OK);
	assert_string_equal(s, "\"a b\"@x");
	free(t); free(s);
	assert_int_equal(esmtp_orcpt("rfc822", &t, &s), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_orcpt(";a@b", &t, &s), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_orcpt("rfc822;", &t, &s), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_orcpt("rfc(822);a@b", &t, &s), ESMTP_ERR_VALUE);
	assert_int_equal(esmtp_orcpt("rfc822;a+@b", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("rfc822;a+0D+0A@b", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("rfc822;a;b@c", &t, &s), ESMTP_OK);	/* only the first ';' splits */
	assert_string_equal(s, "a;b@c");
	free(t); free(s);
	char big[ESMTP_ORCPT_MAX + 10] = "rfc822;";
	memset(big + 7, 'a', ESMTP_ORCPT_MAX - 7);
	big[ESMTP_ORCPT_MAX] = '\0';
	assert_int_equal(esmtp_orcpt(big, &t, &s), ESMTP_OK);
	free(t); free(s);
	big[ESMTP_ORCPT_MAX] = 'a';
	big[ESMTP_ORCPT_MAX + 1] = '\0';
	assert_int_equal(esmtp_orcpt(big, &t, &s), ESMTP_ERR_TOO_LONG);

	/* RFC 6533 utf-8 type: \x{HEX} escapes and raw UTF-8 */
	assert_int_equal(esmtp_orcpt("utf-8;j\\x{F6}rg@b\\x{FC}cher.example", &t, &s), ESMTP_OK);
	assert_string_equal(t, "utf-8");
	assert_string_equal(s, "j\xc3\xb6rg@b\xc3\xbc" "cher.example");
	free(t); free(s);
	assert_int_equal(esmtp_orcpt("UTF-8;\xe7\x94\xa8\\x{2B}\\x{1F600}@x", &t, &s), ESMTP_OK);
	assert_string_equal(s, "\xe7\x94\xa8+\xf0\x9f\x98\x80@x");
	free(t); free(s);
	assert_int_equal(esmtp_orcpt("utf-8;a+2Bb@x", &t, &s), ESMTP_ERR_XTEXT);         /* xtext '+' not allowed */
	assert_int_equal(esmtp_orcpt("utf-8;a\\x{D800}@x", &t, &s), ESMTP_ERR_XTEXT);  /* surrogate */
	assert_int_equal(esmtp_orcpt("utf-8;a\\x{110000}@x", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("utf-8;a\\x{0}@x", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("utf-8;a\\x{0A}@x", &t, &s), ESMTP_ERR_XTEXT);    /* control */
	assert_int_equal(esmtp_orcpt("utf-8;a\\x{1000000}@x", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("utf-8;a\\x{F6@x", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("utf-8;a\\y{F6}@x", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("utf-8;a\\", &t, &s), ESMTP_ERR_XTEXT);
	assert_int_equal(esmtp_orcpt("utf-8;a\xc3@x", &t, &s), ESMTP_ERR_XTEXT);       /* truncated UTF-8 */
	assert_int_equal(esmtp_orcpt("rfc822;j\xc3\xb6rg@x", &t, &s), ESMTP_ERR_XTEXT); /* rfc822 is ASCII */

	assert_int_equal(esmtp_auth("<>", &s), ESMTP_OK);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(esmtp_auth("e+3Dmc2@example.com", &s), ESMTP_OK);
	assert_string_equal(s, "e=mc2@example.com");
	free(s);
	assert_int_equal(esmtp_auth("a=b", &s), ESMTP_ERR_XTEXT);
}

static void test_mail_rcpt(void **state)
{
	(void)state;
	struct esmtp_params p;
	struct esmtp_mail m;
	struct esmtp_rcpt r;
	const struct esmtp_param *bad;
	const char *line = "FROM:<a@b.org> SIZE=123 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By AUTH=<> REQUIRETLS";
	struct addr a;
	size_t off;

	/* the whole path from a MAIL argument to checked values */
	assert_int_equal(addr_parse_cmd(line, strlen(line), "FROM", 0, &a, &off), ADDR_OK);
	assert_int_equal(esmtp_parse(line + off, strlen(line) - off, 0, &p, NULL), ESMTP_OK);
	assert_int_equal(esmtp_mail_params(&p, &m, &bad), ESMTP_OK);
	assert_null(bad);
	assert_true(m.has_size);
	assert_int_equal(m.size, 123);
	assert_int_equal(m.body, ESMTP_BODY_8BITMIME);
	assert_true(m.smtputf8);
	assert_true(m.requiretls);
	assert_int_equal(m.ret, ESMTP_RET_HDRS);
	assert_string_equal(m.envid, "x+y");
	assert_string_equal(m.auth, "");
	esmtp_mail_free(&m);
	esmtp_params_free(&p);
	addr_free(&a);

	assert_int_equal(parse("SIZE=1 NOTIFY=NEVER", &p), ESMTP_OK);
	assert_int_equal(esmtp_mail_params(&p, &m, &bad), ESMTP_ERR_UNKNOWN);
	assert_string_equal(bad->keyword, "NOTIFY");
	assert_false(m.has_size);
	esmtp_params_free(&p);
	assert_int_equal(parse("SMTPUTF8=yes", &p), ESMTP_OK);
	assert_int_equal(esmtp_mail_params(&p, &m, &bad), ESMTP_ERR_NO_VALUE);
	esmtp_params_free(&p);
	assert_int_equal(parse("ENVID=ok SIZE=1x", &p), ESMTP_OK);
	assert_int_equal(esmtp_mail_params(&p, &m, &bad), ESMTP_ERR_VALUE);
	assert_null(m.envid);	/* freed on error */
	assert_string_equal(bad->keyword, "SIZE");
	esmtp_params_free(&p);
	assert_int_equal(parse("SIZE=99999999999999999999", &p), ESMTP_OK);
	assert_int_equal(esmtp_mail_params(&p, &m, NULL), ESMTP_ERR_SIZE_OVERFLOW);
	esmtp_params_free(&p);
	assert_int_equal(parse("BODY", &p), ESMTP_OK);
	assert_int_equal(esmtp_mail_params(&p, &m, NULL), ESMTP_ERR_NEED_VALUE);
	esmtp_params_free(&p);

	assert_int_equal(parse("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@c", &p), ESMTP_OK);
	assert_int_equal(esmtp_rcpt_params(&p, &r, &bad), ESMTP_OK);
	assert_int_equal(r.notify, ESMTP_NOTIFY_SUCCESS | ESMTP_NOTIFY_FAILURE);
	assert_string_equal(r.orcpt_type, "rfc822");
	assert_string_equal(r.orcpt_addr, "a+b@c");
	esmtp_rcpt_free(&r);
	esmtp_params_free(&p);
	assert_int_equal(parse("ORCPT=rfc822;a@b SIZE=1", &p), ESMTP_OK);
	assert_int_equal(esmtp_rcpt_params(&p, &r, &bad), ESMTP_ERR_UNKNOWN);
	assert_null(r.orcpt_addr);
	esmtp_params_free(&p);
	assert_int_equal(parse("", &p), ESMTP_OK);
	assert_int_equal(esmtp_rcpt_params(&p, &r, &bad), ESMTP_OK);
	assert_int_equal(r.notify, 0);
	assert_null(r.orcpt_type);
	esmtp_rcpt_free(&r);
}

/* Every prefix in an exact-size heap copy (ASan catches a read past the end); a cut inside a keyword or value
 * must still give a consistent result. */
static void test_prefixes(void **state)
{
	(void)state;
	const char *line = "SIZE=123 BODY=8BITMIME SMTPUTF8 ENVID=a+2Bb ORCPT=utf-8;j\\x{F6}rg@x NOTIFY=SUCCESS,DELAY";
	size_t len = strlen(line);
	for (size_t n = 0; n <= len; n++) {
		char *p = malloc(n ? n : 1);
		memcpy(p, line, n);
		struct esmtp_params ps;
		size_t off = 0;
		enum esmtp_err e = esmtp_parse(p, n, 0, &ps, &off);
		/* any prefix is syntactically a parameter list, except one ending right after '=' */
		if (n > 0 && line[n - 1] == '=')
			assert_int_equal(e, ESMTP_ERR_SYNTAX);
		else
			assert_int_equal(e, ESMTP_OK);
		esmtp_params_free(&ps);
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		(void)esmtp_xtext_decode(p, n, &b);
		buf_free(&b);
		free(p);
	}
}

static void test_replies(void **state)
{
	(void)state;
	assert_int_equal(strncmp(esmtp_reply(ESMTP_ERR_UNKNOWN), "555 5.5.4 ", 10), 0);
	assert_int_equal(strncmp(esmtp_reply(ESMTP_ERR_SYNTAX), "501 5.5.4 ", 10), 0);
	assert_int_equal(strncmp(esmtp_reply(ESMTP_ERR_SIZE_OVERFLOW), "552 5.3.4 ", 10), 0);
	for (int e = 1; e < ESMTP_ERR_COUNT; e++) {
		assert_true(strlen(esmtp_strerror(e)) > 0);
		assert_true(esmtp_reply(e)[0] == '5');
	}
	for (int e = 0; e < ESMTP_ERR_COUNT; e++)
		assert_int_equal(strncmp(esmtp_status(e), esmtp_reply(e), 9), 0);
	assert_string_equal(esmtp_strerror(ESMTP_ERR_COUNT), "unknown ESMTP parameter error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_list),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_dsn_values),
		cmocka_unit_test(test_mail_rcpt),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_replies),
	};
	return cmocka_run_group_tests_name("esmtp", tests, NULL, NULL);
}
