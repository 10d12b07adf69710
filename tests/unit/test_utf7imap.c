/* Modified UTF-7: RFC 3501 examples, round trips, and every non-canonical form refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf7imap.h"

static void dec_ok(const char *in, const char *want)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(utf7imap_decode(in, strlen(in), &b));
	assert_string_equal(buf_cstr(&b), want);
	/* canonical: encoding gives the same bytes back */
	struct buf e = BUF_INIT(BUF_NOLIMIT);
	assert_true(utf7imap_encode(b.data ? b.data : "", b.len, &e));
	assert_string_equal(buf_cstr(&e), in);
	buf_free(&b);
	buf_free(&e);
}

static void dec_bad(const char *in)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_false(utf7imap_decode(in, strlen(in), &b));
	buf_free(&b);
}

static void test_rfc3501(void **state)
{
	(void)state;
	/* RFC 3501 5.1.3: "~peter/mail/日本語/台北" */
	dec_ok("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	dec_ok("&-", "&");
	dec_ok("Tom &- Jerry", "Tom & Jerry");
	dec_ok("", "");
	dec_ok("INBOX", "INBOX");
	dec_ok("Entw&APw-rfe", "Entw\xc3\xbc" "rfe");
	/* U+1F600 needs a surrogate pair */
	dec_ok("&2D3eAA-", "\xf0\x9f\x98\x80");
	/* control characters other than NUL are encoded, not refused */
	dec_ok("a&AAE-b", "a\x01" "b");
}

static void test_noncanonical(void **state)
{
	(void)state;
	dec_bad("&Jjo!");		/* RFC 3501's own example of a bad name: unterminated */
	dec_bad("&U,BTFw-&ZeVnLIqe-");	/* two adjacent runs */
	dec_bad("&AGE-");		/* 'a' encoded */
	dec_bad("&ACY-");		/* '&' encoded */
	dec_bad("&-&");		/* unterminated at the end */
	dec_bad("&U,BTF-");		/* bits left over that are not zero / not a whole unit */
	dec_bad("&U,BTFw");		/* no '-' */
	dec_bad("&2D0-");		/* high surrogate alone */
	dec_bad("&3gA-");		/* low surrogate alone */
	dec_bad("&AAA-");		/* NUL */
	dec_bad("&U/BTFw-");		/* '/' is not modified base64 */
	dec_bad("a\x80");		/* raw 8-bit */
	dec_bad("a\tb");		/* raw control */
	dec_bad("&AOQA-");		/* a whole zero base64 digit left over */
}

static void enc(const char *in, const char *want)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(utf7imap_encode(in, strlen(in), &b));
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void test_encode(void **state)
{
	(void)state;
	enc("Entw\xc3\xbc" "rfe", "Entw&APw-rfe");
	enc("\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-");
	enc("a&b", "a&-b");
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_false(utf7imap_encode("\xc0\xaf", 2, &b));		/* overlong '/' */
	assert_false(utf7imap_encode("\xed\xa0\x80", 3, &b));		/* surrogate */
	assert_false(utf7imap_encode("\xf4\x90\x80\x80", 4, &b));	/* past U+10FFFF */
	assert_false(utf7imap_encode("\xe6\x97", 2, &b));		/* cut short */
	assert_false(utf7imap_encode("a\0b", 3, &b));			/* NUL */
	buf_free(&b);
	/* the cap is honoured */
	struct buf small = BUF_INIT(4);
	assert_false(utf7imap_encode("\xe6\x97\xa5", 3, &small));
	buf_free(&small);
	assert_true(utf7imap_is_plain("Sent Items", 10));
	assert_false(utf7imap_is_plain("a&b", 3));
	assert_false(utf7imap_is_plain("\xc3\xa4", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3501),
		cmocka_unit_test(test_noncanonical),
		cmocka_unit_test(test_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
