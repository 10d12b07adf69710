/* imapd SEARCH: key parsing (charsets, dates, nesting, limits) and evaluation against message data. */
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
#include "../../imapd/searchargs.h"

struct parsed {
	struct imap_parser *p;
	struct imap_search s;
	struct buf err;
	bool badcs;
	bool ok;
};

static void parse(const char *keys, struct parsed *out)
{
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	size_t used, n;

	out->p = imap_parser_new(NULL);
	buf_init(&out->err, 1024);
	buf_printf(&line, "t SEARCH %s\r\n", keys);
	assert_int_equal(imap_parser_feed(out->p, line.data, line.len, &used), IMAP_PARSE_DONE);
	const struct imap_arg *a = imap_parser_args(out->p, &n);
	out->ok = imap_search_parse(a, n, &out->s, &out->err, &out->badcs);
	buf_free(&line);
}

static void done(struct parsed *p)
{
	imap_search_free(&p->s);
	imap_parser_free(&p->p);
	buf_free(&p->err);
}

static bool text_cb(void *ctx, const struct imap_search_key *k)
{
	(void)ctx;
	if (k->type == IMAP_SK_HEADER)
		return strcmp(k->field, "SUBJECT") == 0 && strcmp(k->str, "hello") == 0;
	return false;
}

static bool matches(const char *keys, const struct imap_search_msg *m)
{
	struct parsed p;
	parse(keys, &p);
	if (!p.ok)
		fail_msg("parse of %s failed: %s", keys, buf_cstr(&p.err));
	imap_search_resolve(&p.s, 10, 100);
	bool r = imap_search_match(&p.s, m);
	done(&p);
	return r;
}

static void bad(const char *keys, const char *why)
{
	struct parsed p;
	parse(keys, &p);
	assert_false(p.ok);
	assert_string_equal(buf_cstr(&p.err), why);
	done(&p);
}

static void test_dates(void **state)
{
	(void)state;
	uint32_t d;
	assert_true(imap_search_date("1-Feb-1994", &d));
	assert_int_equal(d, 19940201);
	assert_true(imap_search_date("29-feb-2000", &d));
	assert_false(imap_search_date("29-Feb-1900", &d));
	assert_false(imap_search_date("30-Feb-2024", &d));
	assert_false(imap_search_date("0-Jan-2024", &d));
	assert_false(imap_search_date("1-Foo-2024", &d));
	assert_false(imap_search_date("1-Jan-24", &d));
	assert_false(imap_search_date("1-Jan-20245", &d));
	assert_false(imap_search_date("123-Jan-2024", &d));
	assert_false(imap_search_date("", &d));
}

static void test_match(void **state)
{
	(void)state;
	struct imap_search_msg m = { .seq = 3, .uid = 42, .flags = IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED, .recent = false,
		.size = 1000, .internal_ymd = 20240315, .text = text_cb };

	assert_true(matches("ALL", &m));
	assert_true(matches("SEEN FLAGGED", &m));
	assert_false(matches("UNSEEN", &m));
	assert_true(matches("UNDELETED OLD", &m));
	assert_false(matches("NEW", &m));
	assert_true(matches("OR DELETED SEEN", &m));
	assert_false(matches("NOT SEEN", &m));
	assert_true(matches("NOT (DELETED)", &m));
	assert_true(matches("LARGER 999 SMALLER 1001", &m));
	assert_false(matches("LARGER 1000", &m));
	assert_true(matches("SINCE 15-Mar-2024 BEFORE 16-Mar-2024 ON 15-Mar-2024", &m));
	assert_false(matches("BEFORE 15-Mar-2024", &m));
	assert_true(matches("SINCE \"1-Jan-2024\"", &m));
	assert_true(matches("1:3", &m));
	assert_false(matches("4:*", &m));
	assert_true(matches("*:3", &m));	/* backwards range */
	assert_true(matches("UID 40:50", &m));
	assert_false(matches("UID 1,2,43:*", &m));
	assert_true(matches("SUBJECT hello", &m));
	assert_true(matches("HEADER subject hello", &m));
	assert_false(matches("FROM hello", &m));
	assert_false(matches("KEYWORD $Junk", &m));
	assert_true(matches("UNKEYWORD $Junk", &m));
	assert_true(matches("CHARSET UTF-8 ((SEEN) (OR 1 2:3))", &m));
	m.text = NULL;
	assert_false(matches("BODY x", &m));
	assert_true(matches("NOT TEXT x", &m));
}

static void test_errors(void **state)
{
	(void)state;
	bad("", "SEARCH needs search keys");
	bad("BOGUS", "unknown search key");
	bad("SINCE 32-Jan-2024", "search key needs a date like 1-Feb-1994");
	bad("SINCE", "search key needs a date like 1-Feb-1994");
	bad("LARGER x", "search key needs a number");
	bad("LARGER 99999999999", "search key needs a number");
	bad("OR SEEN", "OR needs two search keys");
	bad("NOT", "NOT needs a search key");
	bad("()", "empty search key list");
	bad("HEADER \"a:b\" x", "invalid header field name");
	bad("HEADER \"\" x", "invalid header field name");
	bad("UID x", "UID needs a UID set");
	bad("KEYWORD \\Seen", "KEYWORD needs a keyword");
	bad("SUBJECT", "search key needs a string");
	bad("\"SEEN\"", "search key expected");
	struct parsed p;
	parse("CHARSET KOI8-R SEEN", &p);
	assert_false(p.ok);
	assert_true(p.badcs);
	done(&p);
	/* depth and count caps */
	struct buf deep = BUF_INIT(BUF_NOLIMIT);
	for (int i = 0; i < 40; i++)
		buf_puts(&deep, "NOT ");
	buf_puts(&deep, "SEEN");
	bad(buf_cstr(&deep), "search keys nested too deeply");
	buf_reset(&deep);
	for (int i = 0; i < 300; i++)
		buf_puts(&deep, "SEEN ");
	bad(buf_cstr(&deep), "too many search keys");
	buf_free(&deep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
