/* json and qlist: JSON string escaping (quotes, backslashes, control characters, bad UTF-8), and the three
 * queue listing forms for a message with and without delivery state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "qlist.h"

static char *json(const char *s, size_t n)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	json_put_strn(&b, s, n);
	return buf_steal(&b, NULL);
}

static void test_json_strings(void **state)
{
	(void)state;
	struct { const char *in; size_t n; const char *out; } cases[] = {
		{ "plain@example.org", 17, "\"plain@example.org\"" },
		{ "a\"b\\c", 5, "\"a\\\"b\\\\c\"" },
		{ "t\tn\nr\r", 6, "\"t\\tn\\nr\\r\"" },
		{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"" },
		{ "nul\0x", 5, "\"nul\\u0000x\"" },
		{ "caf\xc3\xa9 \xf0\x9f\x93\xa7", 10, "\"caf\xc3\xa9 \xf0\x9f\x93\xa7\"" },
		{ "\xe2\x80\xa8", 3, "\"\\u2028\"" },
		{ "\xc3", 1, "\"\\ufffd\"" },			/* truncated */
		{ "\xc0\xaf", 2, "\"\\ufffd\\ufffd\"" },	/* overlong */
		{ "\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"" },	/* surrogate */
		{ "\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },	/* past U+10FFFF */
		{ "", 0, "\"\"" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = json(cases[i].in, cases[i].n);
		assert_string_equal(got, cases[i].out);
		free(got);
	}
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	json_put_str(&b, NULL);
	json_put_key(&b, "k", 0);
	assert_string_equal(buf_cstr(&b), "null,\"k\":");
	buf_free(&b);
}

static void test_formats(void **state)
{
	(void)state;
	struct qfile_rcpt rc[2] = { { "a@x.example", 0, NULL }, { "b\"q@y.example", 0, NULL } };
	struct qfile_envelope env = { .id = "0ABC", .arrival = 1700000000.5, .sender = "s@x.example", .rcpts = rc,
		                      .nrcpts = 2, .uid = -1, .content_len = 2048 };
	struct qlist_entry e = { "0ABC", "incoming", &env, NULL, 0 };
	struct buf b = BUF_INIT(BUF_NOLIMIT);

	/* no state yet: every envelope recipient is pending */
	qlist_format(&e, QLIST_JSON, &b);
	assert_string_equal(buf_cstr(&b),
	                    "{\"queue_name\":\"incoming\",\"queue_id\":\"0ABC\",\"arrival_time\":1700000000,"
	                    "\"message_size\":2048,\"forced_expire\":false,\"sender\":\"s@x.example\",\"recipients\":["
	                    "{\"address\":\"a@x.example\",\"status\":\"pending\",\"attempts\":0},"
	                    "{\"address\":\"b\\\"q@y.example\",\"status\":\"pending\",\"attempts\":0}]}\n");

	struct qstate_rcpt st[2];
	memset(st, 0, sizeof(st));
	st[0].status = QSTATE_SENT;
	st[0].parent = QSTATE_NO_PARENT;
	qstate_rcpt_set(&st[0], "a@x.example", "2.0.0", "delivered");
	st[1].idx = 1;
	st[1].status = QSTATE_DEFERRED;
	st[1].parent = QSTATE_NO_PARENT;
	st[1].attempts = 3;
	st[1].next_try = 1700000600000ull;
	qstate_rcpt_set(&st[1], "b\"q@y.example", "4.4.1", "connection\nrefused");
	e = (struct qlist_entry){ "0ABC", "deferred", &env, st, 2 };
	buf_reset(&b);
	qlist_format(&e, QLIST_JSON, &b);
	assert_non_null(strstr(buf_cstr(&b), "{\"address\":\"a@x.example\",\"status\":\"sent\",\"dsn\":\"2.0.0\","
	                                     "\"last_result\":\"delivered\",\"attempts\":0}"));
	assert_non_null(strstr(buf_cstr(&b), "\"status\":\"deferred\",\"delay_reason\":\"connection\\nrefused\","
	                                     "\"dsn\":\"4.4.1\",\"last_result\":\"connection\\nrefused\","
	                                     "\"attempts\":3,\"next_attempt\":1700000600}"));
	assert_int_equal(strchr(buf_cstr(&b), '\n') - buf_cstr(&b), (long)b.len - 1);	/* one line */

	/* mailq: delivered recipients left out, the deferred one under its (printable) reason */
	buf_reset(&b);
	qlist_format(&e, QLIST_MAILQ, &b);
	assert_non_null(strstr(buf_cstr(&b), "0ABC            2048 "));
	assert_non_null(strstr(buf_cstr(&b), "  s@x.example\n(connection\\nrefused)\n"));
	assert_null(strstr(buf_cstr(&b), "a@x.example"));
	assert_non_null(strstr(buf_cstr(&b), "b\"q@y.example\n\n"));
	e.queue = "hold";
	buf_reset(&b);
	qlist_format(&e, QLIST_MAILQ, &b);
	assert_true(strncmp(buf_cstr(&b), "0ABC      ! ", 12) == 0);

	/* text: every recipient with its status */
	buf_reset(&b);
	qlist_format(&e, QLIST_TEXT, &b);
	assert_non_null(strstr(buf_cstr(&b), "a@x.example"));
	assert_non_null(strstr(buf_cstr(&b), " sent 2.0.0 (delivered)\n"));
	assert_non_null(strstr(buf_cstr(&b), " deferred 4.4.1 (connection\\nrefused)\n"));

	buf_reset(&b);
	qlist_trailer(QLIST_MAILQ, 2, 1025, &b);
	qlist_trailer(QLIST_TEXT, 1, 10, &b);
	qlist_trailer(QLIST_TEXT, 0, 0, &b);
	qlist_trailer(QLIST_JSON, 0, 0, &b);
	assert_string_equal(buf_cstr(&b), "-- 2 Kbytes in 2 Requests.\n-- 1 message, 1 Kbytes\nMail queue is empty\n");
	qstate_rcpt_free(&st[0]);
	qstate_rcpt_free(&st[1]);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_strings),
		cmocka_unit_test(test_formats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
