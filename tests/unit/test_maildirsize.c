/* common/maildirsize: the Maildir++ quota file is built from the files when missing, damaged or for another
 * quota, reservations append lines and stop at the quota, removals append negative lines, and parallel
 * reservations (forked processes) never pass the quota together. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "maildirsize.h"

struct fx {
	char root[64];
	char file[128];
};

static int setup(void **state)
{
	static struct fx f;
	snprintf(f.root, sizeof(f.root), "/tmp/test_mdsize.XXXXXX");
	assert_non_null(mkdtemp(f.root));
	snprintf(f.file, sizeof(f.file), "%s/maildirsize", f.root);
	char p[128];
	for (const char *const *s = (const char *const[]){ "tmp", "new", "cur", ".Sent", ".Sent/cur", NULL }; *s;
	     s++) {
		snprintf(p, sizeof(p), "%s/%s", f.root, *s);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void put(const struct fx *f, const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", f->root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static char *file_text(const struct fx *f)
{
	static struct buf b = BUF_INIT(65536);
	buf_reset(&b);
	if (!fsutil_read_file(f->file, 65536, &b))
		return NULL;
	return b.data;
}

static void test_built_then_appended(void **state)
{
	struct fx *f = *state;
	struct buf err = BUF_INIT(1024);
	uint64_t used = 99;
	put(f, "new/1.M1P1.h,S=1000");
	put(f, ".Sent/cur/2.M1P1.h,S=500:2,S");
	assert_int_equal(maildirsize_reserve(f->root, 4000, 1200, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 1500);
	assert_string_equal(file_text(f), "4000S\n1500 2\n1200 1\n");
	/* 2700 used: 1300 fits, 1301 does not, and nothing is appended for a refusal */
	assert_int_equal(maildirsize_reserve(f->root, 4000, 1301, &used, &err), MAILDIRSIZE_OVER);
	assert_int_equal(used, 2700);
	assert_int_equal(maildirsize_reserve(f->root, 4000, 1300, &used, &err), MAILDIRSIZE_OK);
	/* an expunge gives room back */
	maildirsize_update(f->root, -1000, -1);
	assert_int_equal(maildirsize_reserve(f->root, 4000, 1000, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 3000);
	assert_string_equal(file_text(f), "4000S\n1500 2\n1200 1\n1300 1\n-1000 -1\n1000 1\n");
	buf_free(&err);
}

static void test_rebuilt(void **state)
{
	struct fx *f = *state;
	struct buf err = BUF_INIT(1024);
	uint64_t used;
	put(f, "cur/1.M1P1.h,S=700:2,");
	assert_int_equal(maildirsize_reserve(f->root, 4000, 10, &used, &err), MAILDIRSIZE_OK);
	/* another quota: rebuilt from the files (the reservation above is not a file) */
	assert_int_equal(maildirsize_reserve(f->root, 5000, 10, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 700);
	assert_string_equal(file_text(f), "5000S\n700 1\n10 1\n");
	/* deleted: rebuilt */
	assert_int_equal(unlink(f->file), 0);
	assert_int_equal(maildirsize_reserve(f->root, 5000, 10, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 700);
	/* a cut-off last line or garbage: rebuilt */
	int fd = open(f->file, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "99999", 5), 5);
	close(fd);
	assert_int_equal(maildirsize_reserve(f->root, 5000, 10, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 700);
	/* too long: rebuilt */
	fd = open(f->file, O_WRONLY | O_APPEND);
	for (int i = 0; i < 1500; i++)
		assert_int_equal(write(fd, "0 0\n", 4), 4);
	close(fd);
	assert_int_equal(maildirsize_reserve(f->root, 5000, 10, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 700);
	/* old: rebuilt */
	assert_int_equal(maildirsize_reserve(f->root, 5000, 10, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 710);
	struct timespec ts[2] = { { time(NULL) - MAILDIRSIZE_RECALC_AGE - 10, 0 },
		                  { time(NULL) - MAILDIRSIZE_RECALC_AGE - 10, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, f->file, ts, 0), 0);
	assert_int_equal(maildirsize_reserve(f->root, 5000, 10, &used, &err), MAILDIRSIZE_OK);
	assert_int_equal(used, 700);
	/* without the file, updates do nothing (and create nothing) */
	assert_int_equal(unlink(f->file), 0);
	maildirsize_update(f->root, 5, 1);
	assert_int_equal(access(f->file, F_OK), -1);
	buf_free(&err);
}

static void test_parallel_never_over(void **state)
{
	struct fx *f = *state;
	enum { N = 10 };
	pid_t pids[N];
	for (int i = 0; i < N; i++) {
		if ((pids[i] = fork()) == 0) {
			struct buf err = BUF_INIT(1024);
			uint64_t used;
			_exit(maildirsize_reserve(f->root, 4096, 1000, &used, &err) == MAILDIRSIZE_OK ? 0 : 1);
		}
		assert_true(pids[i] > 0);
	}
	int ok = 0;
	for (int i = 0; i < N; i++) {
		int st;
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	assert_int_equal(ok, 4);
}

static void test_parse(void **state)
{
	(void)state;
	uint64_t b = 0, c = 0;
	static const struct { const char *text; bool ok; uint64_t bytes, count; } cases[] = {
		{ "4096S\n", true, 0, 0 },
		{ "4096S\n100 1\n-50 -1\n", true, 50, 0 },
		{ "100C,4096S\n  1200   3\n", true, 1200, 3 },	/* Dovecot's count limit beside it */
		{ "4096S,100C\n7 1\n", true, 7, 1 },
		{ "4097S\n", false, 0, 0 },			/* another quota */
		{ "4096\n", false, 0, 0 },
		{ "4096S\n1 1", false, 0, 0 },			/* cut off */
		{ "4096S\n1 1 1\n", false, 0, 0 },
		{ "4096S\nx 1\n", false, 0, 0 },
		{ "4096S\n-5 -1\n", false, 0, 0 },		/* negative sum */
		{ "4096S\n9999999999999999999 1\n", false, 0, 0 },
		{ "", false, 0, 0 },
		{ "\n1 1\n", false, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = maildirsize_parse(cases[i].text, strlen(cases[i].text), 4096, &b, &c);
		assert_int_equal(ok, cases[i].ok);
		if (ok) {
			assert_int_equal(b, cases[i].bytes);
			assert_int_equal(c, cases[i].count);
		}
	}
}

static void test_root(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(256);
	const char *cases[][2] = {
		{ "/m/d/u", "/m/d/u" }, { "/m/d/u/", "/m/d/u" }, { "/m/d/u/.Sent", "/m/d/u" },
		{ "/m/d/u/.Lists.x/", "/m/d/u" }, { "/m/d/u/..", "/m/d/u/.." }, { ".Sent", "." },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&b);
		maildirsize_root(cases[i][0], &b);
		assert_string_equal(buf_cstr(&b), cases[i][1]);
	}
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_built_then_appended, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuilt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel_never_over, setup, teardown),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
