/* svctab: the shipped master.cf parses, every column is checked, and every error names file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svctab.h"

static struct svctab *parse_ok(const char *text)
{
	struct svctab *tab = NULL;
	struct buf err = BUF_INIT(4096);

	if (!svctab_parse(text, strlen(text), "master.cf", &tab, &err))
		fail_msg("unexpected error: %s", buf_cstr(&err));
	buf_free(&err);
	return tab;
}

/* Parses text expecting failure; checks the message starts with "master.cf:LINE: " and contains want. */
static void parse_bad(const char *text, unsigned line, const char *want)
{
	struct svctab *tab = NULL;
	struct buf err = BUF_INIT(4096);
	char prefix[64];

	if (svctab_parse(text, strlen(text), "master.cf", &tab, &err))
		fail_msg("accepted bad table:\n%s", text);
	assert_null(tab);
	snprintf(prefix, sizeof(prefix), "master.cf:%u: ", line);
	if (strncmp(buf_cstr(&err), prefix, strlen(prefix)) != 0 || strstr(buf_cstr(&err), want) == NULL)
		fail_msg("error '%s' lacks '%s' / '%s'", buf_cstr(&err), prefix, want);
	buf_free(&err);
}

static void test_shipped_table(void **state)
{
	(void)state;
	struct svctab *tab = NULL;
	struct buf err = BUF_INIT(4096);
	const struct svc_entry *e;

	/* tests run from the top of the tree */
	if (!svctab_load_file("conf/master.cf", &tab, &err))
		fail_msg("%s", buf_cstr(&err));
	e = svctab_find(tab, "smtp", SVC_INET);
	assert_non_null(e);
	assert_int_equal(e->nlisten, 1);
	assert_null(e->listen[0].host);
	assert_int_equal(e->listen[0].port, 25);
	e = svctab_find(tab, "submission", SVC_INET);
	assert_non_null(e);
	assert_int_equal(e->tls, SVC_TLS_STARTTLS);
	assert_int_equal(e->noverrides, 1);
	assert_string_equal(e->overrides[0], "smtpd_auth_required=yes");
	e = svctab_find(tab, "smtps", SVC_INET);
	assert_int_equal(e->tls, SVC_TLS_IMPLICIT);
	assert_int_equal(e->listen[0].port, 465);
	e = svctab_find(tab, "qmgr", SVC_UNIX);
	assert_non_null(e);
	assert_true(e->resident);
	assert_int_equal(e->maxproc, 1);
	assert_true(svctab_find(tab, "auth", SVC_UNIX)->resident);
	e = svctab_find(tab, "smtp", SVC_UNIX);
	assert_non_null(e);
	assert_false(e->resident);
	assert_string_equal(e->listen[0].name, "smtp");
	assert_non_null(svctab_find(tab, "pop3s", SVC_INET));
	assert_non_null(svctab_find(tab, "imaps", SVC_INET));
	assert_null(svctab_find(tab, "nonesuch", SVC_INET));
	svctab_free(&tab);
	assert_null(tab);
	buf_free(&err);
}

static void test_columns_and_defaults(void **state)
{
	(void)state;
	struct svctab *tab = parse_ok(
		"# comment\n"
		"\n"
		"web inet 127.0.0.1:2525,[::1]:2525,2526 starttls nobody /var/empty - - - smtpd -v\r\n"
		"   -o a_b=1   # continuation keeps going\n"
		"\t-ox=y=z extra\n"
		"  # an indented comment is still a comment\n"
		"q unix qsock - - - 1 0 5m qmgr\n");
	const struct svc_entry *e = &tab->entries[0];

	assert_int_equal(tab->n, 2);
	assert_string_equal(e->name, "web");
	assert_int_equal(e->type, SVC_INET);
	assert_int_equal(e->nlisten, 3);
	assert_string_equal(e->listen[0].host, "127.0.0.1");
	assert_int_equal(e->listen[0].port, 2525);
	assert_string_equal(e->listen[1].host, "::1");
	assert_string_equal(e->listen[1].text, "[::1]:2525");
	assert_null(e->listen[2].host);
	assert_int_equal(e->listen[2].port, 2526);
	assert_string_equal(e->user, "nobody");
	assert_string_equal(e->chroot, "/var/empty");
	assert_int_equal(e->maxproc, SVCTAB_DEFAULT_MAXPROC);
	assert_int_equal(e->maxuse, SVCTAB_DEFAULT_MAXUSE);
	assert_int_equal(e->idle, SVCTAB_DEFAULT_IDLE);
	assert_string_equal(e->command, "smtpd");
	/* "# continuation keeps going" is not a comment inside an entry: it is arguments */
	assert_int_equal(e->noverrides, 2);
	assert_string_equal(e->overrides[0], "a_b=1");
	assert_string_equal(e->overrides[1], "x=y=z");
	assert_string_equal(e->args[0], "-v");
	assert_string_equal(e->origin, "master.cf:3");
	e = &tab->entries[1];
	assert_int_equal(e->type, SVC_UNIX);
	assert_int_equal(e->idle, 300);
	assert_int_equal(e->maxuse, 0);
	assert_null(e->user);
	assert_null(e->chroot);
	assert_string_equal(e->origin, "master.cf:7");
	svctab_free(&tab);
}

static void test_errors_name_line(void **state)
{
	(void)state;
	const char *good = "ok inet *:25 - - - 1 1 1 smtpd\n";
	char text[512];

	parse_bad("a inet *:25 - - - 1 1 1\n", 1, "need at least 10");
	parse_bad("\n\nx/y inet *:25 - - - 1 1 1 smtpd\n", 3, "bad service name");
	parse_bad("a tcp *:25 - - - 1 1 1 smtpd\n", 1, "bad type");
	parse_bad("a inet *:0 - - - 1 1 1 smtpd\n", 1, "bad port");
	parse_bad("a inet *:65536 - - - 1 1 1 smtpd\n", 1, "bad port");
	parse_bad("a inet *:025 - - - 1 1 1 smtpd\n", 1, "bad port");
	parse_bad("a inet ::1:25 - - - 1 1 1 smtpd\n", 1, "[addr]:port");
	parse_bad("a inet [::1:25 - - - 1 1 1 smtpd\n", 1, "[addr]:port");
	parse_bad("a inet [zz]:25 - - - 1 1 1 smtpd\n", 1, "bad IPv6");
	parse_bad("a inet ho$t:25 - - - 1 1 1 smtpd\n", 1, "bad host");
	parse_bad("a inet *:25,*:25 - - - 1 1 1 smtpd\n", 1, "listed twice");
	parse_bad("a unix ../x - - - 1 1 1 smtpd\n", 1, "bad socket name");
	parse_bad("a unix s/x - - - 1 1 1 smtpd\n", 1, "bad socket name");
	parse_bad("a inet *:25 sometimes - - 1 1 1 smtpd\n", 1, "bad tls");
	parse_bad("a unix s starttls - - 1 1 1 smtpd\n", 1, "unix service");
	parse_bad("a inet *:25 - r/oot - 1 1 1 smtpd\n", 1, "bad user");
	parse_bad("a inet *:25 - - jail 1 1 1 smtpd\n", 1, "absolute path");
	parse_bad("a inet *:25 - - - 0 1 1 smtpd\n", 1, "bad maxproc");
	parse_bad("a inet *:25 - - - 10001 1 1 smtpd\n", 1, "bad maxproc");
	parse_bad("a inet *:25 - - - x 1 1 smtpd\n", 1, "bad maxproc");
	parse_bad("a inet *:25 - - - 1 -1 1 smtpd\n", 1, "bad maxuse");
	parse_bad("a inet *:25 - - - 1 1 1x smtpd\n", 1, "bad idle");
	parse_bad("a inet *:25 - - - 1 1 s smtpd\n", 1, "bad idle");
	parse_bad("a inet *:25 - - - 1 1 9999999h smtpd\n", 1, "bad idle");
	parse_bad("a inet *:25 - - - 2 1 0 smtpd\n", 1, "needs maxproc 1");
	parse_bad("a inet *:25 - - - 1 1 1 ../bin/sh\n", 1, "bad command");
	parse_bad("a inet *:25 - - - 1 1 1 smtpd -o\n", 1, "-o without");
	parse_bad("a inet *:25 - - - 1 1 1 smtpd\n  -o novalue\n", 1, "bad override");
	parse_bad("a inet *:25 - - - 1 1 1 smtpd -o =x\n", 1, "bad override");
	parse_bad("  -o x=y\n", 1, "continuation line");

	/* errors after a good entry report their own line, also across continuations and comments */
	snprintf(text, sizeof(text), "%s  -o a=b\n# c\n\nbad inet *:26 - - - 1 1 1\n", good);
	parse_bad(text, 5, "need at least 10");
	snprintf(text, sizeof(text), "%sok inet *:26 - - - 1 1 1 smtpd\n", good);
	parse_bad(text, 2, "already defined at master.cf:1");
	snprintf(text, sizeof(text), "%sother inet 127.0.0.1:25 - - - 1 1 1 smtpd\n", good);
	parse_bad(text, 2, "clashes with '*:25' of service ok at master.cf:1");
	/* same name with another type is a different service; unix names must differ */
	snprintf(text, sizeof(text), "%sok unix ok - - - 1 1 1 smtp\nok2 unix ok - - - 1 1 1 smtp\n", good);
	parse_bad(text, 3, "clashes");
}

static void test_nul_byte(void **state)
{
	(void)state;
	static const char text[] = "a inet *:25 - - - 1 1 1 smtpd\nb inet *:26 - - - 1 1 1 sm\0tpd\n";
	struct svctab *tab = NULL;
	struct buf err = BUF_INIT(4096);

	assert_false(svctab_parse(text, sizeof(text) - 1, "m.cf", &tab, &err));
	assert_string_equal(buf_cstr(&err), "m.cf:2: NUL byte in line");
	buf_free(&err);
}

static void test_same_port_different_hosts(void **state)
{
	(void)state;
	struct svctab *tab = parse_ok("a inet 127.0.0.1:25 - - - 1 1 1 smtpd\n"
	                              "b inet 127.0.0.2:25,[::1]:25 - - - 1 1 1 smtpd\n"
	                              "a unix a - - - 1 1 1 smtpd\n");
	assert_int_equal(tab->n, 3);
	assert_true(svctab_listen_equal(&tab->entries[0].listen[0], &tab->entries[0].listen[0]));
	assert_false(svctab_listen_equal(&tab->entries[0].listen[0], &tab->entries[1].listen[0]));
	assert_false(svctab_listen_equal(&tab->entries[0].listen[0], &tab->entries[2].listen[0]));
	svctab_free(&tab);
}

static void test_load_missing(void **state)
{
	(void)state;
	struct svctab *tab = NULL;
	struct buf err = BUF_INIT(4096);

	assert_false(svctab_load_file("/nonexistent/master.cf", &tab, &err));
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent/master.cf: cannot open"));
	buf_free(&err);
}

/* Every prefix of the shipped table (a file cut short anywhere) either parses or fails with FILE:LINE. */
static void test_every_prefix(void **state)
{
	(void)state;
	struct buf text = BUF_INIT(SVCTAB_FILE_MAX), err = BUF_INIT(4096);
	FILE *f = fopen("conf/master.cf", "r");
	char chunk[4096];
	size_t n, parsed = 0;

	assert_non_null(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_true(buf_append(&text, chunk, n));
	fclose(f);
	for (size_t len = 0; len <= text.len; len++) {
		struct svctab *tab = NULL;
		buf_reset(&err);
		if (svctab_parse(text.data, len, "p.cf", &tab, &err)) {
			parsed++;
			svctab_free(&tab);
		} else {
			assert_int_equal(strncmp(buf_cstr(&err), "p.cf:", 5), 0);
		}
	}
	assert_true(parsed > 0);
	buf_free(&text);
	buf_free(&err);
}

static void test_names(void **state)
{
	(void)state;
	enum svc_tls t;
	assert_true(svctab_tls_from_name("-", &t));
	assert_int_equal(t, SVC_TLS_NONE);
	assert_true(svctab_tls_from_name("implicit", &t));
	assert_int_equal(t, SVC_TLS_IMPLICIT);
	assert_false(svctab_tls_from_name("IMPLICIT", &t));
	assert_string_equal(svctab_tls_name(SVC_TLS_STARTTLS), "starttls");
	assert_string_equal(svctab_type_name(SVC_UNIX), "unix");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_table),
		cmocka_unit_test(test_columns_and_defaults),
		cmocka_unit_test(test_errors_name_line),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_same_port_different_hosts),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests_name("svctab", tests, NULL, NULL);
}
