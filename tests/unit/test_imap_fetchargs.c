/* imapd FETCH attribute parsing: macros, sections with part paths, header lists, partials, and bad forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "../../imapd/fetchargs.h"
#include "../../imapd/parser.h"

/* Parse "t FETCH 1 <items>" and return the response names joined by '|', or "ERR: reason". */
static char *names(const char *items, bool *seen)
{
	struct buf line = BUF_INIT(BUF_NOLIMIT), out = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct imap_parser *p = imap_parser_new(NULL);
	size_t used, n;

	buf_printf(&line, "t FETCH 1 %s\r\n", items);
	assert_int_equal(imap_parser_feed(p, line.data, line.len, &used), IMAP_PARSE_DONE);
	const struct imap_arg *a = imap_parser_args(p, &n);
	assert_int_equal(n, 2);
	struct imap_fetch f;
	if (imap_fetch_parse(&a[1], &f, &err)) {
		for (size_t i = 0; i < f.count; i++)
			buf_printf(&out, "%s%s", i ? "|" : "", f.items[i].resp_name);
		if (seen)
			*seen = f.sets_seen;
	} else {
		buf_printf(&out, "ERR: %s", buf_cstr(&err));
	}
	imap_fetch_free(&f);
	imap_parser_free(&p);
	buf_free(&line);
	buf_free(&err);
	return buf_steal(&out, NULL);
}

#define N(items, want) do { char *r_ = names((items), NULL); assert_string_equal(r_, (want)); free(r_); } while (0)

static void test_macros_and_simple(void **state)
{
	(void)state;
	N("FAST", "FLAGS|INTERNALDATE|RFC822.SIZE");
	N("all", "FLAGS|INTERNALDATE|RFC822.SIZE|ENVELOPE");
	N("FULL", "FLAGS|INTERNALDATE|RFC822.SIZE|ENVELOPE|BODY");
	N("(uid flags)", "UID|FLAGS");
	N("(FAST)", "ERR: unknown FETCH item");	/* macros only stand alone */
	N("()", "ERR: empty FETCH item list");
	N("BOGUS", "ERR: unknown FETCH item");
	N("(UID \"FLAGS\")", "ERR: FETCH items are atoms");
	bool seen = true;
	char *r = names("(RFC822.HEADER BODY.PEEK[])", &seen);
	assert_false(seen);
	free(r);
	r = names("(UID RFC822)", &seen);
	assert_true(seen);
	free(r);
	r = names("BODY[TEXT]", &seen);
	assert_true(seen);
	free(r);
}

static void test_sections(void **state)
{
	(void)state;
	N("BODY[]", "BODY[]");
	N("BODY[HEADER.FIELDS (\"a b\")]", "BODY[HEADER.FIELDS (\"a b\")]");
	N("body.peek[header]", "BODY[HEADER]");
	N("BODY[1.2.TEXT]", "BODY[1.2.TEXT]");
	N("BODY[3]", "BODY[3]");
	N("BODY[4.2.MIME]", "BODY[4.2.MIME]");
	N("BODY[]<0.100>", "BODY[]<0>");
	N("BODY.PEEK[HEADER.FIELDS (From \"subject\" X-Foo)]<10.20>", "BODY[HEADER.FIELDS (From subject X-Foo)]<10>");
	N("(UID BODY.PEEK[1.HEADER.FIELDS.NOT (Received)])", "UID|BODY[1.HEADER.FIELDS.NOT (Received)]");
	/* bad forms */
	N("BODY[MIME]", "ERR: invalid BODY[] section");
	N("BODY[0]", "ERR: invalid BODY[] section");
	N("BODY[1.]", "ERR: invalid BODY[] section");
	N("BODY[1.0]", "ERR: invalid BODY[] section");
	N("BODY[HEADERX]", "ERR: invalid BODY[] section");
	N("BODY[]<0.0>", "ERR: invalid BODY[] section");
	N("BODY[]<5>", "ERR: invalid BODY[] section");
	N("BODY[]x", "ERR: invalid BODY[] section");
	N("BODY[]<1.2>x", "ERR: invalid BODY[] section");
	N("BODY[HEADER.FIELDS]", "ERR: invalid BODY[] section");
	N("BODY[HEADER.FIELDS ()]", "ERR: invalid BODY[] section");
	N("BODY[HEADER.FIELDS (a:b)]", "ERR: invalid BODY[] section");
	N("BODY[HEADER.FIELDS (From]", "ERR: invalid BODY[] section");
	N("BODY[99999999999]", "ERR: invalid BODY[] section");
	N("BODY[]<99999999999999999999999.1>", "ERR: invalid BODY[] section");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_macros_and_simple),
		cmocka_unit_test(test_sections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
