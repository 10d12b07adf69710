/* str: case rules, strict numbers, splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "str.h"

static void test_case(void **state)
{
	(void)state;
	assert_true(str_eq_ci("MAIL", "mail"));
	assert_false(str_eq_ci("MAIL", "mai"));
	assert_true(str_has_prefix_ci("FROM:<a@b>", "from:"));
	assert_false(str_has_prefix_ci("FRO", "from:"));
	char s[] = "  Hello World \r\n";
	char *t = str_trim(s);
	str_lower(t);
	assert_string_equal(t, "hello world");
}

static void test_numbers(void **state)
{
	(void)state;
	uint64_t v;
	assert_true(str_to_u64("10240000", UINT64_MAX, &v));
	assert_int_equal(v, 10240000);
	assert_true(str_to_u64("18446744073709551615", UINT64_MAX, &v));
	assert_false(str_to_u64("18446744073709551616", UINT64_MAX, &v));
	assert_false(str_to_u64("101", 100, &v));
	assert_false(str_to_u64("-1", UINT64_MAX, &v));
	assert_false(str_to_u64(" 1", UINT64_MAX, &v));
	assert_false(str_to_u64("", UINT64_MAX, &v));
}

static void test_split_copy(void **state)
{
	(void)state;
	char s[] = " a, b,,c ";
	char *f[2];
	assert_int_equal(str_split(s, ", ", f, 2), 3);
	assert_string_equal(f[0], "a");
	assert_string_equal(f[1], "b");
	char d[4];
	assert_false(str_copy(d, sizeof(d), "abcd"));
	assert_string_equal(d, "abc");
	assert_true(str_copy(d, sizeof(d), "abc"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_split_copy),
	};
	return cmocka_run_group_tests_name("str", tests, NULL, NULL);
}
