/* svctab: the "public/NAME" rule for unix listeners in public_directory (the local submission socket). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "svctab.h"

static struct svctab *parse(const char *text, struct buf *err)
{
	struct svctab *t = NULL;
	buf_reset(err);
	if (!svctab_parse(text, strlen(text), "master.cf", &t, err))
		return NULL;
	return t;
}

static void test_public_listener(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(4096);
	struct svctab *t = parse("submit unix public/submit - - - 100 100 100s smtpd\n"
	                         "    -o smtpd_local_submission=yes\n"
	                         "qmgr unix qmgr - - - 1 0 0 qmgr\n", &err);
	assert_non_null(t);
	const struct svc_entry *e = svctab_find(t, "submit", SVC_UNIX);
	assert_non_null(e);
	assert_int_equal(e->nlisten, 1);
	assert_string_equal(e->listen[0].text, "public/submit");
	assert_string_equal(svctab_public_name(&e->listen[0]), "submit");
	e = svctab_find(t, "qmgr", SVC_UNIX);
	assert_null(svctab_public_name(&e->listen[0]));	/* private_directory */
	svctab_free(&t);
	buf_free(&err);
}

static void test_public_bad_names(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(4096);
	static const char *const bad[] = {
		"a unix public/ - - - 1 1 1 smtpd\n",
		"a unix public/../x - - - 1 1 1 smtpd\n",
		"a unix public/a/b - - - 1 1 1 smtpd\n",
		"a unix public/.x - - - 1 1 1 smtpd\n",
		"a unix private/x - - - 1 1 1 smtpd\n",
		"a unix /public/x - - - 1 1 1 smtpd\n",
		"a unix public//x - - - 1 1 1 smtpd\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(parse(bad[i], &err));
		assert_non_null(strstr(buf_cstr(&err), "bad socket name"));
	}
	/* an inet listener is never public */
	struct svctab *t = parse("s inet 127.0.0.1:2525 - - - 1 1 1 smtpd\n", &err);
	assert_non_null(t);
	assert_null(svctab_public_name(&t->entries[0].listen[0]));
	svctab_free(&t);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_public_listener),
		cmocka_unit_test(test_public_bad_names),
	};
	return cmocka_run_group_tests_name("svctab_public", tests, NULL, NULL);
}
