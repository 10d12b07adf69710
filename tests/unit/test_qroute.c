/* qmgr routing: mydestination and virtual domains go local (any case, trailing dot), accounts in other domains
 * go local, the rest goes to smtp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../qmgr/route.h"

static bool acct(const char *addr, void *arg)
{
	(void)arg;
	return strcmp(addr, "user@accounts.example") == 0;
}

static void test_route(void **state)
{
	(void)state;
	char *local[] = { "localhost", "mx.example.com" }, *virt[] = { "example.org" };
	struct qroute r = { local, 2, virt, 1, acct, NULL };
	assert_int_equal(qroute_recipient(&r, "a@localhost"), QROUTE_LOCAL);
	assert_int_equal(qroute_recipient(&r, "a@MX.Example.COM"), QROUTE_LOCAL);
	assert_int_equal(qroute_recipient(&r, "a@mx.example.com."), QROUTE_LOCAL);
	assert_int_equal(qroute_recipient(&r, "b@example.org"), QROUTE_LOCAL);
	assert_int_equal(qroute_recipient(&r, "b@sub.example.org"), QROUTE_SMTP);
	assert_int_equal(qroute_recipient(&r, "b@example.orgx"), QROUTE_SMTP);
	assert_int_equal(qroute_recipient(&r, "postmaster"), QROUTE_LOCAL);
	assert_int_equal(qroute_recipient(&r, "user@accounts.example"), QROUTE_LOCAL);
	assert_int_equal(qroute_recipient(&r, "other@accounts.example"), QROUTE_SMTP);
	assert_int_equal(qroute_recipient(&r, "\"a@b\"@remote.example"), QROUTE_SMTP);
	char *d = qroute_destination(&r, "x@Remote.Example");
	assert_string_equal(d, "remote.example");
	free(d);
	d = qroute_destination(&r, "x@localhost");
	assert_string_equal(d, "local");
	free(d);
	struct qroute empty = { 0 };
	assert_int_equal(qroute_recipient(&empty, "a@localhost"), QROUTE_SMTP);
	assert_string_equal(qroute_domain("nodomain"), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_route) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
