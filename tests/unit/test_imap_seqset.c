/* imapd sequence sets and LIST pattern matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "../../imapd/listmatch.h"
#include "../../imapd/seqset.h"

static char *resolved(const char *s, uint32_t max)
{
	struct imap_seqset set = { 0 };
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(imap_seqset_parse(s, &set, 100));
	imap_seqset_resolve(&set, max);
	assert_true(imap_seqset_format(&set, &b));
	imap_seqset_free(&set);
	return buf_steal(&b, NULL);
}

#define RES(s, max, want) do { char *r_ = resolved((s), (max)); assert_string_equal(r_, (want)); free(r_); } while (0)

static void test_parse_resolve(void **state)
{
	(void)state;
	RES("1", 10, "1");
	RES("1:*", 10, "1:10");
	RES("*", 10, "10");
	RES("*:4", 10, "4:10");		/* ranges may be given backwards */
	RES("5:3,1,2", 10, "1:5");		/* sorted and merged, adjacent ranges join */
	RES("7,1:3,2:4,9:8", 10, "1:4,7:9");
	RES("1:*", 0, "");			/* empty mailbox */
	RES("*", 0, "");
	RES("4294967295", 5, "4294967295");	/* UID sets may name numbers above the largest */
	RES("3:*", 2, "2:3");
	RES("1,4294967295,2", 1, "1:2,4294967295");

	struct imap_seqset set = { 0 };
	static const char *const bad[] = { "", "0", "1:0", "01", "1,", ",1", "1::2", "a", "1 2", "4294967296",
		"99999999999999999999", "*:", "1:2:3", "-1", "$", "1,,2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(imap_seqset_parse(bad[i], &set, 100));
	/* the range cap */
	assert_true(imap_seqset_parse("1,2,3", &set, 3));
	assert_false(imap_seqset_parse("1,2,3,4", &set, 3));
	imap_seqset_free(&set);
}

static void test_contains_count(void **state)
{
	(void)state;
	struct imap_seqset set = { 0 };
	assert_true(imap_seqset_parse("2:4,10,20:*", &set, 100));
	imap_seqset_resolve(&set, 25);
	assert_false(imap_seqset_contains(&set, 1));
	assert_true(imap_seqset_contains(&set, 2));
	assert_true(imap_seqset_contains(&set, 4));
	assert_false(imap_seqset_contains(&set, 5));
	assert_true(imap_seqset_contains(&set, 10));
	assert_true(imap_seqset_contains(&set, 25));
	assert_false(imap_seqset_contains(&set, 26));
	assert_int_equal(imap_seqset_count(&set, 25), 3 + 1 + 6);
	assert_int_equal(imap_seqset_count(&set, 3), 2);
	imap_seqset_free(&set);
	assert_null(set.r);
}

static void test_list_match(void **state)
{
	(void)state;
	assert_true(imap_list_match("*", "a/b/c", '/'));
	assert_true(imap_list_match("%", "abc", '/'));
	assert_false(imap_list_match("%", "a/b", '/'));
	assert_true(imap_list_match("a/%", "a/b", '/'));
	assert_false(imap_list_match("a/%", "a/b/c", '/'));
	assert_true(imap_list_match("a/*", "a/b/c", '/'));
	assert_false(imap_list_match("a/*", "a", '/'));
	assert_true(imap_list_match("a*", "a", '/'));
	assert_true(imap_list_match("%/%", "x/y", '/'));
	assert_true(imap_list_match("%b%", "abc", '/'));
	assert_false(imap_list_match("%b%", "a/bc", '/'));
	assert_true(imap_list_match("*b*", "a/bc", '/'));
	assert_true(imap_list_match("", "", '/'));
	assert_false(imap_list_match("", "a", '/'));
	assert_false(imap_list_match("Sent", "sent", '/'));	/* only INBOX is case-insensitive */
	assert_true(imap_list_match("%%%*%*%", "abc", '/'));
	/* a hostile pattern is still quick: 2000 wildcards against a long name */
	char pat[4001], name[2001];
	for (int i = 0; i < 4000; i++)
		pat[i] = i % 2 ? '%' : '*';
	pat[4000] = '\0';
	memset(name, 'a', 2000);
	name[2000] = '\0';
	assert_true(imap_list_match(pat, name, '/'));
	pat[3999] = 'b';
	assert_false(imap_list_match(pat, name, '/'));
}

static void test_pattern(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	imap_list_pattern("", "*", '/', &b);
	assert_string_equal(buf_cstr(&b), "*");
	imap_list_pattern("Lists/", "%", '/', &b);
	assert_string_equal(buf_cstr(&b), "Lists/%");
	imap_list_pattern("Lists/", "/abs", '/', &b);
	assert_string_equal(buf_cstr(&b), "/abs");
	imap_list_pattern("", "inbox", '/', &b);
	assert_string_equal(buf_cstr(&b), "INBOX");
	imap_list_pattern("iNbOx/", "%", '/', &b);
	assert_string_equal(buf_cstr(&b), "INBOX/%");
	imap_mailbox_canon("inboxes", '/', &b);
	assert_string_equal(buf_cstr(&b), "inboxes");
	imap_mailbox_canon("Inbox", '/', &b);
	assert_string_equal(buf_cstr(&b), "INBOX");
	buf_free(&b);
	/* too long for the cap: refused, never shortened (a cut "INBOX/..." must not become "INBOX") */
	struct buf small = BUF_INIT(8);
	assert_false(imap_mailbox_canon("INBOX/abcdef", '/', &small));
	assert_true(imap_mailbox_canon("INBOX/ab", '/', &small));
	assert_false(imap_list_pattern("INBOX/", "abcdef", '/', &small));
	buf_free(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_resolve),
		cmocka_unit_test(test_contains_count),
		cmocka_unit_test(test_list_match),
		cmocka_unit_test(test_pattern),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
