/* imapd parser: one-shot == byte-at-a-time, literals (sync and LITERAL+), limits, errors and resync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "../../imapd/parser.h"

/* Render the parse outcome of one whole input as text: results in order, then the tree, for comparison. */
static void dump_arg(const struct imap_arg *a, struct buf *o)
{
	switch (a->type) {
	case IMAP_ARG_ATOM: buf_printf(o, "A<%s>", a->str); break;
	case IMAP_ARG_NIL: buf_puts(o, "NIL"); break;
	case IMAP_ARG_QUOTED: buf_printf(o, "Q<%s>", a->str); break;
	case IMAP_ARG_LITERAL: buf_printf(o, "L%zu<", a->len); buf_append(o, a->str, a->len); buf_puts(o, ">"); break;
	case IMAP_ARG_LIST:
		buf_puts(o, "(");
		for (size_t i = 0; i < a->count; i++) {
			if (i)
				buf_puts(o, " ");
			dump_arg(&a->list[i], o);
		}
		buf_puts(o, ")");
		break;
	}
}

/* Feed input in pieces of step bytes (0 = all at once); each CONT/DONE/ERROR is logged to out. */
static void run(const struct imap_parser_limits *lim, const char *in, size_t len, size_t step, struct buf *out)
{
	struct imap_parser *p = imap_parser_new(lim);
	size_t off = 0;

	while (off < len) {
		size_t n = step ? (len - off < step ? len - off : step) : len - off;
		size_t used;
		enum imap_parse_result r = imap_parser_feed(p, in + off, n, &used);
		assert_true(used <= n);
		off += used;
		if (r == IMAP_PARSE_MORE) {
			assert_int_equal(used, n);
			continue;
		}
		if (r == IMAP_PARSE_CONT) {
			buf_printf(out, "[CONT %llu]", (unsigned long long)imap_parser_literal_size(p));
			continue;
		}
		if (r == IMAP_PARSE_DONE) {
			size_t count;
			const struct imap_arg *args = imap_parser_args(p, &count);
			buf_printf(out, "[DONE %s %s", imap_parser_tag(p), imap_parser_command(p));
			for (size_t i = 0; i < count; i++) {
				buf_puts(out, " ");
				dump_arg(&args[i], out);
			}
			buf_puts(out, "]");
		} else if (r == IMAP_PARSE_ERROR) {
			buf_printf(out, "[ERR %s: %s]", imap_parser_tag(p) ? imap_parser_tag(p) : "*", imap_parser_error(p));
		} else {
			buf_printf(out, "[FATAL %s]", imap_parser_error(p));
			break;
		}
		imap_parser_reset(p);
	}
	imap_parser_free(&p);
	assert_null(p);
}

static char *parse_all(const struct imap_parser_limits *lim, const char *in, size_t len)
{
	struct buf one = BUF_INIT(BUF_NOLIMIT), step1 = BUF_INIT(BUF_NOLIMIT), step3 = BUF_INIT(BUF_NOLIMIT);
	run(lim, in, len, 0, &one);
	run(lim, in, len, 1, &step1);
	run(lim, in, len, 3, &step3);
	assert_string_equal(buf_cstr(&one), buf_cstr(&step1));
	assert_string_equal(buf_cstr(&one), buf_cstr(&step3));
	buf_free(&step1);
	buf_free(&step3);
	return buf_steal(&one, NULL);
}

#define CHECK(lim, in, want) do { \
	char *got_ = parse_all((lim), (in), sizeof(in) - 1); \
	assert_string_equal(got_, (want)); \
	free(got_); \
} while (0)

static void test_simple(void **state)
{
	(void)state;
	CHECK(NULL, "a1 NOOP\r\n", "[DONE a1 NOOP]");
	CHECK(NULL, "a1 noop\n", "[DONE a1 noop]");
	CHECK(NULL, "a2 LOGIN fred \"p w\\\"d\\\\\"\r\n", "[DONE a2 LOGIN A<fred> Q<p w\"d\\>]");
	CHECK(NULL, "x SELECT \"\"\r\n", "[DONE x SELECT Q<>]");
	CHECK(NULL, "t LIST \"\" *\r\nu LIST \"\" %/%\r\n", "[DONE t LIST Q<> A<*>][DONE u LIST Q<> A<%/%>]");
	/* a trailing space is tolerated */
	CHECK(NULL, "t CAPABILITY \r\n", "[DONE t CAPABILITY]");
}

static void test_lists_and_nil(void **state)
{
	(void)state;
	CHECK(NULL, "a STORE 1:* +FLAGS (\\Seen \\Deleted)\r\n",
	      "[DONE a STORE A<1:*> A<+FLAGS> (A<\\Seen> A<\\Deleted>)]");
	CHECK(NULL, "a ID (\"name\" \"x\" \"v\" NIL)\r\n", "[DONE a ID (Q<name> Q<x> Q<v> NIL)]");
	CHECK(NULL, "a ID nil\r\n", "[DONE a ID NIL]");
	CHECK(NULL, "a X (() (a (b)) c)\r\n", "[DONE a X (() (A<a> (A<b>)) A<c>)]");
	CHECK(NULL, "a FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> UID)\r\n",
	      "[DONE a FETCH A<1> (A<FLAGS> A<BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100>> A<UID>)]");
	CHECK(NULL, "a FETCH 1 body[]\r\n", "[DONE a FETCH A<1> A<body[]>]");
}

static void test_literals(void **state)
{
	(void)state;
	/* synchronising: CONT after the size line, then the data */
	CHECK(NULL, "a LOGIN {4}\r\nfred {3}\r\na\"b\r\n", "[CONT 4][CONT 3][DONE a LOGIN L4<fred> L3<a\"b>]");
	/* LITERAL+: no continuation */
	CHECK(NULL, "a LOGIN {4+}\r\nfred {0+}\r\n\r\n", "[DONE a LOGIN L4<fred> L0<>]");
	CHECK(NULL, "a X {0}\r\n\r\n", "[CONT 0][DONE a X L0<>]");
	/* literal data may hold CR LF, parens and NUL */
	{
		static const char in[] = "a APPEND INBOX (\\Seen) {7+}\r\nx\r\n()\0y\r\n";
		char *got = parse_all(NULL, in, sizeof(in) - 1);
		assert_memory_equal(got, "[DONE a APPEND A<INBOX> (A<\\Seen>) L7<x\r\n()\0y>]", 47);
		free(got);
	}
	/* the literal inside a list */
	CHECK(NULL, "a X ({2}\r\nab c)\r\n", "[CONT 2][DONE a X (L2<ab> A<c>)]");
}

static void test_errors_resync(void **state)
{
	(void)state;
	CHECK(NULL, "a X (b\r\nc NOOP\r\n", "[ERR a: unclosed list][DONE c NOOP]");
	CHECK(NULL, "a X b)\r\nc NOOP\r\n", "[ERR a: unexpected ')'][DONE c NOOP]");
	CHECK(NULL, "a X \"abc\r\nc NOOP\r\n", "[ERR a: unterminated quoted string][DONE c NOOP]");
	CHECK(NULL, "a X \"a\\bc\"\r\nc NOOP\r\n", "[ERR a: bad escape in quoted string][DONE c NOOP]");
	CHECK(NULL, "a X \"a\"b\r\nc NOOP\r\n", "[ERR a: missing space between arguments][DONE c NOOP]");
	CHECK(NULL, "\r\nc NOOP\r\n", "[ERR *: invalid tag][DONE c NOOP]");
	CHECK(NULL, "abc\r\n", "[ERR *: missing command]");
	CHECK(NULL, "a+b NOOP\r\n", "[ERR *: invalid tag]");
	CHECK(NULL, "a NO\x80OP\r\n", "[ERR a: invalid command name]");
	CHECK(NULL, "a X {12a}\r\nc NOOP\r\n", "[ERR a: bad literal size][DONE c NOOP]");
	CHECK(NULL, "a X {3} y\r\nc NOOP\r\n", "[ERR a: literal size not at the end of the line][DONE c NOOP]");
	CHECK(NULL, "a X\rY\r\nc NOOP\r\n", "[ERR a: CR not followed by LF][DONE c NOOP]");
	CHECK(NULL, "a X a\x01\r\nc NOOP\r\n", "[ERR a: invalid character in atom][DONE c NOOP]");
	/* a skipped line that announces a LITERAL+ still has its literal skipped, then resyncs */
	CHECK(NULL, "a X ) {5+}\r\nb NOO {3+}\r\nzz\r\nc NOOP\r\n", "[ERR a: unexpected ')'][DONE c NOOP]");
	/* a skipped line ending in a synchronising literal ends there: the client waits for "+" */
	CHECK(NULL, "a X ) {5}\r\nc NOOP\r\n", "[ERR a: unexpected ')'][DONE c NOOP]");
}

static void test_limits(void **state)
{
	(void)state;
	struct imap_parser_limits lim = { .max_line = 20, .max_literal = 10, .max_depth = 2, .max_args = 5 };

	CHECK(&lim, "a X 0123456789012345678901234567890\r\nb NOOP\r\n", "[ERR a: line too long][DONE b NOOP]");
	CHECK(&lim, "a X ((()))\r\nb NOOP\r\n", "[ERR a: lists nested too deeply][DONE b NOOP]");
	CHECK(&lim, "a X ((x))\r\n", "[DONE a X ((A<x>))]");
	CHECK(&lim, "a X 1 2 3 4 5 6\r\nb NOOP\r\n", "[ERR a: too many arguments][DONE b NOOP]");
	CHECK(&lim, "a X 1 2 3 4 5\r\n", "[DONE a X A<1> A<2> A<3> A<4> A<5>]");
	/* literal line length is counted per line, literal data not at all */
	CHECK(&lim, "a X {10}\r\n0123456789 {0}\r\n\r\n", "[CONT 10][CONT 0][DONE a X L10<0123456789> L0<>]");
	/* too big: synchronising is a BAD and the line is over; LITERAL+ cannot be resynchronised */
	CHECK(&lim, "a X {11}\r\nb NOOP\r\n", "[ERR a: [TOOBIG] literal too big][DONE b NOOP]");
	CHECK(&lim, "a X {6}\r\n123456 {5}\r\nb NOOP\r\n", "[CONT 6][ERR a: [TOOBIG] literal too big][DONE b NOOP]");
	CHECK(&lim, "a X {11+}\r\n01234567890\r\n", "[FATAL [TOOBIG] literal too big]");
	struct imap_parser_limits lit = { .max_literal = 10 };
	CHECK(&lit, "a X {99999999999999999999999}\r\nb NOOP\r\n", "[ERR a: literal size too long][DONE b NOOP]");
	CHECK(&lit, "a X {18446744073709551616}\r\nb NOOP\r\n", "[ERR a: [TOOBIG] literal too big][DONE b NOOP]");
	CHECK(&lit, "a X {18446744073709551616+}\r\n", "[FATAL [TOOBIG] literal too big]");
	/* a skipped literal+ beyond the limit cannot be skipped safely */
	CHECK(&lim, "a ) {50+}\r\n", "[FATAL [TOOBIG] literal too big]");
}

/* "Is a command under way?" after every byte: false before the tag and once the command is done, true in between
 * (imapd ACKs at once while it waits for the rest: the CRLF after an APPEND literal). */
static void test_in_command(void **state)
{
	static const char in[] = "a APPEND INBOX {3+}\r\nabc\r\n";
	struct imap_parser *p = imap_parser_new(NULL);
	size_t len = sizeof(in) - 1, used;

	(void)state;
	assert_false(imap_parser_in_command(p));
	for (size_t i = 0; i < len; i++) {
		enum imap_parse_result r = imap_parser_feed(p, in + i, 1, &used);
		assert_int_equal(used, 1);
		if (i + 1 < len) {
			assert_int_equal(r, IMAP_PARSE_MORE);
			assert_true(imap_parser_in_command(p));
		} else {
			assert_int_equal(r, IMAP_PARSE_DONE);
			assert_false(imap_parser_in_command(p));
		}
	}
	imap_parser_reset(p);
	assert_false(imap_parser_in_command(p));
	imap_parser_free(&p);
}

static void test_nothing_after_done(void **state)
{
	(void)state;
	struct imap_parser *p = imap_parser_new(NULL);
	size_t used;
	static const char in[] = "a NOOP\r\nb NOOP\r\n";

	assert_int_equal(imap_parser_feed(p, in, sizeof(in) - 1, &used), IMAP_PARSE_DONE);
	assert_int_equal(used, 8);
	assert_int_equal(imap_parser_feed(p, in + 8, 8, &used), IMAP_PARSE_DONE);
	assert_int_equal(used, 0);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed(p, in + 8, 8, &used), IMAP_PARSE_DONE);
	assert_string_equal(imap_parser_tag(p), "b");
	/* readers */
	imap_parser_reset(p);
	static const char in2[] = "a X atom \"q\" {2+}\r\nl\0 NIL (x)\r\n";
	assert_int_equal(imap_parser_feed(p, in2, sizeof(in2) - 1, &used), IMAP_PARSE_DONE);
	size_t n;
	const struct imap_arg *a = imap_parser_args(p, &n);
	const char *s;
	assert_int_equal(n, 5);
	assert_true(imap_arg_astring(&a[0], &s));
	assert_string_equal(s, "atom");
	assert_false(imap_arg_string(&a[0], &s));
	assert_true(imap_arg_string(&a[1], &s));
	assert_false(imap_arg_atom(&a[1], &s));
	assert_false(imap_arg_astring(&a[2], &s));	/* NUL inside */
	assert_true(imap_arg_astring(&a[3], &s));
	assert_string_equal(s, "NIL");
	assert_true(imap_arg_is_list(&a[4]));
	assert_false(imap_arg_astring(&a[4], &s));
	imap_parser_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_lists_and_nil),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_errors_resync),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_nothing_after_done),
		cmocka_unit_test(test_in_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
