/* imapd flags: Maildir letters both ways, FETCH list form, STORE parsing and applying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "../../imapd/flags.h"
#include "../../imapd/parser.h"

static void test_letters(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	unsigned all = IMAP_FLAG_ANSWERED | IMAP_FLAG_FLAGGED | IMAP_FLAG_DELETED | IMAP_FLAG_SEEN | IMAP_FLAG_DRAFT;

	imap_flags_to_maildir(all, &b);
	assert_string_equal(buf_cstr(&b), "DFRST");	/* Maildir wants ASCII order */
	assert_int_equal(imap_flags_from_maildir("DFRST"), all);
	assert_int_equal(imap_flags_from_maildir("Sxa"), IMAP_FLAG_SEEN);
	assert_int_equal(imap_flags_from_maildir(""), 0);
	buf_reset(&b);
	imap_flags_to_list(IMAP_FLAG_SEEN | IMAP_FLAG_ANSWERED, &b);
	assert_string_equal(buf_cstr(&b), "(\\Answered \\Seen)");
	buf_reset(&b);
	imap_flags_to_list(0, &b);
	assert_string_equal(buf_cstr(&b), "()");
	assert_int_equal(imap_flag_from_name("\\sEEN"), IMAP_FLAG_SEEN);
	assert_int_equal(imap_flag_from_name("\\Recent"), 0);
	assert_int_equal(imap_flag_from_name("Seen"), 0);
	buf_free(&b);
}

static bool store(const char *args, struct imap_store *st, struct buf *err)
{
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	struct imap_parser *p = imap_parser_new(NULL);
	size_t used, n;

	buf_printf(&line, "t STORE 1 %s\r\n", args);
	assert_int_equal(imap_parser_feed(p, line.data, line.len, &used), IMAP_PARSE_DONE);
	const struct imap_arg *a = imap_parser_args(p, &n);
	assert_int_equal(n, 3);
	buf_reset(err);
	bool ok = imap_store_parse(&a[1], &a[2], st, err);
	imap_parser_free(&p);
	buf_free(&line);
	return ok;
}

static void test_store(void **state)
{
	(void)state;
	struct imap_store st;
	struct buf err = BUF_INIT(1024);

	assert_true(store("+FLAGS (\\Seen \\Deleted)", &st, &err));
	assert_int_equal(st.op, IMAP_STORE_ADD);
	assert_false(st.silent);
	assert_int_equal(st.flags, IMAP_FLAG_SEEN | IMAP_FLAG_DELETED);
	assert_int_equal(imap_store_apply(&st, IMAP_FLAG_DRAFT), IMAP_FLAG_SEEN | IMAP_FLAG_DELETED | IMAP_FLAG_DRAFT);
	assert_true(store("-flags.silent \\Seen", &st, &err));
	assert_int_equal(st.op, IMAP_STORE_REMOVE);
	assert_true(st.silent);
	assert_int_equal(imap_store_apply(&st, IMAP_FLAG_SEEN | IMAP_FLAG_DRAFT), IMAP_FLAG_DRAFT);
	assert_true(store("FLAGS ()", &st, &err));
	assert_int_equal(imap_store_apply(&st, IMAP_FLAG_SEEN), 0);
	assert_true(store("FLAGS (\\Seen $Junk)", &st, &err));
	assert_true(st.keywords);
	assert_false(store("FLAGS (\\Recent)", &st, &err));
	assert_string_equal(buf_cstr(&err), "\\Recent cannot be stored");
	assert_false(store("FLAGS (\\Bogus)", &st, &err));
	assert_false(store("FLAGS (\"\\\\Seen\")", &st, &err));
	assert_false(store("FLAGS (NIL)", &st, &err));
	assert_false(store("FLAGS (a*b)", &st, &err));
	assert_false(store("+FLAGSX \\Seen", &st, &err));
	assert_false(store("*FLAGS \\Seen", &st, &err));
	assert_false(store("(FLAGS) \\Seen", &st, &err));
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_letters),
		cmocka_unit_test(test_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
