/* buf: capped growth, printable escaping, consume/steal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void test_append_and_cap(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(10);
	assert_true(buf_puts(&b, "hello"));
	assert_true(buf_puts(&b, "world"));
	assert_int_equal(b.len, 10);
	/* one byte over the limit is refused and leaves the buffer unchanged */
	assert_false(buf_putc(&b, '!'));
	assert_int_equal(b.len, 10);
	assert_string_equal(buf_cstr(&b), "helloworld");
	buf_free(&b);
}

static void test_overflow_refused(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(buf_puts(&b, "x"));
	assert_false(buf_reserve(&b, SIZE_MAX));
	assert_int_equal(b.len, 1);
	buf_free(&b);
}

static void test_printf_grows(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	for (int i = 0; i < 1000; i++)
		assert_true(buf_printf(&b, "%d,", i));
	assert_int_equal(strncmp(buf_cstr(&b), "0,1,2,", 6), 0);
	assert_int_equal(b.data[b.len], '\0');
	struct buf small = BUF_INIT(4);
	assert_false(buf_printf(&small, "%s", "12345"));
	assert_int_equal(small.len, 0);
	buf_free(&b);
	buf_free(&small);
}

static void test_printable(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(buf_append_printable(&b, "a\r\n\x01\\\xff", 6, 100));
	assert_string_equal(buf_cstr(&b), "a\\r\\n\\x01\\\\\\xff");
	buf_reset(&b);
	assert_true(buf_append_printable(&b, "abcdef", 6, 3));
	assert_string_equal(buf_cstr(&b), "abc...");
	buf_free(&b);
}

static void test_consume_steal(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_string_equal(buf_cstr(&b), "");
	buf_puts(&b, "line1\r\nline2");
	buf_consume(&b, 7);
	assert_string_equal(buf_cstr(&b), "line2");
	buf_truncate(&b, 4);
	assert_string_equal(buf_cstr(&b), "line");
	size_t n;
	char *s = buf_steal(&b, &n);
	assert_int_equal(n, 4);
	assert_string_equal(s, "line");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
	s = buf_steal(&b, NULL);
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_cap),
		cmocka_unit_test(test_overflow_refused),
		cmocka_unit_test(test_printf_grows),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_consume_steal),
	};
	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
