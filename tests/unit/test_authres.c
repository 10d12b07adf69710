/* authres: header building (folding, quoting of values, escaping of comments, "none") and finding arriving
 * headers that claim our authserv-id (case, comments before the id, continuation lines, other ids kept). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "authres.h"
#include "buf.h"

static void test_build(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(4096);
	struct authres_entry e[3] = {
		{ "spf", "pass", "mx.example.org: 192.0.2.1 is allowed", { { "smtp.mailfrom", "a@example.org" } } },
		{ "dkim", "fail", "bad (signature)", { { "header.d", "example.org" }, { "header.s", "sel 1" },
		                                      { "header.b", "abc+/12" } } },
		{ "dmarc", "pass", NULL, { { "header.from", "example.org" } } },
	};
	assert_true(authres_header(&b, "mx.example.net", e, 3));
	assert_string_equal(buf_cstr(&b),
	                    "Authentication-Results: mx.example.net;\r\n"
	                    "\tspf=pass (mx.example.org: 192.0.2.1 is allowed) smtp.mailfrom=a@example.org;\r\n"
	                    "\tdkim=fail (bad \\(signature\\)) header.d=example.org header.s=\"sel 1\" header.b=\"abc+/12\";\r\n"
	                    "\tdmarc=pass header.from=example.org\r\n");
	buf_reset(&b);
	assert_true(authres_header(&b, "mx.example.net", NULL, 0));
	assert_string_equal(buf_cstr(&b), "Authentication-Results: mx.example.net; none\r\n");
	struct buf small = BUF_INIT(20);
	assert_false(authres_header(&small, "mx.example.net", e, 3));
	buf_free(&small);
	buf_free(&b);
}

static void test_find(void **state)
{
	(void)state;
	const char hdrs[] =
		"Received: from x\r\n\tby y\r\n"
		"Authentication-Results: MX.Example.NET; spf=pass\r\n\tsmtp.mailfrom=x@y\r\n"
		"Authentication-Results: other.example; spf=fail\r\n"
		"authentication-results : (comment (nested)) mx.example.net;\r\n dkim=pass\r\n"
		"Authentication-Results: mx.example.net.evil; none\r\n"
		"Authentication-Results-X: mx.example.net; none\r\n"
		"Authentication-Results: \"mx.example.net\"; none\n"
		"Subject: hi\r\n"
		"\r\n"
		"Authentication-Results: mx.example.net; in the body\r\n";
	struct authres_range r[8];
	size_t n = authres_find_ours(hdrs, sizeof(hdrs) - 1, "mx.example.net", r, 8);
	assert_int_equal(n, 3);
	const char *first = strstr(hdrs, "Authentication-Results: MX");
	assert_int_equal(r[0].off, (size_t)(first - hdrs));
	assert_int_equal(r[0].len, strlen("Authentication-Results: MX.Example.NET; spf=pass\r\n\tsmtp.mailfrom=x@y\r\n"));
	assert_memory_equal(hdrs + r[1].off, "authentication-results : (comment", 33);
	assert_int_equal(r[1].len, strlen("authentication-results : (comment (nested)) mx.example.net;\r\n dkim=pass\r\n"));
	assert_memory_equal(hdrs + r[2].off, "Authentication-Results: \"mx", 27);
	assert_int_equal(r[2].len, strlen("Authentication-Results: \"mx.example.net\"; none\n"));
	/* more matches than room: the count still tells */
	assert_int_equal(authres_find_ours(hdrs, sizeof(hdrs) - 1, "mx.example.net", r, 1), 3);
	/* no final line end */
	const char tail[] = "Authentication-Results: mx.example.net";
	assert_int_equal(authres_find_ours(tail, sizeof(tail) - 1, "mx.example.net", r, 8), 1);
	assert_int_equal(r[0].len, sizeof(tail) - 1);
	assert_int_equal(authres_find_ours("", 0, "mx.example.net", r, 8), 0);
}

static bool quar(const char *h)
{
	return authres_dmarc_quarantined(h, strlen(h), "mx.example.net");
}

static void test_quarantined(void **state)
{
	(void)state;
	/* what smtpd writes */
	struct authres_entry e[2] = {
		{ "spf", "fail", "policy.dmarc=quarantine in a comment", { { "smtp.mailfrom", "a@b" } } },
		{ "dmarc", "fail", "p=quarantine", { { "header.from", "b" }, { "policy.dmarc", "quarantine" } } },
	};
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(authres_header(&b, "mx.example.net", e, 2));
	buf_puts(&b, "Received: x\r\n\r\nbody\r\n");
	assert_true(authres_dmarc_quarantined(b.data, b.len, "mx.example.net"));
	assert_false(authres_dmarc_quarantined(b.data, b.len, "other.example"));
	buf_free(&b);
	assert_true(quar("Authentication-Results: mx.example.net; dmarc=fail (x) policy.dmarc=quarantine\n"));
	assert_true(quar("Authentication-Results: mx.example.net 1; spf=pass;\n\tDMARC=Fail\n policy.dmarc=QUARANTINE"));
	/* not first: someone else's header above it means it is not ours to trust */
	assert_false(quar("Received: x\nAuthentication-Results: mx.example.net; dmarc=fail policy.dmarc=quarantine\n"));
	/* pass, another method, or the words only inside a comment or quoted string */
	assert_false(quar("Authentication-Results: mx.example.net; dmarc=pass policy.dmarc=quarantine\n"));
	assert_false(quar("Authentication-Results: mx.example.net; spf=fail policy.dmarc=quarantine\n"));
	assert_false(quar("Authentication-Results: mx.example.net; dmarc=fail (policy.dmarc=quarantine)\n"));
	assert_false(quar("Authentication-Results: mx.example.net; dmarc=fail (a\\) policy.dmarc=quarantine)\n"));
	assert_false(quar("Authentication-Results: mx.example.net; dmarc=fail x=\"a policy.dmarc=quarantine\"\n"));
	assert_false(quar("Authentication-Results: mx.example.net; dmarc=fail; policy.dmarc=quarantine\n"));
	assert_false(quar("Authentication-Results: mx.example.net; dmarc=fail policy.dmarc=none\n"));
	/* a continuation line of a later header does not belong to it */
	assert_false(quar("Authentication-Results: mx.example.net; dmarc=fail\nX: policy.dmarc=quarantine\n"));
	assert_false(quar(""));
	assert_false(quar("Authentication-Results: mx.example.net"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_quarantined),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
