/* addr: envelope paths (strict, RFC 5321), MAIL/RCPT arguments, helpers, header lists (lenient, RFC 5322). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "addr_impl.h"

struct path_case {
	const char *in;
	unsigned flags;
	enum addr_err want;
	const char *canon;	/* expected canonical form when want == ADDR_OK */
};

#define U ADDR_F_SMTPUTF8

static const struct path_case path_cases[] = {
	{ "<user@example.org>", 0, ADDR_OK, "user@example.org" },
	{ "<User@EXAMPLE.Org>", 0, ADDR_OK, "User@example.org" },
	{ "<>", 0, ADDR_OK, "" },
	{ "<@a.example,@b.example:user@c.example>", 0, ADDR_OK, "user@c.example" },
	{ "<@a.example:user@c.example>", 0, ADDR_OK, "user@c.example" },
	{ "<\"john..doe\"@example.org>", 0, ADDR_OK, "\"john..doe\"@example.org" },
	{ "<\"a\\\"b\"@x>", 0, ADDR_OK, "\"a\\\"b\"@x" },
	{ "<\"abc\"@x.org>", 0, ADDR_OK, "abc@x.org" },
	{ "<\"\"@x.org>", 0, ADDR_OK, "\"\"@x.org" },
	{ "<\"a b\"@x.org>", 0, ADDR_OK, "\"a b\"@x.org" },
	{ "<\"a\\\\b\"@x.org>", 0, ADDR_OK, "\"a\\\\b\"@x.org" },
	{ "<user+tag@[IPv6:2001:db8::1]>", 0, ADDR_OK, "user+tag@[IPv6:2001:db8::1]" },
	{ "<u@[IPv6:2001:DB8:0:0::1]>", 0, ADDR_OK, "u@[IPv6:2001:db8::1]" },
	{ "<u@[ipv6:::ffff:192.0.2.1]>", 0, ADDR_OK, "u@[IPv6:::ffff:192.0.2.1]" },
	{ "<u@[192.0.2.1]>", 0, ADDR_OK, "u@[192.0.2.1]" },
	{ "<!#$%&'*+-/=?^_`{|}~@x.org>", 0, ADDR_OK, "!#$%&'*+-/=?^_`{|}~@x.org" },
	{ "<a.b.c@x-y.z9.org>", 0, ADDR_OK, "a.b.c@x-y.z9.org" },
	{ "<a@1.2.3.4>", 0, ADDR_OK, "a@1.2.3.4" },
	{ "<a@x>", 0, ADDR_OK, "a@x" },
	/* dot-atom rules */
	{ "<john..doe@example.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<.john@example.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<john.@example.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<a\"b(c)d,e:f;g<h>i[j\\k]l@example.com>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<a b@x.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<\"a\"b@x.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<\"unterminated@x.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<\"tab\there\"@x.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<\"a\\\x01\"@x.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "<@x.org>", 0, ADDR_ERR_SYNTAX, NULL },
	{ "<a@x.org", 0, ADDR_ERR_SYNTAX, NULL },
	{ "<a@x.org>>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<<a@x.org>", 0, ADDR_ERR_LOCAL_SYNTAX, NULL },
	{ "", 0, ADDR_ERR_SYNTAX, NULL },
	{ "<", 0, ADDR_ERR_SYNTAX, NULL },
	/* domains */
	{ "<a@-x.org>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@x-.org>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@x..org>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@.x.org>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@x.org.>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@x_y.org>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@x y.org>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<a@b@c.org>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<user>", 0, ADDR_ERR_NO_DOMAIN, NULL },
	{ "<postmaster>", 0, ADDR_ERR_NO_DOMAIN, NULL },
	{ "<Postmaster>", ADDR_F_POSTMASTER, ADDR_OK, "Postmaster" },
	{ "<user>", ADDR_F_POSTMASTER, ADDR_ERR_NO_DOMAIN, NULL },
	{ "<\"postmaster\">", ADDR_F_POSTMASTER, ADDR_ERR_NO_DOMAIN, NULL },
	/* literals */
	{ "<a@[192.0.2.256]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[192.0.2]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[2001:db8::1]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[IPv6:2001:db8::g]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[IPv6:192.0.2.1]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[x400:foo]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[IPv6:]>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[192.0.2.1>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<a@[192.0.2.1]x>", 0, ADDR_ERR_LITERAL, NULL },
	{ "<@[192.0.2.1]:a@b.org>", 0, ADDR_ERR_SYNTAX, NULL },
	/* routes */
	{ "<@a.example,b.example:u@c>", 0, ADDR_ERR_SYNTAX, NULL },
	{ "<@a.example>", 0, ADDR_ERR_SYNTAX, NULL },
	{ "<@a_b:u@c>", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL },
	{ "<@:u@c>", 0, ADDR_ERR_SYNTAX, NULL },
	/* unbracketed */
	{ "user@example.org", 0, ADDR_ERR_UNBRACKETED, NULL },
	{ "user@example.org", ADDR_F_UNBRACKETED, ADDR_OK, "user@example.org" },
	/* UTF-8 */
	{ "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", 0, ADDR_ERR_NEED_SMTPUTF8, NULL },
	{ "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", U, ADDR_OK, "j\xc3\xb6rg@b\xc3\xbc" "cher.example" },
	{ "<jorg@b\xc3\xbc" "cher.example>", 0, ADDR_ERR_NEED_SMTPUTF8, NULL },
	{ "<\"j\xc3\xb6 rg\"@x.example>", U, ADDR_OK, "\"j\xc3\xb6 rg\"@x.example" },
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", U, ADDR_OK,
	  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a" },
	{ "<\xc0\xafx@x.example>", U, ADDR_ERR_BAD_UTF8, NULL },           /* overlong '/' */
	{ "<\xe0\x80\xafx@x.example>", U, ADDR_ERR_BAD_UTF8, NULL },       /* overlong, 3 bytes */
	{ "<\xed\xa0\x80x@x.example>", U, ADDR_ERR_BAD_UTF8, NULL },       /* surrogate U+D800 */
	{ "<\xf4\x90\x80\x80x@x.example>", U, ADDR_ERR_BAD_UTF8, NULL },   /* above U+10FFFF */
	{ "<x\xc3@x.example>", U, ADDR_ERR_BAD_UTF8, NULL },               /* truncated */
	{ "<\x80x@x.example>", U, ADDR_ERR_BAD_UTF8, NULL },               /* lone continuation */
	{ "<x@x\xff.example>", U, ADDR_ERR_BAD_UTF8, NULL },
	{ "<x@x\xff.example>", 0, ADDR_ERR_BAD_UTF8, NULL },
	{ "<\"\\\xc3\xb6\"@x.example>", U, ADDR_ERR_LOCAL_SYNTAX, NULL },  /* quoted-pair is ASCII only */
};

static void test_paths(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct addr a;
		enum addr_err e = addr_parse_path(c->in, strlen(c->in), c->flags, &a);
		if (e != c->want) {
			fprintf(stderr, "case %zu %s: got %d (%s), want %d\n", i, c->in, e, addr_strerror(e), c->want);
			fail();
		}
		if (e == ADDR_OK) {
			assert_string_equal(a.canon, c->canon);
		} else {
			assert_null(a.local);
			assert_null(a.canon);
		}
		addr_free(&a);
	}
}

static void test_parts(void **state)
{
	(void)state;
	struct addr a;
	const char *in = "<\"John..Doe\"@Example.ORG>";
	assert_int_equal(addr_parse_path(in, strlen(in), 0, &a), ADDR_OK);
	assert_string_equal(a.local, "John..Doe");
	assert_int_equal(a.local_len, 9);
	assert_string_equal(a.domain, "Example.ORG");
	assert_true(a.quoted);
	assert_false(a.null);
	assert_false(a.literal);
	assert_false(a.utf8);
	addr_free(&a);
	addr_free(&a);	/* idempotent */

	assert_int_equal(addr_parse_path("<>", 2, 0, &a), ADDR_OK);
	assert_true(addr_is_null(&a));
	addr_free(&a);

	in = "<u@[IPv6:2001:db8::1]>";
	assert_int_equal(addr_parse_path(in, strlen(in), 0, &a), ADDR_OK);
	assert_true(a.literal);
	assert_string_equal(a.domain, "[IPv6:2001:db8::1]");
	addr_free(&a);

	/* the length passed is authoritative: bytes after it are never read */
	in = "<a@b.org>GARBAGE";
	assert_int_equal(addr_parse_path(in, 9, 0, &a), ADDR_OK);
	assert_string_equal(a.canon, "a@b.org");
	addr_free(&a);
	/* an embedded NUL is just a bad byte */
	assert_int_equal(addr_parse_path("<a\0b@x.org>", 11, 0, &a), ADDR_ERR_LOCAL_SYNTAX);
	assert_int_equal(addr_parse_path("<ab@x\0.org>", 11, 0, &a), ADDR_ERR_DOMAIN_SYNTAX);
	assert_int_equal(addr_parse_path("<ab@[1.2.3.4\0]>", 15, 0, &a), ADDR_ERR_LITERAL);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static enum addr_err parse_fmt(unsigned flags, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	struct addr a;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	enum addr_err e = addr_parse_path(buf, strlen(buf), flags, &a);
	addr_free(&a);
	return e;
}

static void test_lengths(void **state)
{
	(void)state;
	char *l64 = repeat('l', 64), *l65 = repeat('l', 65), *d63 = repeat('d', 63), *d64 = repeat('d', 64);
	char *q63 = repeat('q', 62);

	assert_int_equal(parse_fmt(0, "<%s@x.org>", l64), ADDR_OK);
	assert_int_equal(parse_fmt(0, "<%s@x.org>", l65), ADDR_ERR_LOCAL_TOO_LONG);
	/* the quotes count: 62 + 2 = 64 fits, 63 + 2 does not */
	assert_int_equal(parse_fmt(0, "<\"%s\"@x.org>", q63), ADDR_OK);
	assert_int_equal(parse_fmt(0, "<\"%sq\"@x.org>", q63), ADDR_ERR_LOCAL_TOO_LONG);
	assert_int_equal(parse_fmt(0, "<a@%s.org>", d63), ADDR_OK);
	assert_int_equal(parse_fmt(0, "<a@%s.org>", d64), ADDR_ERR_LABEL_TOO_LONG);
	/* 255-octet domain (4 x 63 + 3 dots) is fine on its own; as a path with "<a@>" it is 259 > 256 */
	char dom[300];
	snprintf(dom, sizeof(dom), "%s.%s.%s.%s", d63, d63, d63, d63);
	assert_int_equal(strlen(dom), 255);
	assert_int_equal(parse_fmt(0, "<a@%s>", dom), ADDR_ERR_PATH_TOO_LONG);
	/* path exactly 256: "<" + 64 + "@" + 189 + ">" */
	char d189[200];
	snprintf(d189, sizeof(d189), "%s.%s.%s", d63, d63, d63);
	d189[189] = '\0';
	assert_int_equal(parse_fmt(0, "<%s@%s>", l64, d189), ADDR_OK);
	d189[189] = '.';
	d189[190] = 'x';
	d189[191] = '\0';
	assert_int_equal(parse_fmt(0, "<%s@%s>", l64, d189), ADDR_ERR_PATH_TOO_LONG);
	/* unbracketed addresses are held to the same limit as if bracketed */
	char *big = repeat('x', 253);
	assert_int_equal(parse_fmt(ADDR_F_UNBRACKETED, "a@%s", big), ADDR_ERR_PATH_TOO_LONG);
	assert_int_equal(parse_fmt(ADDR_F_UNBRACKETED, "a@%s", d63), ADDR_OK);
	/* U-labels over 63 octets are not refused (their A-label may fit) */
	char ul[200];
	for (int i = 0; i < 30; i++)
		memcpy(ul + 2 * i, "\xc3\xa9", 2);
	ul[60] = '\0';
	assert_int_equal(parse_fmt(U, "<a@%s.example>", ul), ADDR_OK);
	/* ...but an A-label over 63 is: 55 x 'a' + e-acute is "xn--" + 59 = 63 octets, 56 x 'a' gives 64 */
	char *a55 = repeat('a', 55), *a56 = repeat('a', 56);
	assert_int_equal(parse_fmt(U, "<u@%s\xc3\xa9.example>", a55), ADDR_OK);
	assert_int_equal(parse_fmt(U, "<u@%s\xc3\xa9.example>", a56), ADDR_ERR_LABEL_TOO_LONG);
	/* 22 CJK characters are 66 UTF-8 octets but a 28-octet A-label */
	char cjk[100];
	for (int i = 0; i < 22; i++)
		memcpy(cjk + 3 * i, "\xe4\xbe\x8b", 3);
	cjk[66] = '\0';
	assert_int_equal(parse_fmt(U, "<u@%s.example>", cjk), ADDR_OK);
	free(a55); free(a56);
	free(l64); free(l65); free(d63); free(d64); free(q63); free(big);
}

struct cmd_case {
	const char *in;
	const char *kw;
	unsigned flags;
	enum addr_err want;
	const char *canon;
	const char *params;
};

static const struct cmd_case cmd_cases[] = {
	{ "FROM:<a@b.org>", "FROM", 0, ADDR_OK, "a@b.org", "" },
	{ "from:<a@b.org> SIZE=123 BODY=8BITMIME", "FROM", 0, ADDR_OK, "a@b.org", "SIZE=123 BODY=8BITMIME" },
	{ "FROM: <a@b.org>", "FROM", 0, ADDR_OK, "a@b.org", "" },
	{ "FROM:   <a@b.org>   SIZE=1", "FROM", 0, ADDR_OK, "a@b.org", "SIZE=1" },
	{ "FROM:<>", "FROM", 0, ADDR_OK, "", "" },
	{ "FROM:<> SIZE=0", "FROM", 0, ADDR_OK, "", "SIZE=0" },
	{ "FROM:<a@b.org> ", "FROM", 0, ADDR_OK, "a@b.org", "" },
	{ "TO:<\"a>b\"@x.org> NOTIFY=NEVER", "TO", 0, ADDR_OK, "\"a>b\"@x.org", "NOTIFY=NEVER" },
	{ "To:<Postmaster>", "TO", ADDR_F_POSTMASTER, ADDR_OK, "Postmaster", "" },
	{ "TO:<@r.example:u@x.org>", "TO", 0, ADDR_OK, "u@x.org", "" },
	{ "FROM:a@b.org", "FROM", 0, ADDR_ERR_UNBRACKETED, NULL, NULL },
	{ "FROM:a@b.org SIZE=1", "FROM", ADDR_F_UNBRACKETED, ADDR_OK, "a@b.org", "SIZE=1" },
	{ "FROM: a@b.org", "FROM", ADDR_F_UNBRACKETED, ADDR_OK, "a@b.org", "" },
	{ "FROM:<a@b.org>SIZE=1", "FROM", 0, ADDR_ERR_CMD_SYNTAX, NULL, NULL },
	{ "FROM <a@b.org>", "FROM", 0, ADDR_ERR_CMD_SYNTAX, NULL, NULL },
	{ "FRO:<a@b.org>", "FROM", 0, ADDR_ERR_CMD_SYNTAX, NULL, NULL },
	{ "TO:<a@b.org>", "FROM", 0, ADDR_ERR_CMD_SYNTAX, NULL, NULL },
	{ "", "FROM", 0, ADDR_ERR_CMD_SYNTAX, NULL, NULL },
	{ "FROM:", "FROM", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "FROM:   ", "FROM", ADDR_F_UNBRACKETED, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "FROM:<a@b.org", "FROM", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "FROM:<\"a>@b.org", "FROM", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "FROM:<a@b_c.org> SIZE=1", "FROM", 0, ADDR_ERR_DOMAIN_SYNTAX, NULL, NULL },
};

static void test_cmd(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct addr a;
		size_t off = 999;
		size_t len = strlen(c->in);
		enum addr_err e = addr_parse_cmd(c->in, len, c->kw, c->flags, &a, &off);
		if (e != c->want) {
			fprintf(stderr, "case %zu %s: got %d (%s), want %d\n", i, c->in, e, addr_strerror(e), c->want);
			fail();
		}
		if (e == ADDR_OK) {
			assert_string_equal(a.canon, c->canon);
			assert_true(off <= len);
			assert_string_equal(c->in + off, c->params);
		}
		addr_free(&a);
	}
}

static void test_eq_and_ext(void **state)
{
	(void)state;
	struct addr a, b, c, n;
	assert_int_equal(addr_parse_path("<\"Joe\"@EXAMPLE.org>", 19, 0, &a), ADDR_OK);
	assert_int_equal(addr_parse_path("<joe@example.ORG>", 17, 0, &b), ADDR_OK);
	assert_int_equal(addr_parse_path("<joe@example.net>", 17, 0, &c), ADDR_OK);
	assert_int_equal(addr_parse_path("<>", 2, 0, &n), ADDR_OK);
	assert_false(addr_localpart_eq(&a, &b, true));
	assert_true(addr_localpart_eq(&a, &b, false));
	assert_true(addr_eq(&a, &b, false));
	assert_false(addr_eq(&a, &b, true));
	assert_false(addr_eq(&b, &c, false));
	assert_true(addr_localpart_eq(&b, &c, true));
	assert_false(addr_eq(&a, &n, false));
	assert_true(addr_eq(&n, &n, true));
	addr_free(&a); addr_free(&b); addr_free(&c); addr_free(&n);

	char *base, *ext;
	assert_true(addr_split_extension("user+tag", "+", &base, &ext));
	assert_string_equal(base, "user");
	assert_string_equal(ext, "tag");
	free(base); free(ext);
	assert_true(addr_split_extension("user-tag+x", "+-", &base, &ext));
	assert_string_equal(base, "user");
	assert_string_equal(ext, "tag+x");
	free(base); free(ext);
	assert_true(addr_split_extension("user+", "+", &base, &ext));
	assert_string_equal(base, "user");
	assert_string_equal(ext, "");
	free(base); free(ext);
	assert_false(addr_split_extension("user", "+", &base, &ext));
	assert_string_equal(base, "user");
	assert_null(ext);
	free(base);
	assert_false(addr_split_extension("-owner", "-", &base, &ext));
	assert_string_equal(base, "-owner");
	assert_null(ext);
	free(base);
	assert_true(addr_split_extension("+list+x", "+", &base, &ext));
	assert_string_equal(base, "+list");
	assert_string_equal(ext, "x");
	free(base); free(ext);
	assert_false(addr_split_extension("user+tag", "", &base, &ext));
	assert_string_equal(base, "user+tag");
	free(base);
	assert_false(addr_split_extension("", "+", &base, &ext));
	assert_string_equal(base, "");
	free(base);
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(addr_utf8_valid("", 0));
	assert_true(addr_utf8_valid("plain", 5));
	assert_true(addr_utf8_valid("\xc2\x80", 2));
	assert_true(addr_utf8_valid("\xdf\xbf", 2));
	assert_true(addr_utf8_valid("\xe0\xa0\x80", 3));
	assert_true(addr_utf8_valid("\xed\x9f\xbf", 3));          /* U+D7FF */
	assert_true(addr_utf8_valid("\xee\x80\x80", 3));          /* U+E000 */
	assert_true(addr_utf8_valid("\xef\xbf\xbd", 3));
	assert_true(addr_utf8_valid("\xf0\x90\x80\x80", 4));
	assert_true(addr_utf8_valid("\xf4\x8f\xbf\xbf", 4));      /* U+10FFFF */
	assert_false(addr_utf8_valid("\xc0\x80", 2));             /* overlong NUL */
	assert_false(addr_utf8_valid("\xc1\xbf", 2));
	assert_false(addr_utf8_valid("\xe0\x9f\xbf", 3));         /* overlong */
	assert_false(addr_utf8_valid("\xf0\x8f\xbf\xbf", 4));     /* overlong */
	assert_false(addr_utf8_valid("\xed\xa0\x80", 3));         /* U+D800 */
	assert_false(addr_utf8_valid("\xed\xbf\xbf", 3));         /* U+DFFF */
	assert_false(addr_utf8_valid("\xf4\x90\x80\x80", 4));
	assert_false(addr_utf8_valid("\xf5\x80\x80\x80", 4));
	assert_false(addr_utf8_valid("\xff", 1));
	assert_false(addr_utf8_valid("\xe2\x82", 2));             /* truncated */
	assert_false(addr_utf8_valid("\xe2\x82\xac", 2));         /* length cuts the sequence */
	assert_false(addr_utf8_valid("\xe2\x28\xa1", 3));         /* bad continuation */
	assert_false(addr_utf8_valid("\x80", 1));
}

static void test_alabel(void **state)
{
	(void)state;
	/* expected values from RFC 3492 / Python's punycode codec: len("xn--" + punycode) */
	assert_int_equal(addr_alabel_len("b\xc3\xbc" "cher", 7), 13);                 /* xn--bcher-kva */
	assert_int_equal(addr_alabel_len("\xe4\xbe\x8b\xe5\xad\x90", 6), 11);      /* xn--fsqu00a */
	assert_int_equal(addr_alabel_len("m\xc3\xbcnchen", 8), 14);                  /* xn--mnchen-3ya */
	assert_int_equal(addr_alabel_len("\xf0\x9f\x98\x80", 4), 8);              /* xn--e28h (U+1F600) */
	assert_int_equal(addr_alabel_len("\xf4\x8f\xbf\xbf", 4), 9);                  /* xn--dn32g */
}

static void test_replies(void **state)
{
	(void)state;
	assert_string_equal(addr_reply(ADDR_ERR_LOCAL_SYNTAX, ADDR_ROLE_SENDER), "501 5.1.7 Bad sender address syntax");
	assert_string_equal(addr_reply(ADDR_ERR_LOCAL_SYNTAX, ADDR_ROLE_RECIPIENT),
	                    "501 5.1.3 Bad recipient address syntax");
	assert_int_equal(strncmp(addr_reply(ADDR_ERR_PATH_TOO_LONG, ADDR_ROLE_SENDER), "501 5.1.7 ", 10), 0);
	assert_int_equal(strncmp(addr_reply(ADDR_ERR_LOCAL_TOO_LONG, ADDR_ROLE_RECIPIENT), "501 5.1.3 ", 10), 0);
	assert_int_equal(strncmp(addr_reply(ADDR_ERR_NEED_SMTPUTF8, ADDR_ROLE_RECIPIENT), "553 5.6.7 ", 10), 0);
	assert_int_equal(strncmp(addr_reply(ADDR_ERR_CMD_SYNTAX, ADDR_ROLE_RECIPIENT), "501 5.5.4 ", 10), 0);
	for (int e = 0; e < ADDR_ERR_COUNT; e++) {
		assert_non_null(addr_strerror(e));
		assert_true(strlen(addr_reply(e, ADDR_ROLE_SENDER)) > 10);
		assert_true(strlen(addr_reply(e, ADDR_ROLE_RECIPIENT)) > 10);
	}
	for (int e = 0; e < ADDR_ERR_COUNT; e++) {
		for (int r = ADDR_ROLE_SENDER; r <= ADDR_ROLE_RECIPIENT; r++) {
			const char *st = addr_status(e, r), *rep = addr_reply(e, r);
			assert_int_equal(strlen(st), 9);
			assert_int_equal(strncmp(st, rep, 9), 0);
			assert_int_equal(rep[9], ' ');
		}
	}
	assert_string_equal(addr_status(ADDR_ERR_BAD_UTF8, ADDR_ROLE_SENDER), "501 5.1.7");
	assert_string_equal(addr_status(ADDR_ERR_DOMAIN_TOO_LONG, ADDR_ROLE_RECIPIENT), "501 5.1.3");
	assert_string_equal(addr_strerror(ADDR_ERR_COUNT), "unknown address error");
}

/* ---- header lists ---- */

static void want_mb(const struct addr_list *l, size_t i, const char *canon, const char *display, const char *group)
{
	assert_true(i < l->n);
	assert_string_equal(l->v[i].a.canon, canon);
	if (display == NULL)
		assert_null(l->v[i].display);
	else
		assert_string_equal(l->v[i].display, display);
	if (group == NULL)
		assert_null(l->v[i].group);
	else
		assert_string_equal(l->v[i].group, group);
}

static enum addr_err hdr(const char *s, unsigned flags, struct addr_list *l)
{
	size_t off = 0;
	return addr_parse_header(s, strlen(s), flags, l, &off);
}

static void test_header_basic(void **state)
{
	(void)state;
	struct addr_list l = ADDR_LIST_INIT;
	const char *in = "Name <a@b>, \"Quoted, Name\" <c@d>, group: e@f, g@h;, (comment) i@j";
	assert_int_equal(hdr(in, 0, &l), ADDR_OK);
	assert_int_equal(l.n, 5);
	want_mb(&l, 0, "a@b", "Name", NULL);
	want_mb(&l, 1, "c@d", "Quoted, Name", NULL);
	want_mb(&l, 2, "e@f", NULL, "group");
	want_mb(&l, 3, "g@h", NULL, "group");
	want_mb(&l, 4, "i@j", NULL, NULL);
	assert_int_equal(l.groups, 1);
	addr_list_free(&l);

	/* folded, with comments everywhere and obsolete forms */
	in = "John (middle) Q. Public\r\n <@route.example,@other.example:john.q.public(c)@(c)Example.COM>,\r\n"
	     "\t,, Mary Smith <mary @ x . example>, jdoe@one.test (John Doe), \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>";
	assert_int_equal(hdr(in, 0, &l), ADDR_OK);
	assert_int_equal(l.n, 4);
	want_mb(&l, 0, "john.q.public@example.com", "John Q. Public", NULL);
	want_mb(&l, 1, "mary@x.example", "Mary Smith", NULL);
	want_mb(&l, 2, "jdoe@one.test", NULL, NULL);
	want_mb(&l, 3, "sysservices@example.net", "Giant; \"Big\" Box", NULL);
	addr_list_free(&l);

	/* empty groups, quoted local parts, literals */
	in = "undisclosed-recipients:;";
	assert_int_equal(hdr(in, 0, &l), ADDR_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(l.groups, 1);
	addr_list_free(&l);
	in = "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>; , \"a b\"@x.test, u@[192.0.2.1]";
	assert_int_equal(hdr(in, 0, &l), ADDR_OK);
	assert_int_equal(l.n, 5);
	want_mb(&l, 0, "c@a.test", "Ed Jones", "A Group");
	want_mb(&l, 1, "joe@where.test", NULL, "A Group");
	want_mb(&l, 2, "jdoe@one.test", "John", "A Group");
	want_mb(&l, 3, "\"a b\"@x.test", NULL, NULL);
	want_mb(&l, 4, "u@[192.0.2.1]", NULL, NULL);
	assert_true(l.v[3].a.quoted);
	addr_list_free(&l);

	/* empty groups as marker entries, on request (IMAP ENVELOPE needs them) */
	in = "undisclosed-recipients:;, a@b, g2: c@d;, (x) Empty (y):(z);, last:";
	assert_int_equal(hdr(in, ADDR_F_EMPTY_GROUPS, &l), ADDR_OK);
	assert_int_equal(l.n, 5);
	assert_int_equal(l.groups, 4);
	assert_true(l.v[0].empty_group);
	assert_string_equal(l.v[0].group, "undisclosed-recipients");
	assert_string_equal(l.v[0].a.canon, "");
	assert_string_equal(l.v[0].a.local, "");
	want_mb(&l, 1, "a@b", NULL, NULL);
	want_mb(&l, 2, "c@d", NULL, "g2");
	assert_false(l.v[2].empty_group);
	assert_true(l.v[3].empty_group);
	assert_string_equal(l.v[3].group, "Empty");
	assert_true(l.v[4].empty_group);
	assert_string_equal(l.v[4].group, "last");
	addr_list_free(&l);
	assert_int_equal(hdr(in, 0, &l), ADDR_OK);
	assert_int_equal(l.n, 2);
	addr_list_free(&l);

	/* what IMAP ENVELOPE reports as Dovecot does: source routes, and a bare address's last comment as its name
	 * (not a leading one, not an empty one, not one after an angle address) */
	in = "<@a.example, @b.example:u@h.example>, x@y (First) (Real \\(Name\\)), (lead) p@q, r@s (), "
	     "\"N\" <t@u> (no)";
	assert_int_equal(hdr(in, ADDR_F_COMMENT_NAMES, &l), ADDR_OK);
	assert_int_equal(l.n, 5);
	want_mb(&l, 0, "u@h.example", NULL, NULL);
	assert_string_equal(l.v[0].route, "@a.example,@b.example");
	want_mb(&l, 1, "x@y", "Real (Name)", NULL);
	assert_null(l.v[1].route);
	want_mb(&l, 2, "p@q", NULL, NULL);
	want_mb(&l, 3, "r@s", NULL, NULL);
	want_mb(&l, 4, "t@u", "N", NULL);
	addr_list_free(&l);
	assert_int_equal(hdr(in, 0, &l), ADDR_OK);
	want_mb(&l, 1, "x@y", NULL, NULL);	/* only on request */
	addr_list_free(&l);

	/* obs-local-part: words with CFWS around dots */
	assert_int_equal(hdr("\"a\" . b . \"c d\" @ x.test", 0, &l), ADDR_OK);
	want_mb(&l, 0, "\"a.b.c d\"@x.test", NULL, NULL);
	addr_list_free(&l);

	/* unqualified names (sendmail -t) */
	assert_int_equal(hdr("root, Admin <admin>", 0, &l), ADDR_OK);
	assert_int_equal(l.n, 2);
	want_mb(&l, 0, "root", NULL, NULL);
	assert_true(l.v[0].nodomain);
	want_mb(&l, 1, "admin", "Admin", NULL);
	addr_list_free(&l);

	/* an unterminated group at the end is tolerated; appending keeps earlier entries */
	assert_int_equal(hdr("g: a@b", 0, &l), ADDR_OK);
	assert_int_equal(hdr("c@d", 0, &l), ADDR_OK);
	assert_int_equal(l.n, 2);
	want_mb(&l, 0, "a@b", NULL, "g");
	want_mb(&l, 1, "c@d", NULL, NULL);
	addr_list_free(&l);

	assert_int_equal(hdr("", 0, &l), ADDR_OK);
	assert_int_equal(hdr("  (just a comment) ", 0, &l), ADDR_OK);
	assert_int_equal(l.n, 0);
	addr_list_free(&l);
}

/* The examples of RFC 5322 appendix A. */
static void test_header_rfc_examples(void **state)
{
	(void)state;
	struct addr_list l = ADDR_LIST_INIT;

	assert_int_equal(hdr("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>", 0, &l), ADDR_OK);
	assert_int_equal(l.n, 3);
	want_mb(&l, 0, "mary@x.test", "Mary Smith", NULL);
	want_mb(&l, 1, "jdoe@example.org", NULL, NULL);
	want_mb(&l, 2, "one@y.test", "Who?", NULL);
	addr_list_free(&l);

	assert_int_equal(hdr("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>", 0, &l), ADDR_OK);
	want_mb(&l, 0, "boss@nil.test", NULL, NULL);
	want_mb(&l, 1, "sysservices@example.net", "Giant; \"Big\" Box", NULL);
	addr_list_free(&l);

	assert_int_equal(hdr("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 0, &l), ADDR_OK);
	want_mb(&l, 0, "pete@silly.test", "Pete", NULL);
	addr_list_free(&l);

	assert_int_equal(hdr("A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
	                     "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
	                     0, &l), ADDR_OK);
	assert_int_equal(l.n, 3);
	want_mb(&l, 0, "c@public.example", "Chris Jones", "A Group");
	want_mb(&l, 1, "joe@example.org", NULL, "A Group");
	want_mb(&l, 2, "jdoe@one.test", "John", "A Group");
	addr_list_free(&l);

	assert_int_equal(hdr("(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;", 0, &l), ADDR_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(l.groups, 1);
	addr_list_free(&l);

	assert_int_equal(hdr("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example", 0, &l), ADDR_OK);
	assert_int_equal(l.n, 2);
	want_mb(&l, 0, "mary@example.net", "Mary Smith", NULL);
	want_mb(&l, 1, "jdoe@test.example", NULL, NULL);
	addr_list_free(&l);

	assert_int_equal(hdr("Joe Q. Public <john.q.public@example.com>", 0, &l), ADDR_OK);
	want_mb(&l, 0, "john.q.public@example.com", "Joe Q. Public", NULL);
	addr_list_free(&l);
}

static void test_header_errors(void **state)
{
	(void)state;
	struct addr_list l = ADDR_LIST_INIT;
	size_t off;
	const char *in;

	assert_int_equal(hdr("john doe@x.test", 0, &l), ADDR_ERR_LOCAL_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("a@b, \"open", 0, &l), ADDR_ERR_UNTERMINATED);
	assert_int_equal(l.n, 1);	/* what came before stays */
	addr_list_free(&l);
	assert_int_equal(hdr("a@b (open", 0, &l), ADDR_ERR_UNTERMINATED);
	addr_list_free(&l);
	assert_int_equal(hdr("Name <a@b", 0, &l), ADDR_ERR_UNTERMINATED);
	addr_list_free(&l);
	assert_int_equal(hdr("a@[1.2.3.4", 0, &l), ADDR_ERR_UNTERMINATED);
	addr_list_free(&l);
	assert_int_equal(hdr("Name <a@b> junk, c@d", 0, &l), ADDR_ERR_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("a@b_c.test", 0, &l), ADDR_ERR_DOMAIN_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("a@[999.1.1.1]", 0, &l), ADDR_ERR_LITERAL);
	addr_list_free(&l);
	assert_int_equal(hdr("<>", 0, &l), ADDR_ERR_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("g1: g2: a@b;;", 0, &l), ADDR_ERR_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("a.@b", 0, &l), ADDR_ERR_LOCAL_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("a@b.", 0, &l), ADDR_ERR_DOMAIN_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("a@", 0, &l), ADDR_ERR_DOMAIN_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("a>b@c", 0, &l), ADDR_ERR_LOCAL_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("\"a\x01b\"@c", 0, &l), ADDR_ERR_LOCAL_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("\"a\tb\"@c", 0, &l), ADDR_ERR_LOCAL_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(hdr("\"a\r\n b\"@c", 0, &l), ADDR_OK);	/* folding inside quotes is unfolded */
	want_mb(&l, 0, "\"a b\"@c", NULL, NULL);
	addr_list_free(&l);

	in = "ok@x, bad@@x";
	assert_int_equal(addr_parse_header(in, strlen(in), 0, &l, &off), ADDR_ERR_DOMAIN_SYNTAX);
	assert_int_equal(off, 10);
	addr_list_free(&l);

	/* UTF-8 rules: addresses need the flag; display names may carry raw 8-bit */
	assert_int_equal(hdr("J\xc3\xb6rg <j\xc3\xb6rg@x.test>", 0, &l), ADDR_ERR_NEED_SMTPUTF8);
	addr_list_free(&l);
	assert_int_equal(hdr("J\xc3\xb6rg <j\xc3\xb6rg@x.test>", U, &l), ADDR_OK);
	want_mb(&l, 0, "j\xc3\xb6rg@x.test", "J\xc3\xb6rg", NULL);
	addr_list_free(&l);
	assert_int_equal(hdr("J\xff <jorg@x.test>", 0, &l), ADDR_OK);
	addr_list_free(&l);
	assert_int_equal(hdr("<j\xff@x.test>", U, &l), ADDR_ERR_BAD_UTF8);
	addr_list_free(&l);

	/* NUL bytes are refused wherever they are */
	assert_int_equal(addr_parse_header("a@b\0", 4, 0, &l, NULL), ADDR_ERR_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(addr_parse_header("\"a\0\"@b", 6, 0, &l, NULL), ADDR_ERR_SYNTAX);
	addr_list_free(&l);
	assert_int_equal(addr_parse_header("(a\0)a@b", 7, 0, &l, NULL), ADDR_ERR_SYNTAX);
	addr_list_free(&l);
}

static void test_header_depth(void **state)
{
	(void)state;
	struct addr_list l = ADDR_LIST_INIT;
	char in[200];
	size_t n = 0;

	for (int i = 0; i < ADDR_COMMENT_DEPTH; i++)
		in[n++] = '(';
	for (int i = 0; i < ADDR_COMMENT_DEPTH; i++)
		in[n++] = ')';
	memcpy(in + n, "a@b", 4);
	assert_int_equal(hdr(in, 0, &l), ADDR_OK);
	assert_int_equal(l.n, 1);
	addr_list_free(&l);

	n = 0;
	for (int i = 0; i <= ADDR_COMMENT_DEPTH; i++)
		in[n++] = '(';
	for (int i = 0; i <= ADDR_COMMENT_DEPTH; i++)
		in[n++] = ')';
	memcpy(in + n, "a@b", 4);
	assert_int_equal(hdr(in, 0, &l), ADDR_ERR_COMMENT_DEPTH);
	addr_list_free(&l);

	/* escaped parentheses do not count */
	assert_int_equal(hdr("(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\(\\() a@b", 0, &l), ADDR_OK);
	assert_int_equal(l.n, 1);
	addr_list_free(&l);
	/* a large hostile nesting stays cheap and fails cleanly */
	char *deep = repeat('(', 100000);
	assert_int_equal(hdr(deep, 0, &l), ADDR_ERR_COMMENT_DEPTH);
	free(deep);
	addr_list_free(&l);
}

static void test_header_skip_bad(void **state)
{
	(void)state;
	struct addr_list l = ADDR_LIST_INIT;
	const char *in = "good@x.test, john doe@x.test, Bad <a@b_c>, g: in@x.test, b@@d; after@x.test, <>, "
	                 "x <y@z> junk, last@x.test";
	assert_int_equal(hdr(in, ADDR_F_SKIP_BAD, &l), ADDR_OK);
	assert_int_equal(l.bad, 5);
	assert_int_equal(l.n, 4);
	want_mb(&l, 0, "good@x.test", NULL, NULL);
	want_mb(&l, 1, "in@x.test", NULL, "g");
	want_mb(&l, 2, "after@x.test", NULL, NULL);
	want_mb(&l, 3, "last@x.test", NULL, NULL);
	addr_list_free(&l);
	/* a skipped domainless entry leaves nothing behind for the next one */
	assert_int_equal(hdr("x <a> b@c, d@e", ADDR_F_SKIP_BAD, &l), ADDR_OK);
	assert_int_equal(l.n, 1);
	want_mb(&l, 0, "d@e", NULL, NULL);
	assert_false(l.v[0].nodomain);
	addr_list_free(&l);
	/* lexer failures cannot be skipped */
	assert_int_equal(hdr("a@b, \"open, c@d", ADDR_F_SKIP_BAD, &l), ADDR_ERR_UNTERMINATED);
	assert_int_equal(l.n, 1);
	addr_list_free(&l);
}

/* Every proper prefix of a valid input, each in an exact-size heap copy so ASan sees any read past the end:
 * envelope prefixes must all fail (a path is only complete at its '>'), header prefixes must not crash. */
static void test_prefixes(void **state)
{
	(void)state;
	static const char *const cmds[] = {
		"FROM:<@a.example,@b.example:\"j\\\"d\"@[IPv6:2001:db8::1]> SIZE=1",
		"FROM:<user+tag@sub.example.org> BODY=8BITMIME",
		"FROM:<u@[192.0.2.1]>",
		"FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example>",
	};
	static const char *const hdrs[] = {
		"John (a (nested) comment) Q. Public <@r.example:john.q@Example.COM>, \"Q, N\" <c@d>, g: e@f;, i@[1.2.3.4]",
		"\"a\" . b @ x.test, undisclosed-recipients:;, J\xc3\xb6rg <j\xc3\xb6rg@x.test>",
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		size_t len = strlen(cmds[i]);
		size_t pathlen = (size_t)(strchr(cmds[i], '>') - cmds[i]) + 1;
		for (size_t n = 0; n <= len; n++) {
			char *p = malloc(n ? n : 1);
			memcpy(p, cmds[i], n);
			struct addr a;
			size_t off;
			enum addr_err e = addr_parse_cmd(p, n, "FROM", ADDR_F_SMTPUTF8, &a, &off);
			if (n < pathlen)
				assert_int_not_equal(e, ADDR_OK);
			else
				assert_int_equal(e, ADDR_OK);
			addr_free(&a);
			/* the path alone, without "FROM:" */
			if (n > 5) {
				e = addr_parse_path(p + 5, n - 5, ADDR_F_SMTPUTF8, &a);
				assert_true(n < pathlen ? e != ADDR_OK : (n == pathlen ? e == ADDR_OK : e != ADDR_OK));
				addr_free(&a);
			}
			free(p);
		}
	}
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		size_t len = strlen(hdrs[i]);
		for (size_t n = 0; n <= len; n++) {
			char *p = malloc(n ? n : 1);
			memcpy(p, hdrs[i], n);
			struct addr_list l = ADDR_LIST_INIT;
			size_t off = 0;
			enum addr_err e = addr_parse_header(p, n, ADDR_F_SMTPUTF8, &l, &off);
			if (e != ADDR_OK)
				assert_true(off <= n);
			if (n == len)
				assert_int_equal(e, ADDR_OK);
			addr_list_free(&l);
			free(p);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_parts),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_cmd),
		cmocka_unit_test(test_eq_and_ext),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_alabel),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_header_basic),
		cmocka_unit_test(test_header_rfc_examples),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_header_depth),
		cmocka_unit_test(test_header_skip_bad),
		cmocka_unit_test(test_prefixes),
	};
	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
