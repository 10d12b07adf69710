/* config: main.cf syntax and its errors, $name expansion (nesting, loops, limits), typed getters, foreach,
 * the atomic rewrite. This test brings its own parameter table (below) so it does not change whenever a module
 * adds a parameter; test_config_table checks the real table and conf/main.cf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"

/* Linked instead of common/params.c (a static library member is only pulled in for an undefined symbol). */
const struct config_param config_params[] = {
	{ "instance_directory", "/var/spool/postern", "top" },
	{ "config_directory", "$instance_directory/etc", "conf" },
	{ "t_str", "hello", "" },
	{ "t_ref", "$t_str world", "" },
	{ "t_int", "10", "" },
	{ "t_bool", "yes", "" },
	{ "t_time", "5s", "" },
	{ "t_size", "10m", "" },
	{ "t_list", "a, b  c,,d", "" },
	{ "t_loop1", "x$t_loop2", "" },
	{ "t_loop2", "${t_loop1}", "" },
	{ "a", "", "" },
	{ "b", "", "" },
	{ "c", "", "" },
	{ NULL, NULL, NULL }
};

static struct config *load(const char *text)
{
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	if (!config_load_mem(cfg, "t.cf", text, strlen(text), &err, &warn))
		fail_msg("unexpected error: %s", buf_cstr(&err));
	buf_free(&err);
	buf_free(&warn);
	return cfg;
}

/* Load text expecting an error; returns the message (free it). */
static char *load_err(const char *text, size_t len)
{
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_false(config_load_mem(cfg, "t.cf", text, len, &err, NULL));
	assert_true(err.len > 0);
	/* all or nothing: nothing from the file was applied */
	assert_null(config_raw(cfg, "a"));
	config_free(&cfg);
	return buf_steal(&err, NULL);
}

static void test_syntax(void **state)
{
	(void)state;
	struct config *cfg = load("# comment\n"
	                          "\n"
	                          "a = one   \t\n"
	                          "b=two\r\n"
	                          "c = first\n"
	                          "   second line  \n"
	                          "  # a comment inside is skipped\n"
	                          "\tthird\n"
	                          "  \n"
	                          "t_str = x # not a comment\n"
	                          "a = override");
	assert_string_equal(config_raw(cfg, "a"), "override");
	assert_string_equal(config_origin(cfg, "a"), "t.cf:11");
	assert_string_equal(config_raw(cfg, "b"), "two");
	assert_string_equal(config_raw(cfg, "c"), "first second line third");
	assert_string_equal(config_origin(cfg, "c"), "t.cf:5");
	assert_string_equal(config_str(cfg, "t_str"), "x # not a comment");
	/* unset: no raw value, no origin, the default when read */
	assert_null(config_raw(cfg, "t_int"));
	assert_null(config_origin(cfg, "t_int"));
	assert_string_equal(config_str(cfg, "t_ref"), "x # not a comment world");
	config_free(&cfg);
	assert_null(cfg);

	/* an empty value continued, and an empty value */
	cfg = load("a =\n  b\nb =\n");
	assert_string_equal(config_raw(cfg, "a"), "b");
	assert_string_equal(config_raw(cfg, "b"), "");
	config_free(&cfg);
	/* a byte order mark at the start is skipped */
	cfg = load("\xef\xbb\xbf" "a = 1\n");
	assert_string_equal(config_raw(cfg, "a"), "1");
	config_free(&cfg);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	char *m;

	m = load_err("a = 1\njust words\n", 17);
	assert_string_equal(m, "t.cf:2: missing \"=\" in \"just words\" (expected name = value)");
	free(m);
	m = load_err("a = 1\n= 2\n", 10);
	assert_string_equal(m, "t.cf:2: missing parameter name before \"=\"");
	free(m);
	m = load_err("# c\n  indented = 1\na = 1\n", 24);
	assert_string_equal(m, "t.cf:2: line starts with white space but there is no parameter before it to continue");
	free(m);
	m = load_err("a = 1\nmy-name = 2\n", 18);
	assert_string_equal(m, "t.cf:2: bad parameter name \"my-name\" (use letters, digits and _)");
	free(m);
	m = load_err("a = 1\nb\0 = 2\n", 13);
	assert_string_equal(m, "t.cf:2: NUL byte in line");
	free(m);

	/* line 37, as an administrator would count it */
	struct buf text = BUF_INIT(BUF_NOLIMIT);
	for (int i = 1; i < 37; i++)
		buf_printf(&text, i % 3 ? "# line %d\n" : "a = %d\n", i);
	buf_puts(&text, "a b c\n");
	m = load_err(text.data, text.len);
	assert_non_null(strstr(m, "t.cf:37: "));
	assert_int_equal(strncmp(m, "t.cf:37: ", 9), 0);
	free(m);
	buf_free(&text);
}

static void test_line_limit(void **state)
{
	(void)state;
	struct buf text = BUF_INIT(BUF_NOLIMIT);
	char *m;

	/* exactly at the limit is fine */
	buf_puts(&text, "a = ");
	while (text.len < CONFIG_LINE_MAX)
		buf_putc(&text, 'x');
	struct config *cfg = load(text.data);
	assert_int_equal(strlen(config_raw(cfg, "a")), CONFIG_LINE_MAX - 4);
	config_free(&cfg);
	/* one more byte on one physical line is an error, not a cut */
	buf_putc(&text, 'x');
	m = load_err(text.data, text.len);
	assert_string_equal(m, "t.cf:1: line longer than 65536 bytes");
	free(m);

	/* many short continuation lines add up to too long a logical line */
	buf_reset(&text);
	buf_puts(&text, "a = start\n");
	for (int i = 0; i < 20000; i++)
		buf_puts(&text, "  abc\n");
	m = load_err(text.data, text.len);
	assert_non_null(strstr(m, "logical line (with its continuation lines) longer than 65536 bytes"));
	assert_int_equal(strncmp(m, "t.cf:16", 7), 0);	/* 10 + 16384*4 > 65536 around line 16000 */
	free(m);
	buf_free(&text);
}

/* Every prefix of a file, cut at any byte: an error naming a line, or a clean load whose values are prefixes
 * of the full file's values (the parser never invents text). */
static void test_prefixes(void **state)
{
	(void)state;
	const char *text = "# head\na = one two\n  three\nb=${a}x\n\n#c\nc = $$\n\tmore\n";
	size_t len = strlen(text);
	struct config *full = load(text);

	for (size_t n = 0; n <= len; n++) {
		struct config *cfg = config_new();
		struct buf err = BUF_INIT(BUF_NOLIMIT);
		if (config_load_mem(cfg, "t.cf", text, n, &err, NULL)) {
			const char *names[] = { "a", "b", "c" };
			for (size_t i = 0; i < 3; i++) {
				const char *v = config_raw(cfg, names[i]);
				const char *f = config_raw(full, names[i]);
				if (v != NULL)
					assert_int_equal(strncmp(v, f, strlen(v)), 0);
			}
		} else {
			assert_int_equal(strncmp(buf_cstr(&err), "t.cf:", 5), 0);
		}
		buf_free(&err);
		config_free(&cfg);
	}
	config_free(&full);
}

/* Daemons read the configuration at every start: a big main.cf must load and read quickly. */
static void test_speed(void **state)
{
	(void)state;
	struct buf text = BUF_INIT(BUF_NOLIMIT);
	struct config *cfg;
	struct timespec t0, t1;

	for (int i = 0; i < 5000; i++)
		buf_printf(&text, "# parameter %d\nparam_%d = value $t_str %d\n", i, i, i);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < 20; k++) {
		cfg = load(text.data);
		assert_string_equal(config_raw(cfg, "param_4999"), "value $t_str 4999");
		for (int i = 0; i < 1000; i++)
			assert_string_equal(config_str(cfg, "t_ref"), "hello world");
		config_free(&cfg);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* 20 loads of 10000 lines: well under a second even under ASan */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 3000);
	buf_free(&text);
}

static void test_unknown_warning(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	const char *text = "a = 1\nmy_own = x\nt_ref = $my_own!\nzz = 2\n";

	assert_true(config_load_mem(cfg, "main.cf", text, strlen(text), &err, &warn));
	assert_string_equal(buf_cstr(&warn), "main.cf:2: unknown parameter my_own\nmain.cf:4: unknown parameter zz\n");
	assert_int_equal(err.len, 0);
	/* unknown but set parameters still expand */
	assert_string_equal(config_str(cfg, "t_ref"), "x!");
	assert_string_equal(config_raw(cfg, "zz"), "2");
	buf_free(&err);
	buf_free(&warn);
	config_free(&cfg);
}

static void test_expand(void **state)
{
	(void)state;
	struct config *cfg = load("a = [$b|${c}|$$b|$$$b|$nosuch|${nosuch}|$b_x]\n"
	                          "b = B$c\n"
	                          "c = C\n");
	assert_string_equal(config_str(cfg, "a"), "[BC|C|$b|$BC|||]");
	/* defaults expand too, through the table */
	assert_string_equal(config_str(cfg, "config_directory"), "/var/spool/postern/etc");
	assert_string_equal(config_str(cfg, "t_ref"), "hello world");

	/* a later set is seen by everything that refers to it; earlier pointers stay valid */
	const char *old_a = config_str(cfg, "a");
	const char *old_ref = config_str(cfg, "t_ref");
	config_set(cfg, "c", "Z", "test");
	assert_string_equal(config_str(cfg, "a"), "[BZ|Z|$b|$BZ|||]");
	assert_string_equal(old_a, "[BC|C|$b|$BC|||]");
	assert_string_equal(config_origin(cfg, "c"), "test");
	/* unchanged values keep their pointer */
	assert_ptr_equal(config_str(cfg, "t_ref"), old_ref);
	config_set(cfg, "instance_directory", "/srv/i", "-c");
	assert_string_equal(config_str(cfg, "config_directory"), "/srv/i/etc");
	config_free(&cfg);
}

static void test_expand_errors(void **state)
{
	(void)state;
	struct config *cfg = load("a = x$\nb = ${c\nc = ${bad-name}\n");
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	const char *v = NULL;

	assert_false(config_try_str(cfg, "a", &v, &err));
	assert_string_equal(buf_cstr(&err),
	                    "t.cf:1: a: \"$\" must be followed by a name, {name} or $ (write $$ for a literal $)");
	buf_reset(&err);
	assert_false(config_try_str(cfg, "b", &v, &err));
	assert_int_equal(strncmp(buf_cstr(&err), "t.cf:2: b: bad \"${\"", 19), 0);
	buf_reset(&err);
	assert_false(config_try_str(cfg, "c", &v, &err));
	assert_int_equal(strncmp(buf_cstr(&err), "t.cf:3: c: bad \"${\"", 19), 0);
	buf_reset(&err);
	/* an error in a referenced parameter names both */
	config_set(cfg, "t_str", "<$a>", "-o");
	assert_false(config_try_str(cfg, "t_ref", &v, &err));
	assert_string_equal(buf_cstr(&err), "default: t_ref: $t_str (-o): $a (t.cf:1): \"$\" must be followed by a "
	                                    "name, {name} or $ (write $$ for a literal $)");
	buf_free(&err);
	config_free(&cfg);
}

static void test_loops(void **state)
{
	(void)state;
	struct config *cfg = load("a = $a\nb = ${c}\nc = 1$b\n");
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	const char *v;

	assert_false(config_try_str(cfg, "a", &v, &err));
	assert_string_equal(buf_cstr(&err), "t.cf:1: a: expansion loop: $a -> $a");
	buf_reset(&err);
	assert_false(config_try_str(cfg, "b", &v, &err));
	assert_string_equal(buf_cstr(&err), "t.cf:2: b: $c (t.cf:3): expansion loop: $b -> $c -> $b");
	buf_reset(&err);
	/* asked again (cached), and from the other end */
	assert_false(config_try_str(cfg, "b", &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "expansion loop"));
	buf_reset(&err);
	assert_false(config_try_str(cfg, "c", &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "expansion loop"));
	buf_reset(&err);
	/* a loop in the defaults */
	assert_false(config_try_str(cfg, "t_loop1", &v, &err));
	assert_string_equal(buf_cstr(&err),
	                    "default: t_loop1: $t_loop2 (default): expansion loop: $t_loop1 -> $t_loop2 -> $t_loop1");
	buf_reset(&err);
	/* breaking the loop makes it work */
	config_set(cfg, "a", "fine", "x");
	config_set(cfg, "c", "1", "x");
	assert_true(config_try_str(cfg, "a", &v, &err));
	assert_string_equal(v, "fine");
	assert_true(config_try_str(cfg, "b", &v, &err));
	assert_string_equal(v, "1");
	assert_false(config_check(cfg, &err));	/* t_loop1/t_loop2 still loop */
	assert_non_null(strstr(buf_cstr(&err), "default: t_loop1: "));
	assert_non_null(strstr(buf_cstr(&err), "default: t_loop2: "));
	buf_free(&err);
	config_free(&cfg);
}

static void test_depth_and_size(void **state)
{
	(void)state;
	struct buf text = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(BUF_NOLIMIT);
	struct config *cfg;
	const char *v;

	/* p0 -> p1 -> ... -> p30: too deep from p0, fine from p15 */
	for (int i = 0; i < 30; i++)
		buf_printf(&text, "p%d = $p%d\n", i, i + 1);
	buf_puts(&text, "p30 = end\n");
	buf_puts(&text, "t_str = $p0\nt_ref = $p15\n");
	cfg = load(text.data);
	assert_true(config_try_str(cfg, "t_ref", &v, &err));
	assert_string_equal(v, "end");
	assert_false(config_try_str(cfg, "t_str", &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "nested more than 20 deep"));
	assert_int_equal(strncmp(buf_cstr(&err), "t.cf:32: t_str: $p0 (t.cf:1): $p1 (t.cf:2): ", 44), 0);
	/* exactly 20 levels work: t_str, p12 ... p30 */
	buf_reset(&err);
	config_set(cfg, "t_str", "$p12", "x");
	assert_true(config_try_str(cfg, "t_str", &v, &err));
	assert_string_equal(v, "end");
	config_set(cfg, "t_str", "$p11", "x");
	assert_false(config_try_str(cfg, "t_str", &v, &err));
	config_free(&cfg);

	/* doubling at every level: refused by size long before it costs time or memory */
	buf_reset(&text);
	buf_reset(&err);
	for (int i = 0; i < 15; i++)
		buf_printf(&text, "q%d = $q%d$q%d$q%d$q%d\n", i, i + 1, i + 1, i + 1, i + 1);
	buf_puts(&text, "q15 = 0123456789\nt_str = $q0\n");
	cfg = load(text.data);
	assert_false(config_try_str(cfg, "t_str", &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "value longer than 1048576 bytes after expansion"));
	config_free(&cfg);

	/* many parameters each referring to a big value: the total is bounded too */
	buf_reset(&text);
	buf_reset(&err);
	for (int i = 0; i < 8; i++)
		buf_printf(&text, "q%d = $q%d$q%d$q%d$q%d\n", i, i + 1, i + 1, i + 1, i + 1);
	buf_puts(&text, "q8 = 0123456789\n");	/* q0 is 655360 bytes */
	for (int i = 0; i < 200; i++)
		buf_printf(&text, "x%d = <$q0>\n", i);
	buf_puts(&text, "t_str = $x199\n");
	cfg = load(text.data);
	assert_true(config_try_str(cfg, "t_str", &v, &err));
	assert_int_equal(strlen(v), 655362);
	assert_false(config_check(cfg, &err));
	assert_non_null(strstr(buf_cstr(&err), "together expand to more than 67108864 bytes"));
	/* a new generation starts a new budget */
	config_set(cfg, "t_str", "$x5", "x");
	buf_reset(&err);
	assert_true(config_try_str(cfg, "t_str", &v, &err));
	config_free(&cfg);
	buf_free(&text);
	buf_free(&err);
}

static struct config *one(const char *name, const char *value)
{
	struct config *cfg = config_new();
	config_set(cfg, name, value, "main.cf:37");
	return cfg;
}

#define EXPECT_ERR(call, text) do { \
		struct buf e_ = BUF_INIT(BUF_NOLIMIT); \
		assert_false(call); \
		assert_string_equal(buf_cstr(&e_), text); \
		buf_free(&e_); \
	} while (0)

static void test_int(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	int64_t v;
	struct buf err = BUF_INIT(BUF_NOLIMIT);

	assert_int_equal(config_int(cfg, "t_int", 0, 100), 10);	/* the default */
	const char *good[] = { "0", "42", " 7 ", "-5", "+8", "-9223372036854775808", "9223372036854775807" };
	const int64_t want[] = { 0, 42, 7, -5, 8, INT64_MIN, INT64_MAX };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		config_set(cfg, "t_int", good[i], "x");
		assert_true(config_try_int(cfg, "t_int", INT64_MIN, INT64_MAX, &v, &err));
		assert_true(v == want[i]);
	}
	assert_int_equal(err.len, 0);
	config_free(&cfg);

	cfg = one("t_int", "12x");
	EXPECT_ERR(config_try_int(cfg, "t_int", 0, 100, &v, &e_), "main.cf:37: t_int: \"12x\" is not a valid number");
	config_free(&cfg);
	const char *bad[] = { "", "-", "+", "0x10", "1.5", "1 2", "--1", "1e3" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = one("t_int", bad[i]);
		buf_reset(&err);
		assert_false(config_try_int(cfg, "t_int", INT64_MIN, INT64_MAX, &v, &err));
		assert_non_null(strstr(buf_cstr(&err), "is not a valid number"));
		config_free(&cfg);
	}
	cfg = one("t_int", "101");
	EXPECT_ERR(config_try_int(cfg, "t_int", 1, 100, &v, &e_),
	           "main.cf:37: t_int: \"101\" is out of range (must be between 1 and 100)");
	config_free(&cfg);
	cfg = one("t_int", "0");
	EXPECT_ERR(config_try_int(cfg, "t_int", 1, 100, &v, &e_),
	           "main.cf:37: t_int: \"0\" is out of range (must be between 1 and 100)");
	config_free(&cfg);
	/* past int64 either way: out of range, not wrapped */
	cfg = one("t_int", "9223372036854775808");
	assert_false(config_try_int(cfg, "t_int", INT64_MIN, INT64_MAX, &v, &err));
	config_free(&cfg);
	cfg = one("t_int", "-9223372036854775809");
	assert_false(config_try_int(cfg, "t_int", INT64_MIN, INT64_MAX, &v, &err));
	config_free(&cfg);
	cfg = one("t_int", "99999999999999999999999999");
	buf_reset(&err);
	assert_false(config_try_int(cfg, "t_int", 0, 10, &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "is out of range"));
	config_free(&cfg);
	buf_free(&err);
}

static void test_bool(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	bool v;

	assert_true(config_bool(cfg, "t_bool"));
	const char *yes[] = { "yes", "YES", "true", "On", "1", " yes " };
	const char *no[] = { "no", "No", "false", "off", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		config_set(cfg, "t_bool", yes[i], "x");
		assert_true(config_bool(cfg, "t_bool"));
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		config_set(cfg, "t_bool", no[i], "x");
		assert_false(config_bool(cfg, "t_bool"));
	}
	config_free(&cfg);
	cfg = one("t_bool", "maybe");
	EXPECT_ERR(config_try_bool(cfg, "t_bool", &v, &e_),
	           "main.cf:37: t_bool: \"maybe\" is not a valid boolean (use yes or no)");
	config_free(&cfg);
	cfg = one("t_bool", "");
	EXPECT_ERR(config_try_bool(cfg, "t_bool", &v, &e_),
	           "main.cf:37: t_bool: \"\" is not a valid boolean (use yes or no)");
	config_free(&cfg);
}

static void test_time(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	int64_t v;
	struct buf err = BUF_INIT(BUF_NOLIMIT);

	assert_int_equal(config_time(cfg, "t_time", 0, 3600), 5);
	const char *good[] = { "7", "7s", "2m", "3h", "1d", "2w", "10S", "1H" };
	const int64_t want[] = { 7, 7, 120, 10800, 86400, 1209600, 10, 3600 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		config_set(cfg, "t_time", good[i], "x");
		assert_true(config_try_time(cfg, "t_time", 0, INT64_MAX, &v, &err));
		assert_int_equal(v, want[i]);
	}
	config_free(&cfg);

	/* the message the task asks for, word for word */
	cfg = one("t_time", "5x");
	EXPECT_ERR(config_try_time(cfg, "t_time", 0, 3600, &v, &e_),
	           "main.cf:37: t_time: \"5x\" is not a valid time (use a number with s, m, h, d or w)");
	config_free(&cfg);
	const char *bad[] = { "", "s", "-5", "5ss", "1.5h", "5 s", "1h30m", "5ms" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = one("t_time", bad[i]);
		buf_reset(&err);
		assert_false(config_try_time(cfg, "t_time", 0, INT64_MAX, &v, &err));
		assert_non_null(strstr(buf_cstr(&err), "is not a valid time"));
		config_free(&cfg);
	}
	cfg = one("t_time", "2h");
	EXPECT_ERR(config_try_time(cfg, "t_time", 1, 3600, &v, &e_),
	           "main.cf:37: t_time: \"2h\" is out of range (must be between 1s and 1h)");
	config_free(&cfg);
	cfg = one("t_time", "0");
	EXPECT_ERR(config_try_time(cfg, "t_time", 90, 86400 * 3, &v, &e_),
	           "main.cf:37: t_time: \"0\" is out of range (must be between 90s and 3d)");
	config_free(&cfg);
	/* overflow in the multiplication */
	cfg = one("t_time", "15250284452472w");
	buf_reset(&err);
	assert_false(config_try_time(cfg, "t_time", 0, INT64_MAX, &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "is out of range"));
	config_free(&cfg);
	cfg = one("t_time", "15250284452471w");	/* still fits */
	assert_true(config_try_time(cfg, "t_time", 0, INT64_MAX, &v, &err));
	assert_true(v == (int64_t)15250284452471 * 604800);
	config_free(&cfg);
	buf_free(&err);
}

static void test_size(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	uint64_t v;
	struct buf err = BUF_INIT(BUF_NOLIMIT);

	assert_int_equal(config_size(cfg, "t_size", 0, UINT64_MAX), 10 * 1024 * 1024);
	const char *good[] = { "0", "100", "1k", "2K", "3m", "1g", "18446744073709551615", "17179869183g" };
	const uint64_t want[] = { 0, 100, 1024, 2048, 3 * 1048576, 1073741824ULL, UINT64_MAX,
	                          17179869183ULL * 1073741824ULL };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		config_set(cfg, "t_size", good[i], "x");
		assert_true(config_try_size(cfg, "t_size", 0, UINT64_MAX, &v, &err));
		assert_true(v == want[i]);
	}
	config_free(&cfg);
	cfg = one("t_size", "10x");
	EXPECT_ERR(config_try_size(cfg, "t_size", 0, UINT64_MAX, &v, &e_),
	           "main.cf:37: t_size: \"10x\" is not a valid size (use a number of bytes with an optional k, m "
	           "or g)");
	config_free(&cfg);
	cfg = one("t_size", "11m");
	EXPECT_ERR(config_try_size(cfg, "t_size", 1024, 10 * 1048576, &v, &e_),
	           "main.cf:37: t_size: \"11m\" is out of range (must be between 1k and 10m)");
	config_free(&cfg);
	cfg = one("t_size", "17179869184g");	/* 2^64: overflow */
	buf_reset(&err);
	assert_false(config_try_size(cfg, "t_size", 0, UINT64_MAX, &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "is out of range"));
	config_free(&cfg);
	cfg = one("t_size", "-1");
	buf_reset(&err);
	assert_false(config_try_size(cfg, "t_size", 0, UINT64_MAX, &v, &err));
	assert_non_null(strstr(buf_cstr(&err), "is not a valid size"));
	config_free(&cfg);
	buf_free(&err);
}

static void test_list(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	size_t n = 99;
	char **l = config_list(cfg, "t_list", &n);

	assert_int_equal(n, 4);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b");
	assert_string_equal(l[2], "c");
	assert_string_equal(l[3], "d");
	assert_null(l[4]);
	config_list_free(&l);
	assert_null(l);
	config_set(cfg, "t_list", " ,\t, ", "x");
	l = config_list(cfg, "t_list", &n);
	assert_int_equal(n, 0);
	assert_null(l[0]);
	config_list_free(&l);
	config_set(cfg, "t_list", "$t_str,${t_str} one", "x");
	l = config_list(cfg, "t_list", NULL);
	assert_string_equal(l[0], "hello");
	assert_string_equal(l[1], "hello");
	assert_string_equal(l[2], "one");
	assert_null(l[3]);
	config_list_free(&l);
	config_free(&cfg);
}

struct seen {
	struct buf out;
	int count;
};

static void collect(const char *name, const char *value, bool set, void *arg)
{
	struct seen *s = arg;
	s->count++;
	if (set)
		buf_printf(&s->out, "%s=%s;", name, value);
}

static void test_foreach(void **state)
{
	(void)state;
	struct config *cfg = load("zz_unknown = 1\nt_str = hi\na = $t_ref\nt_loop1 = $t_loop1\n");
	struct seen s = { BUF_INIT(BUF_NOLIMIT), 0 };

	config_foreach(cfg, collect, &s);
	/* every table row plus the unknown one; table order first, a failing value passed raw */
	assert_int_equal(s.count, 15);
	assert_string_equal(buf_cstr(&s.out), "t_str=hi;t_loop1=$t_loop1;a=hi world;zz_unknown=1;");
	buf_free(&s.out);
	config_free(&cfg);
}

static void test_override(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT);

	assert_true(config_set_override(cfg, "t_str = a=b ", &err));
	assert_string_equal(config_raw(cfg, "t_str"), "a=b");
	assert_string_equal(config_origin(cfg, "t_str"), "-o");
	assert_false(config_set_override(cfg, "novalue", &err));
	assert_string_equal(buf_cstr(&err), "-o novalue: expected name=value");
	buf_reset(&err);
	assert_false(config_set_override(cfg, "=x", &err));
	assert_false(config_set_override(cfg, "a b=x", &err));
	buf_free(&err);
	config_free(&cfg);
}

/* ---- files ---- */

static char tmpdir[256];

static int make_tmpdir(void **state)
{
	(void)state;
	memcpy(tmpdir, "/tmp/test_config.XXXXXX", sizeof("/tmp/test_config.XXXXXX"));
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	/* compare with what realpath() gives, in case /tmp is a symbolic link */
	char *real = realpath(tmpdir, NULL);
	if (real == NULL || strlen(real) >= sizeof(tmpdir)) {
		free(real);
		return -1;
	}
	memcpy(tmpdir, real, strlen(real) + 1);
	free(real);
	return 0;
}

static int remove_tmpdir(void **state)
{
	(void)state;
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		struct buf p = BUF_INIT(BUF_NOLIMIT);
		if (de->d_name[0] == '.')
			continue;
		buf_printf(&p, "%s/%s", tmpdir, de->d_name);
		if (unlink(p.data) != 0) {
			buf_puts(&p, "/main.cf");
			unlink(p.data);
			buf_truncate(&p, p.len - 8);
			rmdir(p.data);
		}
		buf_free(&p);
	}
	if (d)
		closedir(d);
	return rmdir(tmpdir);
}

static char *path_in(const char *name)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&p, "%s/%s", tmpdir, name);
	return buf_steal(&p, NULL);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
}

static char *read_text(const char *path)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	return buf_steal(&b, NULL);
}

static int count_entries(void)
{
	int n = 0;
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_file_set(void **state)
{
	(void)state;
	char *path = path_in("main.cf");
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	char *text;
	struct stat st;

	write_text(path, "# Postern main.cf\n"
	                 "a = 1   # keep\n"
	                 "\n"
	                 "# about b\n"
	                 "b = first\n"
	                 "   second\n"
	                 "# inside\n"
	                 "   third\n"
	                 "c = 3\n"
	                 "a = 2\n"
	                 "# trailing comment\n",
	           0640);
	assert_true(config_file_set(path, "b", "new b", &err));
	assert_true(config_file_set(path, "a", "$c", &err));	/* the last assignment is the one in effect */
	assert_true(config_file_set(path, "t_str", "added", &err));
	assert_int_equal(err.len, 0);
	text = read_text(path);
	assert_string_equal(text, "# Postern main.cf\n"
	                          "a = 1   # keep\n"
	                          "\n"
	                          "# about b\n"
	                          "b = new b\n"
	                          "# inside\n"
	                          "c = 3\n"
	                          "a = $c\n"
	                          "# trailing comment\n"
	                          "t_str = added\n");
	free(text);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(count_entries(), 1);	/* no temporary file left */

	struct config *cfg = config_new();
	assert_true(config_load_file(cfg, path, &err, NULL));
	assert_string_equal(config_str(cfg, "a"), "3");
	assert_string_equal(config_str(cfg, "b"), "new b");
	assert_int_equal(strncmp(config_origin(cfg, "b"), path, strlen(path)), 0);
	assert_string_equal(config_origin(cfg, "b") + strlen(path), ":5");
	config_free(&cfg);

	/* no final newline; a file that does not exist yet */
	write_text(path, "a = 1", 0644);
	assert_true(config_file_set(path, "b", "2", &err));
	text = read_text(path);
	assert_string_equal(text, "a = 1\nb = 2\n");
	free(text);
	unlink(path);
	assert_true(config_file_set(path, "a", "x", &err));
	text = read_text(path);
	assert_string_equal(text, "a = x\n");
	free(text);

	/* refused: bad name, multi-line value; the file is untouched */
	assert_false(config_file_set(path, "a-b", "1", &err));
	assert_non_null(strstr(buf_cstr(&err), "bad parameter name"));
	buf_reset(&err);
	assert_false(config_file_set(path, "a", "1\nb = 2", &err));
	assert_string_equal(buf_cstr(&err), "a: the value must be one line");
	buf_reset(&err);
	text = read_text(path);
	assert_string_equal(text, "a = x\n");
	free(text);

	/* a directory that does not exist: an error naming it, nothing created */
	char *nowhere = path_in("nodir/main.cf");
	assert_false(config_file_set(nowhere, "a", "1", &err));
	assert_non_null(strstr(buf_cstr(&err), "No such file or directory"));
	free(nowhere);
	unlink(path);
	free(path);
	buf_free(&err);
}

static void test_file_set_symlink(void **state)
{
	(void)state;
	char *real = path_in("real.cf"), *link = path_in("link.cf");
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct stat st;
	char *text;

	write_text(real, "a = 1\n", 0600);
	assert_int_equal(symlink("real.cf", link), 0);
	assert_true(config_file_set(link, "a", "2", &err));
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));	/* still a link; the file it points to changed */
	text = read_text(real);
	assert_string_equal(text, "a = 2\n");
	free(text);
	assert_int_equal(stat(real, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	unlink(link);
	unlink(real);
	free(real);
	free(link);
	buf_free(&err);
}

/* Concurrent `config set` of different parameters: every change survives (the directory lock). */
static void test_file_set_concurrent(void **state)
{
	(void)state;
	char *path = path_in("main.cf");
	pid_t kids[4];
	char *text;

	write_text(path, "# shared\n", 0644);
	for (int k = 0; k < 4; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			char name[32], value[32];
			struct buf err = BUF_INIT(BUF_NOLIMIT);
			snprintf(name, sizeof(name), "p%d", k);
			for (int i = 0; i < 25; i++) {
				snprintf(value, sizeof(value), "%d", i);
				if (!config_file_set(path, name, value, &err))
					_exit(1);
			}
			_exit(0);
		}
	}
	for (int k = 0; k < 4; k++) {
		int st;
		assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	text = read_text(path);
	assert_int_equal(strncmp(text, "# shared\n", 9), 0);
	assert_int_equal(strlen(text), 9 + 4 * strlen("pN = 24\n"));
	for (int k = 0; k < 4; k++) {
		char line[32];
		snprintf(line, sizeof(line), "p%d = 24\n", k);
		assert_non_null(strstr(text, line));
	}
	free(text);
	assert_int_equal(count_entries(), 1);
	unlink(path);
	free(path);
}

static void test_text_set(void **state)
{
	(void)state;
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	const char *in = "ab = 1\na = x\n  y\n\n  z\nabc = 2\n";

	/* names match exactly, not by prefix; continuation lines after a blank line still belong */
	config_text_set(in, strlen(in), "a", "new", &out);
	assert_string_equal(buf_cstr(&out), "ab = 1\na = new\n\nabc = 2\n");
	buf_reset(&out);
	config_text_set("", 0, "a", "1", &out);
	assert_string_equal(buf_cstr(&out), "a = 1\n");
	buf_reset(&out);
	/* an assignment on the last line without a newline */
	config_text_set("b = 1\na = 2", 11, "a", "3", &out);
	assert_string_equal(buf_cstr(&out), "b = 1\na = 3\n");
	buf_free(&out);
}

static void test_load_file_errors(void **state)
{
	(void)state;
	char *path = path_in("missing.cf");
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT);

	assert_false(config_load_file(cfg, path, &err, NULL));
	assert_int_equal(strncmp(buf_cstr(&err), path, strlen(path)), 0);
	assert_string_equal(buf_cstr(&err) + strlen(path), ": No such file or directory");
	buf_reset(&err);
	write_text(path, "a = 1\n\n\nbroken\n", 0644);
	assert_false(config_load_file(cfg, path, &err, NULL));
	assert_string_equal(buf_cstr(&err) + strlen(path), ":4: missing \"=\" in \"broken\" (expected name = value)");
	unlink(path);
	free(path);
	buf_free(&err);
	config_free(&cfg);
}

static void test_load_dir(void **state)
{
	(void)state;
	char *etc = path_in("etc");
	char *path = path_in("etc/main.cf");
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	char *used = NULL;

	/* neither layout */
	assert_false(config_load_dir(cfg, tmpdir, NULL, &err, NULL));
	assert_non_null(strstr(buf_cstr(&err), "no main.cf found"));
	buf_reset(&err);
	/* an instance directory: paths follow it, absolute even when given relative */
	assert_int_equal(mkdir(etc, 0755), 0);
	write_text(path, "a = 1\n", 0644);
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	assert_true(config_load_dir(cfg, ".", NULL, &err, NULL));
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(config_str(cfg, "instance_directory"), tmpdir);
	config_free(&cfg);
	cfg = config_new();
	write_text(path, "a = $config_directory\n", 0644);
	assert_true(config_load_dir(cfg, tmpdir, &used, &err, NULL));
	assert_string_equal(used, path);
	free(used);
	assert_string_equal(config_str(cfg, "instance_directory"), tmpdir);
	assert_int_equal(strncmp(config_str(cfg, "a"), tmpdir, strlen(tmpdir)), 0);
	assert_string_equal(config_str(cfg, "a") + strlen(tmpdir), "/etc");
	config_free(&cfg);
	/* a configuration directory */
	cfg = config_new();
	assert_true(config_load_dir(cfg, etc, NULL, &err, NULL));
	assert_string_equal(config_str(cfg, "config_directory"), etc);
	assert_string_equal(config_str(cfg, "a"), etc);
	config_free(&cfg);
	unlink(path);
	rmdir(etc);
	free(path);
	free(etc);
	buf_free(&err);
}

/* LeakSanitizer would turn exit(1) into its own status: the child leaves at once instead */
static void quick_exit_hook(void)
{
	_exit(1);
}

/* The plain getters are for daemons at start-up: a bad value ends the process with the message. */
static int child_status(void (*fn)(void))
{
	pid_t pid = fork();
	int status;
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 2);
		log_set_fatal_hook(quick_exit_hook);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void bad_time(void)
{
	struct config *cfg = one("t_time", "5x");
	(void)config_time(cfg, "t_time", 0, 10);
}

static void loop_str(void)
{
	struct config *cfg = config_new();
	(void)config_str(cfg, "t_loop1");
}

static void not_in_table(void)
{
	struct config *cfg = one("zz", "1");
	(void)config_str(cfg, "zz");
}

static void test_fatal_paths(void **state)
{
	(void)state;
	int st = child_status(bad_time);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	st = child_status(loop_str);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	st = child_status(not_in_table);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_speed),
		cmocka_unit_test(test_unknown_warning),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_errors),
		cmocka_unit_test(test_loops),
		cmocka_unit_test(test_depth_and_size),
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_override),
		cmocka_unit_test(test_file_set),
		cmocka_unit_test(test_file_set_symlink),
		cmocka_unit_test(test_file_set_concurrent),
		cmocka_unit_test(test_text_set),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_load_dir),
		cmocka_unit_test(test_fatal_paths),
	};
	return cmocka_run_group_tests_name("config", tests, make_tmpdir, remove_tmpdir);
}
