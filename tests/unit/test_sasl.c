/* sasl: strict base64, PLAIN and LOGIN exchanges, mechanism policy, APOP digests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

static bool dec(const char *in, struct buf *out)
{
	buf_reset(out);
	return sasl_base64_decode(in, strlen(in), out);
}

static void test_base64_vectors(void **state)
{
	(void)state;
	/* RFC 4648 section 10 */
	const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	struct buf b = BUF_INIT(100);
	for (int i = 0; i < 7; i++) {
		assert_true(dec(enc[i], &b));
		assert_int_equal(b.len, strlen(plain[i]));
		assert_memory_equal(buf_cstr(&b), plain[i], b.len);
		buf_reset(&b);
		assert_true(sasl_base64_encode(plain[i], strlen(plain[i]), &b));
		assert_string_equal(buf_cstr(&b), enc[i]);
	}
	/* binary with every byte value */
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	struct buf e = BUF_INIT(1000), d = BUF_INIT(1000);
	assert_true(sasl_base64_encode(all, sizeof all, &e));
	assert_true(sasl_base64_decode(e.data, e.len, &d));
	assert_int_equal(d.len, 256);
	assert_memory_equal(d.data, all, 256);
	buf_free(&e);
	buf_free(&d);
	buf_free(&b);
}

static void test_base64_malformed(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(100);
	const char *bad[] = { "Zg", "Zg=", "Zg===", "Z===", "====", "Zm9v\r\n", " Zm9v", "Zm 9", "Zm9v!A==",
	                      "Zg==Zg==", "Zm=v", "Zh==" /* non-zero pad bits */, "Zm9=" /* ditto */, "=Zm9",
	                      "Zm9vYmFy=", "\x80\x81\x82\x83", NULL };
	for (int i = 0; bad[i]; i++) {
		if (dec(bad[i], &b))
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(b.len, 0);	/* nothing half-decoded left behind */
	}
	/* embedded NUL in the input */
	assert_false(sasl_base64_decode("Zm\0v", 4, &b));
	/* output cap */
	struct buf small = BUF_INIT(5);
	assert_false(sasl_base64_decode("Zm9vYmFy", 8, &small));
	assert_int_equal(small.len, 0);
	assert_true(sasl_base64_decode("Zm9vYg==", 8, &small));
	assert_false(sasl_base64_encode("foobar", 6, &small));
	assert_int_equal(small.len, 4);	/* encode failure leaves what was there */
	/* appends after existing content and keeps it on failure */
	buf_reset(&b);
	buf_puts(&b, "x");
	assert_false(sasl_base64_decode("Zm9vYg=!", 8, &b));
	assert_string_equal(buf_cstr(&b), "x");
	buf_free(&small);
	buf_free(&b);
}

static void test_plain_parse(void **state)
{
	(void)state;
	struct sasl_creds c;
	struct buf err = BUF_INIT(1024);
	assert_true(sasl_plain_parse("\0tim\0tanstaaftanstaaf", 21, &c, &err));
	assert_string_equal(c.authcid, "tim");
	assert_string_equal(c.passwd, "tanstaaftanstaaf");
	assert_true(sasl_plain_parse("Tim\0tim\0pw", 10, &c, &err));	/* authzid = authcid, any case */
	assert_string_equal(c.authcid, "tim");

	assert_false(sasl_plain_parse("bob\0tim\0pw", 10, &c, &err));	/* acting as someone else */
	assert_non_null(strstr(buf_cstr(&err), "authzid"));
	assert_string_equal(c.passwd, "");	/* wiped */
	assert_false(sasl_plain_parse("tim\0pw", 6, &c, &err));		/* one NUL */
	assert_false(sasl_plain_parse("\0tim\0pw\0", 8, &c, &err));	/* three NULs */
	assert_false(sasl_plain_parse("\0\0pw", 4, &c, &err));		/* empty authcid */
	assert_false(sasl_plain_parse("\0tim\0", 5, &c, &err));		/* empty password */
	assert_false(sasl_plain_parse("", 0, &c, &err));
	assert_false(sasl_plain_parse("timpw", 5, &c, &err));
	/* the error text never contains the password */
	buf_reset(&err);
	assert_false(sasl_plain_parse("x\0tim\0SECRETPW", 14, &c, &err));
	assert_null(strstr(buf_cstr(&err), "SECRETPW"));

	/* over-long parts */
	char big[2 * SASL_PASSWD_MAX];
	memset(big, 'a', sizeof big);
	big[0] = '\0';
	big[SASL_AUTHID_MAX + 2] = '\0';	/* authcid of 256 bytes */
	assert_false(sasl_plain_parse(big, SASL_AUTHID_MAX + 10, &c, &err));
	big[SASL_AUTHID_MAX + 2] = 'a';
	big[SASL_AUTHID_MAX + 1] = '\0';	/* authcid of exactly 255 */
	assert_true(sasl_plain_parse(big, SASL_AUTHID_MAX + 10, &c, &err));
	assert_int_equal(strlen(c.authcid), SASL_AUTHID_MAX);
	assert_false(sasl_plain_parse(big, SASL_AUTHID_MAX + 3 + SASL_PASSWD_MAX, &c, &err));	/* password 1025 */
	assert_true(sasl_plain_parse(big, SASL_AUTHID_MAX + 2 + SASL_PASSWD_MAX, &c, &err));
	buf_free(&err);
}

static enum sasl_status step(struct sasl_session *s, const char *resp, struct buf *ch, struct buf *err)
{
	return sasl_step(s, resp, resp ? strlen(resp) : 0, ch, err);
}

static void test_plain_exchange(void **state)
{
	(void)state;
	struct sasl_session s;
	struct buf ch = BUF_INIT(256), err = BUF_INIT(1024);
	const struct sasl_mech *m = sasl_mech_find("plain");
	assert_non_null(m);

	/* initial response: "\0user@x.org\0pw" */
	sasl_start(&s, m);
	assert_int_equal(step(&s, "AHVzZXJAeC5vcmcAcHc=", &ch, &err), SASL_DONE);
	assert_string_equal(s.creds.authcid, "user@x.org");
	assert_string_equal(s.creds.passwd, "pw");
	assert_int_equal(step(&s, "AHVzZXJAeC5vcmcAcHc=", &ch, &err), SASL_FAIL);	/* finished */
	sasl_clear(&s);
	assert_string_equal(s.creds.passwd, "");

	/* no initial response: empty challenge, then the response */
	sasl_start(&s, m);
	assert_int_equal(step(&s, NULL, &ch, &err), SASL_CONTINUE);
	assert_int_equal(ch.len, 0);
	assert_int_equal(step(&s, "AHVzZXJAeC5vcmcAcHc=", &ch, &err), SASL_DONE);
	assert_string_equal(s.creds.authcid, "user@x.org");

	/* cancel, malformed base64, "=" (empty initial response) and bad NUL layout */
	sasl_start(&s, m);
	assert_int_equal(step(&s, NULL, &ch, &err), SASL_CONTINUE);
	assert_int_equal(step(&s, "*", &ch, &err), SASL_CANCEL);
	sasl_start(&s, m);
	assert_int_equal(step(&s, "AHVzZXJAeC5vcmcAcHc", &ch, &err), SASL_FAIL);
	assert_non_null(strstr(buf_cstr(&err), "base64"));
	sasl_start(&s, m);
	assert_int_equal(step(&s, "=", &ch, &err), SASL_FAIL);
	sasl_start(&s, m);
	assert_int_equal(step(&s, "dXNlcgBwdw==", &ch, &err), SASL_FAIL);	/* "user\0pw" */
	assert_string_equal(s.creds.authcid, "");
	/* an over-long response (more than SASL_RESPONSE_MAX decoded bytes) */
	struct buf big = BUF_INIT(BUF_NOLIMIT);
	char raw[SASL_RESPONSE_MAX + 3];
	memset(raw, 'a', sizeof raw);
	raw[0] = '\0';
	raw[5] = '\0';
	sasl_base64_encode(raw, sizeof raw, &big);
	sasl_start(&s, m);
	assert_int_equal(sasl_step(&s, big.data, big.len, &ch, &err), SASL_FAIL);
	buf_free(&big);
	/* no mechanism */
	sasl_start(&s, NULL);
	assert_int_equal(step(&s, NULL, &ch, &err), SASL_FAIL);
	buf_free(&ch);
	buf_free(&err);
}

static void test_login_exchange(void **state)
{
	(void)state;
	struct sasl_session s;
	struct buf ch = BUF_INIT(256), err = BUF_INIT(1024);
	const struct sasl_mech *m = sasl_mech_find("LOGIN");
	assert_non_null(m);

	sasl_start(&s, m);
	assert_int_equal(step(&s, NULL, &ch, &err), SASL_CONTINUE);
	assert_string_equal(buf_cstr(&ch), "VXNlcm5hbWU6");	/* "Username:" */
	assert_int_equal(step(&s, "dGlt", &ch, &err), SASL_CONTINUE);
	assert_string_equal(buf_cstr(&ch), "UGFzc3dvcmQ6");	/* "Password:" */
	assert_int_equal(step(&s, "dGFuc3RhYWY=", &ch, &err), SASL_DONE);
	assert_string_equal(s.creds.authcid, "tim");
	assert_string_equal(s.creds.passwd, "tanstaaf");

	/* user name as initial response */
	sasl_start(&s, m);
	assert_int_equal(step(&s, "dGlt", &ch, &err), SASL_CONTINUE);
	assert_string_equal(buf_cstr(&ch), "UGFzc3dvcmQ6");
	assert_int_equal(step(&s, "cHc=", &ch, &err), SASL_DONE);
	assert_string_equal(s.creds.passwd, "pw");

	/* NUL in the user name, empty password, cancel at the password, missing response */
	sasl_start(&s, m);
	assert_int_equal(step(&s, "dABt", &ch, &err), SASL_FAIL);	/* "t\0m" */
	sasl_start(&s, m);
	assert_int_equal(step(&s, "dGlt", &ch, &err), SASL_CONTINUE);
	assert_int_equal(step(&s, "", &ch, &err), SASL_FAIL);
	sasl_start(&s, m);
	assert_int_equal(step(&s, "dGlt", &ch, &err), SASL_CONTINUE);
	assert_int_equal(step(&s, "*", &ch, &err), SASL_CANCEL);
	assert_string_equal(s.creds.authcid, "");
	sasl_start(&s, m);
	assert_int_equal(step(&s, "dGlt", &ch, &err), SASL_CONTINUE);
	assert_int_equal(step(&s, NULL, &ch, &err), SASL_FAIL);
	sasl_clear(&s);
	buf_free(&ch);
	buf_free(&err);
}

static void test_one_byte_at_a_time_is_not_a_line(void **state)
{
	(void)state;
	/* Responses are whole lines; feeding a fragment must fail rather than be taken as complete. */
	struct sasl_session s;
	struct buf ch = BUF_INIT(256), err = BUF_INIT(1024);
	const char *full = "AHVzZXJAeC5vcmcAcHc=";
	for (size_t n = 1; n < strlen(full); n++) {
		sasl_start(&s, sasl_mech_find("PLAIN"));
		assert_int_equal(sasl_step(&s, full, n, &ch, &err), SASL_FAIL);
	}
	buf_free(&ch);
	buf_free(&err);
}

static void test_mech_policy(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(256);
	assert_null(sasl_mech_find("CRAM-MD5"));
	assert_null(sasl_mech_find("PLAINX"));
	const struct sasl_mech *p = sasl_mech_find("Plain");
	assert_true(p->plaintext);
	assert_false(sasl_mech_allowed(p, false, false));
	assert_true(sasl_mech_allowed(p, true, false));
	assert_true(sasl_mech_allowed(p, false, true));
	assert_false(sasl_mech_allowed(NULL, true, true));
	sasl_mech_list(&b, false, false);
	assert_string_equal(buf_cstr(&b), "");
	sasl_mech_list(&b, true, false);
	assert_string_equal(buf_cstr(&b), "PLAIN LOGIN");
	buf_free(&b);
}

static void test_apop(void **state)
{
	(void)state;
	char d[SASL_APOP_DIGEST_LEN + 1];
	const char *ts = "<1896.697170952@dbc.mtview.ca.us>";
	/* RFC 1939 section 7 example */
	sasl_apop_digest(ts, "tanstaaf", d);
	assert_string_equal(d, "c4c9334bac560ecc979e58001b3e22fb");
	assert_true(sasl_apop_verify(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb"));
	assert_true(sasl_apop_verify(ts, "tanstaaf", "C4C9334BAC560ECC979E58001B3E22FB"));
	assert_false(sasl_apop_verify(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22fc"));
	assert_false(sasl_apop_verify(ts, "tanstaaF", "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(sasl_apop_verify("<other@x>", "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(sasl_apop_verify(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22f"));	/* short */
	assert_false(sasl_apop_verify(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22fbb"));	/* long */
	assert_false(sasl_apop_verify(ts, "tanstaaf", "g4c9334bac560ecc979e58001b3e22fb"));	/* not hex */
	assert_false(sasl_apop_verify(ts, "", "d41d8cd98f00b204e9800998ecf8427e"));		/* no secret */
	assert_false(sasl_apop_verify(ts, NULL, "c4c9334bac560ecc979e58001b3e22fb"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_malformed),
		cmocka_unit_test(test_plain_parse),
		cmocka_unit_test(test_plain_exchange),
		cmocka_unit_test(test_login_exchange),
		cmocka_unit_test(test_one_byte_at_a_time_is_not_a_line),
		cmocka_unit_test(test_mech_policy),
		cmocka_unit_test(test_apop),
	};
	return cmocka_run_group_tests_name("sasl", tests, NULL, NULL);
}
